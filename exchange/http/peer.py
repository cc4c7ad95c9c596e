"""The peer protocol (/peer/v1): envelopes and receipts from other nodes, and peer auth.

Consistency bundles of the node's ledger (``GET /peer/v1/ledger/consistency``) are answered
to anyone, unauthenticated, for witnesses and auditors outside the directory.

Peer requests are authenticated by their HTTP message signature (docs/protocol.md) from
their headers alone, before a byte of their body is read; the nonce is remembered in the
store, so a replay is refused even across a restart. Only then is the body streamed to an
unnamed temporary file in the data folder while it is hashed, and compared with the signed
Content-Digest (:func:`~exchange.peerauth.aiohttp_glue.signed_upload`). Uploads in flight
are limited per peer organisation and in total (:data:`UPLOADS`; 503 with ``Retry-After``
over a limit).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

from aiohttp import web

from exchange.http.common import LEDGER, node_service
from exchange.http.jsonbody import BadRequestError
from exchange.keys.ids import OrgId, parse_org_id
from exchange.peerauth import UploadLimits, VerifiedPeer
from exchange.peerauth.aiohttp_glue import BodyCheck, SignedBody, signed_upload
from exchange.service.errors import ServiceError
from exchange.service.ledger import ConsistencyRequestError
from exchange.service.receiving import InboundCheck

#: A tree size in a query: a decimal of at most 19 digits with no leading zero (sizes < 2^63).
_SIZE_RE: Final = re.compile(r"[1-9][0-9]{0,18}")

#: The media type of a consistency bundle (docs/ledger.md §6.1).
CONSISTENCY_TYPE: Final = "application/vnd.exchange.consistency-proof"

#: The node's limits on concurrent peer uploads, shared with the relay role's endpoints.
UPLOADS: Final = web.AppKey("uploads", UploadLimits)


def _owner(request: web.Request) -> OrgId:
    """Return the organisation in the path, which this node must serve (after authentication).

    It is looked at only once the request is authenticated, so an anonymous caller cannot
    learn which organisations this node serves.
    """
    try:
        owner = parse_org_id(request.match_info["org"], field="organisation in the path")
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    node_service(request).tenant(owner)
    return owner


@asynccontextmanager
async def authenticate_peer(
    request: web.Request, max_body: int, *, check: BodyCheck | None = None
) -> AsyncIterator[tuple[OrgId, OrgId, SignedBody]]:
    """Authenticate a peer request; yield the peer, the organisation in the path, the body.

    The upload's places (:data:`UPLOADS`) are held until the block ends, and the body's
    spool, in the store's spool folder, is dropped then unless the service stored it.
    ``check`` sees the body as it arrives (:func:`signed_upload`).
    """
    service = node_service(request)
    async with signed_upload(
        request,
        origin=service.public_url,
        directory=service.directory,
        now=service.now(),
        replay=service.seen_or_record_nonce,
        max_body=max_body,
        spool=service.store.blobs.spool,
        uploads=request.app.get(UPLOADS),
        check=check,
    ) as signed:
        yield signed.peer.org_id, _owner(request), signed


async def peer_envelope(request: web.Request) -> web.Response:
    """POST /peer/v1/orgs/{org}/envelopes: store once and answer with the signed receipt.

    The envelope is verified while it arrives, piece by piece (one that cannot verify is
    refused as soon as it shows), then goes to the service in its spool and is given its
    place among the bodies by a link, never read whole.
    """
    service = node_service(request)
    checks: list[InboundCheck] = []

    def check(peer: VerifiedPeer) -> Callable[[bytes], None]:
        del peer  # the service checks the sender against the envelope once it is complete
        checks.append(service.inbound_check(_owner(request)))
        return checks[0].feed

    limit = service.max_envelope_bytes
    async with authenticate_peer(request, limit, check=check) as (peer_org, owner, body):
        receipt = await service.receive_envelope(peer_org, owner, body.body, checked=checks[0])
    return web.Response(body=receipt, content_type="application/vnd.exchange.receipt")


async def peer_receipt(request: web.Request) -> web.Response:
    """POST /peer/v1/orgs/{org}/receipts: a receipt for an envelope the org sent."""
    service = node_service(request)
    async with authenticate_peer(request, 4096) as (peer_org, owner, body):
        await service.receive_receipt(peer_org, owner, await body.read())
    return web.json_response({"status": "recorded"}, status=200)


def _size_parameter(request: web.Request, name: str) -> int | None:
    """Return the query parameter ``name`` as a tree size, None if absent; 400 if malformed."""
    text = request.query.get(name)
    if text is None:
        return None
    if _SIZE_RE.fullmatch(text) is None:
        raise BadRequestError(f"{name} must be a tree size: a decimal from 1, of at most 19 digits")
    return int(text)


async def peer_ledger_consistency(request: web.Request) -> web.Response:
    """GET /peer/v1/ledger/consistency?from=M[&to=N]: a consistency bundle, for anyone.

    It is not authenticated, so that witnesses and auditors outside the directory can ask:
    a bundle holds the log's size, hashes and signed checkpoint, never an event.
    """
    old = _size_parameter(request, "from")
    if old is None:
        raise BadRequestError("from is required: the older tree size to prove from")
    if set(request.query) - {"from", "to"}:
        raise BadRequestError("the only query parameters are from and to")
    try:
        bundle = await request.app[LEDGER].consistency_bundle(old, _size_parameter(request, "to"))
    except ConsistencyRequestError as exc:
        # Well formed, but not a proof the log can give (sizes out of order, no such
        # checkpoint): 422, as for any rule the document names but cannot check.
        raise ServiceError(str(exc), status=422) from None
    return web.Response(body=bundle, content_type=CONSISTENCY_TYPE)
