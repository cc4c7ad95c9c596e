"""Unsigned uploads cost a real `exchange serve` no memory, however large a body they declare.

The LA node runs as a child process from its configuration file. 24 clients at once each
declare a 64 MiB envelope and start sending it, unsigned; the node's resident memory is
sampled throughout. Before the headers were verified first, the node read every body whole
before it looked at the signature, and this took it from about 130 MiB to over 1.6 GiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from exchange.demo.loopback import Deployment, start_deployment
from exchange.keys.keyfile import KdfParams

from . import raw
from .conftest import FAST_DELIVERY, LA, ORGS
from .helpers import client, served_ops_url, until

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

EXCHANGE = Path(sys.executable).with_name("exchange")
UPLOADS = 24
DECLARED = 64 * 1024 * 1024
PIECE = b"\x00" * (256 * 1024)
#: What each client sends of its body before it waits for the answer: 24 of these held in
#: memory (as the node used to) are far over BOUND, and a client that stops sending lets
#: the node drain it and close cleanly, so the answer is never lost to a reset.
SENT = 8 * 1024 * 1024
#: The most the node's memory may grow during the attack: a few buffers per connection.
BOUND = 48 * 1024 * 1024
PATH = f"/peer/v1/orgs/{LA}/envelopes"


def rss(pid: int) -> int:
    """Return the resident memory of process ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.fixture
async def la_process(tmp_path: Path) -> AsyncIterator[tuple[Deployment, int]]:
    """Start a deployment, then run its LA node as `exchange serve`; yield it and the pid."""
    world = await start_deployment(
        tmp_path / "memory", ORGS, delivery=FAST_DELIVERY, kdf=KdfParams.fast_for_tests()
    )
    await world.nodes["la"].stop()
    log_path = world.folder / "la.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(EXCHANGE), "serve", "--config", str(world.folder / "node-la.toml"),
            stdout=log, stderr=log, env=dict(os.environ),
        )  # fmt: skip
    try:
        async with client(world) as http:

            async def ready() -> bool:
                assert proc.returncode is None, "exchange serve exited"
                ops = served_ops_url(log_path)
                if ops is None:
                    return False
                try:
                    async with http.get(ops + "/readyz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await until(ready, timeout=30.0, what="the LA node to start")
        yield world, proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await world.stop()


async def unsigned_upload(world: Deployment) -> int:
    """Declare a 64 MiB envelope, unsigned, and send 8 MiB of it or until the node answers."""
    reader, writer = await raw.connect(world)
    head = {"Content-Type": "application/vnd.exchange.envelope", "Content-Length": str(DECLARED)}
    writer.write(raw.request_head(PATH, world.nodes["la"].port, head))
    answered = asyncio.create_task(raw.read_answer(reader, timeout=60.0))

    async def send() -> None:
        sent = 0
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while sent < SENT and not answered.done():
                writer.write(PIECE)
                await writer.drain()
                sent += len(PIECE)

    sending = asyncio.create_task(send())
    try:
        return (await answered).status
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        await raw.close(writer)


async def test_unsigned_uploads_do_not_raise_the_nodes_memory(
    la_process: tuple[Deployment, int],
) -> None:
    """24 concurrent unsigned 64 MiB uploads: all 401, and memory grows by under 48 MiB."""
    world, pid = la_process
    # Warm up: the first refusals import and allocate what every later one reuses.
    assert [await unsigned_upload(world) for _ in range(3)] == [401, 401, 401]
    baseline = rss(pid)
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss(pid))
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    try:
        statuses = await asyncio.gather(*(unsigned_upload(world) for _ in range(UPLOADS)))
    finally:
        done.set()
        await sampler
    assert statuses == [401] * UPLOADS
    assert peak - baseline < BOUND, f"grew {(peak - baseline) / 2**20:.1f} MiB"
