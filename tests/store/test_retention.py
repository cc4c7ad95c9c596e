"""Retention's tables: review dates with the envelope, holds, destruction in one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from exchange.keys.ids import OrgId
from exchange.model import (
    Destruction,
    EnvelopeRecord,
    HeldItem,
    HoldRecord,
    NewOutbox,
    ReceiptRecord,
    RegisterEntry,
    RetentionSchedule,
    SubjectKey,
)
from exchange.outbox import machine
from exchange.store import SqliteStore

from .conftest import LA, LEASE, NURSES, OWNER, SCHOOL, T0, envelope

CHILD = SubjectKey("upn", hashlib.sha256(b"keyed hash of a synthetic UPN").digest())


class RefusedError(Exception):
    """Raised by a decision that refuses."""


def _envelope(n: int, sender: OrgId = SCHOOL) -> EnvelopeRecord:
    return envelope(n, sender=sender, record_kind="lac-record")


def _schedule(
    env: EnvelopeRecord, org: OrgId, *, direction: str = "sent", day: str | None = "2040-03-14"
) -> RetentionSchedule:
    return RetentionSchedule(
        org=org,
        digest=env.digest,
        direction="sent" if direction == "sent" else "received",
        holder_kind="school" if org == SCHOOL else "la",
        rule=None if day is None else "school-lac-record-copy",
        review_date=day,
        action=None if day is None else "review",
        unscheduled=None if day is not None else "no-date-of-birth",
        scheduled_at=T0,
    )


def _entry(env: EnvelopeRecord) -> RegisterEntry:
    return RegisterEntry(
        org=SCHOOL,
        outcome="shared",
        decided_by="user-1",
        decided_at=T0,
        purpose="pep",
        rule="purposes.pep",
        reason="Needed for the PEP review.",
        recipients=((LA, "la"), (NURSES, "nhs")),
        record_kind="lac-record",
        envelope_digest=env.digest,
        envelope_id=env.envelope_id,
        subjects=(CHILD,),
    )


def _receipt(env: EnvelopeRecord, org: OrgId) -> ReceiptRecord:
    signed = b"signed delivered" + env.digest + org.encode()
    return ReceiptRecord(hashlib.sha256(signed).digest(), env.digest, org, "delivered", 1, signed)


async def _submit(
    store: SqliteStore, env: EnvelopeRecord, schedule: RetentionSchedule | None
) -> None:
    await store.record_submission(
        env,
        submitted_by="user-1",
        now=T0,
        outbox=[NewOutbox("envelope", env.digest, SCHOOL, r) for r in env.recipients],
        ledger_events=[b"submitted " + env.digest],
        register=_entry(env),
        retention=schedule,
    )


async def _receive(store: SqliteStore, env: EnvelopeRecord, owner: OrgId) -> None:
    await store.record_delivery(
        owner, env, now=T0, receipt=_receipt(env, owner), ledger_events=[b"delivered"]
    )


def _allow(item: HeldItem, holds: Sequence[HoldRecord]) -> tuple[Destruction, bytes]:
    del item, holds
    return Destruction(T0 + 1, "dpo-1", "retention.school-lac-record-copy", "Reviewed."), b"gone"


async def test_the_schedule_commits_with_the_envelope(store: SqliteStore) -> None:
    """A sent item's review date is written with it; it is never scheduled twice."""
    env = _envelope(1)
    await _submit(store, env, _schedule(env, SCHOOL))
    held = await store.held_item(SCHOOL, env.digest)
    assert held is not None
    assert held.schedule == _schedule(env, SCHOOL)
    assert (held.direction, held.purpose, held.destroyed) == ("sent", "pep", None)
    assert held.pending == 2  # both deliveries queued
    assert not await store.schedule_retention(_schedule(env, SCHOOL, day="2099-01-01"))
    due = await store.retention_due(SCHOOL, before="2040-03-15")
    assert [i.envelope.digest for i in due] == [env.digest]
    assert await store.retention_due(SCHOOL, before="2040-03-14") == []


async def test_unscheduled_items_are_listed_with_or_without_a_row(store: SqliteStore) -> None:
    """Received items never opened, and rows without a date, are unscheduled."""
    sent, received = _envelope(1), _envelope(2, sender=LA)
    await _submit(store, sent, _schedule(sent, SCHOOL, day=None))
    await _receive(store, received, SCHOOL)
    found = await store.retention_unscheduled(SCHOOL)
    assert {(i.direction, i.schedule is None) for i in found} == {
        ("sent", False),
        ("received", True),
    }
    assert await store.schedule_retention(
        _schedule(received, SCHOOL, direction="received", day="2041-01-01")
    )
    assert [i.direction for i in await store.retention_unscheduled(SCHOOL)] == ["sent"]


async def test_a_refused_destruction_changes_nothing(store: SqliteStore) -> None:
    """The decision runs in the transaction: if it refuses, nothing is written."""
    env = _envelope(1)
    await _submit(store, env, _schedule(env, SCHOOL))
    size = await store.ledger_size()
    seen: list[list[int]] = []

    def refuse(item: HeldItem, holds: Sequence[HoldRecord]) -> tuple[Destruction, bytes]:
        del item
        seen.append([h.id for h in holds])
        raise RefusedError

    hold = await store.add_hold(
        SCHOOL, digest=None, reason="Inquiry", reference="INQ-1", placed_by="dpo-1", now=T0
    )
    with pytest.raises(RefusedError):
        await store.destroy_held(SCHOOL, env.digest, refuse)
    assert seen == [[hold.id]]
    held = await store.held_item(SCHOOL, env.digest)
    assert held is not None
    assert held.destroyed is None
    assert await store.ledger_size() == size
    rows, _ = await store.subject_matches(SCHOOL, [CHILD.hash])
    assert len(rows) == 1
    # Lifted holds are no longer in force; lifting twice changes nothing.
    lifted = await store.lift_hold(SCHOOL, hold.id, lifted_by="dpo-2", now=T0 + 5)
    again = await store.lift_hold(SCHOOL, hold.id, lifted_by="dpo-3", now=T0 + 9)
    assert lifted == again
    assert lifted is not None
    assert (lifted.lifted_by, lifted.lifted_at) == ("dpo-2", T0 + 5)
    assert await store.retention_holds(SCHOOL, active=True) == []
    assert await store.lift_hold(LA, hold.id, lifted_by="dpo-2", now=T0) is None


async def test_destruction_marks_the_row_deletes_hashes_and_logs_the_tombstone(
    store: SqliteStore,
) -> None:
    """Row marked, subject hashes and received index gone, event appended, one commit."""
    env = _envelope(1, sender=LA)
    await _receive(store, env, SCHOOL)
    await store.index_received(SCHOOL, env.digest, subjects=[CHILD], outcome="indexed", now=T0)
    await store.schedule_retention(_schedule(env, SCHOOL, direction="received"))
    size = await store.ledger_size()
    result = await store.destroy_held(SCHOOL, env.digest, _allow)
    assert result is not None
    item, destruction, unreferenced = result
    assert (item.direction, destruction.by, unreferenced) == ("received", "dpo-1", True)
    assert await store.ledger_events(size, size + 1) == [b"gone"]
    held = await store.held_item(SCHOOL, env.digest)
    assert held is not None
    assert held.destroyed == destruction
    assert await store.subject_matches(SCHOOL, [CHILD.hash]) == ([], [])
    assert await store.received_not_indexed(SCHOOL) == []
    assert [i.envelope.digest for i in await store.destroyed_items(SCHOOL)] == [env.digest]
    assert await store.unreferenced_bodies() == [env.digest]
    assert await store.destroy_held(SCHOOL, b"\0" * 32, _allow) is None


async def test_a_body_held_by_two_organisations_is_referenced_until_both_destroy(
    store: SqliteStore,
) -> None:
    """The LA and the nurses share one body: it is unreferenced only after both destroy."""
    env = _envelope(1, sender=SCHOOL)
    for org in (LA, NURSES):
        await _receive(store, env, org)
        await store.schedule_retention(_schedule(env, org, direction="received"))
    result = await store.destroy_held(NURSES, env.digest, _allow)
    assert result is not None
    assert result[2] is False
    assert await store.unreferenced_bodies() == []
    result = await store.destroy_held(LA, env.digest, _allow)
    assert result is not None
    assert result[2] is True
    assert await store.unreferenced_bodies() == [env.digest]


async def test_destroying_a_sent_envelope_labels_only_its_dead_deliveries(
    store: SqliteStore,
) -> None:
    """A dead delivery of a destroyed envelope says why; a delivered one is left as it was."""
    env = _envelope(1)
    await _submit(store, env, _schedule(env, SCHOOL))
    first, second = await store.claim_due(T0, 10, OWNER, LEASE)
    assert await store.apply_transition(machine.step(first, machine.NoRoute("none"), T0 + 1))
    handed = machine.step(second, machine.HandedOver(machine.RouteTaken(0, 1, "mesh")), T0 + 1)
    assert await store.apply_transition(handed)
    assert await store.destroy_held(SCHOOL, env.digest, _allow) is not None
    dead = await store.outbox_item(first.id)
    delivered = await store.outbox_item(second.id)
    assert dead is not None
    assert (dead.state, dead.last_error) == ("dead", machine.DESTROYED)
    assert delivered == handed.after
