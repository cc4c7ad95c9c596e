"""Signing and verifying receipts: tampering, check order, key lookups and caller misuse."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import KeyId, OrgId
from exchange.keys.keypairs import SigningKey, SigningPublicKey
from exchange.receipts import (
    ReceiptAddressError,
    ReceiptError,
    ReceiptKeyError,
    ReceiptMismatchError,
    ReceiptSignatureError,
    ReceiptStatus,
    ReceiptTimeError,
    parse_signed,
    sign_receipt,
    verify_receipt,
)
from tests.receipts.conftest import POSITIVE, Fixture, fixture_for

NAMES = [p.stem for p in POSITIVE]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_byte_flipped_fails_verification(name: str, mask: int) -> None:
    """Flipping bits of any one byte of a signed receipt makes verification refuse it."""
    fx = fixture_for(name)
    for i in range(len(fx.signed)):
        tampered = bytearray(fx.signed)
        tampered[i] ^= mask
        with pytest.raises(ReceiptError):
            verify_receipt(bytes(tampered), **fx.kwargs)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_tampering_fails_verification(data: st.DataObject) -> None:
    """Any change of a signed receipt's bytes (edit, cut or extension) is refused."""
    fx = fixture_for(data.draw(st.sampled_from(NAMES)))
    mutated = data.draw(st.binary(min_size=0, max_size=600).filter(lambda b: b != fx.signed))
    start = data.draw(st.integers(0, len(fx.signed)))
    end = data.draw(st.integers(start, len(fx.signed)))
    tampered = fx.signed[:start] + mutated[: data.draw(st.integers(0, 8))] + fx.signed[end:]
    if tampered == fx.signed:
        return
    with pytest.raises(ReceiptError):
        verify_receipt(tampered, **fx.kwargs)


def test_sign_refuses_a_key_other_than_the_receipters(acknowledged: Fixture) -> None:
    """sign_receipt refuses a key whose id is not the receipt's receipter_key, naming `key`."""
    other = SigningKey(hashlib.sha256(b"another key").digest())
    with pytest.raises(ValueError, match=r"^key: "):
        sign_receipt(acknowledged.receipt, other)


def test_sign_refuses_wrong_types(acknowledged: Fixture) -> None:
    """sign_receipt refuses a non-Receipt and a non-SigningKey."""
    with pytest.raises(TypeError):
        sign_receipt(acknowledged.signed, acknowledged.key)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign_receipt(acknowledged.receipt, acknowledged.key.public)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argument", "value", "error"),
    [
        ("expected_digest", bytes(31), ValueError),
        ("expected_digest", "00" * 32, TypeError),
        ("expected_envelope_id", bytes(32), ValueError),
        ("sender", "not an id", ValueError),
        ("recipients", "la:356", TypeError),
        ("now", 1.5, TypeError),
    ],
)
def test_verify_refuses_caller_misuse(
    acknowledged: Fixture, argument: str, value: object, error: type[Exception]
) -> None:
    """Wrong verify_receipt arguments raise ValueError or TypeError naming the argument."""
    with pytest.raises(error, match=argument):
        verify_receipt(acknowledged.signed, **{**acknowledged.kwargs, argument: value})


def test_mismatch_is_reported_only_for_a_genuine_signature(acknowledged: Fixture) -> None:
    """A receipt naming another digest with a bad signature is a signature error, not a mismatch."""
    other = acknowledged.make(envelope_digest=bytes(32))
    forged = other[:-64] + acknowledged.signed[-64:]
    with pytest.raises(ReceiptSignatureError):
        verify_receipt(forged, **acknowledged.kwargs)
    with pytest.raises(ReceiptMismatchError) as info:
        verify_receipt(other, **acknowledged.kwargs)
    assert info.value.rule == "receipt.digest"
    assert "computed when sealing" in str(info.value)


def test_envelope_id_is_checked_before_digest(acknowledged: Fixture) -> None:
    """A receipt for another envelope altogether is receipt.envelope-id."""
    data = acknowledged.make(envelope_digest=bytes(32), envelope_id=bytes(16))
    with pytest.raises(ReceiptMismatchError) as info:
        verify_receipt(data, **acknowledged.kwargs)
    assert info.value.rule == "receipt.envelope-id"


def test_checks_needing_no_crypto_come_first(acknowledged: Fixture) -> None:
    """Addressing and time are checked before the directory is consulted."""
    calls: list[Any] = []

    class Recording:
        def signing_key_for(self, org_id: OrgId, key_id: KeyId, at: int) -> SigningPublicKey:
            calls.append((org_id, key_id, at))
            raise KeyLookupError("nobody", "unknown-organisation")

    kwargs = {**acknowledged.kwargs, "directory": Recording()}
    for changes, error in [
        ({"sender": OrgId("la:999")}, ReceiptAddressError),
        ({"receipter": OrgId("la:999")}, ReceiptAddressError),
        ({"time": acknowledged.vector["now"] + 10_000}, ReceiptTimeError),
    ]:
        data = acknowledged.make(**changes)
        with pytest.raises(error):
            verify_receipt(data, **kwargs)
    assert calls == []
    with pytest.raises(ReceiptKeyError) as info:
        verify_receipt(acknowledged.signed, **kwargs)
    assert info.value.rule == "receipt.receipter-known"
    assert calls == [
        (
            acknowledged.receipt.receipter,
            acknowledged.receipt.receipter_key,
            acknowledged.receipt.time,
        )
    ]


@pytest.mark.parametrize(
    ("reason", "rule"),
    [
        ("unknown-organisation", "receipt.receipter-known"),
        ("unknown-key", "receipt.receipter-known"),
        ("revoked", "receipt.key-revoked"),
        ("not-valid", "receipt.key-valid"),
        ("unknown", "receipt.receipter-known"),
    ],
)
def test_key_lookup_reasons_map_to_rules(acknowledged: Fixture, reason: str, rule: str) -> None:
    """Each KeyLookupError reason becomes its receipt rule, without chaining the lookup error."""

    class Refusing:
        def signing_key_for(self, org_id: OrgId, key_id: KeyId, at: int) -> SigningPublicKey:
            del org_id, key_id, at
            raise KeyLookupError("refused", reason)

    with pytest.raises(ReceiptKeyError) as info:
        verify_receipt(acknowledged.signed, **{**acknowledged.kwargs, "directory": Refusing()})
    assert info.value.rule == rule
    assert info.value.__cause__ is None
    assert acknowledged.receipt.receipter in str(info.value)


def test_time_skew_boundary(acknowledged: Fixture) -> None:
    """A receipt 300 s ahead of the clock is accepted; 301 s ahead is receipt.time."""
    t = acknowledged.receipt.time
    verify_receipt(acknowledged.signed, **{**acknowledged.kwargs, "now": t - 300})
    with pytest.raises(ReceiptTimeError) as info:
        verify_receipt(acknowledged.signed, **{**acknowledged.kwargs, "now": t - 301})
    assert info.value.rule == "receipt.time"


def test_receipt_from_the_other_recipient_verifies() -> None:
    """Every recipient of the envelope may receipt it; each verifies under its own key."""
    for name in NAMES:
        fx = fixture_for(name)
        assert verify_receipt(fx.signed, **fx.kwargs).receipter in fx.kwargs["recipients"]


def test_verify_returns_the_decoded_receipt(acknowledged: Fixture) -> None:
    """The value returned is the receipt the bytes hold, which parse_signed also gives."""
    r = verify_receipt(acknowledged.signed, **acknowledged.kwargs)
    assert r == parse_signed(acknowledged.signed).receipt == acknowledged.receipt
    assert r.status is ReceiptStatus.ACKNOWLEDGED


def test_errors_carry_a_hint_apart_from_the_message(acknowledged: Fixture) -> None:
    """A mismatch error has an operator hint that is not part of its message."""
    with pytest.raises(ReceiptMismatchError) as info:
        verify_receipt(acknowledged.signed, **{**acknowledged.kwargs, "expected_digest": bytes(32)})
    assert info.value.hint
    assert info.value.hint not in str(info.value)
