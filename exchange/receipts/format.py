"""Byte layout of receipts, version 1: the statement and the signed wire form (docs/receipts.md §4).

This module only encodes and decodes; it verifies no signature. Decoding is strict: every
input either decodes to exactly one :class:`~exchange.receipts.receipt.Receipt`, whose
encoding is the input again, or raises :class:`ReceiptFormatError` naming the rule, the
field and the byte offset. The size limit is checked before anything else is read.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Final, NoReturn

from exchange.envelope.format import ENVELOPE_ID_LEN, HASH_LEN
from exchange.keys.ids import KEY_ID_LEN, MAX_ORG_ID_LEN, KeyId, OrgId, parse_org_id
from exchange.keys.keypairs import SIGNATURE_LEN
from exchange.receipts.errors import ReceiptFormatError
from exchange.receipts.receipt import (
    CODE_RE,
    MAX_CODE_LEN,
    MAX_TRANSPORT_REF_LEN,
    STATUS_BY_CODE,
    TRANSPORT_REF_RE,
    Receipt,
    disposition_problem,
)

#: Domain-separation label: the first bytes of every receipt statement (docs/receipts.md §2).
#: It ends in NUL like the envelope's labels, so it is no prefix of another label and no
#: statement can be valid signed-note text.
L_RECEIPT: Final = b"exchange/v1/receipt\x00"
VERSION: Final = 1

#: Shortest organisation id ("a:b").
MIN_ORG_ID_LEN: Final = 3
#: Shortest and longest statements: every field fixed or at its shortest, and at its longest.
MIN_STATEMENT_LEN: Final = (
    len(L_RECEIPT) + 1 + 1 + HASH_LEN + ENVELOPE_ID_LEN + 2 * (1 + MIN_ORG_ID_LEN)
) + (KEY_ID_LEN + 8 + 1 + 1)
MAX_STATEMENT_LEN: Final = (
    len(L_RECEIPT) + 1 + 1 + HASH_LEN + ENVELOPE_ID_LEN + 2 * (1 + MAX_ORG_ID_LEN)
) + (KEY_ID_LEN + 8 + (1 + MAX_CODE_LEN) + (1 + MAX_TRANSPORT_REF_LEN))
#: The statement's length prefix in the signed wire form.
_LENGTH: Final = struct.Struct(">H")
#: Largest input any decoder here reads, checked first (docs/receipts.md rule receipt.length).
#: The longest valid signed receipt is 500 bytes; 1 KiB bounds the work a peer can cause and
#: leaves a later version room to grow without changing transports' limits.
MAX_RECEIPT_LEN: Final = 1024
MIN_SIGNED_LEN: Final = _LENGTH.size + MIN_STATEMENT_LEN + SIGNATURE_LEN
MAX_SIGNED_LEN: Final = _LENGTH.size + MAX_STATEMENT_LEN + SIGNATURE_LEN


def _str8(value: str) -> bytes:
    raw = value.encode("ascii")
    return bytes([len(raw)]) + raw


def encode_receipt(r: Receipt) -> bytes:
    """Return the statement of ``r``: the exact bytes that are signed (docs/receipts.md §4)."""
    if not isinstance(r, Receipt):
        raise TypeError("r must be a Receipt")
    return b"".join(
        [
            L_RECEIPT,
            bytes([VERSION, r.status.code]),
            r.envelope_digest,
            r.envelope_id,
            _str8(r.sender),
            _str8(r.receipter),
            r.receipter_key,
            struct.pack(">Q", r.time),
            # An absent disposition is the empty string: no valid code is empty, so there is
            # exactly one encoding of "no code" and none of an empty code.
            _str8(r.disposition or ""),
            _str8(r.transport_ref),
        ]
    )


class _Cursor:
    """Reads fields from a statement, raising ReceiptFormatError at the absolute offset."""

    def __init__(self, data: bytes, base: int) -> None:
        self._data = data
        self._base = base
        self.pos = 0

    @property
    def offset(self) -> int:
        return self._base + self.pos

    def fail(self, rule: str, name: str, message: str, *, at: int | None = None) -> NoReturn:
        offset = self.offset if at is None else self._base + at
        raise ReceiptFormatError(rule, name, offset, message)

    def take(self, n: int, name: str) -> bytes:
        if len(self._data) - self.pos < n:
            self.fail(
                "receipt.length",
                name,
                f"the statement ends at byte {self._base + len(self._data)}, inside {name}",
            )
        out = self._data[self.pos : self.pos + n]
        self.pos += n
        return out

    def str8(self, name: str, rule: str, lowest: int, highest: int) -> tuple[bytes, int]:
        at = self.pos
        (length,) = self.take(1, name)
        if not lowest <= length <= highest:
            self.fail(
                rule, name, f"{name} must be {lowest} to {highest} bytes, not {length}", at=at
            )
        return self.take(length, name), at + 1


def _org(cur: _Cursor, name: str) -> OrgId:
    raw, at = cur.str8(name, "receipt.ids", MIN_ORG_ID_LEN, MAX_ORG_ID_LEN)
    text = raw.decode("latin-1")  # never fails; non-ASCII bytes then fail the pattern
    if not _is_org_id(text):
        cur.fail("receipt.ids", name, f"{name} is not an organisation id", at=at)
    return OrgId(text)


def _is_org_id(text: str) -> bool:
    try:
        parse_org_id(text)
    except ValueError:
        return False
    return True


def _decode(data: bytes, base: int) -> Receipt:
    cur = _Cursor(data, base)
    if cur.take(len(L_RECEIPT), "label") != L_RECEIPT:
        cur.fail(
            "receipt.label", "label", "the statement does not start with the receipt label", at=0
        )
    if cur.take(1, "version")[0] != VERSION:
        cur.fail("receipt.version", "version", f"the version must be {VERSION}", at=cur.pos - 1)
    code = cur.take(1, "status")[0]
    status = STATUS_BY_CODE.get(code)
    if status is None:
        cur.fail("receipt.status", "status", f"0x{code:02x} is not a status byte", at=cur.pos - 1)
    envelope_digest = cur.take(HASH_LEN, "envelope_digest")
    envelope_id = cur.take(ENVELOPE_ID_LEN, "envelope_id")
    sender = _org(cur, "sender")
    receipter = _org(cur, "receipter")
    receipter_key = KeyId(cur.take(KEY_ID_LEN, "receipter_key"))
    (time,) = struct.unpack(">Q", cur.take(8, "time"))
    raw_code, at = cur.str8("disposition", "receipt.codes", 0, MAX_CODE_LEN)
    disposition = raw_code.decode("latin-1") if raw_code else None
    if disposition is not None and CODE_RE.fullmatch(disposition) is None:
        cur.fail(
            "receipt.codes",
            "disposition",
            "the disposition must be a code of a-z, 0-9 and '-' (never free text)",
            at=at,
        )
    problem = disposition_problem(status, disposition)
    if problem is not None:
        cur.fail("receipt.disposition", "disposition", problem, at=at - 1)
    raw_ref, at = cur.str8("transport_ref", "receipt.transport-ref", 0, MAX_TRANSPORT_REF_LEN)
    transport_ref = raw_ref.decode("latin-1")
    if TRANSPORT_REF_RE.fullmatch(transport_ref) is None:
        cur.fail(
            "receipt.transport-ref",
            "transport_ref",
            "the transport reference must be visible ASCII without spaces",
            at=at,
        )
    if cur.pos != len(data):
        cur.fail(
            "receipt.trailing-data",
            "statement",
            f"{len(data) - cur.pos} bytes follow the last field of the statement",
        )
    return Receipt(
        status=status,
        envelope_digest=envelope_digest,
        envelope_id=envelope_id,
        sender=sender,
        receipter=receipter,
        receipter_key=receipter_key,
        time=time,
        disposition=disposition,
        transport_ref=transport_ref,
    )


def _check_input(data: object, name: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes")
    raw = bytes(data)
    if len(raw) > MAX_RECEIPT_LEN:
        raise ReceiptFormatError(
            "receipt.length",
            name,
            MAX_RECEIPT_LEN,
            f"the input is {len(raw)} bytes, more than the limit of {MAX_RECEIPT_LEN}",
        )
    return raw


def decode_receipt(b: bytes | bytearray | memoryview) -> Receipt:
    """Decode a statement strictly; raise :class:`ReceiptFormatError` naming field and offset."""
    return _decode(_check_input(b, "statement"), 0)


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A statement and the receipter's signature over it. Building one decodes the statement.

    A ``SignedReceipt`` is well formed, not verified: only
    :func:`~exchange.receipts.signing.verify_receipt` says the signature is good and the
    receipt is about the envelope the caller sealed.
    """

    statement: bytes
    signature: bytes
    receipt: Receipt = field(init=False, compare=False)
    digest: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.statement, bytes) or not isinstance(self.signature, bytes):
            raise TypeError("statement and signature must be bytes")
        if len(self.signature) != SIGNATURE_LEN:
            raise ValueError(f"signature must be {SIGNATURE_LEN} bytes, not {len(self.signature)}")
        object.__setattr__(self, "receipt", decode_receipt(self.statement))
        object.__setattr__(self, "digest", receipt_digest(self.statement, self.signature))

    def __repr__(self) -> str:
        r = self.receipt
        return (
            f"SignedReceipt(status={r.status.value}, receipter={r.receipter}, "
            f"envelope_digest={r.envelope_digest.hex()[:16]}…, digest={self.digest.hex()[:16]}…)"
        )


def receipt_digest(statement: bytes, signature: bytes) -> bytes:
    """Return the receipt's own digest, SHA-256(statement ‖ signature) (docs/receipts.md §5).

    The signature is included so the digest names the exact bytes kept as evidence; the
    statement starts with ``L_RECEIPT``, so the input is domain-separated from every other
    hash in the system, and the statement delimits itself, so the split is unambiguous.
    """
    return hashlib.sha256(statement + signature).digest()


def serialize_signed(sr: SignedReceipt) -> bytes:
    """Return the wire form: u16 statement length ‖ statement ‖ 64-byte signature."""
    if not isinstance(sr, SignedReceipt):
        raise TypeError("sr must be a SignedReceipt")
    return _LENGTH.pack(len(sr.statement)) + sr.statement + sr.signature


def parse_signed(b: bytes | bytearray | memoryview) -> SignedReceipt:
    """Parse the wire form strictly; raise :class:`ReceiptFormatError` naming field and offset."""
    data = _check_input(b, "receipt")
    if len(data) < _LENGTH.size:
        raise ReceiptFormatError(
            "receipt.length",
            "statement_length",
            len(data),
            f"the receipt ends at byte {len(data)}, inside the statement length",
        )
    (n,) = _LENGTH.unpack_from(data)
    if not MIN_STATEMENT_LEN <= n <= MAX_STATEMENT_LEN:
        raise ReceiptFormatError(
            "receipt.length",
            "statement_length",
            0,
            f"the statement length must be {MIN_STATEMENT_LEN} to {MAX_STATEMENT_LEN}, not {n}",
        )
    end = _LENGTH.size + n + SIGNATURE_LEN
    if len(data) < end:
        part = "statement" if len(data) < _LENGTH.size + n else "signature"
        raise ReceiptFormatError(
            "receipt.length",
            part,
            len(data),
            f"the receipt ends at byte {len(data)}, inside the {part}",
        )
    if len(data) > end:
        raise ReceiptFormatError(
            "receipt.trailing-data",
            "receipt",
            end,
            f"{len(data) - end} bytes follow the signature",
        )
    statement = data[_LENGTH.size : _LENGTH.size + n]
    # Decoded here first so that errors give offsets into the wire form; SignedReceipt then
    # decodes the statement again (a few microseconds), which cannot fail.
    _decode(statement, _LENGTH.size)
    return SignedReceipt(statement, data[_LENGTH.size + n :])
