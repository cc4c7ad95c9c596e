"""Where a node's database stands against the migrations this version knows, read only.

``exchange db status`` shows it: the schema version the database is at, the one this version
of the node would bring it to, and each pending migration with a one-line description. The
description is derived from the migration's own statements (the tables, columns and indexes
it adds, the Python steps it runs), so a migration appended to either list is described
without anything else to keep up to date. Nothing here changes the database: SQLite is
opened read-only (a missing file is reported as version 0, not made), and PostgreSQL's
version is read in a read-only transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

import asyncpg

from exchange.store.backup import schema_version as sqlite_version
from exchange.store.pg_schema import PG_MIGRATIONS
from exchange.store.postgres import schema_version as postgres_version
from exchange.store.schema import MIGRATIONS
from exchange.store.sql import connect_sqlite

#: Names listed of one kind of change before the rest are only counted.
LISTED: Final = 3

#: What a statement does, by its opening words: (pattern, kind, how the name is shown).
_CHANGES: Final = (
    (re.compile(r"CREATE TABLE (\w+)", re.IGNORECASE), "table", "{0}"),
    (re.compile(r"CREATE (?:UNIQUE )?INDEX (\w+)", re.IGNORECASE), "index", "{0}"),
    (re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", re.IGNORECASE), "column", "{0}.{1}"),
    (re.compile(r"DROP INDEX (\w+)", re.IGNORECASE), "dropped index", "{0}"),
    (re.compile(r"INSERT INTO (\w+)", re.IGNORECASE), "rows in", "{0}"),
    (re.compile(r"UPDATE (\w+)", re.IGNORECASE), "update of", "{0}"),
)
_PLURALS: Final = {"index": "indexes", "rows in": "rows in", "update of": "updates of"}


def _named(kind: str, names: Sequence[str]) -> str:
    plural = _PLURALS.get(kind, kind + "s") if len(names) > 1 else kind
    shown = ", ".join(names[:LISTED])
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return f"{plural} {shown}{more}"


def describe_migration(steps: Sequence[str | Callable[..., object]]) -> str:
    """Return a one-line description of a migration, from its statements and steps."""
    found: dict[str, list[str]] = {}
    for step in steps:
        if not isinstance(step, str):
            found.setdefault("step", []).append(getattr(step, "__name__", "a step"))
            continue
        text = " ".join(step.split())
        for pattern, kind, shape in _CHANGES:
            match = pattern.match(text)
            if match is not None:
                found.setdefault(kind, []).append(shape.format(*match.groups()))
                break
        else:
            found.setdefault("other statement", []).append(text.split(" ", 1)[0].upper())
    parts: list[str] = []
    for kind, names in found.items():
        if kind == "step":
            parts.extend(name.replace("_", " ") for name in names)
        else:
            parts.append(_named(kind, names))
    return "; ".join(parts)


@dataclass(frozen=True)
class SchemaState:
    """A database's schema version and the migrations this version of the node knows."""

    #: The version the database is at (0: no database, or one never migrated).
    found: int
    #: One description per migration this version knows, in order (version 1 first).
    descriptions: tuple[str, ...]

    @property
    def known(self) -> int:
        """The newest version this version of the node knows."""
        return len(self.descriptions)

    @property
    def too_new(self) -> bool:
        """Whether a newer version of the node migrated it, so this one refuses it."""
        return self.found > self.known

    @property
    def pending(self) -> list[tuple[int, str]]:
        """The migrations not yet applied: ``(version, description)``, in order."""
        return [
            (version, text)
            for version, text in enumerate(self.descriptions, start=1)
            if version > self.found
        ]


def sqlite_descriptions() -> tuple[str, ...]:
    """Describe each SQLite migration."""
    return tuple(describe_migration(steps) for steps in MIGRATIONS)


def postgres_descriptions() -> tuple[str, ...]:
    """Describe each PostgreSQL migration."""
    return tuple(describe_migration(steps) for steps in PG_MIGRATIONS)


def sqlite_state(path: Path) -> SchemaState:
    """Return the state of the SQLite database ``path``, opened read-only (never created).

    Raises :class:`sqlite3.Error` if the file is not a database SQLite can read.
    """
    if not path.exists():
        return SchemaState(0, sqlite_descriptions())
    db = connect_sqlite(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        return SchemaState(sqlite_version(db), sqlite_descriptions())
    finally:
        db.close()


async def postgres_state(connection: asyncpg.Connection) -> SchemaState:
    """Return the state of the PostgreSQL database ``connection`` is to (read only)."""
    async with connection.transaction(readonly=True):
        found = await postgres_version(connection)
    return SchemaState(found, postgres_descriptions())
