"""The SQLite store writes the outbox machine's transitions, guarded and atomic."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.keys.ids import OrgId
from exchange.ledger.events import decode_event
from exchange.model import EnvelopeRecord, NewOutbox
from exchange.outbox import machine
from exchange.store import SqliteStore
from exchange.store.rows import outbox_rows
from exchange.store.schema import MIGRATIONS
from tests.store.conftest import LEASE, OWNER

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
T0 = 1_800_000_000.0
ROUTE = machine.RouteTaken(0, 1, "mesh")
POLICY = machine.Policy()


class HalfRandom:
    """Jitter that is always one half."""

    def random(self) -> float:
        """Return 0.5."""
        return 0.5


def _envelope() -> EnvelopeRecord:
    return EnvelopeRecord(
        digest=hashlib.sha256(b"env").digest(),
        envelope_id=b"\x01" * 16,
        sender=SCHOOL,
        recipients=(LA,),
        record_kind="referral",
        created=int(T0),
        length=1000,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """Open a fresh store holding one sent envelope with one queued delivery."""
    opened = await SqliteStore.open(tmp_path / "node")
    env = _envelope()
    await opened.record_submission(
        env,
        submitted_by="user-1",
        now=T0,
        outbox=[NewOutbox("envelope", env.digest, SCHOOL, LA)],
        ledger_events=[],
    )
    yield opened
    await opened.close()


async def test_a_transition_from_a_stale_row_writes_nothing(store: SqliteStore) -> None:
    """An attempt's outcome computed before a recall is refused, so the recall is never lost."""
    [item] = await store.claim_due(T0, 10, OWNER, LEASE)
    stale = machine.step(item, machine.RetryLater(ROUTE, "down"), T0 + 1, POLICY, HalfRandom())
    await store.request_recall(SCHOOL, item.envelope_digest, T0 + 0.5)
    assert not await store.apply_transition(stale)
    assert await store.ledger_size() == 0
    fresh = await store.outbox_item(item.id)
    assert fresh is not None
    again = machine.step(fresh, machine.RetryLater(ROUTE, "down"), T0 + 1, POLICY, HalfRandom())
    assert await store.apply_transition(again)
    assert (await store.outbox_states(SCHOOL, item.envelope_digest)) == {LA: "recalled"}
    assert await store.ledger_size() == 1


async def test_recall_cancels_a_queued_delivery_and_marks_it(store: SqliteStore) -> None:
    """A recall turns a delivery that has not left into recalled; the worker never claims it."""
    assert await store.request_recall(SCHOOL, _envelope().digest, T0 + 1) == {LA: "recalled"}
    assert await store.claim_due(T0 + 10, 10, OWNER, LEASE) == []
    [item] = await store._read(lambda db: outbox_rows(db, "1 = 1", ()))
    assert item.recall_requested_at == T0 + 1


async def test_a_non_delivery_report_reopens_the_item_on_its_next_route(
    store: SqliteStore,
) -> None:
    """A MESH report puts a handed-over item back in the queue with its ledger event."""
    [item] = await store.claim_due(T0, 10, OWNER, LEASE)
    handed = machine.step(item, machine.HandedOver(ROUTE, "mesh-1"), T0 + 1)
    assert await store.apply_transition(handed)
    reopened = await store.reopen_handed_over("mesh", "mesh-1", now=T0 + 2, error="undelivered")
    assert reopened == handed.after
    assert await store.reopen_handed_over("mesh", "mesh-1", now=T0 + 3, error="again") is None
    now = await store.outbox_item(item.id)
    assert now is not None
    assert (now.state, now.route_index, now.transport_ref) == ("retry-wait", 1, None)
    events = [decode_event(e) for e in await store.ledger_events(0, 10)]
    assert [e.reason for e in events] == ["handed-over:mesh", "undelivered:mesh"]


async def test_requeue_gives_dead_items_a_fresh_start(store: SqliteStore) -> None:
    """A dead item is queued again on its first route, its age counted from the requeue."""
    [item] = await store.claim_due(T0, 10, OWNER, LEASE)
    dead = machine.step(item, machine.NoRoute("no route"), T0 + 1)
    assert await store.apply_transition(dead)
    assert await store.requeue_dead(T0 + 9) == 1
    [again] = await store.claim_due(T0 + 9, 10, OWNER, LEASE)
    assert (again.created_at, again.route_index, again.attempts) == (T0 + 9, 0, 2)


async def test_giving_back_recalls_a_marked_item(store: SqliteStore) -> None:
    """An item given back at a stop after its envelope was recalled ends recalled."""
    [item] = await store.claim_due(T0, 10, OWNER, LEASE)
    await store.request_recall(SCHOOL, item.envelope_digest, T0 + 1)
    assert await store.requeue_attempting("another-process", T0 + 2) == 0
    assert await store.requeue_attempting(OWNER, T0 + 2) == 1
    assert (await store.outbox_states(SCHOOL, item.envelope_digest)) == {LA: "recalled"}


async def test_an_expired_marked_item_is_recalled_not_claimed(store: SqliteStore) -> None:
    """A recalled item whose process died is ended by the next claim, not attempted again."""
    [item] = await store.claim_due(T0, 10, OWNER, LEASE)
    await store.request_recall(SCHOOL, item.envelope_digest, T0 + 1)
    assert await store.claim_due(T0 + LEASE, 10, "process-b", LEASE) == []
    assert (await store.outbox_states(SCHOOL, item.envelope_digest)) == {LA: "recalled"}
    row = await store.outbox_item(item.id)
    assert row is not None
    assert (row.lease_owner, row.lease_until) == (None, None)


async def test_the_chase_migration_stops_swapping_origin_and_destination(tmp_path: Path) -> None:
    """A chase queued as a notice with via 'overdue' becomes a chase from the sender."""
    folder = tmp_path / "old"
    folder.mkdir()
    db = sqlite3.connect(folder / "node.sqlite3")
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    # Found by its statement, not its place: later migrations are appended after it.
    chase_migration = next(
        version
        for version, statements in enumerate(MIGRATIONS, start=1)
        if any("SET kind = 'chase'" in statement for statement in statements)
    )
    for version, statements in enumerate(MIGRATIONS[: chase_migration - 1], start=1):
        for statement in statements:
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    row = (b"d" * 32, b"r" * 32, T0, T0, T0)
    db.execute(
        "INSERT INTO outbox (kind, envelope_digest, ref, origin, destination, state, "
        "next_attempt_at, created_at, updated_at, via) "
        "VALUES ('notice', ?, ?, 'la:356', 'urn:106123', 'queued', ?, ?, ?, 'overdue')",
        row,
    )
    db.execute(
        "INSERT INTO outbox (kind, envelope_digest, ref, origin, destination, state, "
        "next_attempt_at, created_at, updated_at) "
        "VALUES ('notice', ?, ?, 'urn:106123', 'la:356', 'queued', ?, ?, ?)",
        row,
    )
    db.commit()
    db.close()

    store = await SqliteStore.open(folder)
    try:
        items = await store.claim_due(T0, 10, OWNER, LEASE)
    finally:
        await store.close()
    assert sorted((i.kind, i.origin, i.destination, i.via) for i in items) == [
        ("chase", SCHOOL, LA, None),
        ("notice", SCHOOL, LA, None),
    ]
