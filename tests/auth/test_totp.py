"""TOTP (RFC 6238): the Appendix B vectors, the window, replay and the provisioning URI."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.auth.errors import InvalidCodeError
from exchange.auth.totp import TotpSecret, code_at, provisioning_uri, time_step, verify_code

#: RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
RFC_SECRET = TotpSecret(b"12345678901234567890")

#: RFC 6238 Appendix B, SHA-1 rows: time and the 8-digit TOTP; apps show its last 6 digits.
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
NOW = 1_800_000_000


@pytest.mark.parametrize(("now", "eight_digits"), RFC_VECTORS)
def test_produces_the_rfc_6238_codes(now: int, eight_digits: str) -> None:
    """The code at each Appendix B time is the last 6 digits of the RFC's SHA-1 value."""
    assert code_at(RFC_SECRET, now) == eight_digits[-6:]


@pytest.mark.parametrize(("now", "eight_digits"), RFC_VECTORS)
def test_accepts_the_rfc_6238_codes(now: int, eight_digits: str) -> None:
    """Each Appendix B code is accepted at its time and its step is returned."""
    assert verify_code(RFC_SECRET, eight_digits[-6:], now, last_used_step=None) == time_step(now)


def test_accepts_one_step_either_side() -> None:
    """Codes of the previous and next 30-second steps are accepted (clock drift)."""
    for offset in (-30, 30):
        code = code_at(RFC_SECRET, NOW + offset)
        assert verify_code(RFC_SECRET, code, NOW, last_used_step=None) == time_step(NOW + offset)


def test_rejects_a_code_two_steps_away() -> None:
    """A code from two steps ago is outside the window and refused."""
    code = code_at(RFC_SECRET, NOW - 60)
    with pytest.raises(InvalidCodeError):
        verify_code(RFC_SECRET, code, NOW, last_used_step=None)


def test_rejects_a_code_of_the_step_already_used() -> None:
    """The same code, or any of its step or before, is refused after it was used."""
    code = code_at(RFC_SECRET, NOW)
    step = verify_code(RFC_SECRET, code, NOW, last_used_step=None)
    with pytest.raises(InvalidCodeError, match="already been used"):
        verify_code(RFC_SECRET, code, NOW + 1, last_used_step=step)
    earlier = code_at(RFC_SECRET, NOW - 30)
    with pytest.raises(InvalidCodeError):
        verify_code(RFC_SECRET, earlier, NOW, last_used_step=step)


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "123 45x"])
def test_rejects_malformed_codes(typed: str) -> None:
    """Anything but 6 ASCII digits is refused before any comparison."""
    with pytest.raises(InvalidCodeError, match="6 digits"):
        verify_code(RFC_SECRET, typed, NOW, last_used_step=None)


def test_accepts_spaces_and_hyphens_people_type() -> None:
    """A code typed as "123 456" or "123-456" is the code."""
    code = code_at(RFC_SECRET, NOW)
    assert verify_code(RFC_SECRET, f"{code[:3]} {code[3:]}", NOW, last_used_step=None)


@given(st.binary(min_size=20, max_size=20), st.integers(min_value=60, max_value=2**40))
def test_a_wrong_secret_gives_a_refusal_or_a_rare_collision(raw: bytes, now: int) -> None:
    """A code made with one secret is accepted by another only if the codes coincide."""
    code = code_at(TotpSecret(raw), now)
    collides = code in {code_at(RFC_SECRET, now + d) for d in (-30, 0, 30)}
    if not collides and raw != RFC_SECRET.raw:
        with pytest.raises(InvalidCodeError):
            verify_code(RFC_SECRET, code, now, last_used_step=None)


def test_provisioning_uri_names_issuer_account_and_parameters() -> None:
    """The otpauth URI has the issuer, the account, the base32 secret and SHA1/6/30."""
    uri = provisioning_uri(RFC_SECRET, "dsl@school.example")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Secure exchange:dsl@school.example"
    query = parse_qs(parts.query)
    assert query == {
        "secret": ["GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"],
        "issuer": ["Secure exchange"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }


def test_secret_round_trips_through_base32_and_hides_in_repr() -> None:
    """A secret reads back from its base32 text, and repr or str never show it."""
    assert TotpSecret.from_base32(RFC_SECRET.base32.lower()) == RFC_SECRET
    assert RFC_SECRET.base32 not in repr(RFC_SECRET)
    assert "1234" not in str(RFC_SECRET)


def test_generated_secret_is_160_bits_from_the_injected_source() -> None:
    """A new secret takes its 20 bytes from the random source it is given."""
    assert TotpSecret.generate(lambda n: b"\x07" * n).raw == b"\x07" * 20
