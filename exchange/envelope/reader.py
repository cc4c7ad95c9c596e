"""A sans-I/O reader of envelope bytes: feed bytes in, get parsed events out.

The reader checks every structural rule of docs/envelope.md and nothing cryptographic; it
also hashes the ciphertext section as it passes, so verifiers never see a byte twice. It
holds at most one chunk in memory, so reading is constant-memory for any envelope size.

States, in order: prefix → header → header signature → chunks → trailer → done. Each
``feed`` call returns the events completed by the new bytes; ``close`` at end of input
raises :class:`FormatError` (rule envelope.truncated) unless the reader is done.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass

from exchange.envelope.errors import FormatError, OpenError
from exchange.envelope.format import (
    CHUNK_DATA,
    CHUNK_FINAL,
    CHUNK_PREFIX_LEN,
    FINAL_CT_LEN,
    PREFIX_LEN,
    SIG_LEN,
    TAG_LEN,
    TRAILER_LEN,
    Header,
    Trailer,
    decode_header,
    decode_trailer,
    parse_prefix,
    trailer_statement,
)


@dataclass(frozen=True, slots=True)
class HeaderRead:
    """The header and its signature have been read (not yet verified)."""

    header: Header
    header_bytes: bytes
    header_hash: bytes
    header_sig: bytes


@dataclass(frozen=True, slots=True)
class ChunkRead:
    """One chunk's ciphertext (framing removed) has been read."""

    index: int
    final: bool
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class TrailerRead:
    """The trailer has been read; its counts and hash matched what was read."""

    trailer: Trailer
    statement: bytes
    digest: bytes


Event = HeaderRead | ChunkRead | TrailerRead


class _State(enum.Enum):
    PREFIX = enum.auto()
    HEADER = enum.auto()
    HEADER_SIG = enum.auto()
    CHUNK_PREFIX = enum.auto()
    CHUNK_BODY = enum.auto()
    TRAILER = enum.auto()
    DONE = enum.auto()


_CHUNK_PREFIX = struct.Struct(">BI")

#: How a truncation message names each state.
_PLACES = {
    _State.PREFIX: "header",
    _State.HEADER: "header",
    _State.HEADER_SIG: "header signature",
    _State.CHUNK_PREFIX: "chunks (before the final chunk)",
    _State.CHUNK_BODY: "chunks (before the final chunk)",
    _State.TRAILER: "trailer",
}


class EnvelopeReader:
    """Incremental parser of one envelope.

    Push bytes with :meth:`receive`, then pull events with :meth:`next_event` until it
    returns ``None`` (more bytes needed). Pulling one event at a time lets the caller act on
    the header (check the sender, verify the signature) before a single further byte is
    parsed, so checks happen in the spec's order whatever the size of each read.
    Whole items are parsed straight from the caller's bytes; only an item split across two
    reads is buffered, so each byte is copied once.
    """

    def __init__(self) -> None:
        self._data: bytes | bytearray | memoryview = b""
        self._pos = 0
        self._buf = bytearray()  # the start of an item split across reads
        self._offset = 0  # absolute offset of the next item in the envelope
        self._state = _State.PREFIX
        self._need = PREFIX_LEN
        self._header_len = 0
        self._header_bytes = b""
        self._header: Header | None = None
        self._header_hash = b""
        self._chunk_index = 0
        self._chunk_final = False
        self._short_seen = False
        self._ct_hash = hashlib.sha256()
        self._ct_length = 0

    @property
    def done(self) -> bool:
        """Whether the trailer has been read."""
        return self._state is _State.DONE

    def receive(self, data: bytes | bytearray | memoryview) -> None:
        """Add input; the previous input must have been drained by :meth:`next_event`."""
        if self._pos < len(self._data):
            raise RuntimeError("receive() called before next_event() drained the last input")
        self._data = data
        self._pos = 0
        if self.done and data:
            raise FormatError("envelope.trailing-data", self._offset, "bytes follow the trailer")

    def next_event(self) -> Event | None:
        """Return the next complete event, or ``None`` when more input is needed."""
        data = self._data
        while True:
            available = len(data) - self._pos
            if self.done:
                if available:
                    raise FormatError(
                        "envelope.trailing-data", self._offset, "bytes follow the trailer"
                    )
                return None
            if self._buf:
                take = min(self._need - len(self._buf), available)
                self._buf += data[self._pos : self._pos + take]
                self._pos += take
                if len(self._buf) < self._need:
                    return None
                item = bytes(self._buf)
                self._buf.clear()
            elif available >= self._need:
                item = bytes(data[self._pos : self._pos + self._need])
                self._pos += self._need
            else:
                self._buf += data[self._pos :]
                self._pos = len(data)
                return None
            event = self._step(item)
            self._offset += len(item)
            if event is not None:
                return event

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Consume ``data`` and return every event it completes (a convenience for tests)."""
        self.receive(data)
        events = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        """Declare the end of input; raise unless the whole envelope was read."""
        if self._state is not _State.DONE:
            end = self._offset + len(self._buf)
            where = (
                "the input is empty"
                if end == 0
                else f"the input ends inside the {_PLACES[self._state]}"
            )
            raise FormatError("envelope.truncated", end, where)

    def _step(self, item: bytes) -> Event | None:
        """Handle one complete item of ``self._need`` bytes starting at ``self._offset``."""
        state = self._state
        if state is _State.PREFIX:
            self._header_len = parse_prefix(item)
            self._header_bytes = item
            self._state, self._need = _State.HEADER, self._header_len - PREFIX_LEN
            return None
        if state is _State.HEADER:
            self._header_bytes += item
            self._header = decode_header(self._header_bytes)
            self._header_hash = hashlib.sha256(self._header_bytes).digest()
            self._state, self._need = _State.HEADER_SIG, SIG_LEN
            return None
        if state is _State.HEADER_SIG:
            assert self._header is not None
            self._state, self._need = _State.CHUNK_PREFIX, CHUNK_PREFIX_LEN
            return HeaderRead(self._header, self._header_bytes, self._header_hash, item)
        if state is _State.CHUNK_PREFIX:
            self._read_chunk_prefix(item)
            return None
        if state is _State.CHUNK_BODY:
            self._ct_hash.update(item)
            self._ct_length += len(item)
            event = ChunkRead(self._chunk_index, self._chunk_final, item)
            self._chunk_index += 1
            if self._chunk_final:
                self._state, self._need = _State.TRAILER, TRAILER_LEN
            else:
                self._state, self._need = _State.CHUNK_PREFIX, CHUNK_PREFIX_LEN
            return event
        return self._read_trailer(item)

    def _read_chunk_prefix(self, prefix: bytes) -> None:
        assert self._header is not None
        at = self._offset
        kind, ct_len = _CHUNK_PREFIX.unpack(prefix)
        chunk_size = self._header.chunk_size
        if kind == CHUNK_DATA:
            if not TAG_LEN < ct_len <= chunk_size + TAG_LEN:
                raise FormatError(
                    "chunk.length",
                    at + 1,
                    f"data chunk {self._chunk_index} has length {ct_len}, outside "
                    f"{TAG_LEN + 1}..{chunk_size + TAG_LEN}",
                )
            if self._short_seen:
                raise FormatError(
                    "chunk.order",
                    at,
                    f"data chunk {self._chunk_index} follows a short chunk; only the last "
                    "data chunk may be shorter than the chunk size",
                )
            self._short_seen = ct_len < chunk_size + TAG_LEN
            self._chunk_final = False
        elif kind == CHUNK_FINAL:
            if ct_len != FINAL_CT_LEN:
                raise FormatError(
                    "chunk.length",
                    at + 1,
                    f"the final chunk has length {ct_len}, not {FINAL_CT_LEN}",
                )
            self._chunk_final = True
        else:
            raise FormatError("chunk.type", at, f"chunk type 0x{kind:02x} is not 0x01 or 0x02")
        self._ct_hash.update(prefix)
        self._ct_length += CHUNK_PREFIX_LEN
        self._state, self._need = _State.CHUNK_BODY, ct_len

    def _read_trailer(self, item: bytes) -> TrailerRead:
        at = self._offset
        trailer = decode_trailer(item)
        if trailer.ct_length != self._ct_length or trailer.chunk_count != self._chunk_index:
            raise FormatError(
                "trailer.counts",
                at,
                f"the trailer claims {trailer.ct_length} bytes in {trailer.chunk_count} chunks "
                f"but {self._ct_length} bytes in {self._chunk_index} chunks were read",
            )
        ct_hash = self._ct_hash.digest()
        if not hmac.compare_digest(trailer.ct_hash, ct_hash):
            raise OpenError  # rule trailer.ct-hash: opaque, like every hash or tag check
        statement = trailer_statement(
            self._header_hash, ct_hash, trailer.ct_length, trailer.chunk_count
        )
        self._state, self._need = _State.DONE, 0
        return TrailerRead(trailer, statement, hashlib.sha256(statement).digest())
