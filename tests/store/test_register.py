"""The register's tables (migration 4): written with the envelope or not at all."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace

import pytest

from exchange.keys.ids import OrgId
from exchange.model import EnvelopeRecord, NewOutbox, ReceiptRecord, RegisterEntry, SubjectKey
from exchange.store import SqliteStore

from .conftest import LA, NURSES, SCHOOL, T0, envelope

CHILD = SubjectKey("upn", hashlib.sha256(b"keyed hash of a synthetic UPN").digest())


def _entry(env: EnvelopeRecord, *, due: str | None = "2027-01-08") -> RegisterEntry:
    return RegisterEntry(
        org=SCHOOL,
        outcome="shared",
        decided_by="user-1",
        decided_at=T0,
        purpose="lac-health",
        rule="purposes.lac-health",
        reason="Needed for the review health assessment.",
        recipients=((LA, "la"), (NURSES, "nhs")),
        categories=("health", "identity"),
        lawful_basis="art6.1.e+art9.2.h+dpa2018.sch1.para2",
        citation="UK GDPR Article 6(1)(e)",
        record_kind="lac-record",
        envelope_digest=env.digest,
        envelope_id=env.envelope_id,
        deadline_due=due,
        deadline_rule=None if due is None else "deadlines.lac-record",
        satisfied_by=("acknowledged",) if due else (),
        subjects=(CHILD,),
    )


def _receipt(env: EnvelopeRecord, status: str, org: OrgId) -> ReceiptRecord:
    signed = b"signed " + status.encode() + env.digest + org.encode()
    return ReceiptRecord(hashlib.sha256(signed).digest(), env.digest, org, status, int(T0), signed)


async def _submit(store: SqliteStore, env: EnvelopeRecord, entry: RegisterEntry) -> None:
    await store.record_submission(
        env,
        submitted_by="user-1",
        now=T0,
        outbox=[NewOutbox("envelope", env.digest, SCHOOL, r) for r in env.recipients],
        ledger_events=[b"submitted " + env.digest],
        register=entry,
    )


async def test_the_register_row_commits_with_theenvelope(store: SqliteStore) -> None:
    """The row, its recipients and its subject hashes are written with the envelope."""
    env = envelope(1)
    await _submit(store, env, _entry(env))
    [row] = await store.register_rows(SCHOOL)
    assert row.entry == _entry(env)
    assert row.receipts == ()
    rows, received = await store.subject_matches(SCHOOL, [CHILD.hash])
    assert ([r.id for r in rows], received) == ([row.id], [])
    assert await store.subject_matches(LA, [CHILD.hash]) == ([], [])


async def test_a_failing_register_row_takes_the_envelope_with_it(store: SqliteStore) -> None:
    """If the register row cannot be written, nothing of the submission is stored."""
    first, second = envelope(1), envelope(2)
    await _submit(store, first, _entry(first))
    size = await store.ledger_size()
    # A second row naming the first envelope breaks the register's unique digest.
    with pytest.raises(sqlite3.IntegrityError):
        await _submit(store, second, _entry(first))
    assert [i.envelope.digest for i in await store.list_sent(SCHOOL, limit=10)] == [first.digest]
    assert await store.envelope(second.digest) is None
    assert await store.ledger_size() == size
    assert await store.outbox_counts() == {"queued": 2}
    assert len(await store.register_rows(SCHOOL)) == 1


async def test_overdue_rows_wait_for_a_satisfying_receipt(store: SqliteStore) -> None:
    """A recipient is overdue after its due date until a receipt it lists arrives."""
    env = envelope(1)
    await _submit(store, env, _entry(env))
    assert await store.overdue_rows(SCHOOL, due_before="2027-01-08") == []
    late = await store.overdue_rows(SCHOOL, due_before="2027-01-09")
    assert [recipient for _, recipient in late] == [LA, NURSES]
    await store.add_receipt(_receipt(env, "delivered", LA), ledger_events=[], now=T0)
    await store.add_receipt(_receipt(env, "acknowledged", NURSES), ledger_events=[], now=T0)
    late = await store.overdue_rows(SCHOOL, due_before="2027-01-09")
    assert [recipient for _, recipient in late] == [LA]
    assert [r.status for r in late[0][0].receipts] == ["delivered", "acknowledged"]


async def test_not_shared_rows_and_received_index(store: SqliteStore) -> None:
    """Decisions not to share are found by subject; received items once indexed."""
    register_id = await store.record_not_shared(
        RegisterEntry(
            org=SCHOOL,
            outcome="not-shared",
            decided_by="user-1",
            decided_at=T0,
            purpose="information-request-reply",
            rule="not-to-share.information-not-held",
            reason="We hold nothing from before September.",
            recipients=((LA, "la"),),
            reason_code="information-not-held",
            subjects=(CHILD,),
        )
    )
    rows, _ = await store.subject_matches(SCHOOL, [CHILD.hash])
    assert [(r.id, r.entry.outcome) for r in rows] == [(register_id, "not-shared")]
    with pytest.raises(ValueError, match="not-shared"):
        await store.record_not_shared(_entry(envelope(3)))
    with pytest.raises(ValueError, match="identifier hashes"):
        await store.subject_matches(SCHOOL, [])

    env = envelope(4)
    delivered = _receipt(env, "delivered", LA)
    await store.record_delivery(LA, env, now=T0, receipt=delivered, ledger_events=[])
    [unopened] = await store.received_not_indexed(LA)
    assert (unopened.item.envelope.digest, unopened.indexed) == (env.digest, None)
    assert await store.index_received(LA, env.digest, subjects=[CHILD], outcome="indexed", now=T0)
    assert not await store.index_received(LA, env.digest, subjects=[], outcome="indexed", now=T0)
    assert await store.received_not_indexed(LA) == []
    _, received = await store.subject_matches(LA, [CHILD.hash])
    assert [(r.item.envelope.digest, r.indexed) for r in received] == [(env.digest, "indexed")]
    assert [r.status for r in received[0].receipts] == ["delivered"]


async def test_register_rows_filter_by_purpose_and_decision_and_page(store: SqliteStore) -> None:
    """A filter keeps rows of one purpose or decision; a page reads them newest first."""
    first, second = envelope(1), envelope(2)
    await _submit(store, first, _entry(first))
    await _submit(store, second, replace(_entry(second), decided_at=T0 + 60))
    refusal = replace(
        _entry(first, due=None),
        outcome="not-shared",
        purpose="safeguarding-referral",
        decided_at=T0 + 120,
        envelope_digest=None,
        envelope_id=None,
        reason_code="not-necessary",
    )
    decision = await store.record_not_shared(refusal)
    assert await store.register_count(SCHOOL) == 3
    assert await store.register_count(SCHOOL, outcome="not-shared") == 1
    assert await store.register_count(SCHOOL, purpose="lac-health") == 2
    assert await store.register_count(SCHOOL, since=T0 + 60, until=T0 + 120) == 1
    [only] = await store.register_rows(SCHOOL, outcome="not-shared")
    assert only.id == decision
    newest = await store.register_rows(SCHOOL, limit=2, newest_first=True)
    assert [r.entry.decided_at for r in newest] == [T0 + 120, T0 + 60]
    rest = await store.register_rows(SCHOOL, limit=2, offset=2, newest_first=True)
    assert [r.entry.envelope_digest for r in rest] == [first.digest]
    assert await store.register_count(LA) == 0
