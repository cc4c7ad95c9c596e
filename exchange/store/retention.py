"""Retention in the SQLite store: review dates, inquiry holds and destruction.

A mixin of :class:`~exchange.store.sqlite.SqliteStore` over the tables of the retention
migration (``exchange.store.schema``):

- ``retention`` holds, per organisation and envelope it holds (sent or received), the rule
  that governs it and the computed review date (``YYYY-MM-DD``), or why there is none. The
  date of birth a review date is computed from is **never** stored. A sent item's row is
  written in the transaction that stores the envelope; a received item's when a member of
  staff first opens it (only then is the record readable). Destruction marks the row
  (``destroyed_at``, ``destroyed_by``, ``destroyed_rule``, ``destroyed_reason``) and keeps it.
- ``retention_holds`` holds inquiry and litigation holds: on one envelope, or on everything
  the organisation holds (``digest`` NULL), with who placed and lifted them and when.

Destruction (:meth:`RetentionTables.destroy_held`) is one transaction: the row is marked, the
keyed hashes of the item's pupil identifiers are deleted from ``subject_index`` and
``received_index``, and the ``destroyed`` ledger event (the tombstone) is appended. The body
file is deleted only *after* that commit, by the node, and only once no organisation on the
node still holds the envelope (a body is stored once per node even when several tenants
hold it); :meth:`RetentionTables.unreferenced_bodies` lists what a crash left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

from exchange.keys.ids import OrgId
from exchange.model import (
    Destruction,
    Direction,
    EnvelopeDigest,
    HeldItem,
    HoldRecord,
    RetentionSchedule,
)
from exchange.outbox import machine
from exchange.store.base import MAX_LISTED, Decide
from exchange.store.ledger_tree import append_ledger
from exchange.store.own_copies import forget_own_copy
from exchange.store.rows import Tables, envelope_row, outbox_rows, step_all
from exchange.store.sql import Db, Row

T = TypeVar("T")


#: Outbox states in which a delivery may still read the envelope's body.
PENDING_STATES: Final = tuple(sorted(machine.PENDING))

_ENVELOPE: Final = (
    "e.digest, e.envelope_id, e.sender, e.recipients, e.record_kind, e.created, e.length"
)
#: Every holding of an organisation: what it sent and what was delivered to it, except what
#: its sender recalled (no longer held: exchange/store/recall.py deletes it).
_HOLDINGS: Final = (
    "SELECT sender AS org, digest, 'sent' AS direction FROM sent "
    "UNION ALL SELECT owner AS org, digest, 'received' AS direction FROM inbox "
    "WHERE state != 'recalled'"
)
_HELD_SELECT: Final = (
    f"SELECT h.org, h.direction, {_ENVELOPE}, g.purpose, r.holder_kind, r.rule, "
    "r.review_date, r.action, r.unscheduled, r.scheduled_at, r.destroyed_at, r.destroyed_by, "
    "r.destroyed_rule, r.destroyed_reason "
    f"FROM ({_HOLDINGS}) h JOIN envelopes e ON e.digest = h.digest "
    "LEFT JOIN retention r ON r.org = h.org AND r.digest = h.digest "
    "LEFT JOIN register g ON g.envelope_digest = h.digest AND g.org = h.org "
    "AND h.direction = 'sent' "
)
#: The same columns, driven from the retention rows (the due and destroyed lists use the
#: index on ``(org, review_date)`` instead of reading every holding of the organisation).
_ROW_SELECT: Final = (
    f"SELECT r.org, r.direction, {_ENVELOPE}, g.purpose, r.holder_kind, r.rule, "
    "r.review_date, r.action, r.unscheduled, r.scheduled_at, r.destroyed_at, r.destroyed_by, "
    "r.destroyed_rule, r.destroyed_reason "
    "FROM retention r JOIN envelopes e ON e.digest = r.digest "
    "LEFT JOIN register g ON g.envelope_digest = r.digest AND g.org = r.org "
    "AND r.direction = 'sent' "
)
_HOLD_COLUMNS: Final = (
    "id, org, digest, reason, reference, placed_at, placed_by, lifted_at, lifted_by"
)


def _held(row: Row) -> HeldItem:
    org = OrgId(row["org"])
    direction: Direction = "sent" if row["direction"] == "sent" else "received"
    envelope = envelope_row(row)
    schedule = None
    if row["scheduled_at"] is not None:
        schedule = RetentionSchedule(
            org=org,
            digest=envelope.digest,
            direction=direction,
            holder_kind=row["holder_kind"],
            rule=row["rule"],
            review_date=row["review_date"],
            action=row["action"],
            unscheduled=row["unscheduled"],
            scheduled_at=row["scheduled_at"],
        )
    destroyed = None
    if row["destroyed_at"] is not None:
        destroyed = Destruction(
            at=row["destroyed_at"],
            by=row["destroyed_by"],
            rule=row["destroyed_rule"],
            reason=row["destroyed_reason"],
        )
    return HeldItem(org, direction, envelope, row["purpose"], schedule, destroyed)


def _hold(row: Row) -> HoldRecord:
    return HoldRecord(
        id=int(row["id"]),
        org=OrgId(row["org"]),
        digest=row["digest"],
        reason=row["reason"],
        reference=row["reference"],
        placed_at=row["placed_at"],
        placed_by=row["placed_by"],
        lifted_at=row["lifted_at"],
        lifted_by=row["lifted_by"],
    )


def _pending(db: Db, org: OrgId, digest: bytes) -> int:
    marks = ", ".join("?" for _ in PENDING_STATES)
    row = db.execute(
        "SELECT COUNT(*) FROM outbox WHERE envelope_digest = ? AND origin = ? "
        f"AND kind = 'envelope' AND state IN ({marks})",
        (digest, org, *PENDING_STATES),
    ).fetchone()
    return int(row[0])


def _held_item(db: Db, org: OrgId, digest: bytes) -> HeldItem | None:
    # An organisation that both sent and received the same envelope is treated as the
    # sender: one holding, one row.
    row = db.execute(
        _HELD_SELECT + "WHERE h.org = ? AND h.digest = ? "
        "ORDER BY h.direction = 'sent' DESC LIMIT 1",
        (org, digest),
    ).fetchone()
    if row is None:
        return None
    item = _held(row)
    if item.direction == "sent":
        return HeldItem(
            item.org, item.direction, item.envelope, item.purpose, item.schedule,
            item.destroyed, _pending(db, org, digest),
        )  # fmt: skip
    return item


def _active_holds(db: Db, org: OrgId) -> list[HoldRecord]:
    rows = db.execute(
        f"SELECT {_HOLD_COLUMNS} FROM retention_holds WHERE org = ? AND lifted_at IS NULL "
        "ORDER BY id",
        (org,),
    ).fetchall()
    return [_hold(r) for r in rows]


def _unreferenced(db: Db, digest: bytes | None = None) -> list[bytes]:
    """Return destroyed digests (or ``digest``) that no organisation on the node still holds."""
    rows = db.execute(
        f"SELECT h.digest FROM ({_HOLDINGS}) h LEFT JOIN retention r ON r.org = h.org "
        "AND r.digest = h.digest AND r.destroyed_at IS NOT NULL "
        "WHERE h.digest IN (SELECT digest FROM retention WHERE destroyed_at IS NOT NULL) "
        + ("" if digest is None else "AND h.digest = ? ")
        + "GROUP BY h.digest HAVING COUNT(r.digest) = COUNT(*) ORDER BY h.digest",
        () if digest is None else (digest,),
    ).fetchall()
    return [bytes(r[0]) for r in rows]


class RetentionTables(Tables):
    """Retention methods of :class:`~exchange.store.sqlite.SqliteStore`."""

    # --- review dates -----------------------------------------------------------------------

    @staticmethod
    def _insert_retention(db: Db, schedule: RetentionSchedule) -> bool:
        """Insert an item's schedule unless it has one; return whether it was inserted."""
        cursor = db.execute(
            "INSERT INTO retention (org, digest, direction, holder_kind, rule, "
            "review_date, action, unscheduled, scheduled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (
                schedule.org, schedule.digest, schedule.direction, schedule.holder_kind,
                schedule.rule, schedule.review_date, schedule.action, schedule.unscheduled,
                schedule.scheduled_at,
            ),
        )  # fmt: skip
        return cursor.rowcount == 1

    async def schedule_retention(self, schedule: RetentionSchedule) -> bool:
        """Store a received item's schedule (at its first opening); False if it had one."""
        return await self._tx(lambda db: self._insert_retention(db, schedule))

    async def held_item(self, org: OrgId, digest: bytes) -> HeldItem | None:
        """Return the envelope ``org`` holds (sent or received) with its retention row."""
        return await self._read(lambda db: _held_item(db, org, digest))

    async def held_items(self, org: OrgId, digests: Sequence[bytes]) -> dict[bytes, HeldItem]:
        """Return the holdings of ``org`` among ``digests``, by digest (for the views)."""

        def read(db: Db) -> dict[bytes, HeldItem]:
            found: dict[bytes, HeldItem] = {}
            unique = list(dict.fromkeys(digests))
            for start in range(0, len(unique), 200):
                part = unique[start : start + 200]
                marks = ", ".join("?" for _ in part)
                rows = db.execute(
                    _HELD_SELECT + f"WHERE h.org = ? AND h.digest IN ({marks})", (org, *part)
                ).fetchall()
                for row in rows:
                    item = _held(row)
                    if item.envelope.digest not in found or item.direction == "sent":
                        found[item.envelope.digest] = item
            return found

        return await self._read(read)

    async def retention_due(
        self, org: OrgId, *, before: str, limit: int = MAX_LISTED
    ) -> list[HeldItem]:
        """Return ``org``'s items not destroyed whose review date is before ``before``.

        Earliest review date first; at most ``limit`` rows.
        """

        def read(db: Db) -> list[HeldItem]:
            rows = db.execute(
                _ROW_SELECT + "WHERE r.org = ? AND r.destroyed_at IS NULL "
                "AND r.review_date IS NOT NULL AND r.review_date < ? "
                "ORDER BY r.review_date, r.digest LIMIT ?",
                (org, before, limit),
            ).fetchall()
            return [_held(r) for r in rows]

        return await self._read(read)

    async def retention_unscheduled(self, org: OrgId, *, limit: int = MAX_LISTED) -> list[HeldItem]:
        """Return ``org``'s items without a review date: never opened, or none computable."""

        def read(db: Db) -> list[HeldItem]:
            rows = db.execute(
                _HELD_SELECT + "WHERE h.org = ? AND r.destroyed_at IS NULL "
                "AND r.review_date IS NULL ORDER BY e.stored_at, h.digest LIMIT ?",
                (org, limit),
            ).fetchall()
            return [_held(r) for r in rows]

        return await self._read(read)

    async def destroyed_items(self, org: OrgId) -> list[HeldItem]:
        """Return the items ``org`` destroyed, oldest destruction first."""

        def read(db: Db) -> list[HeldItem]:
            rows = db.execute(
                _ROW_SELECT + "WHERE r.org = ? AND r.destroyed_at IS NOT NULL "
                "ORDER BY r.destroyed_at, r.digest",
                (org,),
            ).fetchall()
            return [_held(r) for r in rows]

        return await self._read(read)

    # --- holds ------------------------------------------------------------------------------

    async def add_hold(
        self,
        org: OrgId,
        *,
        digest: bytes | None,
        reason: str,
        reference: str,
        placed_by: str,
        now: float,
    ) -> HoldRecord:
        """Place a hold on one envelope ``org`` holds, or on everything (``digest`` None)."""

        def tx(db: Db) -> HoldRecord:
            cursor = db.execute(
                "INSERT INTO retention_holds (org, digest, reason, reference, placed_at, "
                "placed_by) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (org, digest, reason, reference, now, placed_by),
            )
            hold_id = int(cursor.fetchone()[0])
            held = None if digest is None else EnvelopeDigest(digest)
            return HoldRecord(hold_id, org, held, reason, reference, now, placed_by, None, None)

        return await self._tx(tx)

    async def lift_hold(
        self, org: OrgId, hold_id: int, *, lifted_by: str, now: float
    ) -> HoldRecord | None:
        """Lift a hold of ``org``; return it as it now is (None if ``org`` has no such hold).

        Lifting a hold already lifted changes nothing and returns it as it was lifted.
        """

        def tx(db: Db) -> HoldRecord | None:
            db.execute(
                "UPDATE retention_holds SET lifted_at = ?, lifted_by = ? WHERE id = ? "
                "AND org = ? AND lifted_at IS NULL",
                (now, lifted_by, hold_id, org),
            )
            row = db.execute(
                f"SELECT {_HOLD_COLUMNS} FROM retention_holds WHERE id = ? AND org = ?",
                (hold_id, org),
            ).fetchone()
            return None if row is None else _hold(row)

        return await self._tx(tx)

    async def retention_holds(self, org: OrgId, *, active: bool) -> list[HoldRecord]:
        """Return ``org``'s holds in force (``active``), or every hold ever placed."""

        def read(db: Db) -> list[HoldRecord]:
            if active:
                return _active_holds(db, org)
            rows = db.execute(
                f"SELECT {_HOLD_COLUMNS} FROM retention_holds WHERE org = ? ORDER BY id", (org,)
            ).fetchall()
            return [_hold(r) for r in rows]

        return await self._read(read)

    # --- destruction ------------------------------------------------------------------------

    async def destroy_held(
        self, org: OrgId, digest: bytes, decide: Decide
    ) -> tuple[HeldItem, Destruction, bool] | None:
        """Destroy ``org``'s holding of ``digest`` if ``decide`` allows; None if not held.

        In one transaction: ``decide`` sees the item and the holds in force as they are now
        (so a hold placed a moment ago is never missed) and either raises, changing nothing,
        or returns the destruction and the ``destroyed`` ledger event; the row is marked, the
        item's keyed identifier hashes are deleted, the event is appended, and dead
        deliveries of a sent envelope are labelled. Returns the item as it was, the
        destruction, and whether the body file is now held by no one on the node (the caller
        deletes it after this commit).
        """

        def tx(db: Db) -> tuple[HeldItem, Destruction, bool] | None:
            item = _held_item(db, org, digest)
            if item is None:
                return None
            destruction, event = decide(item, _active_holds(db, org))
            changed = db.execute(
                "UPDATE retention SET destroyed_at = ?, destroyed_by = ?, destroyed_rule = ?, "
                "destroyed_reason = ? WHERE org = ? AND digest = ? AND destroyed_at IS NULL",
                (destruction.at, destruction.by, destruction.rule, destruction.reason, org,
                 digest),
            )  # fmt: skip
            if changed.rowcount != 1:
                raise RuntimeError("the retention row changed during destruction")
            db.execute(
                "DELETE FROM subject_index WHERE org = ? AND item = ? "
                "AND direction IN ('sent', 'received')",
                (org, digest.hex()),
            )
            db.execute("DELETE FROM received_index WHERE owner = ? AND digest = ?", (org, digest))
            if item.direction == "sent":
                deliveries = outbox_rows(
                    db,
                    "envelope_digest = ? AND origin = ? AND kind = 'envelope'",
                    (digest, org),
                )
                step_all(db, deliveries, machine.EnvelopeDestroyed(), destruction.at)
                # The sender's own copy goes with it; its file is then a leftover.
                forget_own_copy(db, org, digest)
            append_ledger(db, [event])
            return item, destruction, bool(_unreferenced(db, digest))

        return await self._tx(tx)

    async def unreferenced_bodies(self) -> list[bytes]:
        """Return the digests of destroyed envelopes no organisation on the node still holds.

        Their body files must not exist; a crash between a destruction's commit and the file's
        deletion leaves one behind, which the node deletes when it starts.
        """
        return await self._read(_unreferenced)
