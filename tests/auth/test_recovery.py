"""Recovery codes: made from injected randomness, readable, hashed case-insensitively."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.auth.errors import InvalidCodeError
from exchange.auth.recovery import (
    ALPHABET,
    generate_recovery_codes,
    looks_like_recovery_code,
    recovery_code_hash,
)


def _source(seed: int) -> random.Random:
    return random.Random(seed)


def test_ten_codes_of_four_groups_of_four() -> None:
    """An enrolment makes ten distinct codes shaped XXXX-XXXX-XXXX-XXXX."""
    rng = _source(1)
    codes = generate_recovery_codes(rng.randbytes)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert all(c in ALPHABET for c in "".join(groups))


def test_alphabet_has_no_lookalikes() -> None:
    """Characters read or typed for one another are left out."""
    assert not set("01OILUV") & set(ALPHABET)


def test_codes_come_only_from_the_injected_source() -> None:
    """The same random source gives the same codes (nothing else is drawn)."""
    assert generate_recovery_codes(_source(7).randbytes) == generate_recovery_codes(
        _source(7).randbytes
    )


def test_biased_bytes_are_drawn_again() -> None:
    """Bytes that would bias the choice are skipped, not folded onto the alphabet."""
    stream = iter([255] * 16 + list(range(16)))
    codes = generate_recovery_codes(lambda n: bytes(next(stream) for _ in range(n)), count=1)
    assert codes[0].replace("-", "") == ALPHABET[:16]


@given(st.integers(min_value=0, max_value=2**32))
def test_hash_ignores_case_spaces_and_hyphens(seed: int) -> None:
    """A code typed in lower case, without hyphens or with spaces hashes the same."""
    (code,) = generate_recovery_codes(_source(seed).randbytes, count=1)
    expected = recovery_code_hash(code)
    assert recovery_code_hash(code.lower()) == expected
    assert recovery_code_hash(code.replace("-", "")) == expected
    assert recovery_code_hash(code.replace("-", " ")) == expected


@pytest.mark.parametrize("typed", ["", "123456", "AAAA-AAAA-AAAA", "OOOO-OOOO-OOOO-OOOO"])
def test_rejects_what_is_not_a_recovery_code(typed: str) -> None:
    """Text of the wrong length or with letters outside the alphabet is not a code."""
    assert not looks_like_recovery_code(typed)
    with pytest.raises(InvalidCodeError):
        recovery_code_hash(typed)
