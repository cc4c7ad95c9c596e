"""Passwords: the rules, Argon2id PHC strings, constant-time checks and parameters kept."""

from __future__ import annotations

import nacl.pwhash.argon2id
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.auth.errors import PasswordHashError, WeakPasswordError, WrongPasswordError
from exchange.auth.passwords import (
    DEFAULT_PARAMS,
    PasswordParams,
    check_password_rules,
    hash_password,
    needs_rehash,
    verify_password,
)

FAST = PasswordParams.fast_for_tests()
GOOD = "correct horse battery staple"


def _salt(n: int) -> bytes:
    return b"\x01" * n


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "Password must be 12 characters or more"),
        ("x" * 257, "Password must be 256 characters or fewer"),
        ("a" * 12, "Password must not be one character repeated"),
    ],
)
def test_rules_refuse_with_a_plain_reason(password: str, reason: str) -> None:
    """Each broken rule is refused with a sentence saying which, never the password."""
    with pytest.raises(WeakPasswordError) as caught:
        check_password_rules(password)
    assert str(caught.value) == reason


def test_rules_accept_a_long_passphrase() -> None:
    """A passphrase of 12 characters or more passes without composition rules."""
    check_password_rules(GOOD)
    check_password_rules("é" * 11 + "e")


def test_hash_is_a_phc_string_with_its_parameters() -> None:
    """The hash names Argon2id, its version, memory in KiB, passes and one lane."""
    encoded = hash_password(GOOD, _salt, FAST)
    assert encoded.startswith(f"$argon2id$v=19$m={FAST.memlimit // 1024},t={FAST.opslimit},p=1$")
    assert GOOD not in encoded


def test_verifies_the_right_password() -> None:
    """The password it was made from verifies."""
    verify_password(GOOD, hash_password(GOOD, _salt, FAST))


def test_refuses_a_wrong_password() -> None:
    """Another password is refused."""
    with pytest.raises(WrongPasswordError):
        verify_password(GOOD + "!", hash_password(GOOD, _salt, FAST))


def test_libsodium_reads_our_hashes() -> None:
    """The string is libsodium's own format: its verifier accepts it."""
    assert nacl.pwhash.argon2id.verify(
        hash_password(GOOD, _salt, FAST).encode("ascii"), GOOD.encode("utf-8")
    )


def test_we_read_libsodiums_hashes() -> None:
    """A hash written by libsodium verifies here (parameters read from the string)."""
    encoded = nacl.pwhash.argon2id.str(
        GOOD.encode(), opslimit=FAST.opslimit, memlimit=FAST.memlimit
    ).decode("ascii")
    verify_password(GOOD, encoded)


def test_unicode_forms_of_one_password_match() -> None:
    """The composed and decomposed forms of an accented password are the same password."""
    verify_password("café au lait!!", hash_password("cafe\u0301 au lait!!", _salt, FAST))


def test_salt_comes_from_the_injected_source() -> None:
    """Two salts give two hashes of one password."""
    first = hash_password(GOOD, lambda n: b"\x01" * n, FAST)
    second = hash_password(GOOD, lambda n: b"\x02" * n, FAST)
    assert first != second


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "$argon2i$v=19$m=8,t=1,p=1$AQEBAQEBAQEBAQEBAQEBAQ$" + "A" * 43,
        "$argon2id$v=19$m=8,t=99,p=1$AQEBAQEBAQEBAQEBAQEBAQ$" + "A" * 43,
        "$argon2id$v=19$m=99999999,t=1,p=1$AQEBAQEBAQEBAQEBAQEBAQ$" + "A" * 43,
    ],
)
def test_refuses_malformed_or_out_of_bounds_hashes(encoded: str) -> None:
    """A damaged stored hash is refused as such, never computed with absurd parameters."""
    with pytest.raises(PasswordHashError):
        verify_password(GOOD, encoded)


def test_too_long_password_is_refused_even_if_its_prefix_matches() -> None:
    """A password over the limit never verifies."""
    long = "p" * 100 + "q" * 200
    with pytest.raises(WrongPasswordError):
        verify_password(long, hash_password(long[:1024], _salt, FAST))


def test_needs_rehash_when_parameters_change() -> None:
    """A hash made with the test parameters needs rehashing under the defaults."""
    encoded = hash_password(GOOD, _salt, FAST)
    assert needs_rehash(encoded, DEFAULT_PARAMS)
    assert not needs_rehash(encoded, FAST)


@settings(max_examples=10, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_password_round_trips(password: str) -> None:
    """Whatever text is hashed verifies against its own hash."""
    verify_password(password, hash_password(password, _salt, FAST))
