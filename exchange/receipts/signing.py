"""Signing receipts, and the sender's verification of a receipt it was sent (docs/receipts.md §7).

The receipter signs the statement with its organisation's Ed25519 key; the statement starts
with ``L_RECEIPT``, so a receipt signature can never be taken for an envelope signature made
by the same key, or the reverse. The sender verifies a receipt against what *it* knows about
the envelope: the digest it computed when sealing, the envelope id, itself, and the
recipients it sealed to. The checks run in the order of docs/receipts.md §7: structure, then
the cheap checks that need no cryptography, then the signature, and last the comparison with
the sealed envelope, so that a mismatch is always reported about a genuinely signed receipt.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Final, Protocol

from exchange.envelope.format import ENVELOPE_ID_LEN, HASH_LEN, MAX_CLOCK_SKEW
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import KeyId, OrgId, parse_org_id
from exchange.keys.keypairs import BadSignatureError, SigningKey, SigningPublicKey
from exchange.receipts.errors import (
    ReceiptAddressError,
    ReceiptKeyError,
    ReceiptMismatchError,
    ReceiptSignatureError,
    ReceiptTimeError,
)
from exchange.receipts.format import SignedReceipt, encode_receipt, parse_signed
from exchange.receipts.receipt import Receipt

#: How the directory's lookup failures map to the rules of docs/receipts.md §7 step 5.
_KEY_RULES: Final = {
    "unknown-organisation": "receipt.receipter-known",
    "unknown-key": "receipt.receipter-known",
    "revoked": "receipt.key-revoked",
    "not-valid": "receipt.key-valid",
}
_SHORT: Final = 16


class ReceipterKeys(Protocol):
    """What verification needs from the directory (``exchange.keys.directory.Directory`` has it)."""

    def signing_key_for(self, org_id: OrgId, key_id: KeyId, at: int) -> SigningPublicKey:
        """Return the organisation's signing key valid at ``at``, or raise ``KeyLookupError``."""
        ...


def sign_receipt(r: Receipt, key: SigningKey) -> SignedReceipt:
    """Sign ``r`` with ``key``, which must be the key ``r.receipter_key`` names."""
    if not isinstance(r, Receipt):
        raise TypeError("r must be a Receipt")
    if not isinstance(key, SigningKey):
        raise TypeError("key must be a SigningKey")
    if not hmac.compare_digest(key.public.key_id, r.receipter_key):
        raise ValueError(
            f"key: its key id {key.public.key_id.hex()[:_SHORT]}… is not the receipt's "
            f"receipter_key {r.receipter_key.hex()[:_SHORT]}…"
        )
    statement = encode_receipt(r)
    return SignedReceipt(statement, key.sign(statement))


def _check_argument(value: object, name: str, length: int) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes")
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, not {len(value)}")
    return value


def verify_receipt(
    data: bytes,
    *,
    expected_digest: bytes,
    expected_envelope_id: bytes,
    sender: OrgId,
    recipients: Collection[OrgId],
    directory: ReceipterKeys,
    now: int,
) -> Receipt:
    """Return the receipt in ``data`` if it is a genuine receipt for the envelope sealed.

    ``expected_digest`` is the envelope digest the sender computed when sealing, never one
    taken from the receipt or recomputed from bytes the recipient returned (receipt.digest);
    ``recipients`` are the organisations the envelope was sealed to; ``now`` is the sender's
    clock in unix seconds. Raises a :class:`~exchange.receipts.errors.ReceiptError` subclass
    whose ``rule`` names the first rule of docs/receipts.md §7 the receipt breaks.
    """
    _check_argument(expected_digest, "expected_digest", HASH_LEN)
    _check_argument(expected_envelope_id, "expected_envelope_id", ENVELOPE_ID_LEN)
    parse_org_id(sender, field="sender")
    if isinstance(recipients, str):
        raise TypeError("recipients must be a collection of organisation ids, not one string")
    if type(now) is not int:
        raise TypeError("now must be an integer (unix seconds)")

    # Step 1: structure (receipt.length ... receipt.trailing-data).
    signed = parse_signed(data)
    r = signed.receipt
    who = f"the receipt from {r.receipter} with key {r.receipter_key.hex()[:_SHORT]}…"

    # Steps 2-4 need no cryptography and no trust in the bytes, so junk costs nothing.
    if r.sender != sender:
        raise ReceiptAddressError(
            "receipt.sender", f"{who} is addressed to {r.sender}, not to {sender}"
        )
    if r.receipter not in recipients:
        raise ReceiptAddressError(
            "receipt.recipient", f"{who} is not from a recipient of the envelope"
        )
    if r.time > now + MAX_CLOCK_SKEW:
        raise ReceiptTimeError(
            "receipt.time", f"{who} claims a time {r.time - now} s ahead of this clock"
        )

    # Step 5: the receipter's key, as the directory lists it at the receipt's time.
    try:
        public = directory.signing_key_for(r.receipter, r.receipter_key, r.time)
    except KeyLookupError as exc:
        rule = _KEY_RULES.get(exc.reason, "receipt.receipter-known")
        raise ReceiptKeyError(rule, f"{who}: {exc}") from None

    # Step 6: the signature. Nothing in the receipt is believed before this.
    try:
        public.verify(signed.statement, signed.signature)
    except BadSignatureError:
        raise ReceiptSignatureError(
            "receipt.signature", f"{who} does not carry a valid signature"
        ) from None

    # Steps 7-8: a genuine receipt, but is it about the envelope this sender sealed?
    if not hmac.compare_digest(r.envelope_id, expected_envelope_id):
        raise ReceiptMismatchError(
            "receipt.envelope-id",
            f"{who} is about envelope {r.envelope_id.hex()}, not {expected_envelope_id.hex()}",
        )
    if not hmac.compare_digest(r.envelope_digest, expected_digest):
        raise ReceiptMismatchError(
            "receipt.digest",
            f"{who} names the envelope digest {r.envelope_digest.hex()[:_SHORT]}…, not the "
            f"digest {expected_digest.hex()[:_SHORT]}… computed when sealing",
        )
    return r
