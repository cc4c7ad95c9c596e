"""Opening a stored envelope body a piece at a time: the record kept, the files streamed.

A received CP file may be a gigabyte; none of it is held whole. Opening an item reads its
body once, checking everything the envelope format checks (docs/envelope.md §7) while the
plaintext goes through a :class:`~exchange.records.scanning.ContainerScanner`, which keeps
the record, hashes each file and checks its content as it passes (:func:`scan_body`). A
PNG's or an office document's checks need its bytes at any offset: they read it again
through a :class:`PlaintextSource`, which opens single chunks of the verified body.

Handing plaintext out (an attachment's download, the whole content) verifies while it
streams (:func:`stream_content`, :func:`stream_attachment`): the body is read from its
start again, each chunk is authenticated before its plaintext is yielded, and the last
piece is held back until the envelope's trailer signature, its ciphertext hash and the
file's SHA-256 have all verified. A failure part-way raises, and the caller cuts the
connection, so a reader is never handed a file that looks complete but is not
(exchange/http/streaming.py).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Final

from exchange.envelope import FormatError, Opener, OpenError, SenderError
from exchange.envelope.format import (
    CHUNK_DATA,
    CHUNK_PREFIX_LEN,
    PREFIX_LEN,
    SIG_LEN,
    TAG_LEN,
    parse_prefix,
)
from exchange.envelope.payload import PayloadCipher
from exchange.records import Record, RecordError
from exchange.records.scanning import ContainerScanner, Entry, content_problem
from exchange.service.body_checks import BodyDamagedError
from exchange.service.context import PIECE, ServiceContext
from exchange.service.errors import NotFoundError, ServiceError
from exchange.service.tenants import Tenant
from exchange.store.blobs import ThreadReader

_CHUNK_PREFIX: Final = struct.Struct(">BI")


@dataclass(frozen=True)
class OpenedItem:
    """What opening a body found: the record and its files, or None if not a container."""

    record: Record | None
    entries: tuple[Entry, ...]
    content_length: int


class PlaintextSource:
    """One span of a verified body's plaintext, read at any offset a chunk at a time.

    Chunk ``i`` of the body sits at a fixed place (every data chunk but the last holds
    ``chunk_size`` bytes), so the chunk holding an offset is read, its framing checked and
    its ciphertext authenticated and decrypted under its own index. One chunk is kept.
    """

    def __init__(
        self,
        body: ThreadReader,
        *,
        header_len: int,
        chunk_size: int,
        cipher: PayloadCipher,
        start: int,
        size: int,
    ) -> None:
        self._body = body
        self._base = header_len + SIG_LEN
        self._chunk_size = chunk_size
        self._cipher = cipher
        self._start = start
        self._size = size
        self._cached = (-1, b"")

    @property
    def size(self) -> int:
        """The number of bytes of the span."""
        return self._size

    def _chunk(self, index: int) -> bytes:
        if self._cached[0] == index:
            return self._cached[1]
        framed = CHUNK_PREFIX_LEN + self._chunk_size + TAG_LEN
        raw = self._body.read_at(self._base + index * framed, framed)
        if len(raw) < CHUNK_PREFIX_LEN:
            raise OpenError
        kind, length = _CHUNK_PREFIX.unpack_from(raw)
        if kind != CHUNK_DATA or len(raw) < CHUNK_PREFIX_LEN + length:
            raise OpenError
        plain = self._cipher.open(
            index, raw[CHUNK_PREFIX_LEN : CHUNK_PREFIX_LEN + length], final=False
        )
        self._cached = (index, plain)
        return plain

    def read_at(self, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset`` of the span."""
        count = max(0, min(count, self._size - offset))
        pieces = []
        position = self._start + offset
        while count > 0:
            index, within = divmod(position, self._chunk_size)
            piece = self._chunk(index)[within : within + count]
            if not piece:
                raise OpenError
            pieces.append(piece)
            position += len(piece)
            count -= len(piece)
        return b"".join(pieces)


def _opened(context: ServiceContext, tenant: Tenant, created: int) -> Opener:
    return Opener(context.directory, tenant.keys, now=max(context.now(), created))


def _read_opened(
    opener: Opener, body: ThreadReader, digest: bytes, sink: Callable[[bytes], None]
) -> None:
    """Feed the stored ``body`` to ``opener``, each piece of plaintext to ``sink``.

    A body that no longer opens, or is no longer the envelope ``digest``, is
    :class:`BodyDamagedError`; a sender no longer trusted is a refusal to release (500),
    not damage.
    """
    try:
        for block in body.blocks(PIECE):
            for plaintext in opener.feed_pieces(block):
                sink(plaintext)
        opened = opener.finish_opened()
    except SenderError as exc:
        raise ServiceError(f"the stored envelope could not be opened: {exc}", status=500) from None
    except (FormatError, OpenError):
        raise BodyDamagedError from None
    if opened.verified.digest != digest:
        raise BodyDamagedError


def scan_body(
    context: ServiceContext, tenant: Tenant, body: ThreadReader, digest: bytes, created: int
) -> OpenedItem:
    """Open the stored ``body`` of ``digest`` in full, checking everything; keep the record.

    Each file's content is checked as it passes (a PDF, a JPEG, text) or, for the types
    whose checks need its bytes at any offset, after the envelope verified, through a
    :class:`PlaintextSource`. A missing body raises ``FileNotFoundError``.
    """
    opener = _opened(context, tenant, created)
    scanner = ContainerScanner()
    refused: list[RecordError] = []
    length = 0

    def sink(plaintext: bytes) -> None:
        nonlocal length
        length += len(plaintext)
        if not refused:
            try:
                scanner.feed(plaintext)
            except RecordError as exc:
                refused.append(exc)

    _read_opened(opener, body, digest, sink)
    if refused:
        return OpenedItem(None, (), length)
    try:
        scanned = scanner.finish()
    except RecordError:
        return OpenedItem(None, (), length)
    cipher = opener.payload_cipher
    assert cipher is not None  # the body opened
    try:
        header_len = parse_prefix(body.read_at(0, PREFIX_LEN))
    except (FormatError, OpenError):
        raise BodyDamagedError from None
    chunk_size = opener.header.chunk_size if opener.header else 0

    def source_of(entry: Entry) -> PlaintextSource:
        return PlaintextSource(
            body,
            header_len=header_len,
            chunk_size=chunk_size,
            cipher=cipher,
            start=entry.offset,
            size=entry.size,
        )

    try:
        problem = content_problem(scanned.entries, source_of, scanned.scans)
    except (FormatError, OpenError):
        raise BodyDamagedError from None
    if problem is not None:
        return OpenedItem(None, (), length)
    return OpenedItem(scanned.record, scanned.entries, length)


class StreamBrokenError(Exception):
    """A body being streamed out failed a check part-way: the transfer must be cut."""


def _plaintexts(
    context: ServiceContext, tenant: Tenant, body: ThreadReader, digest: bytes, created: int
) -> Iterator[bytes]:
    """Yield a body's plaintext as each chunk authenticates; at the end verify it all.

    The end checks the trailer's signature and hash and that the body is still the
    envelope ``digest`` (the one opened and checked before).
    """
    opener = _opened(context, tenant, created)
    for block in body.blocks(PIECE):
        yield from opener.feed_pieces(block)
    if opener.finish_opened().verified.digest != digest:
        raise OpenError


def _held_back(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Yield ``pieces`` but the last until ``pieces`` ended without error.

    Before anything was yielded a failure is an ordinary refusal (a damaged body, a sender
    no longer trusted, no such attachment); after, it is :class:`StreamBrokenError`.
    """
    held: bytes | None = None
    started = False
    try:
        for piece in pieces:
            if held is not None:
                started = True
                yield held
            held = piece
    except (FormatError, OpenError, SenderError, RecordError) as exc:
        if started:
            raise StreamBrokenError(type(exc).__name__) from None
        if isinstance(exc, SenderError):
            raise ServiceError(
                f"the stored envelope could not be opened: {exc}", status=500
            ) from None
        if isinstance(exc, RecordError):
            raise NotFoundError("the item has no such attachment") from None
        raise BodyDamagedError from None
    if held is not None:
        yield held


def stream_content(
    context: ServiceContext, tenant: Tenant, body: ThreadReader, digest: bytes, created: int
) -> Iterator[bytes]:
    """Yield the whole plaintext of a body, verified as it streams (see the module)."""
    return _held_back(_plaintexts(context, tenant, body, digest, created))


def stream_attachment(
    context: ServiceContext,
    tenant: Tenant,
    body: ThreadReader,
    digest: bytes,
    created: int,
    *,
    number: int,
) -> tuple[Entry, Iterator[bytes]]:
    """Return attachment ``number`` (from 1) of a body: what it is, and its bytes, streamed.

    Reads the body up to the attachment's first bytes before it returns (so a refusal is
    still an ordinary answer); run it in a worker thread. Each piece is yielded once the
    chunks it came from authenticated; the last is held back until the envelope verified,
    the file's SHA-256 matched what the container says and the container ended well.
    """
    scanner = ContainerScanner()

    def pieces() -> Iterator[bytes]:
        for plaintext in _plaintexts(context, tenant, body, digest, created):
            for index, data in scanner.feed(plaintext):
                if index == number - 1:
                    yield data
            count = scanner.count
            if count is not None and number > count:
                raise NotFoundError("the item has no such attachment")
        scanner.finish()

    stream = _held_back(pieces())
    first = next(stream, None)
    entry = scanner.head(number - 1)
    if first is None or entry is None:
        raise NotFoundError("the item has no such attachment")
    return entry, itertools.chain([first], stream)


class _Batches:
    """Pieces taken a batch of about :data:`PIECE` bytes at a time (one thread hop each).

    A failure after some pieces were taken is kept and raised on the next call, so the
    caller is given every piece it would have been given one at a time, then the failure.
    """

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._failure: BaseException | None = None

    def next_batch(self) -> bytes | None:
        """Return the next batch joined, or None at the end (run in a worker thread)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        taken: list[bytes] = []
        size = 0
        try:
            for piece in self._pieces:
                taken.append(piece)
                size += len(piece)
                if size >= PIECE:
                    break
        except Exception as exc:
            if not taken:
                raise
            self._failure = exc
        if not taken:
            return None
        return taken[0] if len(taken) == 1 else b"".join(taken)


async def in_thread(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Yield ``pieces`` to the event loop, made in a worker thread about a MiB at a time.

    The next batch is made while the caller sends the last one (decrypting and hashing
    overlap the network); at most one batch is made ahead.
    """
    batches = _Batches(pieces)
    ahead = asyncio.ensure_future(asyncio.to_thread(batches.next_batch))
    try:
        while (batch := await ahead) is not None:
            ahead = asyncio.ensure_future(asyncio.to_thread(batches.next_batch))
            yield batch
    finally:
        # Abandoned part-way (the client went, a refusal): let the batch being made end
        # before its body file is closed; what it raised is the failure being handled.
        if not ahead.done():
            await asyncio.wait([ahead])
        if not ahead.cancelled():
            ahead.exception()
