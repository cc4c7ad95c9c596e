"""Answers written in pieces (exports), so their size costs no memory.

:func:`stream_text` sends an iterator's pieces as one chunked answer. A failure after the
first piece cannot change the status any more, so the connection is cut instead of ending
the answer: the client sees an incomplete transfer, never a file that looks complete but
is not (no partial output passes for a whole one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from exchange.logs import get_logger

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
        # Only the class: a message could quote anything.
        log.error("export.failed", path=request.path, error_class=type(exc).__name__)  # noqa: TRY400
        if request.transport is not None:
            request.transport.abort()
        # Answered as it stands: with the connection cut, the end of the answer never goes.
        return response
    await response.write_eof()
    return response
