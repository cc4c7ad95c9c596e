"""Thin aiohttp helpers around the sans-I/O core: read, verify, answer an error.

The server side reads the body with the size limit enforced while reading, rebuilds the
request's URL from the node's configured public ``origin`` (never from the Host header, so a
request signed for another node cannot be replayed here; docs/protocol.md §4) and calls
:func:`~exchange.peerauth.verify_request`. The client side needs no helper beyond
:func:`~exchange.peerauth.sign_request`, with two cautions: pass the URL to aiohttp as
``yarl.URL(url, encoded=True)`` so it goes on the wire exactly as signed, and pass the
Content-Type to ``sign_request`` yourself, because aiohttp adds one to a bytes body otherwise
and an uncovered Content-Type is refused.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from exchange.keys.directory import Directory
from exchange.peerauth.errors import (
    BodyTooLargeError,
    ClockSkewError,
    NotAuthenticatedError,
    PeerAuthError,
)
from exchange.peerauth.replay import ReplayCache
from exchange.peerauth.signatures import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_SKEW,
    LABEL,
    VerifiedPeer,
    verify_request,
)

_CHUNK: Final = 64 * 1024


def request_headers(request: web.Request) -> dict[str, str]:
    """Return the request's headers by lower-case name, repeated lines joined with ", "."""
    joined: dict[str, str] = {}
    for name, value in request.headers.items():
        lower = name.lower()
        joined[lower] = f"{joined[lower]}, {value}" if lower in joined else value
    return joined


async def read_body(request: web.Request, max_body: int) -> bytes:
    """Read the body, refusing (413) as soon as it is longer than ``max_body`` bytes."""
    too_large = BodyTooLargeError(
        "body.too-large", f"the request body is longer than {max_body} bytes"
    )
    if request.content_length is not None and request.content_length > max_body:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        total += len(chunk)
        if total > max_body:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def verify_aiohttp_request(
    request: web.Request,
    *,
    origin: str,
    directory: Directory,
    replay: ReplayCache,
    now: int,
    max_skew: int = DEFAULT_MAX_SKEW,
    max_body: int = DEFAULT_MAX_BODY,
) -> tuple[VerifiedPeer, bytes]:
    """Authenticate an aiohttp request; return the sender and the body it signed.

    ``origin`` is this node's public origin as peers address it, such as
    ``https://node.example.org``, without a trailing slash.
    """
    if not origin or origin.endswith("/") or "://" not in origin:
        raise ValueError("origin must be a scheme and authority such as 'https://node.example'")
    body = await read_body(request, max_body)
    peer = verify_request(
        method=request.method,
        url=origin + request.raw_path,
        headers=request_headers(request),
        body=body,
        directory=directory,
        now=now,
        replay=replay,
        max_skew=max_skew,
        max_body=max_body,
    )
    return peer, body


def error_response(error: PeerAuthError) -> web.Response:
    """Return the HTTP answer to ``error``: its status and rule, and its plain message.

    A refusal because of a clock (:class:`~exchange.peerauth.errors.ClockSkewError`) also
    carries ``"problem": "signature.time"``; with the answer's ``Date`` (the receiver's
    clock) the sender can tell how far off the clocks are, and tries again later.
    """
    headers: dict[str, str] = {}
    doc = {"error": error.rule, "message": str(error)}
    if isinstance(error, ClockSkewError):
        doc["problem"] = error.problem
    if isinstance(error, NotAuthenticatedError):
        # RFC 9110 §15.5.2 requires a challenge with every 401. RFC 9421 registers no
        # authentication scheme, so the profile names its own: the label a signature needs.
        headers["WWW-Authenticate"] = f'Signature label="{LABEL}"'
    return web.json_response(doc, status=error.status, headers=headers)
