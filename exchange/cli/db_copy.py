"""``exchange db copy``: move a stopped node's SQLite store into PostgreSQL, and prove it.

The copy is one PostgreSQL transaction, so the target ends with all of it or none of it:

1. The SQLite database is opened with an exclusive lock, which fails at once while the node
   (or a command) has it open: a node must be stopped before it moves. Its schema must be
   the newest this version knows, and its ledger must verify (as ``exchange ledger verify``
   checks it), before anything is written.
2. In the transaction: the target is migrated if it is new (under the migration lock, held
   until the end, so a node started on it meanwhile waits), and refused unless every table is
   empty (a migration's own rows, such as the ledger's head, aside). Every table the
   target's catalog lists is copied in an order where the tables a foreign key names come
   first, :data:`BATCH` rows at a time (never a whole table in memory), with PostgreSQL's
   ``COPY``. Each identity sequence is moved past the largest id copied, so the node's next
   row does not collide with a copied one.
3. Still in the transaction: every envelope body a row names (envelopes and the sender's
   own copies) is streamed from the data folder's ``bodies/`` into the database's body
   chunks, :data:`~exchange.store.pg_blobs.CHUNK` at a time, and its SHA-256 checked
   against its digest on the way; a body missing or damaged in the source is reported (the
   source held it so too) and the copy goes on.
4. The rows of every table are counted on both sides, and the ledger is read back from the
   target and verified: its size and root must be those of the source. Only then is it
   committed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg

from exchange.cli import common
from exchange.cli.db_connect import checked_url, connect, sqlite_path, where
from exchange.cli.errors import CliError
from exchange.cli.ledger_audit import LedgerAudit, audit_ledger, ledger_signer, read_ledger
from exchange.cli.node_store import node_config
from exchange.keys.notes import NoteVerifier
from exchange.store.backup import schema_version
from exchange.store.blobs import file_pieces
from exchange.store.own_copies import OWN_COPY_DIGESTS
from exchange.store.pg_blobs import CHUNK, write_body_rows
from exchange.store.pg_catalog import (
    NOT_SQLITE_TABLES,
    VERSION_TABLE,
    PgTable,
    seeded_tables,
    tables_in_order,
)
from exchange.store.postgres import PgDb, migrate
from exchange.store.schema import MIGRATIONS
from exchange.store.sql import SqliteDb, connect_sqlite

#: Rows read from SQLite and written to PostgreSQL at a time.
BATCH: Final = 500


@dataclass(frozen=True)
class Bodies:
    """The envelope bodies a copy moved, and those the source could not give whole."""

    copied: int = 0
    size: int = 0
    missing: int = 0
    damaged: int = 0


@dataclass(frozen=True)
class Copied:
    """What a copy moved: rows per table (the same on both sides), bodies, the ledger's audit."""

    rows: list[tuple[str, int, int]]
    ledger: LedgerAudit
    bodies: Bodies


def _open_source(path: Path) -> SqliteDb:
    """Open the SQLite store alone: refuse it while anything else has it open."""
    if not path.is_file():
        raise CliError(f"there is no SQLite store at {path} to copy")
    db = connect_sqlite(str(path), isolation_level=None, timeout=0)
    try:
        # Exclusive: no other connection may hold the file, and none may open it meanwhile.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("PRAGMA query_only=ON")
    except sqlite3.OperationalError:
        db.close()
        raise CliError(
            f"the node's database {path} is in use: stop the node (and any command using it) "
            "before copying it"
        ) from None
    except BaseException:
        db.close()
        raise
    return db


def _source_columns(db: SqliteDb) -> dict[str, tuple[str, ...]]:
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {
        name: tuple(r[1] for r in db.execute(f'PRAGMA table_info("{name}")'))
        for name in names
        if name != VERSION_TABLE
    }


def _check_source(db: SqliteDb, path: Path, tables: Sequence[PgTable]) -> None:
    """Refuse a store at another schema version, or one whose tables differ from the target."""
    found = schema_version(db)
    if found != len(MIGRATIONS):
        raise CliError(
            f"the node's database {path} is at schema version {found}, not {len(MIGRATIONS)}: "
            "run exchange db migrate with this version first"
            if found < len(MIGRATIONS)
            else f"the node's database {path} is at schema version {found}, made by a newer "
            "version of the node: copy it with that version"
        )
    source = _source_columns(db)
    target = {t.name: t.columns for t in tables}
    for name in sorted(source.keys() | target.keys()):
        if set(source.get(name, ())) != set(target.get(name, ())):
            raise CliError(
                f"the table {name} is not the same in the SQLite store and the PostgreSQL "
                "schema (this version's migrations of the two differ), so nothing was copied"
            )


async def _refuse_rows(connection: asyncpg.Connection, tables: Sequence[PgTable]) -> None:
    seeded = seeded_tables()
    for table in tables:
        if table.name in seeded:
            continue
        if await connection.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table.name}")'):  # noqa: S608
            raise CliError(
                f"the target database is not empty (the table {table.name} holds rows): db "
                "copy fills only an empty or freshly migrated database, and changed nothing"
            )


async def _copy_table(source: SqliteDb, connection: asyncpg.Connection, table: PgTable) -> int:
    """Copy one table, :data:`BATCH` rows at a time; return how many rows."""
    columns = ", ".join(f'"{c}"' for c in table.columns)
    if table.name in seeded_tables():
        # A migration's own row (the ledger's head) is replaced by the source's.
        await connection.execute(f'DELETE FROM "{table.name}"')  # noqa: S608
    cursor = source.execute(f'SELECT {columns} FROM "{table.name}"')  # noqa: S608
    copied = 0
    while batch := cursor.fetchmany(BATCH):
        try:
            await connection.copy_records_to_table(
                table.name, records=[tuple(row) for row in batch], columns=table.columns
            )
        except asyncpg.IntegrityConstraintViolationError as exc:
            # The constraint's name, never the row: a detail may quote the values.
            raise CliError(
                f"the copy of the table {table.name} breaks the constraint "
                f"{exc.constraint_name or exc.sqlstate}, so nothing was copied"
            ) from None
        except asyncpg.PostgresError as exc:
            raise CliError(
                f"PostgreSQL refused a row of the table {table.name} "
                f"({type(exc).__name__}), so nothing was copied"
            ) from None
        except (TypeError, ValueError, OverflowError):
            # Found while encoding the batch: its message may quote the value, so not shown.
            raise CliError(
                f"a row of the table {table.name} holds a value of another type than its "
                "PostgreSQL column, so nothing was copied"
            ) from None
        copied += len(batch)
    if table.identity is not None:
        await connection.execute(
            f"SELECT setval(pg_get_serial_sequence($1, $2), "  # noqa: S608
            f'COALESCE(MAX("{table.identity}"), 0) + 1, false) FROM "{table.name}"',
            table.name,
            table.identity,
        )
    return copied


async def _checked_pieces(path: Path, digest: bytes, damaged: list[bytes]) -> AsyncIterator[bytes]:
    """Yield the file's pieces; note the digest in ``damaged`` if they do not hash to it."""
    running = hashlib.sha256()
    async for piece in file_pieces(path, CHUNK):
        running.update(piece)
        yield piece
    if running.digest() != digest:
        damaged.append(digest)


async def _copy_bodies(source: SqliteDb, folder: Path, connection: asyncpg.Connection) -> Bodies:
    """Stream every body a row names from ``folder`` into the target's body chunks."""
    digests = [
        bytes(r[0])
        for r in source.execute(f"SELECT digest FROM envelopes UNION {OWN_COPY_DIGESTS}")  # noqa: S608
    ]
    copied = size = missing = 0
    damaged: list[bytes] = []
    for digest in digests:
        path = folder / digest.hex()
        try:
            length = path.stat().st_size
        except FileNotFoundError:
            missing += 1
            continue
        await write_body_rows(connection, digest, _checked_pieces(path, digest, damaged))
        copied += 1
        size += length
    return Bodies(copied, size, missing, len(damaged))


async def _counts(
    source: SqliteDb, connection: asyncpg.Connection, tables: Sequence[PgTable]
) -> list[tuple[str, int, int]]:
    counts = []
    for table in tables:
        query = f'SELECT COUNT(*) FROM "{table.name}"'  # noqa: S608
        here = int(source.execute(query).fetchone()[0])
        there = int(await connection.fetchval(query))
        counts.append((table.name, here, there))
    differ = [name for name, here, there in counts if here != there]
    if differ:
        raise CliError(
            f"the copy holds another number of rows than the store in the table {differ[0]}, "
            "so nothing was copied"
        )
    return counts


async def _check_target_ledger(
    connection: asyncpg.Connection, source: LedgerAudit, verifier: NoteVerifier, origin: str
) -> None:
    """Read the ledger back from the target, in the copy's transaction; verify and compare it."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        db = PgDb(connection, asyncio.get_running_loop())
        facts = await db.call(read_ledger, thread, finish=False)
    try:
        copied = audit_ledger(facts, verifier, origin)
    except CliError as exc:
        raise CliError(f"the copy's {exc}, so nothing was copied") from None
    if (copied.size, copied.root) != (source.size, source.root):
        raise CliError(
            "the copy's ledger is not the store's (another size or root), so nothing was copied"
        )


async def copy_store(path: Path, dsn: str, verifier: NoteVerifier, origin: str) -> Copied:
    """Copy the SQLite store ``path`` (bodies beside it) into ``dsn`` in one transaction.

    Prove it before the commit: counts and the ledger's root.
    """
    source = _open_source(path)
    try:
        try:
            ledger = audit_ledger(read_ledger(source), verifier, origin)
        except CliError as exc:
            raise CliError(f"the node's store cannot be copied: {exc}") from None
        connection = await connect(dsn)
        try:
            # Whatever stops it, the transaction is rolled back: the target is left as it was.
            async with connection.transaction():
                await migrate(connection)
                tables = [
                    t for t in await tables_in_order(connection) if t.name not in NOT_SQLITE_TABLES
                ]
                _check_source(source, path, tables)
                await _refuse_rows(connection, tables)
                for table in tables:
                    await _copy_table(source, connection, table)
                bodies = await _copy_bodies(source, path.parent / "bodies", connection)
                counts = await _counts(source, connection, tables)
                await _check_target_ledger(connection, ledger, verifier, origin)
        finally:
            await connection.close()
    finally:
        source.close()
    return Copied(counts, ledger, bodies)


def _target(args: argparse.Namespace) -> str:
    if args.to is not None:
        return checked_url(args.to, "--to")
    other = node_config(args.to_config)
    if other.database.url is None:
        raise CliError(
            f"config {args.to_config} has no [database] url, so it names no PostgreSQL "
            "database to copy into"
        )
    return other.database.url


def _table(rows: Sequence[tuple[str, Any, Any]]) -> list[str]:
    width = max(len(str(name)) for name, _, _ in rows)
    return [f"{name:<{width}}  {here:>10}  {there:>10}" for name, here, there in rows]


def copy_command(args: argparse.Namespace) -> int:
    """Copy a stopped node's SQLite store into an empty PostgreSQL database; print the proof."""
    config = node_config(args.config)
    if config.database.url is not None:
        raise CliError(
            f"config {args.config} already keeps its store in {where(config.database.url)}; "
            "db copy moves a SQLite store"
        )
    dsn = _target(args)
    verifier = ledger_signer(config).verifier
    copied = asyncio.run(copy_store(sqlite_path(config), dsn, verifier, config.ledger_origin))
    for line in _table([("table", "SQLite", "PostgreSQL"), *sorted(copied.rows)]):
        common.say(line)
    total = sum(here for _, here, _ in copied.rows)
    common.say(f"rows: {total} in {len(copied.rows)} tables, the same on both")
    common.say(
        f"ledger: {copied.ledger.size} events, root {copied.ledger.root.hex()}, the same on "
        f"both; checkpoints verified: {copied.ledger.checkpoints}"
    )
    bodies = copied.bodies
    common.say(f"bodies: {bodies.copied} ({bodies.size} bytes), each checked against its digest")
    if bodies.missing or bodies.damaged:
        common.note(
            f"exchange: warning: the store named {bodies.missing} missing and {bodies.damaged} "
            "damaged bodies; the copy holds them as the store did (docs/node.md §8)"
        )
    common.note(
        f"copied the store of {config.name} into {where(dsn)}. Next: set [database] url in "
        f"{args.config} and start the node (docs/node.md, 'Moving a node to PostgreSQL')"
    )
    return 0
