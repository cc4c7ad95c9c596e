"""Reading a message body in pieces, in memory or stored (docs/connectors.md §2).

A :class:`~exchange.connectors.base.Message` carries its body as bytes (receipts, notices)
or as a :class:`~exchange.connectors.base.StoredBody` (a stored envelope, up to gigabytes).
Connectors never read a stored body whole: :func:`body_pieces` yields it in pieces, each
read off the event loop, and checks that the body holds exactly the length the message names
(a body changed under the sender raises :class:`BodyChangedError`, an ``OSError``, so the
attempt is retried and never sends a body of the wrong length). :func:`read_small` is for
transports that can only take bytes (SMTP, the in-memory fake), under a limit they name.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from exchange.connectors.base import Body, StoredBody, body_length
from exchange.files import read_span

#: Size of each piece read from a body file: large enough that a gigabyte is a thousand
#: reads, small enough that a few in flight cost little memory.
PIECE: Final = 256 * 1024


class BodyChangedError(OSError):
    """A stored body is not of the length its message names (changed or damaged)."""

    def __init__(self) -> None:
        super().__init__(errno.EIO, "the stored body is not of the length its message names")


def file_body(path: Path, sha256: bytes | None = None) -> StoredBody:
    """Return the local file ``path`` as a stored body (each span read in a worker thread)."""

    async def read_at(offset: int, count: int) -> bytes:
        return await asyncio.to_thread(read_span, path, offset, count)

    return StoredBody(read_at, path.stat().st_size, sha256)


async def body_pieces(
    body: Body, size: int = PIECE, *, start: int = 0, stop: int | None = None
) -> AsyncIterator[bytes]:
    """Yield ``body[start:stop]`` in pieces of at most ``size`` bytes.

    Raises :class:`BodyChangedError` if a stored body is shorter than its length (or, read
    whole, longer).
    """
    end = body_length(body) if stop is None else stop
    if not 0 <= start <= end <= body_length(body) or size < 1:
        raise ValueError("the range must lie within the body, and size must be positive")
    if isinstance(body, bytes):
        view = memoryview(body)
        for at in range(start, end, size):
            yield bytes(view[at : min(at + size, end)])
        return
    at = start
    while at < end:
        want = min(size, end - at)
        piece = await body.read_at(at, want)
        if len(piece) != want:
            raise BodyChangedError
        at += len(piece)
        yield piece
    if stop is None and await body.read_at(end, 1):
        raise BodyChangedError


async def read_small(body: Body, limit: int) -> bytes:
    """Return ``body`` whole; ``ValueError`` if it is longer than ``limit`` bytes."""
    if body_length(body) > limit:
        raise ValueError(f"the body is longer than {limit} bytes")
    if isinstance(body, bytes):
        return body
    return b"".join([piece async for piece in body_pieces(body)])


async def body_sha256(body: Body) -> bytes:
    """Return the SHA-256 of ``body``: the one it carries, or computed reading it once."""
    if isinstance(body, StoredBody) and body.sha256 is not None:
        return body.sha256
    if isinstance(body, bytes):
        return hashlib.sha256(body).digest()
    running = hashlib.sha256()
    async for piece in body_pieces(body):
        running.update(piece)
    return running.digest()
