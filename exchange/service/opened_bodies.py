"""Opening a stored envelope body a piece at a time: the record kept, the files streamed.

A received CP file may be a gigabyte; none of it is held whole. Opening an item reads its
body once, checking everything the envelope format checks (docs/envelope.md §7) while the
plaintext goes through a :class:`~exchange.records.scanning.ContainerScanner`, which keeps
the record and hashes each file (:func:`scan_body`). The files' content checks (types, zip
bombs, polyglots) then read each file again at any offset through a
:class:`PlaintextSource`, which opens single chunks of the verified body.

Handing plaintext out (an attachment's download, the whole content) verifies while it
streams (:func:`stream_body`): the body is read from its start again, each chunk is
authenticated before its plaintext is yielded, and the last piece is held back until the
envelope's trailer signature, its ciphertext hash and the file's SHA-256 have all
verified. A failure part-way raises, and the caller cuts the connection, so a reader is
never handed a file that looks complete but is not (exchange/http/streaming.py).
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

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
from exchange.service.body_checks import BodyDamagedError, file_blocks
from exchange.service.context import ServiceContext
from exchange.service.errors import ServiceError
from exchange.service.tenants import Tenant

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
        handle: BinaryIO,
        *,
        header_len: int,
        chunk_size: int,
        cipher: PayloadCipher,
        start: int,
        size: int,
    ) -> None:
        self._fd = handle.fileno()
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
        raw = os.pread(self._fd, framed, self._base + index * framed)
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


def _read_opened(opener: Opener, path: Path, sink: Callable[[bytes], None]) -> None:
    """Feed the body at ``path`` to ``opener``, each piece of plaintext to ``sink``.

    A body that no longer opens is :class:`BodyDamagedError`; a sender no longer trusted
    is a refusal to release (500), not damage.
    """
    try:
        for block in file_blocks(path):
            for plaintext in opener.feed_pieces(block):
                sink(plaintext)
        opener.finish_opened()
    except SenderError as exc:
        raise ServiceError(f"the stored envelope could not be opened: {exc}", status=500) from None
    except (FormatError, OpenError):
        raise BodyDamagedError from None


def scan_body(context: ServiceContext, tenant: Tenant, digest: bytes, created: int) -> OpenedItem:
    """Open the stored body ``digest`` in full, checking everything; keep only the record.

    The content checks of each file run after the envelope verified, through a
    :class:`PlaintextSource`. A missing file raises ``FileNotFoundError``.
    """
    path = context.store.body_path(digest)
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

    _read_opened(opener, path, sink)
    if refused:
        return OpenedItem(None, (), length)
    try:
        scanned = scanner.finish()
    except RecordError:
        return OpenedItem(None, (), length)
    cipher = opener.payload_cipher
    assert cipher is not None  # the body opened
    with path.open("rb") as handle:
        header_len = parse_prefix(handle.read(PREFIX_LEN))
        chunk_size = opener.header.chunk_size if opener.header else 0

        def source_of(entry: Entry) -> PlaintextSource:
            return PlaintextSource(
                handle,
                header_len=header_len,
                chunk_size=chunk_size,
                cipher=cipher,
                start=entry.offset,
                size=entry.size,
            )

        try:
            problem = content_problem(scanned.entries, source_of)
        except (FormatError, OpenError):
            raise BodyDamagedError from None
    if problem is not None:
        return OpenedItem(None, (), length)
    return OpenedItem(scanned.record, scanned.entries, length)


class StreamBrokenError(Exception):
    """A body being streamed out failed a check part-way: the transfer must be cut."""


def stream_body(
    context: ServiceContext,
    tenant: Tenant,
    digest: bytes,
    created: int,
    number: int | None,
) -> Iterator[bytes]:
    """Yield attachment ``number`` (from 1) of a body, or its whole content (None).

    Each piece is yielded only once the chunks it came from authenticated; the last is
    held back until the whole envelope verified and the file's SHA-256 matched. Any
    failure after the first piece raises :class:`StreamBrokenError`.
    """
    path = context.store.body_path(digest)
    opener = _opened(context, tenant, created)
    scanner = ContainerScanner() if number is not None else None
    ready: list[bytes] = []

    def sink(plaintext: bytes) -> None:
        if scanner is None:
            ready.append(plaintext)
            return
        for index, data in scanner.feed(plaintext):
            if index == number - 1:  # type: ignore[operator]
                ready.append(data)

    held = b""
    try:
        with path.open("rb") as body:
            while block := body.read(1024 * 1024):
                for plaintext in opener.feed_pieces(block):
                    sink(plaintext)
                for piece in ready:
                    if held:
                        yield held
                    held = piece
                ready.clear()
        opener.finish_opened()
        if scanner is not None:
            scanner.finish()
    except (FormatError, OpenError, SenderError, RecordError) as exc:
        raise StreamBrokenError(type(exc).__name__) from None
    if held:
        yield held


_END: Final = object()


async def in_thread(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Yield ``pieces`` to the event loop, each made in a worker thread."""
    while (piece := await asyncio.to_thread(next, pieces, _END)) is not _END:
        yield piece  # type: ignore[misc]
