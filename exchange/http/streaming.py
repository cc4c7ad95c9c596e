"""Answers written in pieces (exports, decrypted files), so their size costs no memory.

:func:`stream_text` sends an iterator's pieces as one chunked answer, :func:`stream_bytes`
a file of known length. A failure after the first piece cannot change the status any
more, so the connection is cut instead of ending the answer: the client sees an incomplete
transfer, never a file that looks complete but is not (no partial output passes for a
whole one).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Final
from urllib.parse import quote

from aiohttp import web

from exchange.logs import get_logger
from exchange.records import CONTENT_TYPES
from exchange.records.scanning import Entry

log = get_logger("exchange.api")

#: Pieces are gathered up to this many characters before a write.
WRITE_SIZE = 64 * 1024


async def stream_text(
    request: web.Request,
    pieces: AsyncIterator[str],
    *,
    content_type: str,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Send ``pieces`` as a UTF-8 answer; cut the connection if they fail part-way."""
    # The first piece is read before the answer starts: a refusal or fault there is still
    # an ordinary error answer with its status.
    first = await anext(pieces, "")
    response = web.StreamResponse(headers=dict(headers))
    response.content_type = content_type
    response.charset = "utf-8"
    response.enable_chunked_encoding()
    await response.prepare(request)
    buffer = [first]
    held = len(first)
    try:
        async for piece in pieces:
            buffer.append(piece)
            held += len(piece)
            if held >= WRITE_SIZE:
                await response.write("".join(buffer).encode("utf-8"))
                buffer, held = [], 0
        await response.write("".join(buffer).encode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any failure part-way: cut, then re-raise
        return _cut(request, response, "export.failed", exc)
    await response.write_eof()
    return response


def _cut(
    request: web.Request, response: web.StreamResponse, event: str, exc: Exception
) -> web.StreamResponse:
    """Log a failure part-way, cut the connection and return the answer as it stands.

    Only the error's class is logged (a message could quote anything); with the connection
    cut, the end of the answer never goes.
    """
    log.error(event, path=request.path, error_class=type(exc).__name__)
    if request.transport is not None:
        request.transport.abort()
    return response


async def stream_bytes(
    request: web.Request,
    length: int,
    pieces: AsyncIterator[bytes],
    *,
    content_type: str,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Send ``length`` bytes from ``pieces`` (a decrypted file); cut the connection on failure.

    The answer declares its ``Content-Length``, so a transfer cut part-way is seen as
    incomplete by any client; the last piece is only given once everything verified
    (exchange/service/opened_bodies.py), so a complete answer is a verified one.
    """
    # As for text: a refusal before the first piece is still an ordinary error answer.
    first = await anext(pieces, b"")
    response = web.StreamResponse(headers=dict(headers))
    response.content_type = content_type
    response.content_length = length
    await response.prepare(request)
    sent = len(first)
    try:
        await response.write(first)
        async for piece in pieces:
            sent += len(piece)
            await response.write(piece)
        _check_length(sent, length)
    except Exception as exc:  # noqa: BLE001 - any failure part-way: cut, never a whole-looking file
        return _cut(request, response, "download.failed", exc)
    await response.write_eof()
    return response


def _check_length(sent: int, length: int) -> None:
    if sent != length:
        raise ValueError("the content did not come to its length")


#: Characters kept in the plain ``filename`` of a download (the full name is ``filename*``).
_PLAIN_NAME: Final = re.compile(r"[^A-Za-z0-9 ._()-]")


def content_disposition(name: str) -> str:
    """Return ``attachment`` with the file name, plain and in full (RFC 6266, RFC 8187)."""
    plain = _PLAIN_NAME.sub("_", name).strip() or "document"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


async def send_attachment(
    request: web.Request, attachment: Entry, pieces: AsyncIterator[bytes]
) -> web.StreamResponse:
    """Send one attachment of an opened item as a download, streamed (:func:`stream_bytes`)."""
    content_type = attachment.content_type
    if content_type not in CONTENT_TYPES:
        content_type = "application/octet-stream"
    return await stream_bytes(
        request,
        attachment.size,
        pieces,
        content_type=content_type,
        headers={
            "Content-Disposition": content_disposition(attachment.name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
