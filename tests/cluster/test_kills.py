"""Two `exchange serve` processes of one school on one PostgreSQL, killed again and again.

500 referrals are submitted, spread over both processes, while one or the other is killed
with SIGKILL at random moments and started again; a submission left unanswered is retried
through the other process with its Idempotency-Key. At the end each referral made exactly
one envelope, each was answered 202 and delivered exactly once, its receipt recorded once,
some deliveries were finished by the other process after a kill, the ledger verifies, and
the checkpoint job never ran in both processes at once.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer
from tests.store_engines import fresh_database

from .harness import (
    CLUSTER_TASKS,
    Cluster,
    check_exactly_once,
    checkpoint_gaps,
    running_cluster,
    takeovers,
    verify_ledger,
)

pytestmark = [pytest.mark.network, pytest.mark.subprocess, pytest.mark.slow]

SUBMISSIONS = 500
KILLS = 10
#: Seconds between submissions: they are spread over the kills.
PACE = 0.05


async def kill_and_restart(cluster: Cluster, rng: random.Random, kills: int) -> None:
    """SIGKILL a process at a random moment and start it again, ``kills`` times.

    The victim is alternated, so each process dies; every third round also kills the other
    process a moment later, so for a while the group is down and every lease orphaned, and
    one round in four kills a process part-way through its graceful stop (SIGTERM first).
    """
    processes = cluster.processes
    for number in range(kills):
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        victim = processes[number % len(processes)]
        if number % 4 == 3:
            victim.signal(signal.SIGTERM)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
        await victim.kill()
        if number % 3 == 2:
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await processes[(number + 1) % len(processes)].kill()
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        await asyncio.gather(*(p.start(cluster.http) for p in processes if not p.alive))


async def test_processes_killed_again_and_again_deliver_each_accepted_envelope_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    async with (
        fresh_database(postgres_server) as dsn,
        running_cluster(tmp_path / "cluster", dsn) as cluster,
    ):
        accepted: list[str] = []
        submitting = asyncio.create_task(cluster.submit_paced(range(SUBMISSIONS), PACE, accepted))
        await kill_and_restart(cluster, rng, KILLS)
        await submitting
        assert len(accepted) == SUBMISSIONS, f"seed {seed}"
        await cluster.settled(SUBMISSIONS)
        settled_at = time.time()
        await cluster.stop_processes()
        await cluster.world.stop()
        # Each kill (and the second kill of every third round) was followed by a start.
        assert sum(p.runs for p in cluster.processes) == 2 + KILLS + KILLS // 3
        # Retried with their keys, the submissions made one envelope each, all accepted.
        assert await check_exactly_once(cluster, accepted) == set(accepted)
        # The kills landed in the middle of deliveries: some were finished by another process.
        assert await takeovers(cluster) > 0, f"seed {seed}"
        # The checkpoint job ran in one process at a time. Two checkpoints within half an
        # interval come only from a graceful stop (one round in four): the stopping process
        # signs a last checkpoint, and the other may take the job over at once; so at most
        # two per such round, never the steady pairs of two processes signing side by side.
        gaps = await checkpoint_gaps(cluster, settled_at)
        assert gaps, "no checkpoints were signed during the run"
        close = [gap for gap in gaps if gap < 0.5 * CLUSTER_TASKS.checkpoint_interval]
        assert len(close) <= 2 * (KILLS // 4), (seed, gaps)
        await verify_ledger(cluster.processes[0].config)
