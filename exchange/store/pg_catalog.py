"""The tables of a PostgreSQL store as its catalog describes them, for copying rows into it.

``exchange db copy`` fills a migrated PostgreSQL database from a SQLite store. It needs every
table of the schema with its columns, in an order where each table comes after the tables
its foreign keys name (so each row's references already exist), and the identity columns
whose sequences must move past the copied ids. All of it is read from the database's own
catalog, so a table a migration adds is copied without a list to keep up to date.
"""

from __future__ import annotations

import graphlib
import re
from dataclasses import dataclass
from typing import Final

import asyncpg

from exchange.store.pg_schema import PG_MIGRATIONS

#: The table that records the schema's version: each database keeps its own.
VERSION_TABLE: Final = "schema_version"

_COLUMNS: Final = (
    "SELECT table_name, column_name, is_identity = 'YES' FROM information_schema.columns "
    "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
)
_TABLES: Final = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
)
_REFERENCES: Final = (
    "SELECT child.relname, parent.relname FROM pg_constraint k "
    "JOIN pg_class child ON child.oid = k.conrelid "
    "JOIN pg_class parent ON parent.oid = k.confrelid "
    "WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace"
)
_INSERT: Final = re.compile(r"\s*INSERT INTO (\w+)", re.IGNORECASE)


class CatalogError(ValueError):
    """The database's tables cannot be put in an order to fill them (a cycle of references)."""


@dataclass(frozen=True)
class PgTable:
    """One table: its name, its columns in order, and its identity column if it has one."""

    name: str
    columns: tuple[str, ...]
    identity: str | None


async def tables_in_order(connection: asyncpg.Connection) -> list[PgTable]:
    """Return the store's tables (not :data:`VERSION_TABLE`), each after those it references."""
    names = {r[0] for r in await connection.fetch(_TABLES)} - {VERSION_TABLE}
    columns: dict[str, list[str]] = {name: [] for name in names}
    identity: dict[str, str] = {}
    for table, column, is_identity in await connection.fetch(_COLUMNS):
        if table in columns:
            columns[table].append(column)
            if is_identity:
                identity[table] = column
    order = graphlib.TopologicalSorter({name: set() for name in sorted(names)})
    for child, parent in await connection.fetch(_REFERENCES):
        if child != parent and child in names:
            order.add(child, parent)
    try:
        ordered = list(order.static_order())
    except graphlib.CycleError:
        raise CatalogError(
            "the database's tables reference each other in a cycle, so no order fills them"
        ) from None
    return [PgTable(name, tuple(columns[name]), identity.get(name)) for name in ordered]


#: Tables of the PostgreSQL schema that no SQLite table holds: the bodies (files in SQLite's
#: data folder) and the backlog its trigger keeps from the outbox rows.
NOT_SQLITE_TABLES: Final = frozenset({"body_chunks", "bodies", "outbox_backlog"})


def seeded_tables() -> frozenset[str]:
    """Return the tables a migration itself puts rows in (such as the ledger's head row)."""
    return frozenset(
        match.group(1)
        for migration in PG_MIGRATIONS
        for statement in migration
        if (match := _INSERT.match(statement)) is not None
    )
