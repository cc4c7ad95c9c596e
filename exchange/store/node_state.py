"""What an organisation's administrator sees of the node's outbox, in the SQLite store.

A table group of :class:`~exchange.store.sqlite.SqliteStore` over the ``outbox``,
``envelopes`` and ``ledger`` tables, always for one origin organisation: on a node with
several tenants, one tenant's administrator never reads or requeues another's items. It
reads counts, states and ledger events; it holds no rules (what counts as a route's recent
failure is :mod:`exchange.service.node_state`'s).
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange.keys.ids import OrgId
from exchange.model import OutboxItem
from exchange.outbox import machine
from exchange.store.rows import OUTBOX_COLUMNS, Tables, outbox_item, outbox_rows, step_all
from exchange.store.sql import Db

#: The outbox kinds that travel over an organisation's routes (staff mail goes by SMTP).
_ROUTED = "('envelope', 'receipt')"


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    """How many of an origin's items for one destination are in one state.

    ``route_kind`` is the kind of route that delivered them (None until one did), and
    ``last_updated`` the latest change among them.
    """

    destination: OrgId
    state: str
    route_kind: str | None
    count: int
    last_updated: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead outbox item with the kind of record its envelope carries (if the node has it)."""

    item: OutboxItem
    record_kind: str | None


class NodeStateTables(Tables):
    """An origin organisation's outbox: summary, dead letters, attempt events, requeue."""

    async def outbox_summary(self, origin: OrgId) -> list[OutboxSummary]:
        """Return ``origin``'s envelopes and receipts going out, counted by destination."""

        def read(db: Db) -> list[OutboxSummary]:
            rows = db.execute(
                "SELECT destination, state, route_kind, COUNT(*), MAX(updated_at) FROM outbox "
                f"WHERE origin = ? AND kind IN {_ROUTED} "
                "GROUP BY destination, state, route_kind ORDER BY destination",
                (origin,),
            )
            return [OutboxSummary(OrgId(r[0]), r[1], r[2], int(r[3]), float(r[4])) for r in rows]

        return await self._read(read)

    async def dead_letters(self, origin: OrgId, limit: int) -> list[DeadLetter]:
        """Return up to ``limit`` of ``origin``'s dead outbox items, the latest first."""
        columns = ", ".join(f"o.{c.strip()}" for c in OUTBOX_COLUMNS.split(","))

        def read(db: Db) -> list[DeadLetter]:
            rows = db.execute(
                f"SELECT {columns}, e.record_kind AS record_kind FROM outbox o "
                "LEFT JOIN envelopes e ON e.digest = o.envelope_digest "
                "WHERE o.origin = ? AND o.state = 'dead' ORDER BY o.updated_at DESC, o.id "
                "LIMIT ?",
                (origin, limit),
            )
            return [DeadLetter(outbox_item(r), r["record_kind"]) for r in rows]

        return await self._read(read)

    async def attempt_events(self, origin: OrgId, since: float) -> list[bytes]:
        """Return the ledger events of envelopes ``origin`` sent that changed since ``since``."""

        def read(db: Db) -> list[bytes]:
            rows = db.execute(
                "SELECT l.event FROM ledger l WHERE l.envelope_digest IN (SELECT "
                "envelope_digest FROM outbox WHERE origin = ? AND kind = 'envelope' AND "
                "updated_at >= ?) ORDER BY l.idx",
                (origin, since),
            )
            return [bytes(r[0]) for r in rows]

        return await self._read(read)

    async def requeue_dead_of(
        self, origin: OrgId, now: float, envelope_digest: bytes | None = None
    ) -> int:
        """Give ``origin``'s dead items (of one envelope, or all) a fresh start; how many."""

        def tx(db: Db) -> int:
            which = "origin = ? AND state = 'dead'"
            items = (
                outbox_rows(db, which, (origin,))
                if envelope_digest is None
                else outbox_rows(db, which + " AND envelope_digest = ?", (origin, envelope_digest))
            )
            return len(step_all(db, items, machine.RequeueDead(), now))

        return await self._tx(tx)
