"""Reading a message body in pieces, whether it is bytes or a file (docs/connectors.md §2).

A :class:`~exchange.connectors.base.Message` carries its body as bytes (receipts, notices)
or as a :class:`~exchange.connectors.base.BodyFile` (a stored envelope, up to gigabytes).
Connectors never read a file body whole: :func:`body_pieces` yields it in pieces, each read
off the event loop, and checks that the file holds exactly the length the message names (a
file changed under the sender raises :class:`BodyChangedError`, an ``OSError``, so the
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

from exchange.connectors.base import Body, BodyFile, body_length

#: Size of each piece read from a body file: large enough that a gigabyte is a thousand
#: reads, small enough that a few in flight cost little memory.
PIECE: Final = 256 * 1024


class BodyChangedError(OSError):
    """A body file is not of the length its message names (changed or damaged on disk)."""

    def __init__(self) -> None:
        super().__init__(errno.EIO, "the body file is not of the length its message names")


def _read_at(path: str, offset: int, size: int) -> bytes:
    """Return ``size`` bytes of ``path`` from ``offset``; :class:`BodyChangedError` if short.

    The file is opened for each piece: a reader abandoned half-way (a request cut short)
    never leaves a file open behind it.
    """
    with Path(path).open("rb") as handle:
        handle.seek(offset)
        piece = handle.read(size)
    if len(piece) != size:
        raise BodyChangedError
    return piece


async def body_pieces(
    body: Body, size: int = PIECE, *, start: int = 0, stop: int | None = None
) -> AsyncIterator[bytes]:
    """Yield ``body[start:stop]`` in pieces of at most ``size`` bytes; a file's in a thread.

    Raises :class:`BodyChangedError` if a file is shorter than its length (or, read whole,
    longer).
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
        piece = await asyncio.to_thread(_read_at, body.path, at, min(size, end - at))
        at += len(piece)
        yield piece
    if stop is None and await asyncio.to_thread(_longer_than, body.path, end):
        raise BodyChangedError


def _longer_than(path: str, end: int) -> bool:
    """Return whether ``path`` holds more than ``end`` bytes."""
    return Path(path).stat().st_size > end


async def read_small(body: Body, limit: int) -> bytes:
    """Return ``body`` whole; ``ValueError`` if it is longer than ``limit`` bytes."""
    if body_length(body) > limit:
        raise ValueError(f"the body is longer than {limit} bytes")
    if isinstance(body, bytes):
        return body
    return b"".join([piece async for piece in body_pieces(body)])


async def body_sha256(body: Body) -> bytes:
    """Return the SHA-256 of ``body``: the one it carries, or computed reading it once."""
    if isinstance(body, BodyFile) and body.sha256 is not None:
        return body.sha256
    if isinstance(body, bytes):
        return hashlib.sha256(body).digest()
    running = hashlib.sha256()
    async for piece in body_pieces(body):
        running.update(piece)
    return running.digest()
