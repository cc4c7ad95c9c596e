"""Ledger event statements: what a node records about an envelope, and their exact bytes.

Each leaf of the ledger's Merkle tree is the hash of one event statement (docs/ledger.md §3):
a domain label, a version, the event type, a time, the recording organisation, the envelope
digest and optionally the counterparty, a receipt digest and a short reason code. The
statement holds digests, organisation ids and codes only, never record content, a person's
name or free text, so publishing proofs about it discloses nothing about a child. The
encoding is deterministic (one byte string per event) and :func:`decode_event` refuses
anything else, raising :class:`EventFormatError` with the field and byte offset at fault.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import Final

from exchange.keys.ids import MAX_ORG_ID_LEN, OrgId, parse_org_id
from exchange.ledger.errors import EventFormatError

#: Domain-separation label that starts every statement (docs/ledger.md §2). It ends in NUL so
#: that no other label of the project is a prefix of it and it is never signed-note text.
L_LEDGER_EVENT: Final = b"exchange/v1/ledger-event\x00"

#: Encoding version (docs/ledger.md §3). A new layout is a new version, never an option.
EVENT_VERSION: Final = 1

#: Length of the envelope and receipt digests (SHA-256).
DIGEST_LEN: Final = 32

#: Longest reason code. Codes are identifiers such as ``policy:no-consent``, not sentences;
#: 64 bytes is the limit set in docs/receipts.md and fits a one-byte length.
MAX_REASON_LEN: Final = 64

#: Latest time accepted: 2**63 - 1 keeps every time inside SQLite's signed 64-bit INTEGER,
#: where the store keeps it, although the encoding has room for a u64.
MAX_TIME: Final = (1 << 63) - 1

#: Optional-field flags, in the order the fields follow the fixed part.
FLAG_COUNTERPARTY: Final = 0x01
FLAG_RECEIPT: Final = 0x02
FLAG_REASON: Final = 0x04
_KNOWN_FLAGS: Final = FLAG_COUNTERPARTY | FLAG_RECEIPT | FLAG_REASON

#: Longest possible statement: every optional field present at its longest.
MAX_EVENT_LEN: Final = (
    (len(L_LEDGER_EVENT) + 1 + 1 + 8 + (1 + MAX_ORG_ID_LEN) + DIGEST_LEN + 1)
    + (1 + MAX_ORG_ID_LEN)
    + DIGEST_LEN
    + (1 + MAX_REASON_LEN)
)

_ORG_RE: Final = re.compile(rb"[a-z][a-z0-9-]{0,15}:[A-Za-z0-9][A-Za-z0-9._-]{0,46}")
# Lower-case tokens with ':', '.', '_' and '-' separators: room for a code, none for prose.
_REASON_RE: Final = re.compile(r"[a-z0-9][a-z0-9:._-]{0,63}")
_U64: Final = struct.Struct(">Q")


class EventType(enum.StrEnum):
    """What happened to an envelope (``directory-adopted``: the directory; ``account``: an account).

    The wire code of each is in :data:`EVENT_CODES`.
    """

    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    ACCESSED = "accessed"
    RECALLED = "recalled"
    DESTROYED = "destroyed"
    ATTEMPTED = "attempted"
    FALLBACK = "fallback"
    DIRECTORY_ADOPTED = "directory-adopted"
    ACCOUNT = "account"


#: Wire codes (docs/ledger.md §3). Codes are never reused; a new type takes the next code.
EVENT_CODES: Final[dict[EventType, int]] = {
    EventType.SUBMITTED: 1,
    EventType.DELIVERED: 2,
    EventType.OPENED: 3,
    EventType.ACKNOWLEDGED: 4,
    EventType.REJECTED: 5,
    EventType.ACCESSED: 6,
    EventType.RECALLED: 7,
    EventType.DESTROYED: 8,
    EventType.ATTEMPTED: 9,
    EventType.FALLBACK: 10,
    EventType.DIRECTORY_ADOPTED: 11,
    EventType.ACCOUNT: 12,
}
_TYPES_BY_CODE: Final = {code: kind for kind, code in EVENT_CODES.items()}

#: What can happen to an account: the first token of an ``account`` event's reason
#: (docs/ledger.md §3.3). Kinds are never renamed; a new one is added at the end.
ACCOUNT_KINDS: Final = (
    "sign-in",
    "sign-in-failed",
    "sign-in-refused",
    "step-up",
    "invited",
    "invitation-renewed",
    "invitation-accepted",
    "role-changed",
    "disabled",
    "enabled",
    "removed",
    "factors-reset",
    "token-created",
    "token-revoked",
    "passkey-added",
    "passkey-removed",
    "sso-linked",
)


def account_rule_broken(
    kind: EventType, counterparty: OrgId | None, reason: str | None
) -> tuple[str, str] | None:
    """Return the field and the rule an event of ``kind`` breaks, or None (docs/ledger.md §3.3).

    An ``account`` event names no other organisation and its reason starts with a kind of
    :data:`ACCOUNT_KINDS`; the other types have no such rule.
    """
    if kind is not EventType.ACCOUNT:
        return None
    if counterparty is not None:
        return "counterparty", "an account event names no counterparty"
    if reason is None or reason.split(":", 1)[0] not in ACCOUNT_KINDS:
        return "reason", "an account event's reason must start with an account event kind"
    return None


def _check_digest(field: str, value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{field} must be bytes")
    if len(value) != DIGEST_LEN:
        raise ValueError(f"{field} must be {DIGEST_LEN} bytes, not {len(value)}")


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One event statement. Construction validates every field (``ValueError`` names it)."""

    type: EventType
    time: int
    org: OrgId
    envelope_digest: bytes
    counterparty: OrgId | None = None
    receipt_digest: bytes | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, EventType):
            raise TypeError("type must be an EventType")
        if not isinstance(self.time, int) or isinstance(self.time, bool):
            raise TypeError("time must be an int (unix seconds)")
        if not 0 <= self.time <= MAX_TIME:
            raise ValueError(f"time must be between 0 and {MAX_TIME} unix seconds")
        parse_org_id(self.org, field="org")
        _check_digest("envelope_digest", self.envelope_digest)
        if self.counterparty is not None:
            parse_org_id(self.counterparty, field="counterparty")
        if self.receipt_digest is not None:
            _check_digest("receipt_digest", self.receipt_digest)
        if self.reason is not None:
            if not isinstance(self.reason, str):
                raise TypeError("reason must be a string")
            if _REASON_RE.fullmatch(self.reason) is None:
                raise ValueError(
                    f"reason must be a code of 1 to {MAX_REASON_LEN} lower-case letters, digits, "
                    "':', '.', '_' or '-', starting with a letter or digit"
                )
        broken = account_rule_broken(self.type, self.counterparty, self.reason)
        if broken is not None:
            raise ValueError(broken[1])

    def encode(self) -> bytes:
        """Return the statement's bytes (the same as :func:`encode_event`)."""
        return encode_event(self)


def _str8(value: str) -> bytes:
    raw = value.encode("ascii")
    return bytes([len(raw)]) + raw


def encode_event(event: LedgerEvent) -> bytes:
    """Return the deterministic encoding of ``event`` (docs/ledger.md §3)."""
    if not isinstance(event, LedgerEvent):
        raise TypeError("event must be a LedgerEvent")
    flags = 0
    tail = b""
    if event.counterparty is not None:
        flags |= FLAG_COUNTERPARTY
        tail += _str8(event.counterparty)
    if event.receipt_digest is not None:
        flags |= FLAG_RECEIPT
        tail += event.receipt_digest
    if event.reason is not None:
        flags |= FLAG_REASON
        tail += _str8(event.reason)
    return b"".join(
        [
            L_LEDGER_EVENT,
            bytes([EVENT_VERSION, EVENT_CODES[event.type]]),
            _U64.pack(event.time),
            _str8(event.org),
            event.envelope_digest,
            bytes([flags]),
            tail,
        ]
    )


class _Reader:
    """A cursor over the statement that names the field and offset of every failure."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, field: str, length: int) -> bytes:
        end = self.offset + length
        if end > len(self.data):
            raise EventFormatError(
                field, self.offset, f"the statement ends before this field's {length} bytes"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def org(self, field: str) -> OrgId:
        start = self.offset
        (length,) = self.take(field, 1)
        raw = self.take(field, length)
        if _ORG_RE.fullmatch(raw) is None:
            raise EventFormatError(
                field, start, "not an organisation id of the form 'namespace:code'"
            )
        return OrgId(raw.decode("ascii"))

    def reason(self) -> str:
        start = self.offset
        (length,) = self.take("reason", 1)
        raw = self.take("reason", length)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _REASON_RE.fullmatch(text) is None:
            raise EventFormatError(
                "reason", start, f"not a code of 1 to {MAX_REASON_LEN} permitted ASCII characters"
            )
        return text


def decode_event(data: bytes) -> LedgerEvent:
    """Parse a statement, or raise :class:`EventFormatError` naming the field and offset."""
    if not isinstance(data, bytes):
        raise TypeError("data must be bytes")
    if len(data) > MAX_EVENT_LEN:
        raise EventFormatError(
            "length", MAX_EVENT_LEN, f"a statement is at most {MAX_EVENT_LEN} bytes"
        )
    reader = _Reader(data)
    # The label comes first so that bytes meant for another purpose (a receipt, an envelope
    # header) can never be read as an event (docs/ledger.md [event.label]).
    if reader.take("label", len(L_LEDGER_EVENT)) != L_LEDGER_EVENT:
        raise EventFormatError("label", 0, "the statement does not start with the event label")
    (version,) = reader.take("version", 1)
    if version != EVENT_VERSION:
        raise EventFormatError("version", reader.offset - 1, f"unknown version {version}")
    (code,) = reader.take("type", 1)
    kind = _TYPES_BY_CODE.get(code)
    if kind is None:
        raise EventFormatError("type", reader.offset - 1, f"unknown event type code {code}")
    (time,) = _U64.unpack(reader.take("time", 8))
    if time > MAX_TIME:
        raise EventFormatError("time", reader.offset - 8, f"the time is later than {MAX_TIME}")
    org = reader.org("org")
    envelope_digest = reader.take("envelope_digest", DIGEST_LEN)
    (flags,) = reader.take("flags", 1)
    if flags & ~_KNOWN_FLAGS:
        raise EventFormatError(
            "flags", reader.offset - 1, f"unknown flag bits 0x{flags & ~_KNOWN_FLAGS:02x}"
        )
    at = {"counterparty": reader.offset}
    counterparty = reader.org("counterparty") if flags & FLAG_COUNTERPARTY else None
    receipt = reader.take("receipt_digest", DIGEST_LEN) if flags & FLAG_RECEIPT else None
    at["reason"] = reader.offset
    reason = reader.reason() if flags & FLAG_REASON else None
    if reader.offset != len(data):
        raise EventFormatError(
            "end", reader.offset, f"{len(data) - reader.offset} bytes follow the statement"
        )
    broken = account_rule_broken(kind, counterparty, reason)
    if broken is not None:
        raise EventFormatError(broken[0], at[broken[0]], broken[1])
    return LedgerEvent(kind, time, org, envelope_digest, counterparty, receipt, reason)
