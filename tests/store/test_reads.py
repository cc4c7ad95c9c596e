"""Reads run on their own threads and connections, beside the writing thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from exchange.model import NewOutbox
from exchange.store import SqliteStore
from tests.store.conftest import LA, SCHOOL, T0, envelope
from tests.store_engines import DATABASE_ERRORS, current_backlog


async def _submit(store: SqliteStore, n: int) -> None:
    env = envelope(n)
    await store.record_submission(
        env, submitted_by="user-1", now=T0, outbox=[NewOutbox("envelope", env.digest, SCHOOL, LA)],
        ledger_events=[],
    )  # fmt: skip


async def test_reads_run_beside_a_write_in_progress(store: SqliteStore) -> None:
    """A read does not wait for the writing thread: it sees the last commit at once."""
    await _submit(store, 1)
    release = threading.Event()

    def hold(db: sqlite3.Connection) -> None:
        db.execute("UPDATE outbox SET last_error = 'held' WHERE kind = 'envelope'")
        release.wait(10)

    held = asyncio.ensure_future(store._tx(hold))
    await asyncio.sleep(0.05)
    # The writer is inside its transaction; the read answers from the last commit.
    item = await asyncio.wait_for(store.outbox_item(1), timeout=2)
    assert item is not None
    assert item.last_error is None
    release.set()
    await held
    item = await store.outbox_item(1)
    assert item is not None
    assert item.last_error == "held"


async def test_a_write_is_seen_by_the_next_read(store: SqliteStore) -> None:
    """Once a write has returned, any read (on another thread and connection) sees it."""
    for n in range(1, 21):
        await _submit(store, n)
        assert len(await store.list_sent(SCHOOL, limit=100)) == n


async def test_reads_asked_together_each_get_their_own_answer(store: SqliteStore) -> None:
    """Many reads at once: each gets its own result, and one that fails fails alone."""
    for n in range(1, 6):
        await _submit(store, n)

    def broken(db: sqlite3.Connection) -> None:
        db.execute("SELECT no_such_column FROM outbox")

    reads = [store.envelope(envelope(n).digest) for n in range(1, 6)] * 20
    results = await asyncio.gather(*reads, store._read(broken), return_exceptions=True)
    *found, failed = results
    assert [r.digest for r in found if not isinstance(r, BaseException)] == [
        envelope(n).digest for n in range(1, 6)
    ] * 20
    assert isinstance(failed, DATABASE_ERRORS)


async def test_a_read_cannot_write(store: SqliteStore) -> None:
    """The reading connections are read-only: a write slipped into a read is refused."""

    def writes(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM outbox")

    await _submit(store, 1)
    with pytest.raises(DATABASE_ERRORS, match=r"readonly|read-only"):
        await store._read(writes)
    assert await current_backlog(store) == {LA: 1}
