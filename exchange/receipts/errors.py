"""Errors raised when decoding, verifying and reconciling receipts (spec: docs/receipts.md §8).

The tree::

    ReceiptError                  base of every refusal; ``rule`` names the broken rule
    ├── ReceiptFormatError        the bytes break a structural rule: ``field`` and ``offset``
    │                             say where (receipt.length, .label, .version, .status,
    │                             .ids, .codes, .transport-ref, .disposition, .trailing-data)
    ├── ReceiptAddressError       the receipt is not for this sender, or not from a recipient
    │                             of the envelope (receipt.sender, receipt.recipient)
    ├── ReceiptTimeError          the receipt's time is too far in the future (receipt.time)
    ├── ReceiptKeyError           the receipter or its key is unknown, revoked or not valid at
    │                             the receipt's time (receipt.receipter-known,
    │                             receipt.key-revoked, receipt.key-valid)
    ├── ReceiptSignatureError     the signature does not verify (receipt.signature)
    ├── ReceiptMismatchError      a validly signed receipt about another envelope or other
    │                             bytes than the sender sealed (receipt.envelope-id,
    │                             receipt.digest)
    └── ReceiptConflictError      a second, different final disposition from one organisation
                                  for one envelope (receipt.final-disposition)

Catch ``ReceiptError`` to handle every refusal alike. Asking for a receipt the format cannot
express (a bad field value, a key that is not the receipter's) is caller misuse and raises
``ValueError`` or ``TypeError`` naming the argument instead. Messages are plain sentences
naming the rule and, for format errors, the field and byte offset; they contain organisation
ids, short key ids and short digests, which are public, and never key material. ``hint``
carries remediation for operators, kept apart from the message.
"""

from __future__ import annotations

from typing import ClassVar


class ReceiptError(Exception):
    """Base class of every receipt refusal; ``rule`` is the spec rule id that was broken."""

    rule: str
    #: What an operator can do about it; never part of the message.
    hint: ClassVar[str] = ""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"receipt refused [{rule}]: {message}")
        self.rule = rule


class ReceiptFormatError(ReceiptError):
    """The bytes break a structural rule of the receipt format."""

    hint = "The peer's software writes malformed receipts; report it to its operator."

    def __init__(self, rule: str, field: str, offset: int, message: str) -> None:
        Exception.__init__(
            self, f"receipt format error at byte {offset} in {field} [{rule}]: {message}"
        )
        self.rule = rule
        self.field = field
        self.offset = offset


class ReceiptAddressError(ReceiptError):
    """The receipt is addressed to another sender, or its receipter was not a recipient."""

    hint = "Check that receipts are matched to envelopes by envelope id before verifying."


class ReceiptTimeError(ReceiptError):
    """The receipt claims a time further in the future than clock skew explains."""

    hint = "Check both nodes' clocks (NTP); a receipt from the future is never accepted."


class ReceiptKeyError(ReceiptError):
    """The receipting organisation, or the key it signed with, is not trusted at that time."""

    hint = "Refresh the directory; if the key was revoked, ask the receipter to re-send."


class ReceiptSignatureError(ReceiptError):
    """The signature does not verify under the receipter's key."""

    hint = "The receipt was altered or forged; keep it as evidence and do not record it."


class ReceiptMismatchError(ReceiptError):
    """A validly signed receipt names another envelope, or other bytes, than were sealed.

    For ``receipt.digest`` this is the AS2 failure: the recipient
    signed for an envelope whose digest is not the one the sender computed, so what it holds
    is not what was sent.
    """

    hint = (
        "The recipient holds different bytes than were sent: treat the envelope as not "
        "delivered, keep the receipt as evidence and investigate before re-sending."
    )


class ReceiptConflictError(ReceiptError):
    """A second final disposition contradicts one the same organisation already gave."""

    hint = "Contact the receipting organisation: it has both accepted and refused the record."
