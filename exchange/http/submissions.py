"""The body of a submission (send, rectify): files in base64, bounded by the node's setting.

A submission carries its files base64-encoded in one JSON object, so its body is about a
third larger than the envelope it becomes. The application's own body limit
(``client_max_size``, about ``max_envelope_bytes``) is for everything else; a submission is
read here instead, against :func:`submission_limit`, and refused with 413 naming the limit
in bytes and the setting: on its ``Content-Length`` before a byte is read, or as soon as a
body sent without one passes the limit.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from exchange.http.common import JSON_LIMIT, node_service
from exchange.service.errors import TooLargeError
from exchange.sharing.limits import SETTING

_PIECE: Final = 1024 * 1024


def submission_limit(max_envelope_bytes: int, json_limit: int) -> int:
    """Return the longest submission body a node with these settings reads.

    The files of the largest container the node accepts (``exchange.sharing.limits``) are
    shorter than ``max_envelope_bytes`` by at least the envelope's header and framing and
    the container's own fields; the base64 of *n* bytes is ``4 * ceil(n / 3)`` characters,
    so the base64 of all of them (at most two padding bytes each) fits in
    ``4 * ceil(max_envelope_bytes / 3)`` with room to spare. The record and the other
    fields get ``json_limit`` (``[limits] max_json_bytes``) on top, as any JSON body does.
    """
    return 4 * -(-max_envelope_bytes // 3) + json_limit


def _too_large(limit: int, max_envelope_bytes: int) -> TooLargeError:
    return TooLargeError(
        f"the request body is larger than {limit} bytes, the most this node reads for a "
        f"submission: files that fit in its {SETTING} ({max_envelope_bytes} bytes) once "
        "sealed, in base64, and the record and fields within [limits] max_json_bytes"
    )


async def read_submission(request: web.Request) -> bytes:
    """Return a submission's body, refusing (413) one longer than :func:`submission_limit`."""
    max_envelope_bytes = node_service(request).max_envelope_bytes
    limit = submission_limit(max_envelope_bytes, request.app[JSON_LIMIT])
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, max_envelope_bytes)
    body = bytearray()
    async for piece in request.content.iter_chunked(_PIECE):
        if len(body) + len(piece) > limit:
            raise _too_large(limit, max_envelope_bytes)
        body += piece
    return bytes(body)
