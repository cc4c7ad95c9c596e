"""The aiohttp glue against a real server on 127.0.0.1 (port 0) and a real client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL as YURL

from exchange.peerauth import MemoryReplayCache, PeerAuthError
from exchange.peerauth.aiohttp_glue import error_response, verify_aiohttp_request
from tests.peerauth import BODY, CONTENT_TYPE, DIRECTORY, LA, NOW, sign

pytestmark = pytest.mark.network

ORIGIN = "https://node.example.org"
PATH = "/v1/inbound/envelopes?from=la%3A356"


def _app(max_body: int) -> web.Application:
    replay = MemoryReplayCache(600)

    async def inbound(request: web.Request) -> web.Response:
        try:
            peer, body = await verify_aiohttp_request(
                request,
                origin=ORIGIN,
                directory=DIRECTORY,
                replay=replay,
                now=NOW,
                max_body=max_body,
            )
        except PeerAuthError as exc:
            return error_response(exc)
        return web.json_response({"org": peer.org_id, "length": len(body)})

    app = web.Application()
    app.router.add_post("/v1/inbound/envelopes", inbound)
    return app


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async with TestServer(_app(max_body=1024), host="127.0.0.1", port=0) as running:
        yield running


async def _post(
    server: TestServer, headers: dict[str, str], body: bytes = BODY
) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session:
        url = YURL(f"http://127.0.0.1:{server.port}{PATH}", encoded=True)
        response = await session.post(url, data=body, headers=headers)
        await response.read()
        return response


async def test_signed_request_is_accepted(server: TestServer) -> None:
    """A request signed for the node's public origin is accepted over real HTTP."""
    response = await _post(server, sign(url=ORIGIN + PATH))
    assert response.status == 200
    assert await response.json() == {"org": LA, "length": len(BODY)}


async def test_replay_over_http_is_refused(server: TestServer) -> None:
    """Sending the same signed request twice gets a 401 the second time."""
    headers = sign(url=ORIGIN + PATH)
    assert (await _post(server, headers)).status == 200
    response = await _post(server, headers)
    assert response.status == 401
    assert (await response.json())["error"] == "nonce.replayed"
    assert response.headers["WWW-Authenticate"] == 'Signature label="exch"'


async def test_request_signed_for_another_node_is_refused(server: TestServer) -> None:
    """The URL comes from the configured origin, so a request for another host fails."""
    response = await _post(server, sign(url="https://other.example.org" + PATH))
    assert response.status == 401
    assert (await response.json())["error"] == "signature.invalid"


async def test_unsigned_request_is_refused(server: TestServer) -> None:
    """A request without signature headers gets 401."""
    response = await _post(server, dict(CONTENT_TYPE))
    assert response.status == 401
    assert (await response.json())["error"] == "signature-input.missing"


async def test_large_body_is_refused_while_reading(server: TestServer) -> None:
    """A body over the limit gets 413."""
    body = b"x" * 2048
    response = await _post(server, sign(url=ORIGIN + PATH, body=body), body)
    assert response.status == 413


async def test_large_chunked_body_is_refused_while_reading(server: TestServer) -> None:
    """A chunked body (no Content-Length) over the limit also gets 413."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 512

    headers = sign(url=ORIGIN + PATH, body=b"x" * 2048)
    async with aiohttp.ClientSession() as session:
        url = YURL(f"http://127.0.0.1:{server.port}{PATH}", encoded=True)
        async with session.post(url, data=chunks(), headers=headers) as response:
            assert response.status == 413


async def test_origin_must_be_scheme_and_authority() -> None:
    """A trailing slash or a missing scheme in origin is the caller's mistake."""
    checking = verify_aiohttp_request(
        None,  # type: ignore[arg-type]
        origin="node.example.org/",
        directory=DIRECTORY,
        replay=MemoryReplayCache(600),
        now=NOW,
    )
    with pytest.raises(ValueError, match="origin"):
        await checking
