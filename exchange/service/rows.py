"""What the node service writes beside an envelope: ledger events and store rows.

Every state change commits its ledger events with it, in one transaction (see
:mod:`exchange.service.node_service`); these build the encoded events and the envelope and receipt
rows the store keeps.
"""

from __future__ import annotations

from exchange.envelope import VerifiedEnvelope
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType, LedgerEvent, encode_event
from exchange.model import EnvelopeRecord, ReceiptRecord
from exchange.receipts import SignedReceipt, serialize_signed


def ledger_event(
    kind: str,
    at: int,
    org: OrgId,
    digest: bytes,
    *,
    counterparty: OrgId | None = None,
    receipt: bytes | None = None,
    reason: str | None = None,
) -> bytes:
    """Return an encoded ledger event of type ``kind`` about envelope ``digest``."""
    return encode_event(
        LedgerEvent(
            type=EventType(kind),
            time=at,
            org=org,
            envelope_digest=digest,
            counterparty=counterparty,
            receipt_digest=receipt,
            reason=reason,
        )
    )


def envelope_record(verified: VerifiedEnvelope) -> EnvelopeRecord:
    """Return the store's row of a verified envelope."""
    header = verified.header
    return EnvelopeRecord(
        digest=verified.digest,
        envelope_id=header.envelope_id,
        sender=header.sender,
        recipients=header.recipients,
        record_kind=header.record_kind,
        created=header.created,
        length=verified.envelope_length,
    )


def receipt_record(signed: SignedReceipt) -> ReceiptRecord:
    """Return the store's row of a signed receipt."""
    r = signed.receipt
    return ReceiptRecord(
        digest=signed.digest,
        envelope_digest=r.envelope_digest,
        receipter=r.receipter,
        status=r.status.value,
        time=r.time,
        signed=serialize_signed(signed),
    )
