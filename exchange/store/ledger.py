"""The node's ledger in the store: events, the stored Merkle tree and signed checkpoints.

A table group of the store over ``ledger``, ``ledger_nodes``, ``ledger_head`` and
``checkpoints`` (the SQL of the first three is :mod:`exchange.store.ledger_tree`). Every
read runs in one read transaction and costs O(log n) rows for a root or a proof, so the
node's :class:`~exchange.service.ledger.NodeLedger` keeps nothing of the log in memory and
any number of processes can share one ledger.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from exchange.ledger.merkle import SubtreeKey
from exchange.ledger.subtrees import StoredSubtree
from exchange.model import EventHash
from exchange.store.ledger_tree import append_ledger_now, ledger_size, read_subtrees
from exchange.store.rows import Tables
from exchange.store.sql import Db


def read_events(db: Db, start: int, end: int) -> list[bytes]:
    """Return the events with indexes ``start <= i < end``, in order."""
    rows = db.execute(
        "SELECT event FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
    ).fetchall()
    return [bytes(r[0]) for r in rows]


def read_stored_tree(db: Db) -> tuple[int, list[StoredSubtree]]:
    """Return the head's size and every stored subtree, leaves (level 0) included."""
    rows = db.execute(
        "SELECT 0 AS level, idx, leaf_hash AS hash FROM ledger UNION ALL "
        "SELECT level, idx, hash FROM ledger_nodes ORDER BY 1, 2"
    ).fetchall()
    return ledger_size(db), [(int(r[0]), int(r[1]), bytes(r[2])) for r in rows]


def read_checkpoints(db: Db) -> list[tuple[int, bytes]]:
    """Return every checkpoint ``(size, signed note)``, oldest first."""
    rows = db.execute("SELECT size, note FROM checkpoints ORDER BY size")
    return [(int(r[0]), bytes(r[1])) for r in rows]


class LedgerTables(Tables):
    """The ledger's events, its stored subtrees and its checkpoints."""

    async def append_ledger(self, events: Sequence[bytes]) -> int:
        """Append events on their own; return the new size."""

        def tx(db: Db) -> int:
            append_ledger_now(db, events)
            return ledger_size(db)

        return await self._tx(tx)

    async def ledger_events(self, start: int, end: int) -> list[bytes]:
        """Return the events with indexes ``start <= i < end``, in order."""
        return await self._read(lambda db: read_events(db, start, end))

    async def ledger_size(self) -> int:
        """Return the number of events in the ledger (its head: no count of the rows)."""
        return await self._read(ledger_size)

    async def ledger_subtrees(self, keys: Collection[SubtreeKey]) -> dict[SubtreeKey, bytes]:
        """Return the stored hashes of the complete subtrees ``keys`` (those that exist).

        :mod:`exchange.ledger.subtrees` says which a root, an inclusion proof or a
        consistency proof needs: O(log n) rows, read in one statement.
        """
        return await self._read(lambda db: read_subtrees(db, keys))

    async def ledger_stored_tree(self) -> tuple[int, list[StoredSubtree]]:
        """Return the head's size and every stored subtree, leaves (level 0) included.

        For the whole-log audit (``exchange ledger verify``), which recomputes them from the
        events: O(n) rows, in one read transaction, ordered by level then index.
        """
        return await self._read(read_stored_tree)

    async def ledger_events_for(self, envelope_digest: bytes) -> list[tuple[int, bytes]]:
        """Return ``(index, event)`` for every event naming the envelope, in log order."""

        def read(db: Db) -> list[tuple[int, bytes]]:
            rows = db.execute(
                "SELECT idx, event FROM ledger WHERE envelope_digest = ? ORDER BY idx",
                (envelope_digest,),
            ).fetchall()
            return [(int(r[0]), bytes(r[1])) for r in rows]

        return await self._read(read)

    async def ledger_index_of(self, event_hash: EventHash) -> int | None:
        """Return the index of the first event whose leaf hash is ``event_hash``."""

        def read(db: Db) -> int | None:
            row = db.execute(
                "SELECT MIN(idx) FROM ledger WHERE leaf_hash = ?", (event_hash,)
            ).fetchone()
            return None if row[0] is None else int(row[0])

        return await self._read(read)

    async def save_checkpoint(self, size: int, note: bytes, now: float) -> None:
        """Keep a signed checkpoint (a second one of the same size is ignored)."""

        def tx(db: Db) -> None:
            db.execute(
                "INSERT INTO checkpoints (size, note, signed_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (size, note, now),
            )

        await self._tx(tx)

    async def checkpoints(self) -> list[tuple[int, bytes]]:
        """Return every checkpoint, oldest first."""
        return await self._read(read_checkpoints)

    async def last_checkpoint(self) -> tuple[int, bytes] | None:
        """Return the checkpoint of the largest size (the last signed), or None."""

        def read(db: Db) -> tuple[int, bytes] | None:
            row = db.execute(
                "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
            ).fetchone()
            return None if row is None else (int(row[0]), bytes(row[1]))

        return await self._read(read)

    async def checkpoint_of_size(self, size: int) -> bytes | None:
        """Return the signed note of the checkpoint of ``size``, or None if none was stored."""

        def read(db: Db) -> bytes | None:
            row = db.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(read)
