"""Encoding and decoding receipts: round trips, strictness, limits and error locations."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exchange.keys.ids import KeyId, OrgId
from exchange.keys.keypairs import SigningKey
from exchange.receipts import (
    L_RECEIPT,
    MAX_RECEIPT_LEN,
    MAX_SIGNED_LEN,
    MAX_STATEMENT_LEN,
    Receipt,
    ReceiptFormatError,
    ReceiptStatus,
    SignedReceipt,
    decode_receipt,
    encode_receipt,
    parse_signed,
    serialize_signed,
    sign_receipt,
)
from exchange.receipts.format import MIN_SIGNED_LEN, MIN_STATEMENT_LEN
from tests.receipts.conftest import Fixture

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = SigningKey(hashlib.sha256(b"receipt format tests").digest())

org_ids = st.from_regex(r"[a-z][a-z0-9-]{0,15}:[A-Za-z0-9][A-Za-z0-9._-]{0,46}", fullmatch=True)
codes = st.from_regex(r"[a-z0-9][a-z0-9-]{0,63}", fullmatch=True)
transport_refs = st.from_regex(r"[\x21-\x7e]{0,128}", fullmatch=True)


@st.composite
def receipts(draw: st.DrawFn, *, key_id: bytes | None = None) -> Receipt:
    """Draw any valid receipt."""
    status = draw(st.sampled_from(ReceiptStatus))
    if status is ReceiptStatus.REJECTED:
        disposition: str | None = draw(codes)
    elif status is ReceiptStatus.ACKNOWLEDGED:
        disposition = draw(st.none() | codes)
    else:
        disposition = None
    return Receipt(
        status=status,
        envelope_digest=draw(st.binary(min_size=32, max_size=32)),
        envelope_id=draw(st.binary(min_size=16, max_size=16)),
        sender=OrgId(draw(org_ids)),
        receipter=OrgId(draw(org_ids)),
        receipter_key=KeyId(key_id or draw(st.binary(min_size=32, max_size=32))),
        time=draw(st.integers(0, 2**64 - 1)),
        disposition=disposition,
        transport_ref=draw(transport_refs),
    )


def _longest() -> Receipt:
    return Receipt(
        status=ReceiptStatus.ACKNOWLEDGED,
        envelope_digest=b"\xff" * 32,
        envelope_id=b"\xff" * 16,
        sender=OrgId("a" * 16 + ":" + "Z" * 47),
        receipter=OrgId("b" * 16 + ":" + "9" * 47),
        receipter_key=KEY.public.key_id,
        time=2**64 - 1,
        disposition="x" * 64,
        transport_ref="~" * 128,
    )


def _shortest() -> Receipt:
    return Receipt(
        status=ReceiptStatus.DELIVERED,
        envelope_digest=bytes(32),
        envelope_id=bytes(16),
        sender=OrgId("a:b"),
        receipter=OrgId("c:d"),
        receipter_key=KEY.public.key_id,
        time=0,
    )


@SETTINGS
@given(receipts())
@example(_longest())
@example(_shortest())
def test_statement_round_trips(r: Receipt) -> None:
    """Any valid receipt encodes to a statement within the limits that decodes back to it."""
    statement = encode_receipt(r)
    assert statement.startswith(L_RECEIPT)
    assert MIN_STATEMENT_LEN <= len(statement) <= MAX_STATEMENT_LEN
    assert decode_receipt(statement) == r
    assert encode_receipt(decode_receipt(statement)) == statement


@SETTINGS
@given(receipts(key_id=KEY.public.key_id))
def test_signed_receipt_round_trips(r: Receipt) -> None:
    """Any signed receipt serializes, within the limits, and parses back to the same receipt."""
    signed = sign_receipt(r, KEY)
    data = serialize_signed(signed)
    assert MIN_SIGNED_LEN <= len(data) <= MAX_SIGNED_LEN <= MAX_RECEIPT_LEN
    parsed = parse_signed(data)
    assert parsed == signed
    assert parsed.receipt == r
    assert parsed.digest == hashlib.sha256(signed.statement + signed.signature).digest()


def test_limits_are_the_extremes() -> None:
    """The shortest and longest receipts have exactly the lengths the spec's limits give."""
    assert len(encode_receipt(_shortest())) == MIN_STATEMENT_LEN == 120
    assert len(encode_receipt(_longest())) == MAX_STATEMENT_LEN == 434
    assert MIN_SIGNED_LEN == 186
    assert MAX_SIGNED_LEN == 500


def _outcome(decoder: Callable[[bytes], object], data: bytes) -> object:
    """Return what ``decoder`` returns, or the format error it raises (any other escapes)."""
    try:
        return decoder(data)
    except ReceiptFormatError as exc:
        return exc


@SETTINGS
@given(st.binary(max_size=1100))
@example(b"")
@example(b"\x00")
@example(L_RECEIPT)
def test_arbitrary_statement_bytes_raise_only_format_errors(data: bytes) -> None:
    """decode_receipt decodes to a receipt that re-encodes exactly, or raises a format error."""
    result = _outcome(decode_receipt, data)
    if isinstance(result, ReceiptFormatError):
        assert result.rule.startswith("receipt.")
        assert 0 <= result.offset <= max(len(data), MAX_RECEIPT_LEN)
    else:
        assert isinstance(result, Receipt)
        assert encode_receipt(result) == data


@SETTINGS
@given(st.binary(max_size=1100))
@example(b"")
@example(b"\x00\x78")
def test_arbitrary_wire_bytes_raise_only_format_errors(data: bytes) -> None:
    """parse_signed parses to a receipt that serializes exactly, or raises a format error."""
    result = _outcome(parse_signed, data)
    if isinstance(result, ReceiptFormatError):
        assert result.rule.startswith("receipt.")
    else:
        assert isinstance(result, SignedReceipt)
        assert serialize_signed(result) == data


@SETTINGS
@given(
    receipts(key_id=KEY.public.key_id),
    st.integers(0, MAX_SIGNED_LEN),
    st.binary(min_size=1, max_size=8),
)
def test_spliced_wire_bytes_raise_only_format_errors(r: Receipt, at: int, junk: bytes) -> None:
    """Valid receipts with bytes overwritten anywhere parse or raise only format errors."""
    data = serialize_signed(sign_receipt(r, KEY))
    at %= len(data)
    mutated = data[:at] + junk + data[at + len(junk) :]
    try:
        signed = parse_signed(mutated)
    except ReceiptFormatError:
        return
    assert serialize_signed(signed) == mutated


@pytest.mark.parametrize("size", [MAX_RECEIPT_LEN + 1, 65_536])
def test_oversized_input_is_refused_first(size: int) -> None:
    """An input over MAX_RECEIPT_LEN is refused as receipt.length before it is read."""
    for decoder in (decode_receipt, parse_signed):
        with pytest.raises(ReceiptFormatError) as info:
            decoder(L_RECEIPT + b"\x01" * (size - len(L_RECEIPT)))
        assert info.value.rule == "receipt.length"
        assert info.value.offset == MAX_RECEIPT_LEN


def _wire(acknowledged: Fixture, statement: bytes) -> bytes:
    return struct.pack(">H", len(statement)) + statement + acknowledged.key.sign(statement)


@pytest.mark.parametrize(
    ("cut", "field"), [(0, "statement_length"), (1, "statement_length"), (2, "statement")]
)
def test_truncated_wire_form_names_the_part(acknowledged: Fixture, cut: int, field: str) -> None:
    """A wire form cut short is receipt.length, naming where it ends."""
    with pytest.raises(ReceiptFormatError) as info:
        parse_signed(acknowledged.signed[:cut])
    assert (info.value.rule, info.value.field, info.value.offset) == ("receipt.length", field, cut)


@pytest.mark.parametrize("n", [0, MIN_STATEMENT_LEN - 1, MAX_STATEMENT_LEN + 1, 65_535])
def test_statement_length_out_of_range(acknowledged: Fixture, n: int) -> None:
    """A statement length outside 120..434 is receipt.length at byte 0."""
    data = struct.pack(">H", n) + acknowledged.signed[2:]
    with pytest.raises(ReceiptFormatError) as info:
        parse_signed(data)
    assert (info.value.rule, info.value.offset) == ("receipt.length", 0)


def test_bytes_after_signature_are_trailing_data(acknowledged: Fixture) -> None:
    """A byte after the signature is receipt.trailing-data at the signature's end."""
    with pytest.raises(ReceiptFormatError) as info:
        parse_signed(acknowledged.signed + b"\x00")
    assert info.value.rule == "receipt.trailing-data"
    assert info.value.offset == len(acknowledged.signed)


def test_statement_ending_inside_a_field_is_length(acknowledged: Fixture) -> None:
    """A statement whose last field runs past its end is receipt.length, naming that field."""
    statement = encode_receipt(acknowledged.receipt)[:-1]
    with pytest.raises(ReceiptFormatError) as info:
        parse_signed(_wire(acknowledged, statement))
    assert (info.value.rule, info.value.field) == ("receipt.length", "transport_ref")


@pytest.mark.parametrize(
    ("offset", "value", "rule", "field"),
    [
        (0, 0x45, "receipt.label", "label"),
        (20, 0x00, "receipt.version", "version"),
        (21, 0x00, "receipt.status", "status"),
        (21, 0xFF, "receipt.status", "status"),
        (70, 0x02, "receipt.ids", "sender"),
        (70, 0x41, "receipt.ids", "sender"),
        (71, 0x41, "receipt.ids", "sender"),
        (71, 0xC3, "receipt.ids", "sender"),
    ],
)
def test_field_errors_name_rule_field_and_offset(
    acknowledged: Fixture, offset: int, value: int, rule: str, field: str
) -> None:
    """Each structural defect is reported with its rule, field and absolute byte offset."""
    statement = bytearray(encode_receipt(acknowledged.receipt))
    statement[offset] = value
    with pytest.raises(ReceiptFormatError) as info:
        parse_signed(_wire(acknowledged, bytes(statement)))
    assert (info.value.rule, info.value.field) == (rule, field)
    assert info.value.offset == 2 + offset
    assert f"byte {2 + offset}" in str(info.value)
    assert rule in str(info.value)


def _statement(**changes: object) -> bytes:
    """Return the longest receipt's statement with its tail rebuilt from ``changes``."""
    r = _longest()
    disposition = changes.get("disposition", r.disposition)
    ref = changes.get("transport_ref", r.transport_ref)
    status = changes.get("status", r.status.code)
    head = encode_receipt(r)
    assert isinstance(disposition, bytes | str)
    assert isinstance(ref, bytes | str)
    assert isinstance(status, int)
    d = disposition.encode("latin-1") if isinstance(disposition, str) else disposition
    t = ref.encode("latin-1") if isinstance(ref, str) else ref
    fixed = head[: len(head) - (1 + 64) - (1 + 128)]
    fixed = fixed[:21] + bytes([status]) + fixed[22:]
    return fixed + bytes([len(d)]) + d + bytes([len(t)]) + t


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"disposition": "x" * 65}, "receipt.codes"),
        ({"disposition": "Query"}, "receipt.codes"),
        ({"disposition": "-query"}, "receipt.codes"),
        ({"disposition": "no further action"}, "receipt.codes"),
        ({"disposition": "caf\xe9"}, "receipt.codes"),
        ({"disposition": "", "status": 4}, "receipt.disposition"),
        ({"disposition": "query", "status": 1}, "receipt.disposition"),
        ({"disposition": "query", "status": 2}, "receipt.disposition"),
        ({"transport_ref": "a" * 129}, "receipt.transport-ref"),
        ({"transport_ref": "<a b@c>"}, "receipt.transport-ref"),
        ({"transport_ref": "a\r\nb"}, "receipt.transport-ref"),
        ({"transport_ref": "\x7f"}, "receipt.transport-ref"),
        ({"transport_ref": "\xe9"}, "receipt.transport-ref"),
    ],
)
def test_codes_and_references_are_never_free_text(changes: dict[str, object], rule: str) -> None:
    """Dispositions must be tokens fitting their status; references visible ASCII."""
    with pytest.raises(ReceiptFormatError) as info:
        decode_receipt(_statement(**changes))
    assert info.value.rule == rule


@pytest.mark.parametrize(
    "changes",
    [
        {"disposition": ""},
        {"disposition": "", "status": 1},
        {"disposition": "", "status": 2},
        {"disposition": "0", "status": 4},
        {"transport_ref": ""},
        {"transport_ref": "!"},
    ],
)
def test_edge_values_are_accepted(changes: dict[str, object]) -> None:
    """Empty codes where allowed, one-character codes and references decode."""
    statement = _statement(**changes)
    assert encode_receipt(decode_receipt(statement)) == statement


def test_statement_trailing_data() -> None:
    """A byte after the last field of a statement is receipt.trailing-data at its offset."""
    statement = encode_receipt(_shortest())
    with pytest.raises(ReceiptFormatError) as info:
        decode_receipt(statement + b"\x00")
    assert (info.value.rule, info.value.offset) == ("receipt.trailing-data", len(statement))


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"envelope_digest": bytes(31)}, "envelope_digest"),
        ({"envelope_id": bytes(17)}, "envelope_id"),
        ({"sender": "A:b"}, "sender"),
        ({"receipter": "x" * 70}, "receipter"),
        ({"receipter_key": bytes(33)}, "receipter_key"),
        ({"time": -1}, "time"),
        ({"time": 2**64}, "time"),
        ({"time": True}, "time"),
        ({"disposition": ""}, "disposition"),
        ({"disposition": "Accepted"}, "disposition"),
        ({"status": ReceiptStatus.DELIVERED, "disposition": "query"}, "disposition"),
        ({"status": ReceiptStatus.REJECTED, "disposition": None}, "disposition"),
        ({"transport_ref": "with space"}, "transport_ref"),
        ({"transport_ref": "a" * 129}, "transport_ref"),
    ],
)
def test_receipt_refuses_invalid_values(changes: dict[str, object], name: str) -> None:
    """Building a Receipt with a value the format cannot carry raises ValueError naming it."""
    r = _longest()
    fields = {f: getattr(r, f) for f in Receipt.__dataclass_fields__}
    with pytest.raises(ValueError, match=name):
        Receipt(**{**fields, **changes})


@pytest.mark.parametrize(
    "changes",
    [{"status": "delivered"}, {"envelope_digest": "00" * 32}, {"receipter_key": None}],
)
def test_receipt_refuses_wrong_types(changes: dict[str, object]) -> None:
    """Building a Receipt with a value of the wrong type raises TypeError."""
    r = _longest()
    fields = {f: getattr(r, f) for f in Receipt.__dataclass_fields__}
    with pytest.raises(TypeError):
        Receipt(**{**fields, **changes})


def test_signed_receipt_checks_its_parts(acknowledged: Fixture) -> None:
    """SignedReceipt refuses a short signature, a non-bytes part and a malformed statement."""
    statement = encode_receipt(acknowledged.receipt)
    with pytest.raises(ValueError, match="signature"):
        SignedReceipt(statement, bytes(63))
    with pytest.raises(TypeError):
        SignedReceipt(bytearray(statement), bytes(64))  # type: ignore[arg-type]
    with pytest.raises(ReceiptFormatError):
        SignedReceipt(statement + b"\x00", bytes(64))


def test_decoders_refuse_non_bytes() -> None:
    """Decoders given a str raise TypeError, not a format error."""
    with pytest.raises(TypeError):
        decode_receipt("receipt")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_signed("receipt")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_receipt("receipt")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        serialize_signed(b"receipt")  # type: ignore[arg-type]


def test_decoders_accept_bytearray_and_memoryview(acknowledged: Fixture) -> None:
    """Bytes-like inputs decode like bytes."""
    assert parse_signed(bytearray(acknowledged.signed)).receipt == acknowledged.receipt
    assert parse_signed(memoryview(acknowledged.signed)).receipt == acknowledged.receipt


def test_status_bytes_are_the_spec_table() -> None:
    """Status bytes are 1..4 in lifecycle order; acknowledged and rejected are final."""
    assert [s.code for s in ReceiptStatus] == [1, 2, 3, 4]
    assert [s.value for s in ReceiptStatus] == ["delivered", "opened", "acknowledged", "rejected"]
    assert {s for s in ReceiptStatus if s.is_final} == {
        ReceiptStatus.ACKNOWLEDGED,
        ReceiptStatus.REJECTED,
    }
