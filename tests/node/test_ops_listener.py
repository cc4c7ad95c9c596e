"""The operations endpoints (/healthz, /readyz, /metrics) on their own listener.

They answer on ``[ops] listen`` (plain HTTP, loopback here), with the main listener's
``Server`` header, deadlines and quiet answers to broken requests; the main listener answers
404 for them, or, with ``ops.token_env`` set, answers them to that bearer token only.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exchange.config import load_config
from exchange.demo.loopback import Deployment
from exchange.http.app import READY
from exchange.http.server import NOT_HTTP
from exchange.node.runtime import Node

from .conftest import deployed
from .helpers import client
from .test_start_checks import OPS_TOKEN, TOKEN_ENV, share_register_key, variant

pytestmark = pytest.mark.network

PATHS = ("/healthz", "/readyz", "/metrics")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a school node and an LA node on loopback; stop them afterwards."""
    async with deployed(tmp_path / "world", {}) as deployment:
        yield deployment


async def test_the_ops_listener_answers_and_the_main_one_does_not(world: Deployment) -> None:
    """200 on the operations listener, with its headers; 404 for the same paths on the main."""
    node = world.nodes["la"]
    assert node.ops_site is not None
    assert node.ops_site.name == f"http://127.0.0.1:{node.ops_port}"
    assert node.ops_port not in {0, node.port}
    async with client(world) as http:
        for path in PATHS:
            async with http.get(world.ops_url("la") + path) as resp:
                assert resp.status == 200, path
                assert resp.headers["Server"] == "exchange"
                assert resp.headers["Cache-Control"] == "no-store"
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
            async with http.get(world.url("la") + path) as resp:
                assert resp.status == 404, path
                assert (await resp.json())["error"]["status"] == 404
        # The operations listener serves nothing else.
        async with http.get(world.ops_url("la") + "/api/v1/sent") as resp:
            assert resp.status == 404


async def test_readyz_on_the_ops_listener_follows_the_shutdown(world: Deployment) -> None:
    """The operations app shares the node's readiness: 503 once it stops accepting."""
    node = world.nodes["la"]
    async with client(world) as http:
        node.app[READY]["accepting"] = False
        try:
            async with http.get(world.ops_url("la") + "/readyz") as resp:
                assert resp.status == 503
        finally:
            node.app[READY]["accepting"] = True


async def test_a_broken_request_gets_the_quiet_answer(world: Deployment) -> None:
    """A request the parser cannot read: the fixed sentence, nothing of the request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", world.nodes["la"].ops_port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nX-Secret: sentinel\x01value\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10.0)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert b"Server: exchange" in head
    assert body.decode() == NOT_HTTP
    assert b"sentinel" not in answer


@pytest.fixture
async def with_token(
    world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Node, str, list[dict[str, object]]]]:
    """Restart the LA node with an operations token; yield it, the token and its logs."""
    token = secrets.token_urlsafe(32)
    monkeypatch.setenv(TOKEN_ENV, token)
    await world.nodes["la"].stop()
    share_register_key(world)
    node = Node(load_config(variant(world, OPS_TOKEN)))
    with capture_logs() as logs:
        await node.start()
        try:
            yield node, token, logs
        finally:
            await node.stop()


async def test_the_token_opens_the_main_listener(
    world: Deployment, with_token: tuple[Node, str, list[dict[str, object]]]
) -> None:
    """The right token: 200; a wrong or missing one: 401 with a reason; never in the logs."""
    node, token, logs = with_token
    base = f"https://127.0.0.1:{node.port}"
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    async with client(world) as http:
        for path in PATHS:
            right = {"Authorization": f"Bearer {token}"}
            async with http.get(base + path, headers=right) as resp:
                assert resp.status == 200, path
                assert resp.headers["Cache-Control"] == "no-store"
            for headers, reason in (
                ({}, "this endpoint needs the node's operations token"),
                ({"Authorization": f"Bearer {wrong}"}, "the operations token is not right"),
                ({"Authorization": token}, "the operations token is not right"),
            ):
                async with http.get(base + path, headers=headers) as resp:
                    assert resp.status == 401, (path, headers)
                    assert resp.headers["WWW-Authenticate"] == "Bearer"
                    message = (await resp.json())["error"]["message"]
                    assert message.startswith(reason), message
                    assert token not in message
            # The operations listener needs no token.
            async with http.get(f"http://127.0.0.1:{node.ops_port}{path}") as resp:
                assert resp.status == 200
    assert token not in repr(logs)
    assert wrong not in repr(logs)


async def test_a_staff_token_does_not_open_the_ops_endpoints(
    world: Deployment, with_token: tuple[Node, str, list[dict[str, object]]]
) -> None:
    """Only the operations token: a token of the same shape from elsewhere is refused."""
    node, _, _ = with_token
    other = secrets.token_urlsafe(32)
    async with (
        client(world) as http,
        http.get(
            f"https://127.0.0.1:{node.port}/metrics",
            headers={"Authorization": f"Bearer {other}"},
        ) as resp,
    ):
        assert resp.status == 401
