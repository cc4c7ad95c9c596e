"""The store keeps the outbox's backlog by destination in memory, exact at every commit."""

from __future__ import annotations

import sqlite3

import pytest

from exchange.model import NewOutbox
from exchange.outbox import machine
from exchange.store import SqliteStore
from tests.store.conftest import LA, LEASE, NURSES, OWNER, SCHOOL, T0, envelope
from tests.store_engines import open_again

ROUTE = machine.RouteTaken(0, 1, "https")
POLICY = machine.Policy()


class HalfRandom:
    """Jitter that is always one half."""

    def random(self) -> float:
        """Return 0.5."""
        return 0.5


async def _submit(store: SqliteStore, n: int) -> None:
    """Commit envelope ``n`` with an envelope item for the LA and the nurses, and a receipt."""
    env = envelope(n)
    rows = [NewOutbox("envelope", env.digest, SCHOOL, to) for to in (LA, NURSES)]
    # A receipt going back is never counted: only envelopes make the backlog.
    rows.append(NewOutbox("receipt", bytes(32 - 1) + bytes([n]), SCHOOL, LA))
    await store.record_submission(env, submitted_by="user-1", now=T0, outbox=rows, ledger_events=[])


async def test_submissions_add_to_the_backlog_and_deliveries_take_from_it(
    store: SqliteStore,
) -> None:
    """Each envelope item queued counts for its destination until it is delivered or dead."""
    assert store.outbox_backlog == {}
    for n in (1, 2, 3):
        await _submit(store, n)
    assert store.outbox_backlog == {LA: 3, NURSES: 3}
    claimed = await store.claim_due(T0, 100, OWNER, LEASE)
    # Being attempted is still waiting; the receipts were claimed too but never counted.
    assert store.outbox_backlog == {LA: 3, NURSES: 3}
    envelopes = [i for i in claimed if i.kind == "envelope"]
    by_outcome: dict[str, machine.AttemptOutcome] = {
        "delivered": machine.HandedOver(ROUTE),
        "retry": machine.RetryLater(ROUTE, "down"),
        "refused": machine.Refused(ROUTE, "no"),
    }
    outcomes = ["delivered", "retry", "refused"]
    for item, outcome in zip(sorted(envelopes, key=lambda i: i.id), outcomes * 2, strict=True):
        step = machine.step(item, by_outcome[outcome], T0 + 1, POLICY, HalfRandom())
        assert await store.apply_transition(step)
    # Delivered and dead (refused on the last route) items are done; retrying ones wait.
    assert sum(store.outbox_backlog.values()) == 2
    assert await store.requeue_dead(T0 + 2) == 2
    assert sum(store.outbox_backlog.values()) == 4


async def test_a_write_rolled_back_leaves_the_count_as_it_was(store: SqliteStore) -> None:
    """A failed write's outbox rows are undone with it, and so is their count."""
    await _submit(store, 1)

    def fails(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO outbox (kind, envelope_digest, ref, origin, destination, state, "
            "next_attempt_at, created_at, updated_at) "
            "VALUES ('envelope', ?, ?, ?, ?, 'queued', 0, 0, 0)",
            (b"\x00", b"\x01", SCHOOL, LA),
        )
        raise ValueError("this write fails after its insert")

    with pytest.raises(ValueError, match="fails after"):
        await store._tx(fails)
    assert store.outbox_backlog == {LA: 1, NURSES: 1}


async def test_the_backlog_is_counted_again_when_the_store_is_opened(
    store: SqliteStore,
) -> None:
    """The count is not kept in the file: a store opened again counts the outbox afresh."""
    await _submit(store, 1)
    await _submit(store, 2)
    [item, *_] = await store.claim_due(T0, 1, OWNER, LEASE)
    step = machine.step(item, machine.HandedOver(ROUTE), T0 + 1, POLICY, HalfRandom())
    assert await store.apply_transition(step)
    before = dict(store.outbox_backlog)
    assert sum(before.values()) == 3
    again = await open_again(store)
    try:
        assert again.outbox_backlog == before
    finally:
        await again.close()


async def test_changes_by_another_process_are_counted_at_the_next_write(
    store: SqliteStore,
) -> None:
    """A command beside the node (another connection) queues items: the next write counts them.

    SQLite's triggers see only the node's own connection; its data version tells the node
    that someone else committed, and the backlog is counted afresh. PostgreSQL's trigger
    counts every process's changes, and each write of the node's reads the count.
    """
    await _submit(store, 1)
    beside = await open_again(store)
    try:
        await _submit(beside, 2)
        [item, *_] = await beside.claim_due(T0, 1, OWNER, LEASE)
        step = machine.step(item, machine.HandedOver(ROUTE), T0 + 1, POLICY, HalfRandom())
        assert await beside.apply_transition(step)
    finally:
        await beside.close()
    assert store.outbox_backlog == {LA: 1, NURSES: 1}  # not seen yet
    assert await store.claim_due(T0 - 100, 10, OWNER, LEASE) == []  # any write of the node's own
    assert sum(store.outbox_backlog.values()) == 3
    await _submit(store, 3)
    assert sum(store.outbox_backlog.values()) == 5
