"""The school's PostgreSQL goes away in the middle of deliveries and comes back.

Both `exchange serve` processes stay up: while the database is away each says not ready on
its operations listener (/readyz 503) and accepts no submission; once it is back they
reconnect, say ready again, and finish every delivery, none lost and none doubled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from exchange.service.faults import UNAVAILABLE_REFUSAL, UNAVAILABLE_RETRY_AFTER
from tests.node.helpers import until
from tests.postgres_server import pg_ctl, running_postgres
from tests.store_engines import fresh_database

from .harness import Cluster, check_exactly_once, running_cluster, verify_ledger

pytestmark = [pytest.mark.network, pytest.mark.subprocess, pytest.mark.slow]

BEFORE = 300
AFTER = 100


async def all_ready(cluster: Cluster, status: int) -> bool:
    """Return whether every process's /readyz answers ``status``."""
    answers = await asyncio.gather(*(p.readyz(cluster.http) for p in cluster.processes))
    return all(a == status for a in answers)


async def test_processes_ride_out_a_database_restart_in_the_middle_of_deliveries(
    tmp_path: Path,
) -> None:
    with running_postgres() as server:
        async with (
            fresh_database(server) as dsn,
            running_cluster(tmp_path / "cluster", dsn) as cluster,
        ):
            accepted: list[str] = []
            await cluster.submit_paced(range(BEFORE), 0.0, accepted)
            assert len(accepted) == BEFORE

            async def some_delivered() -> bool:
                return (await cluster.outbox_states()).get("delivered", 0) >= BEFORE // 10

            await until(some_delivered, timeout=60.0, what="the first deliveries")
            pg_ctl(server, "stop", "-m", "fast")
            await until(
                lambda: all_ready(cluster, 503), timeout=30.0, what="/readyz to say not ready"
            )
            # Nothing is accepted while the database is away: the client is asked to retry.
            for process in cluster.processes:
                answer = await cluster.answer(-1, process)
                assert answer is not None
                assert (answer.status, answer.retry_after) == (503, str(UNAVAILABLE_RETRY_AFTER))
                assert answer.body["error"]["message"] == UNAVAILABLE_REFUSAL
            assert await all_ready(cluster, 503)
            pg_ctl(server, "start")
            await until(lambda: all_ready(cluster, 200), timeout=60.0, what="/readyz again")
            states = await cluster.outbox_states()
            assert states.get("delivered", 0) < BEFORE, f"the restart came too late: {states}"

            await cluster.submit_paced(range(BEFORE, BEFORE + AFTER), 0.0, accepted)
            assert len(accepted) == BEFORE + AFTER
            await cluster.settled(BEFORE + AFTER)
            await cluster.stop_processes()
            await cluster.world.stop()
            sent = await check_exactly_once(cluster, accepted)
            assert len(sent) == BEFORE + AFTER
            await verify_ledger(cluster.processes[0].config)
