"""``exchange db status|migrate|copy``: a node's database, on SQLite or PostgreSQL.

``status`` says which database the configuration names, the schema version it is at and the
one this version of the node knows, and the migrations pending, changing nothing; its exit
status tells a script whether to migrate. ``migrate`` applies them the way the node does when
it starts (SQLite: after the pre-upgrade backup; PostgreSQL: under the migration lock).
``copy`` moves a SQLite store into PostgreSQL (:mod:`exchange.cli.db_copy`).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from pathlib import Path
from typing import Final

from exchange.cli import common
from exchange.cli.db_connect import connect, engine_of, sqlite_path
from exchange.cli.db_copy import copy_command
from exchange.cli.errors import CliError
from exchange.cli.node_store import node_config, open_store
from exchange.config import NodeConfig
from exchange.store.postgres import migrate
from exchange.store.schema_state import SchemaState, postgres_state, sqlite_state

#: ``db status``: the database is at an older version; ``db migrate`` (or the node) upgrades it.
EXIT_PENDING: Final = 3
#: ``db status``: a newer version of the node migrated the database; this one refuses it.
EXIT_TOO_NEW: Final = 4


def _read_sqlite(path: Path) -> SchemaState:
    try:
        return sqlite_state(path)
    except sqlite3.Error:
        raise CliError(
            f"the node's database {path} cannot be read: it is not a SQLite database or it "
            "is damaged (docs/node.md, 'Restoring from a backup')"
        ) from None


async def _state(config: NodeConfig) -> SchemaState:
    if config.database.url is None:
        return await asyncio.to_thread(_read_sqlite, sqlite_path(config))
    connection = await connect(config.database.url)
    try:
        return await postgres_state(connection)
    finally:
        await connection.close()


def status_command(args: argparse.Namespace) -> int:
    """Print the database's engine, version and pending migrations; exit 0, 3 or 4."""
    config = node_config(args.config)
    state = asyncio.run(_state(config))
    at = "no database yet" if state.found == 0 else f"version {state.found}"
    common.say(f"database: {engine_of(config)}")
    common.say(f"schema: {at}; this version of the node knows versions up to {state.known}")
    if state.too_new:
        common.say(
            "state: made by a newer version of the node, which this one refuses to open: run "
            "that version, or restore the backup taken before the upgrade"
        )
        return EXIT_TOO_NEW
    pending = state.pending
    if not pending:
        common.say("state: up to date")
        return 0
    common.say(f"pending migrations: {len(pending)}")
    for version, text in pending:
        common.say(f"  {version:>3}  {text}")
    common.say(
        f"state: migrations pending: run exchange db migrate --config {args.config} (the "
        "node also applies them when it starts)"
    )
    return EXIT_PENDING


async def _migrate(config: NodeConfig) -> tuple[int, list[int]]:
    """Apply the pending migrations; return the version found first and those applied."""
    if config.database.url is None:
        before = (await asyncio.to_thread(_read_sqlite, sqlite_path(config))).found
        # Opened as the node opens it: backed up first if it is behind, then migrated.
        store = await open_store(config)
        await store.close()
        after = (await asyncio.to_thread(_read_sqlite, sqlite_path(config))).found
        return before, list(range(before + 1, after + 1))
    connection = await connect(config.database.url)
    try:
        before = (await postgres_state(connection)).found
        return before, await migrate(connection)
    finally:
        await connection.close()


def migrate_command(args: argparse.Namespace) -> int:
    """Apply the pending migrations; say which (none when already up to date)."""
    config = node_config(args.config)
    before, applied = asyncio.run(_migrate(config))
    if not applied:
        common.note(
            f"{engine_of(config)} is up to date at schema version {before}: nothing applied"
        )
        return 0
    first, last = applied[0], applied[-1]
    which = f"migration {first}" if first == last else f"migrations {first} to {last}"
    common.note(
        f"{engine_of(config)}: applied {which}; schema version {before} -> {last}"
        if before
        else f"{engine_of(config)}: made the database at schema version {last}"
    )
    return 0


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange db`` to the parser."""
    db = sub.add_parser(
        "db",
        help="the node's database: its schema version, migrations, a move to PostgreSQL",
        description="Show which database a node uses and whether it needs migrating, migrate "
        "it, or copy a SQLite store into an empty PostgreSQL database (docs/node.md, "
        "'Moving a node to PostgreSQL').",
    )
    commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status",
        help="the database's engine, schema version and pending migrations (changes nothing)",
        description="Print which database the configuration names (a SQLite file, or a "
        "PostgreSQL database and its hosts; never a password), the schema version it is at, "
        "the one this version of the node knows, and each pending migration. Exit status: 0 "
        f"up to date, {EXIT_PENDING} migrations pending (or no database yet), "
        f"{EXIT_TOO_NEW} made by a newer version of the node, which this one refuses; 1 when "
        "the database cannot be read.",
    )
    status.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    status.set_defaults(handler=status_command)
    migrate_parser = commands.add_parser(
        "migrate",
        help="apply the pending migrations, as the node does when it starts",
        description="Apply the pending migrations and say which. SQLite: the database is "
        "backed up first (into node.upgrade_backups). PostgreSQL: under the migration lock, "
        "so processes starting at the same time wait. Running it again applies nothing.",
    )
    migrate_parser.add_argument(
        "--config", required=True, metavar="FILE", help="the node's TOML file"
    )
    migrate_parser.set_defaults(handler=migrate_command)
    copy = commands.add_parser(
        "copy",
        help="copy a stopped node's SQLite store into an empty PostgreSQL database, and prove it",
        description="Copy every table of a stopped node's SQLite store into an empty (or "
        "freshly migrated) PostgreSQL database, in one transaction: all of it or nothing. "
        "Then compare the rows of every table and the ledger (verified on both sides, as "
        "'exchange ledger verify' does, so the ledger passphrase is needed) and print them. "
        "Envelope bodies stay in the data folder.",
    )
    copy.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    target = copy.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--to",
        metavar="URL",
        help="the PostgreSQL database, postgresql://USER@HOST[:PORT][,HOST2...]/DATABASE "
        "(no password: give it in PGPASSWORD or a password file)",
    )
    target.add_argument(
        "--to-config",
        metavar="FILE",
        help="a node configuration whose [database] url names the PostgreSQL database",
    )
    copy.set_defaults(handler=copy_command)
