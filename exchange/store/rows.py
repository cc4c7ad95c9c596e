"""The SQL every part of the SQLite store runs inside its transactions.

Plain functions over a connection: inserting envelopes, receipts and outbox rows, reading
outbox rows, and writing the transitions the outbox machine (:mod:`exchange.outbox.machine`)
decides, with their ledger events (appended by :mod:`exchange.store.ledger_tree`).
:class:`~exchange.store.sqlite.SqliteStore` and the recall, register and retention tables
beside it call them, so none of them re-declares another's helpers.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from exchange.keys.ids import OrgId
from exchange.ledger.events import encode_event
from exchange.model import EnvelopeRecord, NewOutbox, OutboxItem, ReceiptRecord
from exchange.outbox import machine
from exchange.outbox.machine import Transition
from exchange.store.ledger_tree import append_ledger
from exchange.store.sql import Db, Row

T = TypeVar("T")


class Tables(abc.ABC):
    """A group of tables of the SQLite store: what it needs from the store is its thread.

    :class:`~exchange.store.sqlite.SqliteStore` runs every write in a group-committed
    transaction (:meth:`_tx`) and every read (:meth:`_read`) on its one database thread;
    the recall, register and retention tables build on those two and the functions here.
    """

    @abc.abstractmethod
    async def _tx(self, fn: Callable[[Db], T]) -> T:
        """Run ``fn`` atomically; return once its commit is durable."""

    @abc.abstractmethod
    async def _read(self, fn: Callable[[Db], T]) -> T:
        """Run ``fn`` on the database thread outside any write."""


OUTBOX_COLUMNS = (
    "id, kind, envelope_digest, ref, origin, destination, state, attempts, next_attempt_at, "
    "created_at, updated_at, last_error, route_index, route_failures, via, route_kind, "
    "transport_ref, recall_requested_at, lease_owner, lease_until"
)

ENVELOPE_COLUMNS = "digest, envelope_id, sender, recipients, record_kind, created, length"


def receipt_row(row: Row) -> ReceiptRecord:
    """Return the receipt a ``receipts`` row holds."""
    return ReceiptRecord(
        digest=row["digest"],
        envelope_digest=row["envelope_digest"],
        receipter=OrgId(row["receipter"]),
        status=row["status"],
        time=row["time"],
        signed=row["signed"],
    )


def envelope_row(row: Row) -> EnvelopeRecord:
    """Return the envelope facts of an ``envelopes`` row."""
    return EnvelopeRecord(
        digest=row["digest"],
        envelope_id=row["envelope_id"],
        sender=OrgId(row["sender"]),
        recipients=tuple(OrgId(r) for r in json.loads(row["recipients"])),
        record_kind=row["record_kind"],
        created=row["created"],
        length=row["length"],
    )


def outbox_item(row: Row) -> OutboxItem:
    """Return the outbox item of an ``outbox`` row."""
    return OutboxItem(
        id=row["id"],
        kind=row["kind"],
        envelope_digest=row["envelope_digest"],
        ref=row["ref"],
        origin=OrgId(row["origin"]),
        destination=OrgId(row["destination"]),
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_error=row["last_error"],
        route_index=row["route_index"],
        route_failures=row["route_failures"],
        via=row["via"],
        route_kind=row["route_kind"],
        transport_ref=row["transport_ref"],
        recall_requested_at=row["recall_requested_at"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
    )


def insert_envelope(db: Db, env: EnvelopeRecord, now: float) -> None:
    """Insert an envelope row unless the digest is already held."""
    db.execute(
        "INSERT INTO envelopes (digest, envelope_id, sender, recipients, "
        "record_kind, created, length, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (
            env.digest,
            env.envelope_id,
            env.sender,
            json.dumps(list(env.recipients)),
            env.record_kind,
            env.created,
            env.length,
            now,
        ),
    )


def insert_outbox(db: Db, envelope_digest: bytes, rows: Sequence[NewOutbox], now: float) -> int:
    """Queue outbox rows unless already held (the rows are unique per item); count the new."""
    return db.executemany(
        "INSERT INTO outbox (kind, envelope_digest, ref, origin, destination, "
        "state, attempts, next_attempt_at, created_at, updated_at, via) "
        "VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            (r.kind, envelope_digest, r.ref, r.origin, r.destination, now, now, now, r.via)
            for r in rows
        ],
    ).rowcount


def insert_receipt(db: Db, r: ReceiptRecord, now: float) -> bool:
    """Insert a receipt unless already held; True if it is new."""
    cursor = db.execute(
        "INSERT INTO receipts (digest, envelope_digest, receipter, status, time, "
        "signed, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (r.digest, r.envelope_digest, r.receipter, r.status, r.time, r.signed, now),
    )
    return cursor.rowcount == 1


def same_as(db: Db) -> str:
    """Return the comparison that holds when both sides are equal or both NULL.

    SQLite's ``IS`` takes a value on either side; PostgreSQL's only ``NULL``, and SQLite
    reads ``IS NOT DISTINCT FROM`` only since 3.39.
    """
    return "IS" if db.dialect == "sqlite" else "IS NOT DISTINCT FROM"


def write_transition(db: Db, transition: Transition) -> bool:
    """Write one transition if the row is still as it was computed from; True if written.

    The guard (state, recall mark and lease owner as they were) makes a transition computed
    from a stale row change nothing: an attempt that raced a recall (the caller then asks
    the machine again with the row as it is now), or the outcome of an attempt whose lease
    ran out and whose item another process claimed (the outcome is dropped; the new owner
    attempts again).
    """
    if not transition.changed:
        return True
    before, after = transition.before, transition.after
    same = same_as(db)
    cursor = db.execute(
        "UPDATE outbox SET state = ?, attempts = ?, next_attempt_at = ?, created_at = ?, "
        "updated_at = ?, last_error = ?, route_index = ?, route_failures = ?, "
        "route_kind = ?, transport_ref = ?, recall_requested_at = ?, lease_owner = ?, "
        f"lease_until = ? WHERE id = ? AND state = ? AND recall_requested_at {same} ? "
        f"AND lease_owner {same} ?",
        (
            after.state, after.attempts, after.next_attempt_at, after.created_at,
            after.updated_at, after.last_error, after.route_index, after.route_failures,
            after.route_kind, after.transport_ref, after.recall_requested_at,
            after.lease_owner, after.lease_until,
            before.id, before.state, before.recall_requested_at, before.lease_owner,
        ),
    )  # fmt: skip
    if cursor.rowcount != 1:
        return False
    if transition.receipt is not None:
        insert_receipt(db, transition.receipt, after.updated_at)
    append_ledger(db, [encode_event(e) for e in transition.ledger_events])
    return True


def outbox_rows(db: Db, where: str, args: Sequence[Any]) -> list[OutboxItem]:
    """Return the outbox items matching ``where`` (built from constants; values bound)."""
    rows = db.execute(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {where}", args)
    return [outbox_item(r) for r in rows.fetchall()]


def step_all(
    db: Db, items: Sequence[OutboxItem], event: machine.Event, now: float
) -> list[Transition]:
    """Apply ``event`` to each item in this transaction; return the transitions written."""
    written = []
    for item in items:
        transition = machine.step(item, event, now)
        if transition.changed and write_transition(db, transition):
            written.append(transition)
    return written
