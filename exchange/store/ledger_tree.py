"""The ledger's SQL: appending events with the subtrees they complete, and reading subtrees.

The log is three tables (docs/ledger.md §7):

- ``ledger``: one row per event (``idx``, the statement, its leaf hash, the envelope it
  names); the leaf hashes are level 0 of the tree;
- ``ledger_nodes``: the hash of every complete subtree above the leaves, ``(level, idx)``
  covering leaves ``idx * 2**level`` to ``(idx + 1) * 2**level - 1``, written once by the
  append that completes it;
- ``ledger_head``: one row holding the log's size.

:func:`append_ledger` runs inside the transaction of the change the events record. It first
adds to the head's size (``UPDATE ... RETURNING``), which serialises appends: in
PostgreSQL the row stays locked until the transaction ends, so a second process's append
waits and then numbers its events after these; SQLite has one writer anyway. The new
indexes come from that result, never from ``MAX(idx)``. A transaction that fails leaves no
event, node or size change behind. The tree arithmetic is :mod:`exchange.ledger.subtrees`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final

from exchange.ledger.errors import LedgerError, StoredTreeError
from exchange.ledger.events import EventType, decode_event
from exchange.ledger.merkle import SubtreeKey, leaf_hash
from exchange.ledger.subtrees import append_keys, completed_subtrees
from exchange.store.sql import Db

#: Leaves the migration reads at a time when it builds the tree of an existing log.
BACKFILL_CHUNK: Final = 8192


def _event_envelope(event: bytes) -> bytes | None:
    """Return the envelope digest an event names, for the index (None if it names none).

    An ``account`` event's digest field is a commitment to an account, not an envelope.
    """
    try:
        decoded = decode_event(event)
    except LedgerError:
        return None
    return None if decoded.type is EventType.ACCOUNT else decoded.envelope_digest


def _grow(db: Db, count: int) -> int:
    """Add ``count`` to the log's size, locking the head until commit; return the old size."""
    row = db.execute(
        "UPDATE ledger_head SET size = size + ? WHERE one = 1 RETURNING size", (count,)
    ).fetchone()
    if row is None:
        raise StoredTreeError("the ledger has no head row: the store's schema is damaged")
    return int(row[0]) - count


def read_subtrees(db: Db, keys: Collection[SubtreeKey]) -> dict[SubtreeKey, bytes]:
    """Return the stored hashes of ``keys`` (those found) in one statement.

    Level 0 comes from the events' leaf hashes, the rest from ``ledger_nodes``.
    """
    leaves = [index for level, index in keys if level == 0]
    nodes = [(level, index) for level, index in keys if level > 0]
    parts: list[str] = []
    params: list[int] = []
    if leaves:
        marks = ", ".join("?" * len(leaves))
        parts.append(
            f"SELECT 0 AS level, idx, leaf_hash AS hash FROM ledger WHERE idx IN ({marks})"
        )
        params += leaves
    if nodes:
        where = " OR ".join("(level = ? AND idx = ?)" for _ in nodes)
        parts.append(f"SELECT level, idx, hash FROM ledger_nodes WHERE {where}")
        params += [value for key in nodes for value in key]
    if not parts:
        return {}
    rows = db.execute(" UNION ALL ".join(parts), params).fetchall()
    return {(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}


def store_subtrees(db: Db, start: int, leaves: Sequence[bytes]) -> None:
    """Write the subtrees that the leaves appended at ``start`` complete (above level 0)."""
    frontier = read_subtrees(db, append_keys(start, len(leaves)))
    db.executemany(
        "INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)",
        completed_subtrees(start, frontier, leaves),
    )


def append_ledger(db: Db, events: Sequence[bytes]) -> None:
    """Append encoded ledger events to the log in ``db``'s transaction.

    On a connection that appends at commit (:attr:`~exchange.store.sql.Db.ledger_at_commit`,
    PostgreSQL's), the events are kept and appended as the transaction's last statements,
    so the head's row lock, which orders every append of every process, is held for the
    commit alone; otherwise they are appended now (:func:`append_ledger_now`). Either way
    they commit with the change they describe, or not at all.
    """
    if not events:
        return
    if db.ledger_at_commit is not None:
        db.ledger_at_commit.extend(events)
        return
    append_ledger_now(db, events)


def append_ledger_now(db: Db, events: Sequence[bytes]) -> int:
    """Append events at once, with their leaf and subtree hashes; return the first's index."""
    if not events:
        return ledger_size(db)
    start = _grow(db, len(events))
    leaves = [leaf_hash(e) for e in events]
    db.executemany(
        "INSERT INTO ledger (idx, event, leaf_hash, envelope_digest) VALUES (?, ?, ?, ?)",
        [
            (start + i, e, leaf, _event_envelope(e))
            for i, (e, leaf) in enumerate(zip(events, leaves, strict=True))
        ],
    )
    store_subtrees(db, start, leaves)
    return start


def ledger_size(db: Db) -> int:
    """Return the log's size from its head."""
    row = db.execute("SELECT size FROM ledger_head WHERE one = 1").fetchone()
    if row is None:
        raise StoredTreeError("the ledger has no head row: the store's schema is damaged")
    return int(row[0])


def backfill_ledger_tree(db: Db) -> None:
    """Migration step: write the head and every subtree of the log already stored.

    Reads the stored leaf hashes in index order, a chunk at a time (memory stays bounded by
    the chunk), and writes what each chunk completes exactly as appends would have.
    """
    size = int(db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
    for start in range(0, size, BACKFILL_CHUNK):
        end = min(size, start + BACKFILL_CHUNK)
        rows = db.execute(
            "SELECT idx, leaf_hash FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        ).fetchall()
        if [int(r[0]) for r in rows] != list(range(start, end)):
            raise StoredTreeError(
                f"the ledger's {size} events are not numbered 0 to {size - 1}: run "
                "'exchange ledger verify' on a copy to see what changed"
            )
        store_subtrees(db, start, [bytes(r[1]) for r in rows])
    db.execute("INSERT INTO ledger_head (one, size) VALUES (1, ?)", (size,))
