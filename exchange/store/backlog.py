"""The outbox's backlog by destination, kept by the database itself and read once per commit.

The backlog is the number of envelope items each destination has not yet been given: those
``queued``, ``attempting`` or waiting to retry (``retry-wait``). Receipts and staff mails are
not counted. The count lives in a temporary table of the store's writing connection, kept by
temporary triggers on ``outbox``: every insert, change of state and deletion of an envelope
item adjusts it inside the same transaction, so a write rolled back (its savepoint, or a
whole group commit) takes its change to the count with it, and no path that writes the
outbox can forget it. After each commit the store reads the few rows of that table into
memory (:func:`read_backlog`); a submission's busy check (``exchange.service.busy``) then
costs a dictionary lookup, never a query.

Nothing here is stored in the database file: the table and triggers belong to the
connection, made again from the outbox each time the store is opened (:func:`track_backlog`).
The triggers see only the node's own writes: when another process has changed the database
(a command run beside the node; SQLite's ``data_version`` says so), the next group commit
counts the outbox afresh (:func:`recount_backlog`) before its writes.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from exchange.keys.ids import OrgId

#: The states of an envelope item not yet given to its destination.
_WAITING: Final = "('queued', 'attempting', 'retry-wait')"

#: Adds ``{step}`` to the count of ``{dest}`` (inside a trigger: names unqualified).
_ADD: Final = (
    "INSERT INTO outbox_backlog (destination, waiting) VALUES ({dest}, {step}) "
    "ON CONFLICT (destination) DO UPDATE SET waiting = waiting + excluded.waiting"
)
_TABLE: Final = (
    "CREATE TEMP TABLE outbox_backlog "
    "(destination TEXT PRIMARY KEY, waiting INTEGER NOT NULL) WITHOUT ROWID"
)
_FILL: Final = (
    "INSERT INTO temp.outbox_backlog (destination, waiting) SELECT destination, COUNT(*) "
    f"FROM main.outbox WHERE kind = 'envelope' AND state IN {_WAITING} GROUP BY destination"
)
_ON_INSERT: Final = (
    "CREATE TEMP TRIGGER outbox_backlog_insert AFTER INSERT ON main.outbox "
    f"WHEN NEW.kind = 'envelope' AND NEW.state IN {_WAITING} "
    f"BEGIN {_ADD.format(dest='NEW.destination', step='1')}; END"
)
_ON_UPDATE: Final = (
    "CREATE TEMP TRIGGER outbox_backlog_update AFTER UPDATE OF state ON main.outbox "
    f"WHEN NEW.kind = 'envelope' AND (OLD.state IN {_WAITING}) <> (NEW.state IN {_WAITING}) "
    "BEGIN "
    + _ADD.format(
        dest="NEW.destination", step=f"CASE WHEN NEW.state IN {_WAITING} THEN 1 ELSE -1 END"
    )
    + "; END"
)
_ON_DELETE: Final = (
    "CREATE TEMP TRIGGER outbox_backlog_delete AFTER DELETE ON main.outbox "
    f"WHEN OLD.kind = 'envelope' AND OLD.state IN {_WAITING} "
    f"BEGIN {_ADD.format(dest='OLD.destination', step='-1')}; END"
)
_STATEMENTS: Final = (_TABLE, _FILL, _ON_INSERT, _ON_UPDATE, _ON_DELETE)


def data_version(db: sqlite3.Connection) -> int:
    """Return ``db``'s data version: it changes when another connection commits a change."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


def recount_backlog(db: sqlite3.Connection) -> None:
    """Count the backlog afresh from the outbox, inside the caller's write transaction.

    For changes the triggers did not see: those another process committed (a command such
    as ``exchange outbox requeue`` run beside the node).
    """
    db.execute("DELETE FROM temp.outbox_backlog")
    db.execute(_FILL)


def track_backlog(db: sqlite3.Connection) -> None:
    """Count the outbox's backlog in ``db``'s temporary table from now on (once per opening)."""
    db.execute("PRAGMA temp_store = MEMORY")
    # Deferred: only the temporary objects are written, so a command opening the store
    # beside a running node does not wait for the node's writes.
    db.execute("BEGIN")
    try:
        for statement in _STATEMENTS:
            db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def read_backlog(db: sqlite3.Connection) -> dict[OrgId, int]:
    """Return the backlog by destination as of the last commit (destinations with none left out)."""
    rows = db.execute("SELECT destination, waiting FROM temp.outbox_backlog WHERE waiting > 0")
    return {OrgId(destination): int(waiting) for destination, waiting in rows}
