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


class EnvelopeReader:
    """Incremental parser of one envelope."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # absolute offset of _buf[0] in the envelope
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

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Consume ``data`` and return the events it completes."""
        if self._state is _State.DONE:
            if data:
                raise FormatError(
                    "envelope.trailing-data", self._offset, "bytes follow the trailer"
                )
            return []
        self._buf += data
        events: list[Event] = []
        while len(self._buf) >= self._need and not self.done:
            event = self._step()
            if event is not None:
                events.append(event)
        if self.done and self._buf:
            raise FormatError("envelope.trailing-data", self._offset, "bytes follow the trailer")
        return events

    def close(self) -> None:
        """Declare the end of input; raise unless the whole envelope was read."""
        if self._state is not _State.DONE:
            raise FormatError(
                "envelope.truncated",
                self._offset + len(self._buf),
                f"the input ends inside the {self._state.name.lower().replace('_', ' ')}",
            )

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._offset += n
        return out

    def _step(self) -> Event | None:
        state = self._state
        if state is _State.PREFIX:
            self._header_len = parse_prefix(bytes(self._buf[:PREFIX_LEN]))
            self._state, self._need = _State.HEADER, self._header_len
            return None
        if state is _State.HEADER:
            self._header_bytes = self._take(self._header_len)
            self._header = decode_header(self._header_bytes)
            self._header_hash = hashlib.sha256(self._header_bytes).digest()
            self._state, self._need = _State.HEADER_SIG, SIG_LEN
            return None
        if state is _State.HEADER_SIG:
            assert self._header is not None
            sig = self._take(SIG_LEN)
            self._state, self._need = _State.CHUNK_PREFIX, CHUNK_PREFIX_LEN
            return HeaderRead(self._header, self._header_bytes, self._header_hash, sig)
        if state is _State.CHUNK_PREFIX:
            self._read_chunk_prefix()
            return None
        if state is _State.CHUNK_BODY:
            body = self._take(self._need)
            self._ct_hash.update(body)
            self._ct_length += len(body)
            event = ChunkRead(self._chunk_index, self._chunk_final, body)
            self._chunk_index += 1
            if self._chunk_final:
                self._state, self._need = _State.TRAILER, TRAILER_LEN
            else:
                self._state, self._need = _State.CHUNK_PREFIX, CHUNK_PREFIX_LEN
            return event
        return self._read_trailer()

    def _read_chunk_prefix(self) -> None:
        assert self._header is not None
        at = self._offset
        prefix = self._take(CHUNK_PREFIX_LEN)
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

    def _read_trailer(self) -> TrailerRead:
        at = self._offset
        trailer = decode_trailer(self._take(TRAILER_LEN))
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
