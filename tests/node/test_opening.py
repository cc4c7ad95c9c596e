"""Opening an inbox item: everything it writes commits in one transaction, or nothing does."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.keys.ids import OrgId
from exchange.model import (
    EnvelopeRecord,
    NewOutbox,
    ReceiptRecord,
    RetentionSchedule,
    SubjectKey,
    ThreadLink,
)
from exchange.store import FirstOpened, ItemOpening, SqliteStore

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
T0 = 1_800_000_000.0
CHILD = SubjectKey("upn", hashlib.sha256(b"keyed hash of a synthetic UPN").digest())


def _envelope(n: int) -> EnvelopeRecord:
    return EnvelopeRecord(
        digest=hashlib.sha256(b"env%d" % n).digest(),
        envelope_id=bytes([n]) * 16,
        sender=SCHOOL,
        recipients=(LA,),
        record_kind="lac-record",
        created=int(T0),
        length=1000 + n,
    )


def _receipt(env: EnvelopeRecord, status: str) -> ReceiptRecord:
    signed = status.encode() + env.digest
    return ReceiptRecord(hashlib.sha256(signed).digest(), env.digest, LA, status, 1, signed)


def _opening(env: EnvelopeRecord, *, first: bool, parent: bytes | None = None) -> ItemOpening:
    opened = _receipt(env, "opened")
    return ItemOpening(
        owner=LA,
        digest=env.digest,
        user_id="dsl-1",
        role="dsl",
        now=T0 + 10,
        accessed_event=b"accessed",
        first=FirstOpened(
            receipt=opened,
            outbox=[NewOutbox("receipt", opened.digest, LA, SCHOOL)],
            opened_event=b"opened",
        )
        if first
        else None,
        subjects=[CHILD],
        index_outcome="indexed",
        link=None if parent is None else ThreadLink(LA, parent, "reply"),
        schedule=RetentionSchedule(
            org=LA,
            digest=env.digest,
            direction="received",
            holder_kind="la",
            rule="la-lac-record",
            review_date="2090-01-01",
            action="review",
            unscheduled=None,
            scheduled_at=T0 + 10,
        ),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """Open a fresh store in a temporary folder."""
    opened = await SqliteStore.open(tmp_path / "node")
    yield opened
    await opened.close()


async def _deliver(store: SqliteStore, env: EnvelopeRecord) -> None:
    await store.record_delivery(
        LA, env, now=T0, receipt=_receipt(env, "delivered"), ledger_events=[b"delivered"]
    )


async def test_a_first_opening_writes_state_receipt_index_link_and_schedule(
    store: SqliteStore,
) -> None:
    """The first opening moves the item to opened and stores everything that goes with it."""
    parent, env = _envelope(1), _envelope(2)
    await _deliver(store, parent)
    await _deliver(store, env)
    outcome = await store.record_opening(_opening(env, first=True, parent=parent.digest))
    assert (outcome.state, outcome.scheduled) == ("opened", True)
    item = await store.inbox_item(LA, env.digest)
    assert item is not None
    assert item.state == "opened"
    assert await store.receipt(_receipt(env, "opened").digest) is not None
    held = await store.held_item(LA, env.digest)
    assert held is not None
    assert held.schedule is not None
    assert [e.item.envelope.digest for e in await store.received_not_indexed(LA)] == [parent.digest]
    assert await store.links_of(LA, [env.digest]) == {env.digest: (parent.digest, "reply")}
    assert await store.ledger_events(2, 4) == [b"opened", b"accessed"]


async def test_an_opening_a_recall_beat_writes_nothing(store: SqliteStore) -> None:
    """When a recall won the race, the opening stores no event, receipt, index or schedule."""
    env = _envelope(1)
    await _deliver(store, env)
    await store.recall_inbox(LA, env.digest, now=T0 + 5, ledger_events=[b"recalled"])
    size = await store.ledger_size()
    outcome = await store.record_opening(_opening(env, first=True))
    assert (outcome.state, outcome.scheduled) == ("recalled", False)
    assert await store.ledger_size() == size
    assert await store.receipt(_receipt(env, "opened").digest) is None
    held = await store.held_item(LA, env.digest)
    assert held is None or held.schedule is None


async def test_a_later_opening_appends_only_its_access(store: SqliteStore) -> None:
    """Opening an item again records the access and writes nothing twice."""
    env = _envelope(1)
    await _deliver(store, env)
    await store.record_opening(_opening(env, first=True))
    size = await store.ledger_size()
    outcome = await store.record_opening(_opening(env, first=False))
    assert (outcome.state, outcome.scheduled) == ("already", False)
    assert await store.ledger_events(size, size + 2) == [b"accessed"]
