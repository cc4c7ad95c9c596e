"""``exchange db status`` and ``db migrate`` on both engines: versions, pending, too new."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from exchange.cli.db_cmd import EXIT_PENDING, EXIT_TOO_NEW
from exchange.store.pg_schema import PG_MIGRATIONS
from exchange.store.schema import MIGRATIONS, run_migration
from exchange.store.sql import connect_sqlite
from tests.postgres_server import PostgresServer
from tests.store_engines import fresh_database

from .conftest import assert_refused, run

LATEST = len(MIGRATIONS)


def node_toml(folder: Path, *, url: str | None = None) -> Path:
    """Write a node configuration whose store is ``folder/data`` (or ``url``); return it."""
    database = "" if url is None else f"[database]\nurl = {json.dumps(url)}\n"
    path = folder / "node.toml"
    path.write_text(
        f"""[node]
name = "oak"
listen = "127.0.0.1:0"
public_url = "https://localhost:8443"
data_dir = "data"

[directory]
file = "directory.note"
trust = "not read by these commands"

[ledger]
key = "ledger.key"
passphrase_env = "EXCHANGE_LEDGER_PASSPHRASE"
origin = "oak.example/ledger"

[[tenants]]
org = "urn:106123"
keys = ["oak.key"]
passphrase_env = "EXCHANGE_PASSPHRASE"

{database}"""
    )
    return path


def store_at(folder: Path, version: int) -> Path:
    """Make a SQLite store at schema ``version`` as that release left it; return the file."""
    folder.mkdir(parents=True)
    (folder / "bodies").mkdir()
    path = folder / "node.sqlite3"
    db = connect_sqlite(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, statements in enumerate(MIGRATIONS[:version], start=1):
        run_migration(db, statements)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    db.close()
    return path


def version_of(path: Path) -> int:
    """Return the SQLite file's schema version, read directly."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])
    finally:
        db.close()


def test_status_of_a_node_with_no_database_yet_changes_nothing(tmp_path: Path) -> None:
    """No database: every migration is pending (exit 3), and no file is made."""
    config = node_toml(tmp_path)
    result = run("db", "status", "--config", str(config))
    assert result.status == EXIT_PENDING, result
    lines = result.text.splitlines()
    assert lines[0] == f"database: SQLite {tmp_path / 'data' / 'node.sqlite3'}"
    assert f"no database yet; this version of the node knows versions up to {LATEST}" in lines[1]
    assert f"pending migrations: {LATEST}" in lines
    assert any(line.strip().startswith("1  tables envelopes, sent, inbox") for line in lines)
    assert not (tmp_path / "data").exists()


def test_status_then_migrate_a_store_two_versions_behind(tmp_path: Path) -> None:
    """Behind: status lists what is pending (exit 3) read only; migrate backs up, then applies."""
    old = LATEST - 2
    path = store_at(tmp_path / "data", old)
    config = str(node_toml(tmp_path))
    status = run("db", "status", "--config", config)
    assert status.status == EXIT_PENDING, status
    assert f"schema: version {old}; this version" in status.text
    pending = [line.split()[0] for line in status.text.splitlines() if line.startswith("  ")]
    assert pending == [str(old + 1), str(LATEST)]
    assert f"run exchange db migrate --config {config}" in status.text
    assert version_of(path) == old
    assert not (tmp_path / "data" / "backups").exists()

    migrated = run("db", "migrate", "--config", config)
    assert migrated.status == 0, migrated
    assert f"applied migrations {old + 1} to {LATEST}; schema version {old} -> {LATEST}" in (
        migrated.err
    )
    [backup] = (tmp_path / "data" / "backups").iterdir()
    assert backup.name.startswith(f"pre-upgrade-v{old}-")
    assert str(backup) in migrated.err
    assert version_of(path) == LATEST

    assert run("db", "status", "--config", config).status == 0
    again = run("db", "migrate", "--config", config)
    assert again.status == 0, again
    assert f"up to date at schema version {LATEST}: nothing applied" in again.err
    assert len(list((tmp_path / "data" / "backups").iterdir())) == 1


def test_status_and_migrate_of_a_store_made_by_a_newer_node(tmp_path: Path) -> None:
    """Too new: status says the node refuses it (exit 4); migrate refuses in one line."""
    path = store_at(tmp_path / "data", LATEST)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST + 5,))
    db.close()
    config = str(node_toml(tmp_path))
    status = run("db", "status", "--config", config)
    assert status.status == EXIT_TOO_NEW, status
    assert "made by a newer version of the node, which this one refuses" in status.text
    assert_refused(
        run("db", "migrate", "--config", config), 1, f"schema version {LATEST + 5}", "newer"
    )
    assert version_of(path) == LATEST + 5


def test_status_of_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """A damaged or foreign file is named in one line, exit 1."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "node.sqlite3").write_bytes(b"not a database at all " * 200)
    config = str(node_toml(tmp_path))
    assert_refused(run("db", "status", "--config", config), 1, "cannot be read", "node.sqlite3")


async def _version(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT MAX(version) FROM schema_version"))
    finally:
        await connection.close()


async def test_status_and_migrate_on_postgresql(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """PostgreSQL: new (pending, exit 3), migrated (0), migrate idempotent, too new (4)."""
    async with fresh_database(postgres_server, migrated=False) as dsn:
        config = str(node_toml(tmp_path, url=dsn))
        database = dsn.rsplit("/", 1)[1]
        status = await asyncio.to_thread(run, "db", "status", "--config", config)
        assert status.status == EXIT_PENDING, status
        first = status.text.splitlines()[0]
        assert first.startswith(f"database: PostgreSQL database {database} on 127.0.0.1:")
        assert "no database yet" in status.text
        assert f"pending migrations: {len(PG_MIGRATIONS)}" in status.text
        assert await _version_or_none(dsn) is None  # read only: nothing was made

        migrated = await asyncio.to_thread(run, "db", "migrate", "--config", config)
        assert migrated.status == 0, migrated
        assert f"made the database at schema version {len(PG_MIGRATIONS)}" in migrated.err
        assert (await asyncio.to_thread(run, "db", "status", "--config", config)).status == 0
        again = await asyncio.to_thread(run, "db", "migrate", "--config", config)
        assert again.status == 0, again
        assert "nothing applied" in again.err

        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("INSERT INTO schema_version (version) VALUES (99)")
        finally:
            await connection.close()
        status = await asyncio.to_thread(run, "db", "status", "--config", config)
        assert status.status == EXIT_TOO_NEW, status
        refused = await asyncio.to_thread(run, "db", "migrate", "--config", config)
        assert_refused(refused, 1, "schema version 99")
        assert await _version(dsn) == 99


async def _version_or_none(dsn: str) -> int | None:
    connection = await asyncpg.connect(dsn)
    try:
        if not await connection.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            return None
        return int(await connection.fetchval("SELECT MAX(version) FROM schema_version"))
    finally:
        await connection.close()


async def test_status_of_an_unreachable_database_names_it_without_the_string(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """A database that does not exist: one line naming it and its host, exit 1."""
    dsn = postgres_server.dsn.rsplit("/", 1)[0] + "/no_such_database"
    config = str(node_toml(tmp_path, url=dsn))
    result = await asyncio.to_thread(run, "db", "status", "--config", config)
    line = assert_refused(result, 1, "cannot connect to PostgreSQL database no_such_database")
    assert "postgresql://" not in line


@pytest.mark.parametrize("command", ["status", "migrate", "copy"])
def test_db_commands_need_a_config(command: str) -> None:
    """Without --config the command line is wrong: exit 2."""
    assert run("db", command).status == 2
