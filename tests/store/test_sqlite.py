"""The SQLite store: one transaction per change, durable, idempotent where it must be."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from exchange.keys.ids import OrgId
from exchange.model import EnvelopeRecord, NewOutbox, ReceiptRecord, User
from exchange.outbox import machine
from exchange.outbox.machine import Transition
from exchange.store import SqliteStore
from exchange.store.schema import MIGRATIONS
from tests.store_engines import stored_bytes

from .conftest import LA, LEASE, NURSES, OWNER, SCHOOL, T0, envelope


def _receipt(env: EnvelopeRecord, status: str = "delivered", org: OrgId = LA) -> ReceiptRecord:
    signed = b"signed receipt " + status.encode() + env.digest + org.encode()
    return ReceiptRecord(
        digest=hashlib.sha256(signed).digest(),
        envelope_digest=env.digest,
        receipter=org,
        status=status,
        time=int(T0) + 5,
        signed=signed,
    )


async def _submit(store: SqliteStore, env: EnvelopeRecord) -> None:
    await store.record_submission(
        env,
        submitted_by="user-1",
        now=T0,
        outbox=[NewOutbox("envelope", env.digest, SCHOOL, r) for r in env.recipients],
        ledger_events=[b"submitted " + env.digest],
    )


async def test_database_is_wal_with_full_sync(sqlite_store: SqliteStore) -> None:
    """The database runs in WAL mode with synchronous=FULL (2)."""
    db = sqlite3.connect(sqlite_store.folder / "node.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    mode = await sqlite_store._read(lambda db: db.execute("PRAGMA synchronous").fetchone()[0])
    assert mode == 2


async def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path: Path) -> None:
    """Closing and reopening the store keeps every row and leaves the schema at one version."""
    first = await SqliteStore.open(tmp_path / "n")
    await _submit(first, envelope())
    await first.close()
    second = await SqliteStore.open(tmp_path / "n")
    assert len(await second.list_sent(SCHOOL, limit=10)) == 1
    versions = await second._read(
        lambda db: [r[0] for r in db.execute("SELECT version FROM schema_version")]
    )
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    await second.close()


async def test_submission_creates_one_delivery_per_recipient_and_a_ledger_event(
    store: SqliteStore,
) -> None:
    """A submission commits the envelope, one outbox row per recipient and its ledger event."""
    env = envelope()
    await _submit(store, env)
    [item] = await store.list_sent(SCHOOL, limit=10)
    assert item.envelope == env
    assert [d.destination for d in item.deliveries] == sorted([LA, NURSES])
    assert all(d.state == "queued" for d in item.deliveries)
    assert await store.ledger_events(0, 10) == [b"submitted " + env.digest]


async def test_other_organisations_do_not_see_sent_items(store: SqliteStore) -> None:
    """Sent items are listed per sender only."""
    await _submit(store, envelope())
    assert await store.list_sent(LA, limit=10) == []
    assert await store.sent_item(LA, envelope().digest) is None


async def test_claim_moves_due_items_to_attempting_once(store: SqliteStore) -> None:
    """Claiming takes due items once; a second claim finds nothing until they are released."""
    await _submit(store, envelope())
    claimed = await store.claim_due(T0, 10, OWNER, LEASE)
    assert {c.state for c in claimed} == {"attempting"}
    assert all(c.attempts == 1 for c in claimed)
    assert await store.claim_due(T0, 10, OWNER, LEASE) == []


async def test_retry_wait_items_are_due_only_at_their_time(store: SqliteStore) -> None:
    """An item put in retry-wait is claimed again only when its time has come."""
    await _submit(store, envelope())
    [first, _] = await store.claim_due(T0, 10, OWNER, LEASE)
    await store.apply_transition(
        Transition(first, replace(first, state="retry-wait", next_attempt_at=T0 + 30))
    )
    assert [c.id for c in await store.claim_due(T0 + 29, 10, OWNER, LEASE)] == []
    [again] = await store.claim_due(T0 + 30, 10, OWNER, LEASE)
    assert again.id == first.id
    assert again.attempts == 2


async def test_items_left_attempting_by_a_crash_are_claimed_once_their_lease_ran_out(
    tmp_path: Path,
) -> None:
    """After a crash, the next start (a new process id) claims the items when leases end."""
    first = await SqliteStore.open(tmp_path / "n")
    await _submit(first, envelope())
    await first.claim_due(T0, 10, OWNER, LEASE)
    await first.close()
    second = await SqliteStore.open(tmp_path / "n")
    assert await second.claim_due(T0 + LEASE - 1, 10, "process-b", LEASE) == []
    again = await second.claim_due(T0 + LEASE, 10, "process-b", LEASE)
    assert [(i.lease_owner, i.attempts) for i in again] == [("process-b", 2)] * 2
    await second.close()


async def test_delivered_attempt_stores_the_receipt_and_event(store: SqliteStore) -> None:
    """Finishing an attempt as delivered records the receipt and ledger event with it."""
    env = envelope()
    await _submit(store, env)
    [item, _] = await store.claim_due(T0, 10, OWNER, LEASE)
    receipt = _receipt(env, org=item.destination)
    delivered = machine.Delivered(machine.RouteTaken(0, 1, "https"), receipt)
    assert await store.apply_transition(machine.step(item, delivered, T0 + 1))
    sent = await store.sent_item(SCHOOL, env.digest)
    assert sent is not None
    assert sent.receipts == (receipt,)
    assert await store.ledger_size() == 2
    assert (await store.outbox_counts()) == {"delivered": 1, "attempting": 1}


async def test_repeated_delivery_returns_the_first_receipt_and_stores_nothing(
    store: SqliteStore,
) -> None:
    """A second delivery of the same envelope to the same owner is a no-op returning receipt 1."""
    env = envelope()
    first = _receipt(env)
    assert await store.record_delivery(LA, env, now=T0, receipt=first, ledger_events=[b"d"]) == (
        first.signed
    )
    second = _receipt(env, status="delivered", org=LA)
    second = ReceiptRecord(second.digest[::-1], env.digest, LA, "delivered", 9, b"other")
    returned = await store.record_delivery(
        LA, env, now=T0 + 9, receipt=second, ledger_events=[b"x"]
    )
    assert returned == first.signed
    assert await store.ledger_size() == 1
    assert len(await store.inbox(LA, limit=10)) == 1
    assert await store.receipts_for(env.digest) == [first]


async def test_inbox_is_per_owner(store: SqliteStore) -> None:
    """An envelope delivered to one organisation is not in another's inbox."""
    env = envelope()
    await store.record_delivery(LA, env, now=T0, receipt=_receipt(env), ledger_events=[])
    assert await store.inbox(NURSES, limit=10) == []
    assert await store.inbox_item(NURSES, env.digest) is None
    item = await store.inbox_item(LA, env.digest)
    assert item is not None
    assert item.state == "delivered"


async def test_inbox_update_queues_the_receipt_back(store: SqliteStore) -> None:
    """Opening an item records the state, the receipt, an outbox row and a ledger event."""
    env = envelope()
    await store.record_delivery(LA, env, now=T0, receipt=_receipt(env), ledger_events=[])
    opened = _receipt(env, "opened")
    await store.update_inbox(
        LA,
        env.digest,
        state="opened",
        receipt=opened,
        outbox=[NewOutbox("receipt", opened.digest, LA, SCHOOL)],
        ledger_events=[b"opened"],
        now=T0 + 2,
    )
    item = await store.inbox_item(LA, env.digest)
    assert item is not None
    assert item.state == "opened"
    [queued] = await store.claim_due(T0 + 2, 10, OWNER, LEASE)
    assert (queued.kind, queued.ref, queued.destination) == ("receipt", opened.digest, SCHOOL)


async def test_add_receipt_is_idempotent(store: SqliteStore) -> None:
    """The same receipt arriving twice is stored and logged once."""
    env = envelope()
    receipt = _receipt(env, "acknowledged")
    assert await store.add_receipt(receipt, ledger_events=[b"ack"], now=T0)
    assert not await store.add_receipt(receipt, ledger_events=[b"ack"], now=T0)
    assert await store.ledger_size() == 1
    assert await store.receipt(receipt.digest) == receipt


async def test_ledger_indexes_by_leaf_hash(store: SqliteStore) -> None:
    """An event can be found by its RFC 9162 leaf hash."""
    await store.append_ledger([b"a", b"b", b"c"])
    leaf = hashlib.sha256(b"\x00" + b"b").digest()
    assert await store.ledger_index_of(leaf) == 1
    assert await store.ledger_index_of(b"\x00" * 32) is None


async def test_checkpoints_are_kept_in_size_order(store: SqliteStore) -> None:
    """Checkpoints come back oldest first."""
    await store.save_checkpoint(5, b"five", T0)
    await store.save_checkpoint(2, b"two", T0)
    assert await store.checkpoints() == [(2, b"two"), (5, b"five")]


async def test_users_are_found_by_token_hash_only(store: SqliteStore) -> None:
    """A user is found by the hash of their token; the token itself is not stored."""
    user = User("u1", LA, "Front door worker", "staff")
    await store.add_user(user, hashlib.sha256(b"token").digest(), T0)
    assert await store.user_by_token_hash(hashlib.sha256(b"token").digest()) == user
    assert await store.user_by_token_hash(hashlib.sha256(b"other").digest()) is None
    dump = await stored_bytes(store)
    assert b"token" not in dump.replace(b"token_hash", b"")
    assert b"token".hex().encode() not in dump


async def test_nonce_is_refused_the_second_time(store: SqliteStore) -> None:
    """A nonce is accepted once per key; the same nonce under another key is independent."""
    assert not await store.seen_or_record_nonce("k1", "n1", int(T0), int(T0))
    assert await store.seen_or_record_nonce("k1", "n1", int(T0), int(T0))
    assert not await store.seen_or_record_nonce("k2", "n1", int(T0), int(T0))


async def test_failed_transaction_leaves_nothing(store: SqliteStore) -> None:
    """A submission that fails half-way (duplicate) commits none of its rows."""
    env = envelope()
    await _submit(store, env)
    with pytest.raises(sqlite3.IntegrityError):
        await store.record_submission(
            env, submitted_by="u", now=T0, outbox=[], ledger_events=[b"should not persist"]
        )
    assert await store.ledger_size() == 1


async def test_envelope_to_send_reads_the_row_and_its_recorded_damage(store: SqliteStore) -> None:
    """One read gives the outbox the envelope's facts and whether its body was found damaged."""
    env = envelope()
    assert await store.envelope_to_send(env.digest) == (None, False)
    await _submit(store, env)
    assert await store.envelope_to_send(env.digest) == (env, False)
    await store.mark_damaged(env.digest, T0)
    assert await store.envelope_to_send(env.digest) == (env, True)
