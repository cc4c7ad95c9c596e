"""The supervisor of background tasks: back-off, logging once per cause, readiness, restart.

Fast tests without a node; tests/node/test_full_disk.py and test_ledger_tamper.py run the
same machinery on real nodes.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exchange.ledger.errors import InconsistentCheckpointError, LogVerificationError
from exchange.service.faults import fault_of, is_storage_full
from exchange.workers.supervisor import (
    SupervisionPolicy,
    Supervisor,
    TaskHealth,
    periodically,
)

QUICK = SupervisionPolicy(backoff_base=0.001, backoff_max=0.004, unready_after=60.0)


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """Return the time the test set."""
        return self.now


def _genuine_sqlite_full(tmp_path: Path) -> sqlite3.Error:
    """Return the error SQLite itself raises when the database cannot grow."""
    db = sqlite3.connect(tmp_path / "tiny.sqlite3")
    try:
        db.execute("CREATE TABLE t (b BLOB)")
        db.execute("PRAGMA max_page_count = 3")
        with pytest.raises(sqlite3.OperationalError) as raised:
            db.execute("INSERT INTO t VALUES (?)", (bytes(100_000),))
    finally:
        db.close()
    return raised.value


def test_faults_are_named_by_kind(tmp_path: Path) -> None:
    """A full disk in any of its forms, a ledger that does not verify, a store, anything else."""
    genuine = _genuine_sqlite_full(tmp_path)
    assert genuine.sqlite_errorcode == sqlite3.SQLITE_FULL
    for exc in (
        genuine,
        sqlite3.OperationalError("database or disk is full"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
    ):
        assert fault_of(exc).kind == "storage-full"
        assert is_storage_full(exc)
    outer = RuntimeError("wrapped")
    outer.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert fault_of(outer).kind == "storage-full"
    assert fault_of(InconsistentCheckpointError("x")).kind == "ledger-integrity"
    assert fault_of(LogVerificationError("x")).kind == "ledger-integrity"
    assert fault_of(sqlite3.OperationalError("database is locked")).kind == "store"
    assert fault_of(OSError(errno.EIO, "I/O")).kind == "error"
    other = fault_of(ValueError("a message quoting Jane Doe 2014-03-01"))
    assert (other.kind, other.words) == ("error", "it fails (ValueError)")
    assert not is_storage_full(OSError(errno.EACCES, "denied"))


def test_backoff_doubles_up_to_the_cap() -> None:
    """Each failure in a row doubles the wait, up to ``backoff_max``; success resets it."""
    health = TaskHealth("outbox", "the outbox", SupervisionPolicy(1.0, 5.0))
    delays = [health.failed(OSError(errno.ENOSPC, "full"), "claim") for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    health.succeeded()
    assert health.failed(OSError(errno.ENOSPC, "full"), "claim") == 1.0


def test_logged_once_per_cause_counted_every_time() -> None:
    """Repeated failures log one line per (stage, kind, class); each is counted."""
    health = TaskHealth("outbox", "the outbox", QUICK)
    with capture_logs() as events:
        for _ in range(10):
            health.failed(sqlite3.OperationalError("database or disk is full"), "claim")
        health.failed(sqlite3.OperationalError("database or disk is full"), "record")
        health.failed(OSError(errno.ENOSPC, "full"), "claim")
    failed = [(e["stage"], e["cause"], e["error_class"]) for e in events]
    assert failed == [
        ("claim", "storage-full", "OperationalError"),
        ("record", "storage-full", "OperationalError"),
        ("claim", "storage-full", "OSError"),
    ]
    assert all(e["event"] == "task.failed" and e["task"] == "outbox" for e in events)
    assert health.failures == {"storage-full": 12}
    # Never the message: it could quote anything.
    assert "database or disk is full" not in str(events)


def test_an_empty_claim_ends_only_a_spell_of_failed_claims() -> None:
    """``succeeded(stage=...)`` leaves a failure of another stage standing."""
    health = TaskHealth("outbox", "the outbox", QUICK)
    health.failed(OSError(errno.ENOSPC, "full"), "record")
    health.succeeded(stage="claim")
    assert health.failure is not None
    health.failed(OSError(errno.ENOSPC, "full"), "claim")
    health.succeeded(stage="claim")
    assert health.failure is None


def test_readiness_reasons_urgent_at_once_others_after_the_threshold() -> None:
    """A full disk or a broken ledger makes the node unready at once; other faults later."""
    clock = Clock()
    supervisor = Supervisor(SupervisionPolicy(1.0, 5.0, unready_after=30.0), clock=clock)
    outbox = supervisor.health("outbox", "the outbox")
    checkpoints = supervisor.health("checkpoints", "the checkpoint signer")
    sweep = supervisor.health("session-sweep", "the sweep of ended web sessions")
    assert supervisor.unready() == []
    outbox.failed(OSError(errno.ENOSPC, "full"), "claim")
    checkpoints.failed(InconsistentCheckpointError("x"), "checkpoint")
    sweep.failed(sqlite3.OperationalError("database is locked"), "sweep")
    assert supervisor.unready() == [
        "the outbox cannot make progress: the node's storage is full",
        "the checkpoint signer cannot make progress: the ledger does not verify",
    ]
    clock.now += 30.0
    assert supervisor.unready()[-1] == (
        "the sweep of ended web sessions cannot make progress: the node's database fails at sweep"
    )
    outbox.succeeded()
    assert len(supervisor.unready()) == 2


async def test_a_periodic_task_retries_a_failed_round_and_resumes() -> None:
    """Rounds that raise are retried after the back-off; the task goes on when they pass."""
    health = TaskHealth("checkpoints", "the checkpoint signer", QUICK)
    stop = asyncio.Event()
    calls = 0

    async def round_() -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise sqlite3.OperationalError("database or disk is full")
        if calls == 6:
            stop.set()

    with capture_logs() as events:
        await asyncio.wait_for(periodically(health, stop, 0.001, round_), timeout=5)
    assert calls == 6
    assert health.failures == {"storage-full": 3}
    assert health.failure is None
    assert health.last_success_at is not None
    assert [e["event"] for e in events] == ["task.failed", "task.recovered"]


async def test_a_round_that_reports_a_failure_is_not_a_success() -> None:
    """A round that finishes but reported a failure inside does not end the failing spell."""
    health = TaskHealth("collect", "collection from pull routes", QUICK)
    stop = asyncio.Event()
    rounds = 0

    async def round_() -> None:
        nonlocal rounds
        rounds += 1
        health.failed(OSError(errno.ENOSPC, "full"), "storing from mesh")
        if rounds == 3:
            stop.set()

    with capture_logs() as events:
        await asyncio.wait_for(periodically(health, stop, 0.001, round_), timeout=5)
    assert health.failure is not None
    assert [e["event"] for e in events] == ["task.failed"]


async def test_a_task_that_ends_by_an_exception_is_started_again() -> None:
    """The last safety net: a body that raises is started again after the back-off."""
    supervisor = Supervisor(QUICK)
    stop = asyncio.Event()
    starts = 0

    async def body(health: TaskHealth) -> None:
        nonlocal starts
        starts += 1
        if starts < 3:
            raise RuntimeError("a bug")
        health.succeeded()
        stop.set()

    task = supervisor.start("outbox", "the outbox", body, stop)
    await asyncio.wait_for(task, timeout=5)
    assert starts == 3
    assert supervisor.tasks["outbox"].failures == {"error": 2}
