"""Byte layout of envelope format v1: header, slots and trailer (docs/envelope.md §4).

This module only encodes and decodes; it performs no cryptography. Every decoding failure is
a :class:`FormatError` naming the rule of the spec and the byte offset where it was found.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final

from exchange.envelope.errors import FormatError
from exchange.envelope.labels import L_INNER, L_TRAILER
from exchange.keys.ids import KEY_ID_LEN, KeyId, OrgId

MAGIC: Final = b"\x89EXCH\r\n\x1a"
VERSION: Final = 1

#: Recipients per envelope (docs/envelope.md §4, "Limits").
MAX_RECIPIENTS: Final = 16
#: Longest header a reader buffers before checking anything cryptographic.
MAX_HEADER_LEN: Final = 4096
#: Chunk sizes allowed: powers of two from 2**6 (tests of chunk boundaries) to 2**20 (bounds
#: reader memory at one chunk).
MIN_CHUNK_SIZE: Final = 1 << 6
MAX_CHUNK_SIZE: Final = 1 << 20
DEFAULT_CHUNK_SIZE: Final = 1 << 16
#: Seconds a `created` time may run ahead of the reader's clock.
MAX_CLOCK_SKEW: Final = 300

ENVELOPE_ID_LEN: Final = 16
HASH_LEN: Final = 32
SIG_LEN: Final = 64
ENC_LEN: Final = 32
KEY_LEN: Final = 32
TAG_LEN: Final = 16
WRAPPED_LEN: Final = KEY_LEN + TAG_LEN

CHUNK_DATA: Final = 0x01
CHUNK_FINAL: Final = 0x02
CHUNK_PREFIX_LEN: Final = 5  # type byte + u32 ct_len

INNER_LEN: Final = len(L_INNER) + HASH_LEN + 8
FINAL_CT_LEN: Final = INNER_LEN + TAG_LEN
TRAILER_LEN: Final = 8 + 8 + HASH_LEN + SIG_LEN

_FIXED_PREFIX: Final = struct.Struct(">8sBH")  # magic, version, header_len
_KIND_RE: Final = re.compile(rb"[a-z][a-z0-9-]{0,31}")
_ORG_RE: Final = re.compile(rb"[a-z][a-z0-9-]{0,15}:[A-Za-z0-9][A-Za-z0-9._-]{0,46}")

_SLOT_FIXED: Final = KEY_ID_LEN + ENC_LEN + WRAPPED_LEN
#: Smallest possible header: one slot and three-byte ids ("a:b") and a one-byte kind.
MIN_HEADER_LEN: Final = (
    _FIXED_PREFIX.size + ENVELOPE_ID_LEN + 8 + (1 + 3) + KEY_ID_LEN + (1 + 1) + 4 + HASH_LEN + 1
) + (1 + 3 + _SLOT_FIXED)


@dataclass(frozen=True, slots=True)
class Slot:
    """One recipient's slot: who it is for, under which key, and the wrapped content key."""

    recipient: OrgId
    recipient_key: KeyId
    enc: bytes
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class Header:
    """The signed envelope header, as decoded (the exact bytes are kept beside it)."""

    envelope_id: bytes
    created: int
    sender: OrgId
    sender_key: KeyId
    record_kind: str
    chunk_size: int
    commitment: bytes
    slots: tuple[Slot, ...]

    @property
    def recipients(self) -> tuple[OrgId, ...]:
        """Recipient organisation ids in slot order."""
        return tuple(s.recipient for s in self.slots)


@dataclass(frozen=True, slots=True)
class Trailer:
    """The trailer's counts, ciphertext hash and final signature."""

    ct_length: int
    chunk_count: int
    ct_hash: bytes
    final_sig: bytes


def is_valid_chunk_size(value: int) -> bool:
    """Return whether ``value`` is an allowed chunk size."""
    return MIN_CHUNK_SIZE <= value <= MAX_CHUNK_SIZE and value & (value - 1) == 0


def max_envelope_length(content_length: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Return the longest envelope of ``content_length`` bytes of content (any header).

    The header is taken at its longest (:data:`MAX_HEADER_LEN`); each data chunk adds its
    framing and tag; the final chunk and the trailer are fixed (docs/envelope.md §4).
    """
    chunks = -(-content_length // chunk_size)
    framing = chunks * (CHUNK_PREFIX_LEN + TAG_LEN) + CHUNK_PREFIX_LEN + FINAL_CT_LEN
    return MAX_HEADER_LEN + SIG_LEN + content_length + framing + TRAILER_LEN


def max_content_length(envelope_limit: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Return the most content whose envelope is never longer than ``envelope_limit`` bytes.

    The inverse of :func:`max_envelope_length`: 0 when not even empty content fits.
    """
    room = envelope_limit - max_envelope_length(0, chunk_size)
    if room <= 0:
        return 0
    full, rest = divmod(room, chunk_size + CHUNK_PREFIX_LEN + TAG_LEN)
    return full * chunk_size + max(0, rest - CHUNK_PREFIX_LEN - TAG_LEN)


def encode_str8(value: str) -> bytes:
    """Return ``value`` as a one-byte length and its ASCII bytes."""
    raw = value.encode("ascii")
    return bytes([len(raw)]) + raw


def encode_header(
    *,
    envelope_id: bytes,
    created: int,
    sender: OrgId,
    sender_key: KeyId,
    record_kind: str,
    chunk_size: int,
    commitment: bytes,
    slots: tuple[Slot, ...],
) -> bytes:
    """Return the header bytes; the caller has already validated every value."""
    body = b"".join(
        [
            envelope_id,
            struct.pack(">Q", created),
            encode_str8(sender),
            sender_key,
            encode_str8(record_kind),
            struct.pack(">I", chunk_size),
            commitment,
            bytes([len(slots)]),
            *(encode_str8(s.recipient) + s.recipient_key + s.enc + s.wrapped for s in slots),
        ]
    )
    total = _FIXED_PREFIX.size + len(body)
    return _FIXED_PREFIX.pack(MAGIC, VERSION, total) + body


class _Cursor:
    """Reads fields from a header, raising FormatError with the absolute offset."""

    def __init__(self, data: bytes, base: int) -> None:
        self.data = data
        self.pos = 0
        self.base = base

    def take(self, n: int, rule: str, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise FormatError(
                rule, self.base + self.pos, f"the header ends inside the {what} field"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def str8(self, pattern: re.Pattern[bytes], what: str) -> str:
        start = self.pos
        n = self.take(1, "header.length", what)[0]
        raw = self.take(n, "header.length", what)
        if pattern.fullmatch(raw) is None:
            raise FormatError(
                "header.ids", self.base + start, f"the {what} is not a well-formed identifier"
            )
        return raw.decode("ascii")


def parse_prefix(data: bytes) -> int:
    """Check the first 11 bytes (magic, version, length) and return ``header_len``."""
    magic, version, header_len = _FIXED_PREFIX.unpack(data[: _FIXED_PREFIX.size])
    if magic != MAGIC:
        raise FormatError("header.magic", 0, "this is not an envelope (the magic bytes differ)")
    if version != VERSION:
        raise FormatError(
            "header.version", len(MAGIC), f"envelope version {version} is not supported (only 1)"
        )
    if not MIN_HEADER_LEN <= header_len <= MAX_HEADER_LEN:
        raise FormatError(
            "header.length",
            len(MAGIC) + 1,
            f"header length {header_len} is outside {MIN_HEADER_LEN}..{MAX_HEADER_LEN}",
        )
    return int(header_len)


PREFIX_LEN: Final = _FIXED_PREFIX.size


def decode_header(data: bytes) -> Header:
    """Decode a complete header whose prefix :func:`parse_prefix` already accepted."""
    cur = _Cursor(data, 0)
    cur.take(PREFIX_LEN, "header.length", "prefix")
    envelope_id = cur.take(ENVELOPE_ID_LEN, "header.length", "envelope id")
    (created,) = struct.unpack(">Q", cur.take(8, "header.length", "created"))
    sender = OrgId(cur.str8(_ORG_RE, "sender id"))
    sender_key = KeyId(cur.take(KEY_ID_LEN, "header.length", "sender key id"))
    record_kind = cur.str8(_KIND_RE, "record kind")
    chunk_at = cur.pos
    (chunk_size,) = struct.unpack(">I", cur.take(4, "header.length", "chunk size"))
    if not is_valid_chunk_size(chunk_size):
        raise FormatError(
            "header.chunk-size",
            chunk_at,
            f"chunk size {chunk_size} is not a power of two from {MIN_CHUNK_SIZE} "
            f"to {MAX_CHUNK_SIZE}",
        )
    commitment = cur.take(HASH_LEN, "header.length", "key commitment")
    count_at = cur.pos
    count = cur.take(1, "header.length", "recipient count")[0]
    # The count is checked before any slot is read (spec rule header.recipient-count).
    if not 1 <= count <= MAX_RECIPIENTS:
        raise FormatError(
            "header.recipient-count",
            count_at,
            f"recipient count {count} is outside 1..{MAX_RECIPIENTS}",
        )
    slots: list[Slot] = []
    previous = b""
    for _ in range(count):
        slot_at = cur.pos
        recipient = cur.str8(_ORG_RE, "recipient id")
        raw_id = recipient.encode("ascii")
        if slots and raw_id <= previous:
            raise FormatError(
                "header.recipients-sorted",
                slot_at,
                "recipient slots are not in strictly ascending order of organisation id",
            )
        previous = raw_id
        slots.append(
            Slot(
                recipient=OrgId(recipient),
                recipient_key=KeyId(cur.take(KEY_ID_LEN, "header.length", "recipient key id")),
                enc=cur.take(ENC_LEN, "header.length", "encapsulated key"),
                wrapped=cur.take(WRAPPED_LEN, "header.length", "wrapped key"),
            )
        )
    if cur.pos != len(data):
        raise FormatError(
            "header.length",
            cur.pos,
            f"the header has {len(data) - cur.pos} bytes after the last recipient slot",
        )
    return Header(
        envelope_id=envelope_id,
        created=created,
        sender=sender,
        sender_key=sender_key,
        record_kind=record_kind,
        chunk_size=chunk_size,
        commitment=commitment,
        slots=tuple(slots),
    )


def trailer_statement(
    header_hash: bytes, ct_hash: bytes, ct_length: int, chunk_count: int
) -> bytes:
    """Return the statement ``final_sig`` signs and whose SHA-256 is the envelope digest."""
    return L_TRAILER + header_hash + ct_hash + struct.pack(">QQ", ct_length, chunk_count)


def encode_trailer(trailer: Trailer) -> bytes:
    """Return the trailer bytes."""
    return (
        struct.pack(">QQ", trailer.ct_length, trailer.chunk_count)
        + trailer.ct_hash
        + trailer.final_sig
    )


def decode_trailer(data: bytes) -> Trailer:
    """Decode exactly :data:`TRAILER_LEN` bytes."""
    ct_length, chunk_count = struct.unpack(">QQ", data[:16])
    return Trailer(
        ct_length=ct_length,
        chunk_count=chunk_count,
        ct_hash=data[16 : 16 + HASH_LEN],
        final_sig=data[16 + HASH_LEN :],
    )


def is_valid_record_kind(value: str) -> bool:
    """Return whether ``value`` is a well-formed record kind (docs/envelope.md §3)."""
    return value.isascii() and _KIND_RE.fullmatch(value.encode("ascii")) is not None
