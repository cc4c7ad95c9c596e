"""Jobs run once in a group: two processes' periodic loops on one store, one runs each job.

Each "process" is a :class:`GroupJobs` with its own id over its own connection to one store
folder; lease times come from a clock the test moves, renewals every few milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from exchange.store import SqliteStore
from exchange.workers.jobs import GroupJobs
from exchange.workers.supervisor import TaskHealth, periodically

T0 = 1_800_000_000.0
LEASE = 60.0
INTERVAL = 0.01
RENEW = 0.01


class Clock:
    """Lease time, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        """Return the time the test set."""
        return self.now


class Process:
    """One process's loop of job ``name``: how many rounds it ran, and its stop."""

    def __init__(self, store: SqliteStore, owner: str, clock: Clock) -> None:
        self.jobs = GroupJobs(store, owner, clock, lease=LEASE, renew=RENEW)
        self.rounds = 0
        self.stop = asyncio.Event()
        self.during: Callable[[], Awaitable[None]] | None = None
        self.task: asyncio.Task[None] | None = None

    async def _round(self) -> None:
        self.rounds += 1
        if self.during is not None:
            await self.during()

    def start(self, name: str = "checkpoints") -> None:
        """Run the job's loop, as the supervisor would."""
        health = TaskHealth(name, "a job")
        self.task = asyncio.create_task(
            periodically(health, self.stop, INTERVAL, self._round, turn=self.jobs.turn(name))
        )

    async def finish(self) -> None:
        """Stop gracefully (the lease is given up)."""
        self.stop.set()
        assert self.task is not None
        await self.task

    async def crash(self) -> None:
        """Stop without a word: the lease stays until it runs out."""
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    """One store folder opened twice, as two processes would."""
    first = await SqliteStore.open(tmp_path / "node")
    second = await SqliteStore.open(tmp_path / "node")
    yield first, second
    await second.close()
    await first.close()


async def _until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after 10 seconds."""
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_only_one_process_runs_the_job_and_a_graceful_stop_hands_it_over(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    """The first to take the job runs every round; after it stops the other takes over."""
    clock = Clock()
    a, b = Process(stores[0], "process-a", clock), Process(stores[1], "process-b", clock)
    a.start()
    await _until(lambda: a.rounds >= 1, "a's first round")
    b.start()
    await _until(lambda: a.rounds >= 10, "ten rounds of a")
    assert b.rounds == 0
    await a.finish()
    await _until(lambda: b.rounds >= 3, "b taking over")
    await b.finish()


async def test_a_crashed_holder_is_taken_over_once_its_lease_ran_out(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    """A holder that dies keeps the job until its lease ends, then the other process runs it.

    The lease of a holder between rounds lasts the interval past its last round plus the lease.
    """
    clock = Clock()
    a, b = Process(stores[0], "process-a", clock), Process(stores[1], "process-b", clock)
    a.start()
    await _until(lambda: a.rounds >= 1, "a's first round")
    await a.crash()
    b.start()
    await asyncio.sleep(0.1)
    assert b.rounds == 0
    clock.now = T0 + INTERVAL + LEASE
    await _until(lambda: b.rounds >= 1, "b taking over")
    await b.finish()


async def test_the_holder_renews_its_lease_during_a_long_round(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    """A round longer than the lease keeps the job: the other process never runs it meanwhile."""
    clock = Clock()
    release = asyncio.Event()
    a, b = Process(stores[0], "process-a", clock), Process(stores[1], "process-b", clock)

    async def long_round() -> None:
        clock.now = T0 + 50
        await release.wait()

    a.during = long_round
    a.start()
    await _until(lambda: a.rounds >= 1, "a's round")
    lease_end = "SELECT until FROM job_leases WHERE name = 'checkpoints'"
    async with asyncio.timeout(10):
        while await stores[0]._read(lambda db: db.execute(lease_end).fetchone()[0]) != T0 + 110:
            await asyncio.sleep(0.005)
    clock.now = T0 + 100  # past the lease as first taken, within the renewed one
    b.start()
    await asyncio.sleep(0.1)
    assert b.rounds == 0
    release.set()
    a.during = None
    await _until(lambda: a.rounds >= 3, "a's next rounds")
    assert b.rounds == 0
    await a.finish()
    await b.finish()


async def test_other_jobs_are_free_while_one_is_held(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    """Each job has its own lease: one process may hold one job and the other another."""
    clock = Clock()
    a, b = Process(stores[0], "process-a", clock), Process(stores[1], "process-b", clock)
    a.start("checkpoints")
    b.start("chase")
    await _until(lambda: a.rounds >= 2 and b.rounds >= 2, "both jobs running")
    await a.finish()
    await b.finish()
