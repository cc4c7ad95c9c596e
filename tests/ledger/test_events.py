"""Event statements: deterministic encoding, strict decoding, every malformed field named."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.keys.ids import OrgId
from exchange.ledger import (
    L_LEDGER_EVENT,
    EventFormatError,
    EventType,
    LedgerEvent,
    decode_event,
    encode_event,
)
from exchange.ledger.events import EVENT_CODES, MAX_EVENT_LEN, MAX_TIME
from tests.ledger.helpers import T0, TYPES, digest

FULL = LedgerEvent(
    type=EventType.REJECTED,
    time=T0,
    org=OrgId("la:356"),
    envelope_digest=digest("envelope"),
    counterparty=OrgId("urn:106123"),
    receipt_digest=digest("receipt"),
    reason="policy:no-consent",
)
ENCODED = FULL.encode()

# Offsets of the fields of ENCODED (docs/ledger.md §3).
LABEL = len(L_LEDGER_EVENT)
VERSION = LABEL
TYPE = LABEL + 1
TIME = LABEL + 2
ORG = TIME + 8  # length byte, then "la:356"
DIGEST = ORG + 1 + len("la:356")
FLAGS = DIGEST + 32
COUNTERPARTY = FLAGS + 1  # length byte, then "urn:106123"
RECEIPT = COUNTERPARTY + 1 + len("urn:106123")
REASON = RECEIPT + 32

org_ids = st.from_regex(r"[a-z][a-z0-9-]{0,15}:[A-Za-z0-9][A-Za-z0-9._-]{0,46}", fullmatch=True)
events = st.builds(
    LedgerEvent,
    type=st.sampled_from(TYPES),
    time=st.integers(0, MAX_TIME),
    org=org_ids,
    envelope_digest=st.binary(min_size=32, max_size=32),
    counterparty=st.none() | org_ids,
    receipt_digest=st.none() | st.binary(min_size=32, max_size=32),
    reason=st.none() | st.from_regex(r"[a-z0-9][a-z0-9:._-]{0,63}", fullmatch=True),
)


def replace(data: bytes, offset: int, new: bytes, length: int | None = None) -> bytes:
    """Return ``data`` with ``length`` bytes at ``offset`` (default ``len(new)``) replaced."""
    end = offset + (len(new) if length is None else length)
    return data[:offset] + new + data[end:]


@given(events)
def test_round_trip(event: LedgerEvent) -> None:
    """Any valid event encodes, decodes to itself and re-encodes to the same bytes."""
    data = encode_event(event)
    assert len(data) <= MAX_EVENT_LEN
    assert decode_event(data) == event
    assert decode_event(data).encode() == data


def test_layout_of_a_full_event() -> None:
    """The bytes are label, version, type code, u64 time, str8 org, digest, flags, options."""
    assert ENCODED.startswith(b"exchange/v1/ledger-event\x00\x01\x05")
    assert ENCODED[TIME:ORG] == struct.pack(">Q", T0)
    assert ENCODED[ORG:DIGEST] == b"\x06la:356"
    assert ENCODED[FLAGS] == 0x07
    assert ENCODED[REASON:] == b"\x11policy:no-consent"
    assert len(ENCODED) == REASON + 1 + len("policy:no-consent")


def test_minimal_event_has_no_optional_bytes() -> None:
    """An event without optional fields ends with flags 0 right after the envelope digest."""
    event = LedgerEvent(EventType.SUBMITTED, T0, OrgId("la:356"), digest("e"))
    data = event.encode()
    assert data[-1] == 0
    assert len(data) == FLAGS + 1


def test_codes_are_fixed() -> None:
    """Every event type has the wire code docs/ledger.md §3 assigns, codes 1 to 12."""
    assert [EVENT_CODES[t] for t in EventType] == list(range(1, 13))
    assert [t.value for t in EventType] == [
        "submitted", "delivered", "opened", "acknowledged", "rejected",
        "accessed", "recalled", "destroyed", "attempted", "fallback", "directory-adopted",
        "account",
    ]  # fmt: skip


MALFORMED = [
    ("label", 0, b"", "empty input"),
    ("label", 0, ENCODED[:10], "truncated label"),
    ("label", 0, replace(ENCODED, 0, b"E"), "label changed"),
    ("label", 0, b"exchange/v1/receipt\x00" + ENCODED[20:], "another label"),
    ("version", VERSION, replace(ENCODED, VERSION, b"\x02"), "version 2"),
    ("version", VERSION, ENCODED[:VERSION], "truncated before version"),
    ("type", TYPE, replace(ENCODED, TYPE, b"\x00"), "type code 0"),
    ("type", TYPE, replace(ENCODED, TYPE, b"\x0d"), "type code 13"),
    ("time", TIME, replace(ENCODED, TIME, b"\x80"), "time above 2**63 - 1"),
    ("time", TIME, ENCODED[: TIME + 3], "truncated time"),
    ("org", ORG, replace(ENCODED, ORG, b"\x00", 7), "empty org"),
    ("org", ORG, replace(ENCODED, ORG + 1, b"LA"), "upper-case namespace"),
    ("org", ORG, replace(ENCODED, ORG + 3, b" "), "space in org"),
    ("org", ORG + 1, replace(ENCODED, ORG, b"\xff"), "org longer than the input"),
    ("envelope_digest", DIGEST, ENCODED[: DIGEST + 31], "truncated envelope digest"),
    ("flags", FLAGS, replace(ENCODED, FLAGS, b"\x0f"), "unknown flag bit"),
    ("flags", FLAGS, ENCODED[:FLAGS], "missing flags"),
    ("counterparty", COUNTERPARTY, replace(ENCODED, COUNTERPARTY + 4, b"\xe9"), "non-ASCII"),
    ("receipt_digest", RECEIPT, ENCODED[: RECEIPT + 5], "truncated receipt digest"),
    ("reason", REASON, replace(ENCODED, REASON + 1, b"P"), "upper-case reason"),
    ("reason", REASON, replace(ENCODED, REASON + 7, b" "), "space in reason"),
    ("reason", REASON, replace(ENCODED, REASON + 7, b"\xc3"), "non-ASCII reason"),
    ("reason", REASON, ENCODED[:REASON] + b"\x00", "empty reason"),
    ("reason", REASON + 1, ENCODED[:-1], "truncated reason"),
    ("end", len(ENCODED), ENCODED + b"\x00", "trailing byte"),
    ("end", COUNTERPARTY, replace(ENCODED, FLAGS, b"\x00"), "flags omit present fields"),
    ("length", MAX_EVENT_LEN, ENCODED + bytes(MAX_EVENT_LEN), "longer than any statement"),
]


@pytest.mark.parametrize(
    ("field", "offset", "data"),
    [case[:3] for case in MALFORMED],
    ids=[case[3] for case in MALFORMED],
)
def test_malformed_field_is_named(field: str, offset: int, data: bytes) -> None:
    """Each malformed field raises EventFormatError naming that field and its byte offset."""
    with pytest.raises(EventFormatError) as caught:
        decode_event(data)
    assert caught.value.field == field
    assert caught.value.offset == offset
    assert f"in {field}:" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"time": -1}, "time must be between"),
        ({"time": MAX_TIME + 1}, "time must be between"),
        ({"org": "Jane Smith"}, "org must look like"),
        ({"counterparty": "la 357"}, "counterparty must look like"),
        ({"envelope_digest": b"short"}, "envelope_digest must be 32 bytes"),
        ({"receipt_digest": bytes(33)}, "receipt_digest must be 32 bytes"),
        ({"reason": "the child's name is Jane"}, "reason must be a code"),
        ({"reason": ""}, "reason must be a code"),
        ({"reason": "x" * 65}, "reason must be a code"),
    ],
)
def test_invalid_event_cannot_be_built(changes: dict[str, object], message: str) -> None:
    """Building an event with an invalid field raises ValueError naming it (no free text)."""
    fields: dict[str, object] = {
        "type": EventType.OPENED,
        "time": T0,
        "org": "la:356",
        "envelope_digest": digest("e"),
    }
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        LedgerEvent(**fields)  # type: ignore[arg-type]


def test_wrong_types_raise_type_error() -> None:
    """A string type or a float time is a TypeError, and so is decoding a str."""
    with pytest.raises(TypeError, match="type must be an EventType"):
        LedgerEvent("opened", T0, OrgId("la:356"), digest("e"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="time must be an int"):
        LedgerEvent(EventType.OPENED, 1.5, OrgId("la:356"), digest("e"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data must be bytes"):
        decode_event("text")  # type: ignore[arg-type]


def test_pinned_encoding() -> None:
    """A fixed event encodes to exactly these bytes (produce-exactly-this vector)."""
    event = LedgerEvent(
        type=EventType.DELIVERED,
        time=T0 + 1,
        org=OrgId("la:356"),
        envelope_digest=digest("envelope 1"),
        counterparty=OrgId("urn:106123"),
    )
    assert event.encode().hex() == (
        "65786368616e67652f76312f6c65646765722d6576656e7400"  # label
        "01"  # version
        "02"  # delivered
        "000000006955b901"  # time
        "066c613a333536"  # str8 "la:356"
        "f093a077f303ba3e52eae31a584be0bcf87ff73a0c1c981cf6db772fa095fa62"  # envelope digest
        "01"  # flags: counterparty
        "0a75726e3a313036313233"  # str8 "urn:106123"
    )
