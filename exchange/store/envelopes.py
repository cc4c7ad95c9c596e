"""The tables every node's store has at its heart: envelopes, outbox, inbox, receipts, ledger.

:class:`EnvelopeTables` is the table group that sends, receives and records: an envelope with
its outbox rows, ledger events and register row in one transaction ("persist, then send",
docs/architecture.md §4), deliveries and openings, receipts, the ledger, staff users and
replay nonces. Like every table group it runs plain functions of a :class:`~exchange.store.sql.Db`
in the store's transactions, so the SQLite and PostgreSQL stores share it whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar, cast

from exchange.keys.ids import OrgId
from exchange.model import (
    EnvelopeRecord,
    IdempotencyRecord,
    InboxItem,
    InboxState,
    NewOutbox,
    OutboxItem,
    ReceiptRecord,
    RegisterEntry,
    RetentionSchedule,
    Role,
    SentItem,
    ThreadLink,
    User,
)
from exchange.outbox import machine
from exchange.outbox.machine import Transition
from exchange.store.accounts import insert_user
from exchange.store.base import InboxPlace, ItemOpening, OpeningOutcome
from exchange.store.idempotency import insert_idempotency
from exchange.store.ledger_tree import append_ledger
from exchange.store.recall import RecallTables
from exchange.store.register import SharingRegisterTables
from exchange.store.retention import RetentionTables
from exchange.store.rows import (
    ENVELOPE_COLUMNS,
    OUTBOX_COLUMNS,
    envelope_row,
    insert_envelope,
    insert_outbox,
    insert_receipt,
    outbox_item,
    outbox_rows,
    receipt_row,
    step_all,
    write_transition,
)
from exchange.store.sent_lists import SentFilter
from exchange.store.sql import Db, Row

T = TypeVar("T")


def _user(row: Row) -> User:
    return User(row["id"], OrgId(row["org"]), row["name"], cast(Role, row["role"]))


class EnvelopeTables(SharingRegisterTables, RecallTables, RetentionTables):
    """Envelopes, the outbox, the inbox, receipts, the ledger, staff users and nonces."""

    async def mark_damaged(self, digest: bytes, now: float) -> None:
        """Record that the body of ``digest`` is damaged (once; the first time is kept)."""

        def tx(db: Db) -> None:
            db.execute(
                "INSERT INTO damaged_bodies (digest, found_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (digest, now),
            )

        await self._tx(tx)

    async def is_damaged(self, digest: bytes) -> bool:
        """Return whether the body of ``digest`` was found damaged."""

        def read(db: Db) -> bool:
            row = db.execute("SELECT 1 FROM damaged_bodies WHERE digest = ?", (digest,))
            return row.fetchone() is not None

        return await self._read(read)

    async def record_submission(
        self,
        envelope: EnvelopeRecord,
        *,
        submitted_by: str,
        now: float,
        outbox: Sequence[NewOutbox],
        ledger_events: Sequence[bytes],
        register: RegisterEntry | None = None,
        thread: ThreadLink | None = None,
        retention: RetentionSchedule | None = None,
        idempotency: IdempotencyRecord | None = None,
        own_copy: bytes | None = None,
    ) -> None:
        """Commit a sealed envelope, its outbox rows, ledger events and register row together.

        ``thread`` links it to the envelope it replies to or corrects; ``idempotency`` is
        the caller's key with the answer, so a retry after a crash finds it; ``own_copy`` is
        the digest of the sender's own copy, already written to the bodies folder.
        """

        def tx(db: Db) -> None:
            insert_envelope(db, envelope, now)
            if register is not None:
                self._insert_register(db, register)
            db.execute(
                "INSERT INTO sent (digest, sender, submitted_by, submitted_at, own_copy) "
                "VALUES (?, ?, ?, ?, ?)",
                (envelope.digest, envelope.sender, submitted_by, now, own_copy),
            )
            insert_outbox(db, envelope.digest, outbox, now)
            append_ledger(db, ledger_events)
            if thread is not None:
                self._insert_link(db, thread, envelope.digest, source="sent", now=now)
            if retention is not None:
                # Its review date (exchange/store/retention.py), with the envelope.
                self._insert_retention(db, retention)
            if idempotency is not None:
                insert_idempotency(db, idempotency)

        await self._tx(tx)

    def _sent_items(self, db: Db, rows: list[Row]) -> list[SentItem]:
        items = []
        for row in rows:
            digest = row["digest"]
            deliveries = db.execute(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE envelope_digest = ? AND kind = "
                "'envelope' ORDER BY destination",
                (digest,),
            ).fetchall()
            receipts = db.execute(
                "SELECT * FROM receipts WHERE envelope_digest = ? ORDER BY time, recorded_at",
                (digest,),
            ).fetchall()
            items.append(
                SentItem(
                    envelope=envelope_row(row),
                    submitted_by=row["submitted_by"],
                    submitted_at=row["submitted_at"],
                    deliveries=tuple(outbox_item(d) for d in deliveries),
                    receipts=tuple(receipt_row(r) for r in receipts),
                )
            )
        return items

    async def list_sent(
        self,
        sender: OrgId,
        *,
        limit: int,
        before: tuple[float, bytes] | None = None,
        after: tuple[float, bytes] | None = None,
        only: SentFilter | None = None,
    ) -> list[SentItem]:
        """Return the newest ``limit`` envelopes ``sender`` sent, with their timelines.

        ``before`` (submitted_at, digest) continues a listing after its last item; ``after``
        goes back to the page before its first item (the ``limit`` oldest items newer than
        it, still newest first). ``only`` keeps the items a :class:`SentFilter` selects.
        """
        # Row values, so that the index on (sender, submitted_at, digest) seeks to the cursor.
        if after is not None:
            at, digest = after
            where, order = "(s.submitted_at, s.digest) > (?, ?)", "ASC"
        else:
            at, digest = before if before is not None else (float("inf"), b"")
            where, order = "(s.submitted_at, s.digest) < (?, ?)", "DESC"
        condition, extra = ("", ()) if only is None else only.condition()
        if condition:
            where += " AND " + condition

        def read(db: Db) -> list[SentItem]:
            rows = db.execute(
                f"SELECT e.{ENVELOPE_COLUMNS.replace(', ', ', e.')}, s.submitted_by, "
                "s.submitted_at FROM sent s JOIN envelopes e ON e.digest = s.digest "
                f"WHERE s.sender = ? AND {where} "
                f"ORDER BY s.submitted_at {order}, s.digest {order} LIMIT ?",
                (sender, at, digest, *extra, limit),
            ).fetchall()
            if after is not None:
                rows.reverse()
            return self._sent_items(db, rows)

        return await self._read(read)

    async def sent_item(self, sender: OrgId, digest: bytes) -> SentItem | None:
        """Return one sent envelope of ``sender``, or ``None``."""

        def read(db: Db) -> SentItem | None:
            rows = db.execute(
                f"SELECT e.{ENVELOPE_COLUMNS.replace(', ', ', e.')}, s.submitted_by, "
                "s.submitted_at FROM sent s JOIN envelopes e ON e.digest = s.digest "
                "WHERE s.sender = ? AND s.digest = ?",
                (sender, digest),
            ).fetchall()
            items = self._sent_items(db, rows)
            return items[0] if items else None

        return await self._read(read)

    # --- the outbox -----------------------------------------------------------------------
    # The states and their transitions are decided by exchange.outbox.machine; the store
    # selects rows, asks the machine, and writes what it answers
    # (exchange.store.rows.write_transition). Claims and leases: exchange.store.leases.

    async def apply_transition(self, transition: Transition) -> bool:
        """Write a transition the worker computed, with its receipt and ledger events.

        Returns False, writing nothing, if the item changed since it was read (a recall
        requested meanwhile): the caller reads it again and asks the machine anew.
        """
        return await self._tx(lambda db: write_transition(db, transition))

    async def outbox_item(self, item_id: int) -> OutboxItem | None:
        """Return one outbox item as it is now, or ``None``."""

        def read(db: Db) -> OutboxItem | None:
            found = outbox_rows(db, "id = ?", (item_id,))
            return found[0] if found else None

        return await self._read(read)

    async def requeue_dead(self, now: float, envelope_digest: bytes | None = None) -> int:
        """Give dead items (of one envelope, or all) a fresh start on their first route."""

        def tx(db: Db) -> int:
            items = (
                outbox_rows(db, "state = 'dead'", ())
                if envelope_digest is None
                else outbox_rows(db, "state = 'dead' AND envelope_digest = ?", (envelope_digest,))
            )
            return len(step_all(db, items, machine.RequeueDead(), now))

        return await self._tx(tx)

    async def bring_retries_forward(self, by: float) -> int:
        """Make envelopes and receipts waiting to retry due ``by`` seconds sooner.

        Staff mails (notices, chases) keep their times: a chase is due on a date, not after
        a back-off.
        """

        def tx(db: Db) -> int:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = next_attempt_at - ? "
                "WHERE state = 'retry-wait' AND kind IN ('envelope', 'receipt')",
                (by,),
            )
            return cursor.rowcount

        return await self._tx(tx)

    async def make_due_now(self, destination: OrgId, now: float) -> int:
        """Make ``destination``'s envelopes and receipts waiting to retry due at ``now``.

        Staff mails keep their times, as in :meth:`bring_retries_forward`. The rows are
        found through ``outbox_due`` (state, next attempt), so only waiting rows are read.
        """

        def tx(db: Db) -> int:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE state = 'retry-wait' "
                "AND next_attempt_at > ? AND destination = ? AND kind IN ('envelope', 'receipt')",
                (now, now, destination),
            )
            return cursor.rowcount

        return await self._tx(tx)

    async def add_outbox(
        self, envelope_digest: bytes, rows: Sequence[NewOutbox], *, now: float
    ) -> int:
        """Queue ``rows`` for ``envelope_digest``; an identical row already held is kept.

        Returns how many rows were new.
        """

        def tx(db: Db) -> int:
            return insert_outbox(db, envelope_digest, rows, now)

        return await self._tx(tx)

    async def reopen_handed_over(
        self, route_kind: str, transport_ref: str, *, now: float, error: str
    ) -> OutboxItem | None:
        """Put an item a transport took but later reported undelivered back in the queue.

        The item moves to the next of its destination's routes, with its ``attempted``
        ledger event, in one transaction (:class:`exchange.outbox.machine.NonDeliveryReport`).
        Returns the item as it was, or ``None`` if no delivered item has that transport id
        (a report for something else, or handled before) or the item was recalled.
        """

        def tx(db: Db) -> OutboxItem | None:
            found = outbox_rows(
                db,
                "transport_ref = ? AND route_kind = ? AND state = 'delivered'",
                (transport_ref, route_kind),
            )
            if not found:
                return None
            written = step_all(db, found[:1], machine.NonDeliveryReport(error), now)
            reopened = [t.before for t in written if t.after.state == "retry-wait"]
            return reopened[0] if reopened else None

        return await self._tx(tx)

    async def outbox_counts(self) -> dict[str, int]:
        """Return the number of outbox items in each state."""

        def read(db: Db) -> dict[str, int]:
            rows = db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
            return {r[0]: r[1] for r in rows}

        return await self._read(read)

    async def receipt_counts(self) -> dict[str, int]:
        """Return the number of receipts held, by status."""

        def read(db: Db) -> dict[str, int]:
            rows = db.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall()
            return {r[0]: r[1] for r in rows}

        return await self._read(read)

    # --- receiving ------------------------------------------------------------------------

    async def record_delivery(
        self,
        owner: OrgId,
        envelope: EnvelopeRecord,
        *,
        now: float,
        receipt: ReceiptRecord,
        ledger_events: Sequence[bytes],
        outbox: Sequence[NewOutbox] = (),
    ) -> bytes:
        """Store an inbound envelope once; return the ``delivered`` receipt on record."""

        def tx(db: Db) -> bytes:
            row = db.execute(
                "SELECT delivered_receipt FROM inbox WHERE owner = ? AND digest = ?",
                (owner, envelope.digest),
            ).fetchone()
            if row is not None:
                return cast(bytes, row[0])
            insert_envelope(db, envelope, now)
            db.execute(
                "INSERT INTO inbox (owner, digest, received_at, state, delivered_receipt, "
                "updated_at) VALUES (?, ?, ?, 'delivered', ?, ?)",
                (owner, envelope.digest, now, receipt.signed, now),
            )
            insert_receipt(db, receipt, now)
            insert_outbox(db, envelope.digest, outbox, now)
            append_ledger(db, ledger_events)
            return receipt.signed

        return await self._tx(tx)

    @staticmethod
    def _inbox_item(row: Row) -> InboxItem:
        return InboxItem(
            owner=OrgId(row["owner"]),
            envelope=envelope_row(row),
            received_at=row["received_at"],
            state=row["state"],
            delivered_receipt=row["delivered_receipt"],
        )

    _INBOX_SELECT = (
        "SELECT i.owner, i.received_at, i.state, i.delivered_receipt, e.digest, "
        "e.envelope_id, e.sender, e.recipients, e.record_kind, e.created, e.length "
        "FROM inbox i JOIN envelopes e ON e.digest = i.digest "
    )

    async def inbox(
        self, owner: OrgId, *, limit: int, before: tuple[float, bytes] | None = None
    ) -> list[InboxItem]:
        """Return the newest ``limit`` items delivered to ``owner``.

        ``before`` (received_at, digest) continues a listing after its last item.
        """
        at, digest = before if before is not None else (float("inf"), b"")

        def read(db: Db) -> list[InboxItem]:
            rows = db.execute(
                self._INBOX_SELECT + "WHERE i.owner = ? AND (i.received_at < ? OR "
                "(i.received_at = ? AND i.digest < ?)) "
                "ORDER BY i.received_at DESC, i.digest DESC LIMIT ?",
                (owner, at, at, digest, limit),
            ).fetchall()
            return [self._inbox_item(r) for r in rows]

        return await self._read(read)

    async def inbox_item(self, owner: OrgId, digest: bytes) -> InboxItem | None:
        """Return one inbox item of ``owner``, or ``None``."""

        def read(db: Db) -> InboxItem | None:
            row = db.execute(
                self._INBOX_SELECT + "WHERE i.owner = ? AND i.digest = ?", (owner, digest)
            ).fetchone()
            return None if row is None else self._inbox_item(row)

        return await self._read(read)

    async def inbox_unread_first(
        self, owner: OrgId, *, limit: int, after: InboxPlace | None = None
    ) -> list[InboxItem]:
        """Return ``limit`` of ``owner``'s items: unread (``delivered``) first, then newest.

        ``after`` (the last item's place, :func:`~exchange.store.base.inbox_place`)
        continues a listing.
        """
        read_rank, at, digest = after if after is not None else (0, float("inf"), b"")
        # Two index walks instead of one sort of every item: the unread ones (owner, state,
        # received_at), then, if the page has room, the read ones newest first.
        newer_first = (
            "(i.received_at < ? OR (i.received_at = ? AND i.digest < ?)) "
            "ORDER BY i.received_at DESC, i.digest DESC LIMIT ?"
        )

        def read(db: Db) -> list[InboxItem]:
            rows: list[Row] = []
            if read_rank == 0:
                rows = db.execute(
                    self._INBOX_SELECT
                    + "WHERE i.owner = ? AND i.state = 'delivered' AND "
                    + newer_first,
                    (owner, at, at, digest, limit),
                ).fetchall()
            if len(rows) < limit:
                start = (at, digest) if read_rank == 1 else (float("inf"), b"")
                rows += db.execute(
                    self._INBOX_SELECT
                    + "WHERE i.owner = ? AND i.state <> 'delivered' AND "
                    + newer_first,
                    (owner, start[0], start[0], start[1], limit - len(rows)),
                ).fetchall()
            return [self._inbox_item(r) for r in rows]

        return await self._read(read)

    async def inbox_item_by_envelope_id(self, owner: OrgId, envelope_id: bytes) -> InboxItem | None:
        """Return ``owner``'s inbox item of the envelope with this id, or ``None``."""

        def read(db: Db) -> InboxItem | None:
            row = db.execute(
                self._INBOX_SELECT + "WHERE i.owner = ? AND e.envelope_id = ? "
                "ORDER BY i.received_at LIMIT 1",
                (owner, envelope_id),
            ).fetchone()
            return None if row is None else self._inbox_item(row)

        return await self._read(read)

    async def update_inbox(
        self,
        owner: OrgId,
        digest: bytes,
        *,
        state: InboxState,
        receipt: ReceiptRecord | None,
        outbox: Sequence[NewOutbox],
        ledger_events: Sequence[bytes],
        now: float,
    ) -> bool:
        """Change an inbox item's state with its receipt, outbox rows and ledger events.

        Returns False, and writes nothing, if the item was recalled meanwhile.
        """

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE inbox SET state = ?, updated_at = ? WHERE owner = ? AND digest = ? "
                "AND state != 'recalled'",
                (state, now, owner, digest),
            )
            if cursor.rowcount != 1:
                return False
            if receipt is not None:
                insert_receipt(db, receipt, now)
            insert_outbox(db, digest, outbox, now)
            append_ledger(db, ledger_events)
            return True

        return await self._tx(tx)

    async def record_opening(self, opening: ItemOpening) -> OpeningOutcome:
        """Record one opening of an inbox item in one transaction; return what it found.

        A first opening moves the item from ``delivered`` to ``opened`` only while it is
        still ``delivered``, so exactly one of a recall and the opening wins; if the recall
        won, nothing at all is written. Otherwise the access event, the subject index, the
        thread link and the retention schedule are written with it, each only once.
        """

        def tx(db: Db) -> OpeningOutcome:
            first = opening.first
            state: Literal["opened", "already"] = "already"
            if first is not None:
                cursor = db.execute(
                    "UPDATE inbox SET state = 'opened', opened_at = ?, opened_by = ?, "
                    "opened_by_role = ?, updated_at = ? "
                    "WHERE owner = ? AND digest = ? AND state = 'delivered'",
                    (
                        opening.now, opening.user_id, opening.role, opening.now,
                        opening.owner, opening.digest,
                    ),
                )  # fmt: skip
                if cursor.rowcount == 1:
                    state = "opened"
                else:
                    row = db.execute(
                        "SELECT state FROM inbox WHERE owner = ? AND digest = ?",
                        (opening.owner, opening.digest),
                    ).fetchone()
                    if row is not None and row[0] == "recalled":
                        return OpeningOutcome("recalled", scheduled=False)
            if first is not None and state == "opened":
                insert_receipt(db, first.receipt, opening.now)
                insert_outbox(db, opening.digest, first.outbox, opening.now)
                append_ledger(db, [first.opened_event, opening.accessed_event])
            else:
                append_ledger(db, [opening.accessed_event])
            if opening.index_outcome is not None:
                self._insert_received_index(
                    db, opening.owner, opening.digest,
                    subjects=opening.subjects, outcome=opening.index_outcome, now=opening.now,
                )  # fmt: skip
            if opening.link is not None:
                self._insert_link(
                    db, opening.link, opening.digest, source="opened", now=opening.now
                )
            scheduled = opening.schedule is not None and self._insert_retention(
                db, opening.schedule
            )
            return OpeningOutcome(state, scheduled=scheduled)

        return await self._tx(tx)

    # --- receipts -------------------------------------------------------------------------

    async def add_receipt(
        self, receipt: ReceiptRecord, *, ledger_events: Sequence[bytes], now: float
    ) -> bool:
        """Store a verified receipt; return False (and log nothing) if already held."""

        def tx(db: Db) -> bool:
            added = insert_receipt(db, receipt, now)
            if added:
                append_ledger(db, ledger_events)
            return added

        return await self._tx(tx)

    async def receipt(self, digest: bytes) -> ReceiptRecord | None:
        """Return a receipt by its digest."""

        def read(db: Db) -> ReceiptRecord | None:
            row = db.execute("SELECT * FROM receipts WHERE digest = ?", (digest,)).fetchone()
            return None if row is None else receipt_row(row)

        return await self._read(read)

    async def receipts_for(self, envelope_digest: bytes) -> list[ReceiptRecord]:
        """Return every receipt held for an envelope, oldest first."""

        def read(db: Db) -> list[ReceiptRecord]:
            rows = db.execute(
                "SELECT * FROM receipts WHERE envelope_digest = ? ORDER BY time, recorded_at",
                (envelope_digest,),
            ).fetchall()
            return [receipt_row(r) for r in rows]

        return await self._read(read)

    async def envelope(self, digest: bytes) -> EnvelopeRecord | None:
        """Return an envelope's facts by digest."""

        def read(db: Db) -> EnvelopeRecord | None:
            row = db.execute(
                f"SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE digest = ?", (digest,)
            ).fetchone()
            return None if row is None else envelope_row(row)

        return await self._read(read)

    async def envelope_to_send(self, digest: bytes) -> tuple[EnvelopeRecord | None, bool]:
        """Return an envelope's facts and whether its body was found damaged, in one read."""

        def read(db: Db) -> tuple[EnvelopeRecord | None, bool]:
            row = db.execute(
                f"SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE digest = ?", (digest,)
            ).fetchone()
            damaged = db.execute("SELECT 1 FROM damaged_bodies WHERE digest = ?", (digest,))
            return None if row is None else envelope_row(row), damaged.fetchone() is not None

        return await self._read(read)

    # --- staff ----------------------------------------------------------------------------

    async def add_user(self, user: User, token_hash: bytes, now: float) -> None:
        """Create a user holding the token whose hash is given.

        Raises :class:`DuplicateError` if a user with that id exists.
        """

        def tx(db: Db) -> None:
            insert_user(db, user, token_hash, now)

        await self._tx(tx)

    async def user_by_token_hash(self, token_hash: bytes) -> User | None:
        """Return the user holding a token, by the token's hash."""

        def read(db: Db) -> User | None:
            row = db.execute(
                "SELECT id, org, name, role FROM users WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return None if row is None else _user(row)

        return await self._read(read)

    async def users_of(self, org: OrgId) -> list[User]:
        """Return the users of ``org``, by id (the command line names an account by them)."""

        def read(db: Db) -> list[User]:
            rows = db.execute(
                "SELECT id, org, name, role FROM users WHERE org = ? ORDER BY id", (org,)
            )
            return [_user(r) for r in rows]

        return await self._read(read)

    # --- replay protection -----------------------------------------------------------------

    async def seen_or_record_nonce(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Return True if ``(key, nonce)`` was seen; otherwise record it and return False."""

        def tx(db: Db) -> bool:
            # Nonces older than a day cannot pass the created-time check; forget them.
            db.execute("DELETE FROM nonces WHERE created < ?", (now - 86_400,))
            cursor = db.execute(
                "INSERT INTO nonces (key, nonce, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (key, nonce, created),
            )
            return cursor.rowcount == 0

        return await self._tx(tx)
