"""Slow clients are cut off: heads, bodies and idle connections each have a deadline.

The LA node is restarted with 1-second deadlines and a minimum body rate of 1 KiB/s, then
sent, by hand over TLS, what a slowloris attacker sends: a head a byte at a time, a body a
few bytes at a time, or nothing at all. Each connection must be closed within its deadline
(plus scheduling slack), while a client that keeps to the rules is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from exchange.config import ServerConfig, load_config
from exchange.demo.loopback import Deployment
from exchange.node.runtime import Node

from . import raw
from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import org_pair, seal_for, signed_headers

pytestmark = pytest.mark.network

DEADLINE = 1.0
#: Scheduling slack on a shared two-core machine.
SLACK = 1.5
RATE = 1024
PATH = f"/peer/v1/orgs/{LA}/envelopes"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Yield the school and LA nodes, the LA node with 1-second deadlines."""
    users = {SCHOOL: ["dsl"], LA: ["staff"], NURSES: ["staff"]}
    async with deployed(tmp_path / "world", users) as deployment:
        await deployment.nodes["la"].stop()
        server = ServerConfig(
            header_timeout=DEADLINE, body_timeout=DEADLINE, idle_timeout=DEADLINE,
            min_body_rate=RATE,
        )  # fmt: skip
        config = replace(load_config(deployment.folder / "node-la.toml"), server=server)
        deployment.nodes["la"] = Node(config)
        await deployment.nodes["la"].start()
        yield deployment


def _closed(world: Deployment) -> dict[str, int]:
    site = world.nodes["la"].site
    assert site is not None
    return dict(site.closed)


async def _trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """Send ``data`` a byte every ``every`` seconds until it is sent or the node hangs up."""
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(every)


async def test_head_sent_byte_by_byte_is_answered_408_and_closed(world: Deployment) -> None:
    """Headers trickled a byte every 0.1 s: 408 and closed within the header deadline."""
    reader, writer = await raw.connect(world)
    head = raw.request_head("/api/v1/inbox", world.nodes["la"].port, {"X-Padding": "a" * 200})
    trickling = asyncio.create_task(_trickle(writer, head, 0.1))
    start = time.monotonic()
    try:
        answer = await raw.read_answer(reader, timeout=DEADLINE + SLACK)
        took = time.monotonic() - start
        assert answer.status == 408, answer
        assert "did not arrive within 1 seconds" in json.loads(answer.body)["message"]
        await raw.seconds_until_closed(reader, limit=SLACK)
    finally:
        trickling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trickling
        await raw.close(writer)
    assert DEADLINE * 0.9 <= took <= DEADLINE + SLACK
    assert _closed(world) == {"head": 1}


async def test_body_sent_a_few_bytes_at_a_time_is_closed(world: Deployment) -> None:
    """A signed upload whose body trickles (10 B/s, under 1 KiB/s) is closed within the window."""
    body = seal_for(world, b'{"synthetic": "slow"}', [LA], SCHOOL)
    headers = signed_headers(world.url("la") + PATH, body, org_pair(world, SCHOOL))
    headers["Content-Length"] = str(len(body))
    reader, writer = await raw.connect(world)
    writer.write(raw.request_head(PATH, world.nodes["la"].port, headers))
    await writer.drain()
    trickling = asyncio.create_task(_trickle(writer, body, 0.1))
    try:
        took = await raw.seconds_until_closed(reader, limit=DEADLINE + SLACK)
    finally:
        trickling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trickling
        await raw.close(writer)
    assert took <= DEADLINE + SLACK
    assert _closed(world) == {"body": 1}


async def test_idle_connection_is_closed(world: Deployment) -> None:
    """A connection that sends nothing is closed once the idle deadline passes."""
    reader, writer = await raw.connect(world)
    try:
        took = await raw.seconds_until_closed(reader, limit=DEADLINE + SLACK)
    finally:
        await raw.close(writer)
    assert DEADLINE * 0.9 <= took <= DEADLINE + SLACK
    assert _closed(world) == {"idle": 1}


async def test_keep_alive_connection_is_closed_when_idle_after_an_answer(
    world: Deployment,
) -> None:
    """After an answer, a kept-alive connection with no next request is closed too."""
    reader, writer = await raw.connect(world)
    try:
        writer.write(raw.request_head("/sign-in", world.nodes["la"].port, {}, method="GET"))
        await writer.drain()
        assert (await raw.read_answer(reader)).status == 200
        took = await raw.seconds_until_closed(reader, limit=DEADLINE + SLACK)
    finally:
        await raw.close(writer)
    assert DEADLINE * 0.9 <= took <= DEADLINE + SLACK
    assert _closed(world) == {"idle": 1}


async def test_body_at_the_minimum_rate_is_taken_however_long_it_takes(
    world: Deployment,
) -> None:
    """A body sent at about 2 KiB/s for over three deadlines is received and answered."""
    content = b'{"synthetic": "%s"}' % (b"s" * 6000)
    body = seal_for(world, content, [LA], SCHOOL)
    headers = signed_headers(world.url("la") + PATH, body, org_pair(world, SCHOOL))
    headers["Content-Length"] = str(len(body))
    reader, writer = await raw.connect(world)
    start = time.monotonic()
    try:
        writer.write(raw.request_head(PATH, world.nodes["la"].port, headers))
        for i in range(0, len(body), 200):
            writer.write(body[i : i + 200])
            await writer.drain()
            await asyncio.sleep(0.1)
        answer = await raw.read_answer(reader)
    finally:
        await raw.close(writer)
    assert time.monotonic() - start > 3 * DEADLINE
    assert answer.status == 200, answer
    assert _closed(world) == {}


async def test_hundreds_of_slow_heads_are_all_closed(world: Deployment) -> None:
    """200 connections trickling heads and 100 idle ones: none is left open after the deadline."""
    port = world.nodes["la"].port
    head = raw.request_head("/", port, {"X-Padding": "b" * 100})
    connections = await asyncio.gather(*(raw.connect(world) for _ in range(300)))
    trickles = [asyncio.create_task(_trickle(writer, head, 0.2)) for _, writer in connections[:200]]
    try:
        took = await asyncio.gather(
            *(
                raw.seconds_until_closed(reader, limit=DEADLINE + 3 * SLACK)
                for reader, _ in connections
            )
        )
    finally:
        for task in trickles:
            task.cancel()
        await asyncio.gather(*trickles, return_exceptions=True)
        await asyncio.gather(*(raw.close(writer) for _, writer in connections))
    assert max(took) <= DEADLINE + 3 * SLACK
    # Every connection served was closed by its deadline; on a busy machine a few TLS
    # handshakes do not finish within the header deadline, and those are never served.
    site = world.nodes["la"].site
    assert site is not None
    served = site.served["connections"]
    assert served >= 100
    assert sum(_closed(world).values()) == served
