"""The store's rows of a verified envelope and of a signed receipt.

These turn what the envelope and receipt packages return into the value types of
:mod:`exchange.model` that the store keeps. Ledger events are built by
:mod:`exchange.service.ledger`.
"""

from __future__ import annotations

from exchange.envelope import VerifiedEnvelope
from exchange.model import EnvelopeDigest, EnvelopeRecord, ReceiptDigest, ReceiptRecord
from exchange.receipts import SignedReceipt, serialize_signed

# The delivery worker still imports the event builder from here; it is the ledger module's
# typed builder, re-exported until that worker builds its events through the ledger module.
from exchange.service.ledger import ledger_event

__all__ = ["envelope_record", "ledger_event", "receipt_record"]


def envelope_record(verified: VerifiedEnvelope) -> EnvelopeRecord:
    """Return the store's row of a verified envelope."""
    header = verified.header
    return EnvelopeRecord(
        digest=EnvelopeDigest(verified.digest),
        envelope_id=header.envelope_id,
        sender=header.sender,
        recipients=header.recipients,
        record_kind=header.record_kind,
        created=header.created,
        length=verified.envelope_length,
    )


def receipt_record(signed: SignedReceipt, *, not_before: int | None = None) -> ReceiptRecord:
    """Return the store's row of a signed receipt.

    ``not_before`` is the envelope's own time (its ``created``) for a receipt this node was
    sent: a receipt signed by a slow clock can claim a time before the envelope existed,
    and its row's time is then the envelope's, so no register or deadline shows a receipt
    (a deadline met) before the record was sent. The signed bytes keep the receipter's
    own time, for anyone who checks them (docs/receipts.md §7).
    """
    r = signed.receipt
    return ReceiptRecord(
        digest=ReceiptDigest(signed.digest),
        envelope_digest=EnvelopeDigest(r.envelope_digest),
        receipter=r.receipter,
        status=r.status.value,
        time=r.time if not_before is None else max(r.time, not_before),
        signed=serialize_signed(signed),
    )
