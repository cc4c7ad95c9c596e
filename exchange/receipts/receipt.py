"""The receipt as a value: its status, its fields and the rules every field obeys.

A receipt is a statement by the organisation that received an envelope (the *receipter*)
about that envelope, named by its digest (docs/envelope.md §4): it was delivered, opened,
acknowledged or rejected, at a time, optionally with a disposition code, over a transport
reference. This module holds the value types only; ``format`` turns them into bytes and back
and ``signing`` signs and verifies them. A :class:`Receipt` can only be built from valid
field values, so every receipt in memory can be encoded (docs/receipts.md §3, §4).

No field can hold free text: the disposition is a short lower-case token and the transport
reference a short run of visible ASCII, so no name, date of birth or sentence about a child
fits in a receipt (docs/receipts.md §6).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from exchange.envelope.format import ENVELOPE_ID_LEN, HASH_LEN
from exchange.keys.ids import KEY_ID_LEN, KeyId, OrgId, parse_org_id

#: Longest disposition code. 64 holds every code we foresee ("accepted-for-assessment" is 23)
#: while leaving no room for prose.
MAX_CODE_LEN: Final = 64
#: Longest transport reference. An SMTP Message-ID is in practice under 100 bytes, a MESH
#: message id about 30 and an HTTP request id (a UUID) 36; 128 holds each with room.
MAX_TRANSPORT_REF_LEN: Final = 128
#: Largest time the eight-byte time field can hold.
MAX_TIME: Final = 2**64 - 1

#: A disposition code: a token, not text (docs/receipts.md rule receipt.codes).
CODE_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
#: A transport reference: visible ASCII, no space, no control character (receipt.transport-ref).
TRANSPORT_REF_RE: Final = re.compile(r"[\x21-\x7e]{0,128}")


class ReceiptStatus(enum.Enum):
    """What the receipt says happened to the envelope.

    ``code`` is the status byte on the wire; it is also the status's rank in a timeline.
    """

    #: The receiving node verified the envelope's signatures and stored it durably.
    DELIVERED = "delivered"
    #: A person at the receipting organisation opened the record.
    OPENED = "opened"
    #: The organisation accepted the record; a final disposition.
    ACKNOWLEDGED = "acknowledged"
    #: The organisation refused the record, with a reason code; a final disposition.
    REJECTED = "rejected"

    @property
    def code(self) -> int:
        """The status byte of the encoding."""
        return _CODES[self]

    @property
    def is_final(self) -> bool:
        """Whether this status is a final disposition (acknowledged or rejected)."""
        return self in FINAL_STATUSES


_CODES: Final[dict[ReceiptStatus, int]] = {
    ReceiptStatus.DELIVERED: 0x01,
    ReceiptStatus.OPENED: 0x02,
    ReceiptStatus.ACKNOWLEDGED: 0x03,
    ReceiptStatus.REJECTED: 0x04,
}
#: The status of each status byte.
STATUS_BY_CODE: Final[dict[int, ReceiptStatus]] = {code: s for s, code in _CODES.items()}

#: The final dispositions: an organisation gives at most one per envelope.
FINAL_STATUSES: Final = frozenset({ReceiptStatus.ACKNOWLEDGED, ReceiptStatus.REJECTED})

#: Well-known disposition codes (docs/receipts.md §6). Others are allowed if they are tokens;
#: nodes offer operators a configured list, never a text box.
ACKNOWLEDGEMENT_CODES: Final = ("accepted-for-assessment", "no-further-action", "query")
REJECTION_CODES: Final = ("not-for-us", "wrong-pupil", "unreadable", "duplicate")


def disposition_problem(status: ReceiptStatus, disposition: str | None) -> str | None:
    """Return why ``disposition`` is not allowed with ``status`` (receipt.disposition), or None.

    ``delivered`` and ``opened`` are events, not decisions, so they carry no code; a
    rejection without a reason is useless to the sender, so ``rejected`` must carry one.
    """
    if status in {ReceiptStatus.DELIVERED, ReceiptStatus.OPENED} and disposition is not None:
        return f"a {status.value} receipt must not carry a disposition code"
    if status is ReceiptStatus.REJECTED and disposition is None:
        return "a rejected receipt must carry a reason code"
    return None


def _check_bytes(value: object, name: str, length: int) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes")
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, not {len(value)}")


@dataclass(frozen=True, slots=True)
class Receipt:
    """One receipt's statement, as values. Building one validates every field.

    ``sender`` is the organisation that sealed the envelope, to whom the receipt is
    addressed; ``receipter`` is the organisation making the statement and ``receipter_key``
    the key id of the Ed25519 key it signs with. ``disposition`` is None when absent.
    """

    status: ReceiptStatus
    envelope_digest: bytes
    envelope_id: bytes
    sender: OrgId
    receipter: OrgId
    receipter_key: KeyId
    time: int
    disposition: str | None = None
    transport_ref: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.status, ReceiptStatus):
            raise TypeError("status must be a ReceiptStatus")
        _check_bytes(self.envelope_digest, "envelope_digest", HASH_LEN)
        _check_bytes(self.envelope_id, "envelope_id", ENVELOPE_ID_LEN)
        parse_org_id(self.sender, field="sender")
        parse_org_id(self.receipter, field="receipter")
        _check_bytes(self.receipter_key, "receipter_key", KEY_ID_LEN)
        if type(self.time) is not int or not 0 <= self.time <= MAX_TIME:
            raise ValueError(f"time must be an integer from 0 to {MAX_TIME} (unix seconds)")
        if self.disposition is not None and (
            not isinstance(self.disposition, str) or CODE_RE.fullmatch(self.disposition) is None
        ):
            raise ValueError(
                "disposition must be None or a code of 1 to 64 characters from a-z, 0-9 and "
                "'-', starting with a letter or digit (never free text)"
            )
        problem = disposition_problem(self.status, self.disposition)
        if problem is not None:
            raise ValueError(f"disposition: {problem}")
        if not isinstance(self.transport_ref, str) or (
            TRANSPORT_REF_RE.fullmatch(self.transport_ref) is None
        ):
            raise ValueError(
                "transport_ref must be at most 128 visible ASCII characters, without spaces"
            )

    def __repr__(self) -> str:
        return (
            f"Receipt(status={self.status.value}, envelope_digest="
            f"{self.envelope_digest.hex()[:16]}…, envelope_id={self.envelope_id.hex()}, "
            f"sender={self.sender}, receipter={self.receipter}, receipter_key="
            f"{self.receipter_key.hex()[:16]}…, time={self.time}, "
            f"disposition={self.disposition}, transport_ref={self.transport_ref!r})"
        )
