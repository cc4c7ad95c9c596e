"""Failover: the school's PostgreSQL primary stops and its hot standby is promoted.

The `exchange serve` processes are given both servers in one connection string
(``host1:port1,host2:port2`` with ``target_session_attrs=read-write``). Half-way through the
deliveries the primary stops; the standby, fed by streaming replication, is promoted; the
processes reconnect to it and deliver the rest. Everything committed before the stop is
there, every envelope is delivered once, and the ledger verifies on the new primary.

Two variants: asynchronous replication with a clean stop of the primary (a switchover: a
fast shutdown sends the standby all the WAL first), and synchronous replication with a
crash of the primary (an immediate stop), where nothing the processes were told was
committed may be lost.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.node.helpers import until
from tests.postgres_server import DATABASE, ROLE, pg_ctl, psql, running_postgres, running_standby

from .harness import Cluster, check_exactly_once, running_cluster, verify_ledger

pytestmark = [pytest.mark.network, pytest.mark.subprocess, pytest.mark.slow]

BEFORE = 300
AFTER = 100


async def all_ready(cluster: Cluster) -> bool:
    """Return whether every process's /readyz answers 200."""
    answers = await asyncio.gather(*(p.readyz(cluster.http) for p in cluster.processes))
    return all(a == 200 for a in answers)


@pytest.mark.parametrize(
    ("synchronous", "stop_mode"),
    [
        pytest.param(False, "fast", id="async-switchover"),
        pytest.param(True, "immediate", id="sync-crash"),
    ],
)
async def test_processes_follow_a_promoted_standby_and_lose_nothing_committed(
    tmp_path: Path, synchronous: bool, stop_mode: str
) -> None:
    with (
        running_postgres() as primary,
        running_standby(primary, synchronous=synchronous) as standby,
    ):
        hosts = f"{primary.host}:{primary.port},{standby.host}:{standby.port}"
        dsn = f"postgresql://{ROLE}@{hosts}/{DATABASE}?target_session_attrs=read-write"
        async with running_cluster(tmp_path / "cluster", dsn) as cluster:
            accepted: list[str] = []
            submitting = asyncio.create_task(cluster.submit_paced(range(BEFORE), 0.01, accepted))

            async def some_delivered() -> bool:
                return (await cluster.outbox_states()).get("delivered", 0) >= BEFORE // 5

            await until(some_delivered, timeout=60.0, what="the first deliveries")
            pg_ctl(primary, "stop", "-m", stop_mode)
            # What the processes were told was committed before the primary went.
            answered = set(accepted)
            assert psql(standby, "SELECT pg_is_in_recovery()") == "t"
            pg_ctl(standby, "promote")
            assert psql(standby, "SELECT pg_is_in_recovery()") == "f"
            await submitting
            await until(lambda: all_ready(cluster), timeout=60.0, what="/readyz on the standby")
            await cluster.submit_paced(range(BEFORE, BEFORE + AFTER), 0.0, accepted)
            await cluster.settled(len(accepted))
            await cluster.stop_processes()
            await cluster.world.stop()
            sent = await check_exactly_once(cluster, accepted)
            assert answered <= sent
            assert len(accepted) >= BEFORE // 5 + AFTER
            await verify_ledger(cluster.processes[0].config)
