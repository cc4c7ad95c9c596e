"""A damaged store, found and named: the start-up check and damaged values.

SQLite reports damage in three ways the node must tell apart from its own bugs:

- the file is not a database, or a page is malformed (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``):
  :func:`damage_of` turns that error into :class:`StoreDamagedError`;
- ``PRAGMA quick_check`` at start-up finds a broken page or index (:func:`quick_check`);
- a text value that is not UTF-8 passes both (SQLite does not look inside values) and fails
  only when read, with an error quoting the bytes: :func:`damage_of` reports it as damage
  naming the column only, never as an internal error, and never quotes the value.

The error names the file and points to the restore procedure in docs/node.md; it never
quotes a value. What a kill can leave among the bodies is swept by the bodies' own store
(:meth:`exchange.store.blobs.Blobs.sweep`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

#: SQLite's primary result codes for a damaged file (the low byte of an extended code).
SQLITE_CORRUPT: Final = 11
SQLITE_NOTADB: Final = 26

#: Where the operator reads what to do (docs/node.md).
RESTORE_HINT: Final = "restore it from the latest backup (docs/node.md, 'Restoring from a backup')"

#: How many of quick_check's findings are kept for the message (it can list thousands).
MAX_FINDINGS: Final = 3

#: How Python's sqlite3 begins the error for a TEXT value that is not UTF-8.
_NOT_UTF8: Final = "Could not decode to UTF-8 column "


class StoreDamagedError(Exception):
    """The node's database or a stored body is damaged; the message names the file only."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        super().__init__(f"the node's database {path} is damaged ({what}); {RESTORE_HINT}")


def is_damage(exc: BaseException) -> bool:
    """Return whether an SQLite error says the file itself is damaged."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in {SQLITE_CORRUPT, SQLITE_NOTADB}
    # Errors raised before SQLite answers (no code) are not about the file.
    return False


def damage_of(exc: BaseException, path: Path) -> StoreDamagedError | None:
    """Return the damage an SQLite error reports, or None if it reports something else."""
    if isinstance(exc, StoreDamagedError):
        return exc
    if is_damage(exc):
        code = getattr(exc, "sqlite_errorname", "SQLITE_CORRUPT")
        return StoreDamagedError(path, f"SQLite reports {code}")
    if isinstance(exc, sqlite3.OperationalError):
        # Python's sqlite3 says "Could not decode to UTF-8 column 'name' with text '...'".
        message = str(exc)
        if message.startswith(_NOT_UTF8):
            column = message[len(_NOT_UTF8) :].split("'")[:2]
            name = column[1] if len(column) == 2 and column[1].isidentifier() else "unknown"
            return StoreDamagedError(path, f"a stored text value in column {name} is not UTF-8")
    return None


def quick_check(db: sqlite3.Connection, path: Path) -> None:
    """Run ``PRAGMA quick_check``; raise :class:`StoreDamagedError` unless it says ``ok``.

    SQLite's findings name pages, tables and indexes ("row 5 missing from index ..."),
    never values, so the first few are kept for the operator.
    """
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        damage = damage_of(exc, path)
        if damage is None:
            raise
        raise damage from None
    findings = [str(row[0]) for row in rows]
    if findings == ["ok"]:
        return
    shown = "; ".join(_plain(f) for f in findings[:MAX_FINDINGS])
    more = len(findings) - MAX_FINDINGS
    if more > 0:
        shown += f"; and {more} more"
    raise StoreDamagedError(path, f"quick_check found: {shown}")


def _plain(finding: str) -> str:
    """Return one finding on one line, bounded (it names structure, never values)."""
    line = " ".join(finding.split())
    return line if len(line) <= 200 else line[:197] + "..."
