"""Recall, threads and corrections in the SQLite store (migration 5), as a mixin of SqliteStore.

**Recall, sender side.** :meth:`RecallTables.request_recall` applies the outbox machine's
``RecallRequested`` (:mod:`exchange.outbox.machine`) to every outbox item of a sent
envelope, in one transaction: what has not left the node (``queued``, ``retry-wait``,
``dead``) becomes ``recalled`` and every item is marked (``recall_requested_at``): the
worker never claims a marked item again, an attempt in flight that does not hand it over
ends it ``recalled``, and a MESH non-delivery report no longer puts it back in the queue.
The outcome for each recipient is kept in ``recalls``.

**Recall, recipient side.** :meth:`RecallTables.recall_inbox` marks an inbox item ``recalled``
only while it is still ``delivered``; the first opening (``SqliteStore.record_opening``) moves it
to ``opened`` only while it is still ``delivered``. Both are single transactions on the store's one
thread, so exactly one of a recall and a first opening wins.

**Threads.** ``thread_links`` links an envelope to the one it replies to or corrects, per
organisation. Items sent are linked when they are stored (:meth:`RecallTables._insert_link`,
called by ``record_submission``); items received when they are first opened, since the
link travels sealed inside.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final, TypeVar, cast

from exchange.keys.ids import OrgId
from exchange.model import (
    HeldEnvelope,
    InboxRecall,
    Opening,
    RecallRow,
    ThreadLink,
)
from exchange.outbox import machine
from exchange.store.ledger_tree import append_ledger
from exchange.store.rows import Tables, outbox_rows, step_all
from exchange.store.sql import Db, Row

T = TypeVar("T")

#: Outcomes that a repeated recall does not try again.
FINAL_OUTCOMES: Final = frozenset({"recalled", "too-late", "not-recallable", "expired"})
#: Longest walk up or down a thread, and most items one thread view holds.
MAX_THREAD_DEPTH: Final = 100
MAX_THREAD_ITEMS: Final = 500


_RECALL_COLUMNS: Final = (
    "org, digest, recipient, requested_by, requested_at, reason, reason_code, outcome, "
    "route, detail, at, opened_by_role, updated_at"
)


def _recall(row: Row) -> RecallRow:
    return RecallRow(
        org=OrgId(row["org"]),
        digest=row["digest"],
        recipient=OrgId(row["recipient"]),
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
        reason=row["reason"],
        reason_code=row["reason_code"],
        outcome=row["outcome"],
        route=row["route"],
        detail=row["detail"],
        at=row["at"],
        opened_by_role=row["opened_by_role"],
        updated_at=row["updated_at"],
    )


class RecallTables(Tables):
    """Recall, thread and correction methods of :class:`~exchange.store.sqlite.SqliteStore`."""

    # --- recall: the sender ------------------------------------------------------------------

    async def request_recall(self, origin: OrgId, digest: bytes, now: float) -> dict[OrgId, str]:
        """Cancel what has not left; mark the rest recalled. Return each recipient's state.

        Items ``queued``, ``retry-wait`` or ``dead`` become ``recalled`` at once; every item
        of the envelope gets ``recall_requested_at`` (kept from an earlier recall).
        """

        def tx(db: Db) -> dict[OrgId, str]:
            items = outbox_rows(
                db,
                "kind = 'envelope' AND envelope_digest = ? AND origin = ?",
                (digest, origin),
            )
            step_all(db, items, machine.RecallRequested(), now)
            rows = db.execute(
                "SELECT destination, state FROM outbox WHERE kind = 'envelope' "
                "AND envelope_digest = ? AND origin = ?",
                (digest, origin),
            ).fetchall()
            return {OrgId(r[0]): str(r[1]) for r in rows}

        return await self._tx(tx)

    async def outbox_states(self, origin: OrgId, digest: bytes) -> dict[OrgId, str]:
        """Return the state of each recipient's outbox item of a sent envelope."""

        def read(db: Db) -> dict[OrgId, str]:
            rows = db.execute(
                "SELECT destination, state FROM outbox WHERE kind = 'envelope' "
                "AND envelope_digest = ? AND origin = ?",
                (digest, origin),
            ).fetchall()
            return {OrgId(r[0]): str(r[1]) for r in rows}

        return await self._read(read)

    async def record_recalls(
        self, rows: Sequence[RecallRow], ledger_events: Sequence[bytes]
    ) -> None:
        """Keep each recipient's recall outcome (replacing an earlier one) with ledger events."""

        def tx(db: Db) -> None:
            db.executemany(
                f"INSERT INTO recalls ({_RECALL_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (org, digest, recipient) DO UPDATE SET "
                "requested_by = excluded.requested_by, requested_at = excluded.requested_at, "
                "reason = excluded.reason, reason_code = excluded.reason_code, "
                "outcome = excluded.outcome, route = excluded.route, detail = excluded.detail, "
                "at = excluded.at, opened_by_role = excluded.opened_by_role, "
                "updated_at = excluded.updated_at",
                [
                    (
                        r.org, r.digest, r.recipient, r.requested_by, r.requested_at, r.reason,
                        r.reason_code, r.outcome, r.route, r.detail, r.at, r.opened_by_role,
                        r.updated_at,
                    )
                    for r in rows
                ],
            )  # fmt: skip
            append_ledger(db, ledger_events)

        await self._tx(tx)

    async def recalls_for(
        self, org: OrgId, digests: Sequence[bytes]
    ) -> dict[bytes, list[RecallRow]]:
        """Return the recall outcomes of ``org``'s sent envelopes, by digest."""

        def read(db: Db) -> dict[bytes, list[RecallRow]]:
            found: dict[bytes, list[RecallRow]] = {}
            for digest in digests:
                rows = db.execute(
                    f"SELECT {_RECALL_COLUMNS} FROM recalls WHERE org = ? AND digest = ? "
                    "ORDER BY recipient",
                    (org, digest),
                ).fetchall()
                if rows:
                    found[digest] = [_recall(r) for r in rows]
            return found

        return await self._read(read)

    # --- recall: the recipient -----------------------------------------------------------

    async def recall_inbox(
        self, owner: OrgId, digest: bytes, *, now: float, ledger_events: Sequence[bytes]
    ) -> InboxRecall | None:
        """Recall ``owner``'s inbox item if it is still ``delivered``; None if not held.

        In the same transaction, staff notices not yet mailed for it are cancelled and the
        ledger events are appended (only if this call recalled it: a repeat changes nothing).
        """

        def tx(db: Db) -> InboxRecall | None:
            cursor = db.execute(
                "UPDATE inbox SET state = 'recalled', recalled_at = ?, updated_at = ? "
                "WHERE owner = ? AND digest = ? AND state = 'delivered'",
                (now, now, owner, digest),
            )
            changed = cursor.rowcount == 1
            if changed:
                notices = outbox_rows(
                    db,
                    "kind = 'notice' AND envelope_digest = ? AND destination = ?",
                    (digest, owner),
                )
                step_all(db, notices, machine.NoticeWithdrawn(), now)
                append_ledger(db, ledger_events)
            row = db.execute(
                "SELECT state, recalled_at, opened_at, opened_by_role, updated_at FROM inbox "
                "WHERE owner = ? AND digest = ?",
                (owner, digest),
            ).fetchone()
            if row is None:
                return None
            opened_at = row["opened_at"]
            if opened_at is None and row["state"] not in {"delivered", "recalled"}:
                # Decided (acknowledged or rejected) without an opening on record.
                opened_at = row["updated_at"]
            return InboxRecall(
                state=row["state"],
                changed=changed,
                recalled_at=row["recalled_at"],
                opened_at=opened_at,
                opened_by_role=row["opened_by_role"],
            )

        return await self._tx(tx)

    async def body_referenced(self, digest: bytes) -> bool:
        """Return whether any organisation on this node still needs the envelope's body."""

        def read(db: Db) -> bool:
            # A copy destroyed under retention (exchange/store/retention.py) needs it no more.
            destroyed = (
                "NOT EXISTS (SELECT 1 FROM retention r WHERE r.org = {org} "
                "AND r.digest = {digest} AND r.destroyed_at IS NOT NULL)"
            )
            inbox = db.execute(
                "SELECT 1 FROM inbox i WHERE i.digest = ? AND i.state != 'recalled' AND "
                + destroyed.format(org="i.owner", digest="i.digest")
                + " LIMIT 1",
                (digest,),
            ).fetchone()
            sent = db.execute(
                "SELECT 1 FROM sent s WHERE s.digest = ? AND "
                + destroyed.format(org="s.sender", digest="s.digest")
                + " LIMIT 1",
                (digest,),
            ).fetchone()
            return inbox is not None or sent is not None

        return await self._read(read)

    async def inbox_opened(self, owner: OrgId, digests: Sequence[bytes]) -> dict[bytes, Opening]:
        """Return (opened_at, opened_by_role, recalled_at) of ``owner``'s inbox items."""

        def read(db: Db) -> dict[bytes, Opening]:
            found: dict[bytes, Opening] = {}
            for digest in digests:
                row = db.execute(
                    "SELECT opened_at, opened_by_role, recalled_at FROM inbox "
                    "WHERE owner = ? AND digest = ?",
                    (owner, digest),
                ).fetchone()
                if row is not None:
                    found[digest] = (row[0], row[1], row[2])
            return found

        return await self._read(read)

    # --- threads -------------------------------------------------------------------------------

    @staticmethod
    def _insert_link(
        db: Db,
        link: ThreadLink,
        digest: bytes,
        *,
        source: str,
        now: float,
    ) -> bool:
        """Link ``digest`` to its parent for ``link.org`` (once); True if new.

        For a sent item the parent is also noted on its ``sent`` and register rows.
        """
        cursor = db.execute(
            "INSERT INTO thread_links (org, digest, parent, relation, source, "
            "linked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (link.org, digest, link.parent, link.relation, source, now),
        )
        if source == "sent":
            db.execute(
                "UPDATE sent SET in_reply_to = ? WHERE digest = ? AND sender = ?",
                (link.parent, digest, link.org),
            )
            db.execute(
                "UPDATE register SET in_reply_to = ?, corrects = ? "
                "WHERE envelope_digest = ? AND org = ?",
                (
                    link.parent,
                    link.parent if link.relation == "correction" else None,
                    digest,
                    link.org,
                ),
            )
        return cursor.rowcount == 1

    async def held_envelope(self, org: OrgId, digest: bytes) -> HeldEnvelope | None:
        """Return the envelope ``org`` sent or received by ``digest``, or None."""

        def read(db: Db) -> HeldEnvelope | None:
            row = db.execute(
                "SELECT e.sender, e.recipients FROM sent s JOIN envelopes e "
                "ON e.digest = s.digest WHERE s.sender = ? AND s.digest = ?",
                (org, digest),
            ).fetchone()
            if row is not None:
                recipients = tuple(OrgId(r) for r in json.loads(row[1]))
                return HeldEnvelope("sent", OrgId(row[0]), recipients, None)
            row = db.execute(
                "SELECT e.sender, e.recipients, i.state FROM inbox i JOIN envelopes e "
                "ON e.digest = i.digest WHERE i.owner = ? AND i.digest = ?",
                (org, digest),
            ).fetchone()
            if row is None:
                return None
            recipients = tuple(OrgId(r) for r in json.loads(row[1]))
            return HeldEnvelope("received", OrgId(row[0]), recipients, str(row[2]))

        return await self._read(read)

    async def thread_links(
        self, org: OrgId, digest: bytes
    ) -> tuple[bytes, dict[bytes, tuple[bytes, str]]]:
        """Return the thread's root and every link under it: ``{digest: (parent, relation)}``.

        The root is found by following parents up from ``digest`` (at most
        :data:`MAX_THREAD_DEPTH` steps, stopping at a cycle); the links are then collected
        down from the root, breadth first, at most :data:`MAX_THREAD_ITEMS`.
        """

        def read(db: Db) -> tuple[bytes, dict[bytes, tuple[bytes, str]]]:
            root, seen = digest, {digest}
            for _ in range(MAX_THREAD_DEPTH):
                row = db.execute(
                    "SELECT parent FROM thread_links WHERE org = ? AND digest = ?", (org, root)
                ).fetchone()
                if row is None or bytes(row[0]) in seen:
                    break
                root = bytes(row[0])
                seen.add(root)
            links: dict[bytes, tuple[bytes, str]] = {}
            frontier, visited = [root], {root}
            while frontier and len(links) < MAX_THREAD_ITEMS:
                marks = ", ".join("?" for _ in frontier)
                rows = db.execute(
                    "SELECT digest, parent, relation FROM thread_links WHERE org = ? "
                    f"AND parent IN ({marks}) ORDER BY linked_at, digest",
                    (org, *frontier),
                ).fetchall()
                frontier = []
                for raw, parent, relation in rows:
                    child = bytes(raw)
                    if child in visited or len(links) >= MAX_THREAD_ITEMS:
                        continue
                    visited.add(child)
                    links[child] = (bytes(parent), str(relation))
                    frontier.append(child)
            return root, links

        return await self._read(read)

    async def links_of(
        self, org: OrgId, digests: Sequence[bytes]
    ) -> dict[bytes, tuple[bytes, str]]:
        """Return the parent and relation of each of ``org``'s items that has one."""

        def read(db: Db) -> dict[bytes, tuple[bytes, str]]:
            found: dict[bytes, tuple[bytes, str]] = {}
            for digest in digests:
                row = db.execute(
                    "SELECT parent, relation FROM thread_links WHERE org = ? AND digest = ?",
                    (org, digest),
                ).fetchone()
                if row is not None:
                    found[digest] = (bytes(row[0]), str(row[1]))
            return found

        return await self._read(read)

    async def corrections_of(
        self, org: OrgId, digests: Sequence[bytes]
    ) -> dict[bytes, list[bytes]]:
        """Return, for each of ``org``'s items, the items that correct it (oldest first)."""

        def read(db: Db) -> dict[bytes, list[bytes]]:
            found: dict[bytes, list[bytes]] = {}
            for digest in digests:
                rows = db.execute(
                    "SELECT digest FROM thread_links WHERE org = ? AND parent = ? "
                    "AND relation = 'correction' ORDER BY linked_at, digest",
                    (org, digest),
                ).fetchall()
                if rows:
                    found[digest] = [bytes(r[0]) for r in rows]
            return found

        return await self._read(read)

    async def register_purpose(
        self, org: OrgId, digest: bytes
    ) -> tuple[str, list[str], str | None] | None:
        """Return the (purpose, categories, lawful basis) ``org`` registered for a sent item."""

        def read(db: Db) -> tuple[str, list[str], str | None] | None:
            row = db.execute(
                "SELECT purpose, categories, lawful_basis FROM register "
                "WHERE org = ? AND envelope_digest = ?",
                (org, digest),
            ).fetchone()
            if row is None:
                return None
            return str(row[0]), cast(list[str], json.loads(row[1])), row[2]

        return await self._read(read)
