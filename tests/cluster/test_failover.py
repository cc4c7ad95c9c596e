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
from tests.postgres_server import (
    DATABASE,
    ROLE,
    PostgresServer,
    pg_ctl,
    psql,
    running_postgres,
    running_standby,
)

from .harness import Cluster, check_exactly_once, la_inbox, running_cluster, verify_ledger

pytestmark = [pytest.mark.network, pytest.mark.subprocess, pytest.mark.slow]

BEFORE = 300
AFTER = 100
#: Referrals made before the standby stops receiving, and as many after.
LOST = 30
#: How many standbys the primary is streaming to.
REPLICAS = "SELECT COUNT(*) FROM pg_stat_replication"


def failover_dsn(primary: PostgresServer, standby: PostgresServer) -> str:
    """Return a connection string naming both servers, for whichever is the primary."""
    hosts = f"{primary.host}:{primary.port},{standby.host}:{standby.port}"
    return f"postgresql://{ROLE}@{hosts}/{DATABASE}?target_session_attrs=read-write"


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
        async with running_cluster(tmp_path / "cluster", failover_dsn(primary, standby)) as cluster:
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


async def test_asynchronous_replication_loses_what_the_standby_had_not_received(
    tmp_path: Path,
) -> None:
    """What docs/scaling.md warns of: a crash of the primary loses what was not yet streamed.

    The standby stops receiving (its ``primary_conninfo`` emptied), the node accepts and
    delivers more referrals on the primary, the primary crashes and the standby is promoted:
    those referrals, answered 202 and delivered to the LA, are gone from the school's
    database (its sent items, register and ledger). The node goes on; its ledger verifies
    on what the new primary holds.
    """
    with running_postgres() as primary, running_standby(primary) as standby:
        async with running_cluster(tmp_path / "cluster", failover_dsn(primary, standby)) as cluster:
            kept: list[str] = []
            await cluster.submit_paced(range(LOST), 0.0, kept)
            await cluster.settled(LOST)
            psql(standby, "ALTER SYSTEM SET primary_conninfo = ''")
            psql(standby, "SELECT pg_reload_conf()")

            async def not_streaming() -> bool:
                return psql(primary, REPLICAS) == "0"

            await until(not_streaming, what="the standby to stop receiving")
            lost: list[str] = []
            await cluster.submit_paced(range(LOST, 2 * LOST), 0.0, lost)
            await cluster.settled(2 * LOST)
            pg_ctl(primary, "stop", "-m", "immediate")
            pg_ctl(standby, "promote")
            await cluster.stop_processes()
            await cluster.world.stop()
            sent = {bytes(r[0]).hex() for r in await cluster.query("SELECT digest FROM sent")}
            assert sent == set(kept)
            assert len(lost) == LOST
            assert not sent & set(lost)
            assert set(la_inbox(cluster.world)) == set(kept) | set(lost)
            await verify_ledger(cluster.processes[0].config)
