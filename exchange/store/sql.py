"""The SQL both stores share: one connection shape for SQLite and PostgreSQL.

The table groups (``exchange.store.accounts``, ``exchange.store.register``, ...) run their
statements as plain functions of a :class:`Db` inside one transaction, so the same code, and
the same SQL, serves the embedded SQLite store and the PostgreSQL one
(``exchange.store.postgres``). The SQL is written once, in the subset both engines read the
same way:

- ``?`` placeholders (the PostgreSQL connection numbers them);
- ``INSERT ... ON CONFLICT DO NOTHING`` / ``DO UPDATE``, never ``INSERT OR IGNORE``;
- ``RETURNING`` for a new row's id, never ``lastrowid``;
- ``CAST(SUM(x) AS BIGINT)`` (PostgreSQL sums integers as ``numeric``), ``COALESCE`` not
  ``IFNULL``, ``GREATEST``/``LEAST`` only behind :attr:`Db.dialect`;
- integer flags compared explicitly (``disabled = 1``), never used bare as a condition;
- a row lock that only PostgreSQL needs (``FOR UPDATE``) added when
  :attr:`Db.dialect` is ``postgresql`` (SQLite's writer already holds the whole database).

A constraint broken by a statement raises :data:`IntegrityError` on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, Literal, Protocol

#: A ``LIMIT`` both engines read as "every row" (SQLite's ``-1`` is an error in PostgreSQL).
NO_LIMIT: Final = 2**62

#: Which engine a connection talks to.
Dialect = Literal["sqlite", "postgresql"]

#: The error a statement raises, on either engine, when it breaks a constraint (a unique
#: key, a foreign key, NOT NULL). The PostgreSQL connection raises a subclass of it.
IntegrityError = sqlite3.IntegrityError


class StoreTooNewError(Exception):
    """The database was migrated by a newer version of the node than this one."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the node's database is at schema version {found}, made by a newer version of the "
            f"node (this one knows versions up to {known}); run that newer version, or restore "
            "the backup taken before the upgrade (docs/node.md, 'Before an upgrade')"
        )


class Row(Protocol):
    """A result row: its columns by position or by name."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> Iterable[str]:
        """Return the column names."""
        ...


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int:
        """How many rows an INSERT, UPDATE or DELETE changed."""
        ...

    def fetchone(self) -> Any:
        """Return the next row (a :class:`Row`), or None after the last."""
        ...

    def fetchall(self) -> list[Any]:
        """Return the rows not yet read (each a :class:`Row`)."""
        ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection inside one transaction, as the table groups use it."""

    @property
    def dialect(self) -> Dialect:
        """The engine: ``sqlite`` or ``postgresql``."""
        ...

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        """Run one statement with ``?`` placeholders bound to ``parameters``."""
        ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor:
        """Run one statement once for each set of parameters."""
        ...


def hex_of(db: Db, column: str) -> str:
    """Return the SQL of ``column``'s bytes as lower-case hex, in ``db``'s dialect."""
    if db.dialect == "postgresql":
        return f"encode({column}, 'hex')"
    return f"lower(hex({column}))"


class SqliteDb(sqlite3.Connection):
    """A SQLite connection that says which engine it is (:class:`Db`)."""

    @property
    def dialect(self) -> Dialect:
        """Always ``sqlite``."""
        return "sqlite"


def connect_sqlite(target: str, **kwargs: Any) -> SqliteDb:
    """Open a SQLite connection as a :class:`SqliteDb` with named rows."""
    db = sqlite3.connect(target, factory=SqliteDb, **kwargs)
    db.row_factory = sqlite3.Row
    assert isinstance(db, SqliteDb)
    return db
