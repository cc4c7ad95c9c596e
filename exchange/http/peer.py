"""The peer protocol (/peer/v1): envelopes and receipts from other nodes, and peer auth.

Peer requests are authenticated by their HTTP message signature (docs/protocol.md) before
their body is looked at; a nonce is remembered in the store (:class:`StoreReplayCache`), so a
replay is refused even across a restart.
"""

from __future__ import annotations

from aiohttp import web

from exchange.http.common import node_service
from exchange.http.jsonbody import BadRequestError
from exchange.keys.ids import OrgId, parse_org_id
from exchange.peerauth import ReplayCache, ReplayError, verify_request
from exchange.peerauth.aiohttp_glue import read_body
from exchange.service.node_service import NodeService


class StoreReplayCache(ReplayCache):
    """Nonces remembered in the store, so a replay is refused even across a restart."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.pending: list[tuple[str, str, int, int]] = []

    def seen_or_record(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Defer to the store: recorded after the synchronous check (see authenticate_peer)."""
        self.pending.append((key, nonce, created, now))
        return False


async def authenticate_peer(request: web.Request, max_body: int) -> tuple[OrgId, OrgId, bytes]:
    """Authenticate a peer request; return the peer, the organisation in the path, the body."""
    service = node_service(request)
    # Streamed with the limit enforced as it is read, chunked bodies included.
    body = await read_body(request, max_body)
    cache = StoreReplayCache(service)
    peer = verify_request(
        method=request.method,
        url=service.public_url + request.raw_path,
        headers={k: ", ".join(request.headers.getall(k)) for k in request.headers},
        body=body,
        directory=service.directory,
        now=service.now(),
        replay=cache,
        max_body=max_body,
    )
    for key, nonce, created, now in cache.pending:
        if await service.seen_or_record_nonce(key, nonce, created, now):
            raise ReplayError
    # The organisation in the path is looked at only after the request is authenticated,
    # so an anonymous caller cannot learn which organisations this node serves.
    try:
        owner = parse_org_id(request.match_info["org"], field="organisation in the path")
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    service.tenant(owner)
    return peer.org_id, owner, body


async def peer_envelope(request: web.Request) -> web.Response:
    """POST /peer/v1/orgs/{org}/envelopes: store once and answer with the signed receipt."""
    service = node_service(request)
    peer_org, owner, body = await authenticate_peer(request, service.max_envelope_bytes)
    receipt = await service.receive_envelope(peer_org, owner, body)
    return web.Response(body=receipt, content_type="application/vnd.exchange.receipt")


async def peer_receipt(request: web.Request) -> web.Response:
    """POST /peer/v1/orgs/{org}/receipts: a receipt for an envelope the org sent."""
    service = node_service(request)
    peer_org, owner, body = await authenticate_peer(request, 4096)
    await service.receive_receipt(peer_org, owner, body)
    return web.json_response({"status": "recorded"}, status=200)
