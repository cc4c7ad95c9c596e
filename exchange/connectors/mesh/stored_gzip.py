"""A gzip member of "stored" deflate blocks, written piece by piece with its length known first.

MESH wants every chunk gzipped (``Content-Encoding: gzip``); what we send is ciphertext,
which deflate cannot shrink, so the connector has always sent level 0, "stored" blocks
(docs/mesh.md §3). Written by hand, such a member streams: its bytes are a 10-byte header,
the data in blocks of at most 65,535 bytes each behind a 5-byte block header, and an 8-byte
trailer (CRC-32 and length), so its length is known before a byte of the data is read
(:func:`stored_length`), and a chunk of 20 MiB can be sent as it is read from the file,
with its ``Content-Length``, never held in memory (RFC 1951 §3.2.4, RFC 1952 §2.3).

Pure functions, no I/O.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Final

#: The largest stored block (RFC 1951 §3.2.4: LEN is 16 bits).
BLOCK: Final = 65_535

#: Pieces fed to :func:`stored_gzip` must be a multiple of this (except the last), so that
#: the blocks written are exactly those :func:`stored_length` counts: 16 blocks, ~1 MiB.
PIECE: Final = 16 * BLOCK

#: ID1 ID2, CM = deflate, no flags, no mtime, XFL 0, OS 255 (unknown).
_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_TRAILER_LEN: Final = 8
_BLOCK_HEADER_LEN: Final = 5


def stored_length(size: int) -> int:
    """Return the length of the stored gzip member of ``size`` bytes of data."""
    if size < 0:
        raise ValueError("size must not be negative")
    blocks = max(1, -(-size // BLOCK))
    return len(_HEADER) + blocks * _BLOCK_HEADER_LEN + size + _TRAILER_LEN


def _block(data: bytes | memoryview, *, final: bool) -> bytes:
    size = len(data)
    return struct.pack("<BHH", 1 if final else 0, size, size ^ 0xFFFF)


async def stored_gzip(pieces: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """Yield the stored gzip member of the ``size`` bytes that ``pieces`` yield.

    Every piece but the last must be a multiple of :data:`BLOCK` bytes long; ``ValueError``
    if one is not, or if the pieces do not add up to ``size`` (the length announced).
    """
    yield _HEADER
    crc = 0
    seen = 0
    pending: bytes | None = None
    async for piece in pieces:
        if pending is not None:
            if len(pending) % BLOCK:
                raise ValueError("every piece but the last must be a multiple of 65535 bytes")
            yield _blocks(pending, last=False)
        crc = zlib.crc32(piece, crc)
        seen += len(piece)
        pending = piece
    if seen != size:
        raise ValueError("the pieces are not of the length announced")
    yield _blocks(pending or b"", last=True)
    yield struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def _blocks(piece: bytes, *, last: bool) -> bytes:
    """Return ``piece`` as stored blocks; the very last block of the member is final."""
    view = memoryview(piece)
    starts = range(0, len(view), BLOCK) if view else range(1)
    out = bytearray()
    for start in starts:
        data = view[start : start + BLOCK]
        out += _block(data, final=last and start + BLOCK >= len(view))
        out += data
    return bytes(out)
