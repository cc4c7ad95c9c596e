"""Crash safety: the school node runs as `exchange serve` and is killed with SIGKILL mid-work."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exchange.config import DeliveryConfig
from exchange.demo.loopback import Deployment, start_deployment
from exchange.keys.keyfile import KdfParams
from tests.store_engines import node_sql

from .conftest import LA, NURSES, ORGS, SCHOOL
from .helpers import auth, client, get_json, served_ops_url, submission, until

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

BATCH = 200
EXCHANGE = Path(sys.executable).with_name("exchange")

#: Modest outbox concurrency, so that 400 deliveries take long enough to be interrupted;
#: short leases, so the restarted process (a new id) takes over the killed one's attempts soon.
STEADY = DeliveryConfig(
    batch=16, concurrency=4, timeout=5.0, backoff_base=0.05, backoff_max=0.2, poll_interval=0.02,
    lease=2.0, lease_renew=0.5,
)  # fmt: skip


class SchoolProcess:
    """The school's node as a child process started from its configuration file."""

    def __init__(self, world: Deployment) -> None:
        self.world = world
        self.config = world.folder / "node-school.toml"
        self.base = world.url("school")
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Start ``exchange serve`` and wait until it answers /readyz."""
        self.runs += 1
        path = self.world.folder / f"school-run-{self.runs}.log"
        with path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(EXCHANGE),
                "serve",
                "--config",
                str(self.config),
                stdout=log,
                stderr=log,
                env=dict(os.environ),
            )

        async def ready() -> bool:
            assert self.proc is not None
            assert self.proc.returncode is None, "exchange serve exited"
            ops = served_ops_url(path)
            if ops is None:
                return False
            try:
                async with http.get(ops + "/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await until(ready, timeout=30.0, what="the school node to start")

    def kill(self) -> None:
        """SIGKILL the process: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Wait for the process to exit and return its status."""
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout=30.0)

    async def terminate(self) -> None:
        """SIGTERM (graceful shutdown) and wait; kill if it does not exit."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            assert await self.wait() == 0
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def crashy(tmp_path: Path) -> AsyncIterator[tuple[Deployment, SchoolProcess]]:
    """Start a deployment, then stop its in-process school node so it can run as a child."""
    world = await start_deployment(
        tmp_path / "crashy",
        ORGS,
        users={SCHOOL: ["dsl"], LA: ["staff"], NURSES: ["staff"]},
        delivery=STEADY,
        kdf=KdfParams.fast_for_tests(),
    )
    await world.nodes["school"].stop()
    school = SchoolProcess(world)
    try:
        yield world, school
    finally:
        if school.proc is not None and school.proc.returncode is None:
            school.proc.kill()
            await school.proc.wait()
        await world.stop()


async def _submit_all(
    http: aiohttp.ClientSession, world: Deployment, base: str, on_accepted: Callable[[], None]
) -> list[str | None]:
    """Submit BATCH referrals at once; return each digest, or None if there was no 202."""

    async def one(i: int) -> str | None:
        body = submission(f'{{"synthetic": "crash test", "n": {i}}}'.encode(), [LA, NURSES])
        try:
            async with http.post(
                base + "/api/v1/envelopes", json=body, headers=auth(world, SCHOOL, "dsl")
            ) as resp:
                if resp.status != 202:
                    return None
                digest = str((await resp.json())["digest"])
        except (aiohttp.ClientError, ConnectionError):
            return None
        on_accepted()
        return digest

    return list(await asyncio.gather(*(one(i) for i in range(BATCH))))


async def _sent_items(
    http: aiohttp.ClientSession, world: Deployment, base: str
) -> list[dict[str, Any]]:
    doc = await get_json(http, base + "/api/v1/sent", auth(world, SCHOOL, "dsl"))
    return list(doc["items"])


def _delivered(items: list[dict[str, Any]]) -> int:
    return sum(r["delivery_state"] == "delivered" for i in items for r in i["recipients"])


async def _settle(
    http: aiohttp.ClientSession, world: Deployment, base: str
) -> list[dict[str, Any]]:
    """Wait until every sent item is delivered to every recipient; return the items."""

    async def done() -> bool:
        items = await _sent_items(http, world, base)
        return _delivered(items) == 2 * len(items)

    await until(done, timeout=60.0, what="every delivery after the restart")
    return await _sent_items(http, world, base)


async def _check_exactly_once(
    http: aiohttp.ClientSession, world: Deployment, items: list[dict[str, Any]]
) -> set[str]:
    """Each sent item is in each recipient's inbox once, with one `delivered` receipt each."""
    digests = {i["digest"] for i in items}
    assert len(digests) == len(items)
    for item in items:
        for entry in item["recipients"]:
            statuses = [t["status"] for t in entry["timeline"]]
            assert statuses == ["delivered"], (item["digest"], entry)
    for org in (LA, NURSES):
        inbox = await get_json(http, world.url("la") + "/api/v1/inbox", auth(world, org, "staff"))
        received = [i["digest"] for i in inbox["items"]]
        assert len(received) == len(set(received)), f"duplicates in {org}'s inbox"
        assert set(received) == digests, org
    return digests


async def _outbox_states(world: Deployment) -> dict[str, int]:
    """Count the school's outbox items by state, straight from its database (node stopped)."""
    rows = await node_sql(world, "school", "SELECT state, COUNT(*) FROM outbox GROUP BY state")
    return {str(state): int(count) for state, count in rows}


async def _verify_ledgers(world: Deployment) -> None:
    """Run `exchange ledger verify` against both nodes' data (they must be stopped)."""
    for name in ("school", "la"):
        proc = await asyncio.create_subprocess_exec(
            str(EXCHANGE),
            "ledger",
            "verify",
            "--config",
            str(world.folder / f"node-{name}.toml"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60.0)
        assert proc.returncode == 0, out.decode()
        assert b"ledger verified" in out, out.decode()


async def test_sigkill_during_delivery_loses_and_duplicates_nothing(
    crashy: tuple[Deployment, SchoolProcess],
) -> None:
    """A sender killed half-way through delivering 200 referrals delivers each exactly once."""
    world, school = crashy
    async with client(world) as http:
        await school.start(http)
        submitting = asyncio.create_task(_submit_all(http, world, school.base, lambda: None))

        async def half_delivered() -> bool:
            try:
                items = await _sent_items(http, world, school.base)
            except aiohttp.ClientError:
                return False
            return _delivered(items) >= BATCH  # half of 2 x BATCH deliveries

        await until(half_delivered, timeout=60.0, what="half the deliveries")
        school.kill()
        assert await school.wait() == -signal.SIGKILL
        states = await _outbox_states(world)
        assert 0 < states.get("delivered", 0) < 2 * BATCH, f"not killed half-way: {states}"
        accepted = await submitting
        items_before_restart = {d for d in accepted if d is not None}

        await school.start(http)
        items = await _settle(http, world, school.base)
        digests = await _check_exactly_once(http, world, items)
        # Everything that was answered 202 is among what was delivered.
        assert items_before_restart <= digests
        if len(items_before_restart) == BATCH:
            assert len(digests) == BATCH
        await school.terminate()
    await world.stop()
    await _verify_ledgers(world)


async def test_sigkill_during_submission_keeps_every_accepted_envelope(
    crashy: tuple[Deployment, SchoolProcess],
) -> None:
    """A sender killed while 200 submissions are in flight still delivers every one it accepted."""
    world, school = crashy
    async with client(world) as http:
        await school.start(http)
        accepted_count = 0

        def accepted_one() -> None:
            nonlocal accepted_count
            accepted_count += 1
            if accepted_count == 30:
                school.kill()

        answers = await _submit_all(http, world, school.base, accepted_one)
        assert await school.wait() == -signal.SIGKILL
        accepted = {d for d in answers if d is not None}
        assert 30 <= len(accepted) < BATCH, "the kill should land during the submissions"

        await school.start(http)
        items = await _settle(http, world, school.base)
        digests = await _check_exactly_once(http, world, items)
        assert accepted <= digests
        await school.terminate()
    await world.stop()
    await _verify_ledgers(world)
