"""``exchange db copy``: a real node's SQLite store moved into a real PostgreSQL, and proved.

One loopback deployment per module exchanges a few records (envelopes, receipts, register
rows, ledger events, checkpoints) and is stopped; each test copies the school's data folder
and its configuration, so it may change them without touching another test's.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from exchange.auth.account import NewAccount
from exchange.config import config_to_toml, load_config
from exchange.config_database import DatabaseConfig
from exchange.ledger.log import log_of
from exchange.store.pg_catalog import NOT_SQLITE_TABLES, seeded_tables
from exchange.store.postgres import PostgresStore
from exchange.store.sqlite import SqliteStore
from tests.node.conftest import LA, SCHOOL, deployed
from tests.node.helpers import client, sent, submit, until
from tests.postgres_server import PostgresServer
from tests.store_engines import fresh_database

from .conftest import RECORD, Result, assert_refused, run

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

USERS = {SCHOOL: ["dsl", "dpo"], LA: ["staff"]}
NOTES = 4


async def _exchange(folder: Path) -> None:
    """Deliver a few records from the school to the LA, stop, and give the DSL an account."""
    async with deployed(folder, USERS) as world:
        async with client(world) as http:
            digests = [
                str((await submit(http, world, b"synthetic note %d" % n, [LA]))["digest"])
                for n in range(NOTES)
            ]

            async def delivered() -> bool:
                for digest in digests:
                    item = await sent(http, world, digest)
                    if item["recipients"][0]["delivery_state"] != "delivered":
                        return False
                return True

            await until(delivered, what="deliveries")
        await world.stop()
    store = await SqliteStore.open(folder / "data-school")
    try:
        account = NewAccount(f"{SCHOOL}/dsl", "dsl@school.example", "$argon2id$stub")
        assert await store.add_account(account, 1.0e9) is not None
    finally:
        await store.close()


@pytest.fixture(scope="module")
def exchanged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the deployment once for the module; return its (stopped) folder."""
    folder = tmp_path_factory.mktemp("db-copy") / "world"
    asyncio.run(_exchange(folder))
    return folder


@pytest.fixture
def school(exchanged: Path, tmp_path: Path) -> Path:
    """Return a configuration of the school node with a data folder of its own."""
    data = tmp_path / "school-data"
    shutil.copytree(exchanged / "data-school", data)
    config = load_config(exchanged / "node-school.toml")
    path = tmp_path / "school.toml"
    path.write_text(config_to_toml(replace(config, data_dir=data)))
    return path


def _sqlite_counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name != 'schema_version'"
            )
        ]
        return {n: int(db.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0]) for n in names}  # noqa: S608
    finally:
        db.close()


async def _pg_counts(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        names = [
            r[0]
            for r in await connection.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name != 'schema_version'"
            )
            if r[0] not in NOT_SQLITE_TABLES
        ]
        return {n: int(await connection.fetchval(f'SELECT COUNT(*) FROM "{n}"')) for n in names}  # noqa: S608
    finally:
        await connection.close()


def _data(config: Path) -> Path:
    return load_config(config).data_dir


async def _copy(config: Path, *target: str) -> Result:
    """Run ``exchange db copy --config CONFIG TARGET...`` off the event loop."""
    return await asyncio.to_thread(run, "db", "copy", "--config", str(config), *target)


def _empty(counts: dict[str, int]) -> bool:
    """Whether a database holds nothing but what its migrations put there."""
    return all(n == 0 for name, n in counts.items() if name not in seeded_tables())


async def test_copy_moves_every_row_and_the_ledger_and_new_rows_follow(
    school: Path, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Into a new database: same rows per table, same ledger root, new ids past the copied."""
    source = _sqlite_counts(_data(school) / "node.sqlite3")
    assert source["envelopes"] == NOTES
    assert source["receipts"] > 0
    assert source["register"] == NOTES
    assert source["accounts"] == 1
    assert source["checkpoints"] > 0
    async with fresh_database(postgres_server, migrated=False) as dsn:
        result = await _copy(school, "--to", dsn)
        assert result.status == 0, result
        assert await _pg_counts(dsn) == source
        lines = result.text.splitlines()
        assert lines[0].split() == ["table", "SQLite", "PostgreSQL"]
        assert f"envelopes {NOTES} {NOTES}" in [" ".join(line.split()) for line in lines]
        assert f"rows: {sum(source.values())} in {len(source)} tables, the same on both" in lines
        store = await PostgresStore.open(dsn, tmp_path / "pg-bodies")
        try:
            events = await store.ledger_events(0, await store.ledger_size())
            assert len(events) == source["ledger"]
            root = log_of(events).root()
            assert f"ledger: {len(events)} events, root {root.hex()}, the same on both" in (
                result.text
            )
            # Every body the rows name, byte for byte, now in the database.
            bodies = _data(school) / "bodies"
            digests = [
                bytes.fromhex(p.name) for p in bodies.iterdir() if not p.name.startswith(".")
            ]
            assert len(digests) >= NOTES
            for digest in digests:
                stored = b"".join([piece async for piece in store.blobs.chunks(digest)])
                assert stored == (bodies / digest.hex()).read_bytes()
            size = sum((bodies / d.hex()).stat().st_size for d in digests)
            assert f"bodies: {len(digests)} ({size} bytes), each checked against its digest" in (
                result.text
            )
            # The identity sequences moved past the copied ids: a new account does not collide.
            nurse = NewAccount(f"{SCHOOL}/dpo", "dpo@school.example", "$argon2id$stub")
            new_id = await store.add_account(nurse, 1.0e9)
            assert new_id == 2
        finally:
            await store.close()
        # The moved node's own check: `ledger verify` on the PostgreSQL store.
        moved = load_config(school)
        moved_config = tmp_path / "moved.toml"
        moved_config.write_text(
            config_to_toml(replace(moved, database=DatabaseConfig(url=dsn, pool_size=2)))
        )
        verified = await asyncio.to_thread(run, "ledger", "verify", "--config", str(moved_config))
        assert verified.status == 0, verified
        # The SQLite store is as it was, and opens again (the copy only read it).
        assert _sqlite_counts(_data(school) / "node.sqlite3") == source
        assert (await asyncio.to_thread(run, "db", "status", "--config", str(school))).status == 0
        reopened = await SqliteStore.open(_data(school))
        await reopened.close()
        # Copying again: the target is not empty, so nothing is changed.
        before = await _pg_counts(dsn)
        again = await _copy(school, "--to-config", str(moved_config))
        assert_refused(again, 1, "the target database is not empty", "changed nothing")
        assert await _pg_counts(dsn) == before


#: Rows SQLite keeps and PostgreSQL refuses, each in a table copied after many others.
BAD_ROWS = {
    # A recovery code of no account (SQLite checks references only when asked to).
    "reference": (
        "INSERT INTO recovery_codes (account_id, code_hash) VALUES (999, x'00')",
        ("recovery_codes", "breaks the constraint recovery_codes_account_id_fkey"),
    ),
    # Text in a whole-number column (SQLite keeps what it is given).
    "type": (
        "UPDATE outbox SET attempts = 'nine hundred and ninety-nine'",
        ("a row of the table outbox holds a value of another type",),
    ),
}


@pytest.mark.parametrize("bad", sorted(BAD_ROWS))
async def test_copy_failing_half_way_leaves_the_target_as_it_was(
    bad: str, school: Path, postgres_server: PostgresServer
) -> None:
    """A row PostgreSQL refuses rolls back every table copied before it: the target is empty."""
    statement, fragments = BAD_ROWS[bad]
    db = sqlite3.connect(_data(school) / "node.sqlite3")
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute(statement)
    db.commit()
    db.close()
    async with fresh_database(postgres_server) as dsn:
        result = await _copy(school, "--to", dsn)
        line = assert_refused(result, 1, *fragments, "nothing was copied")
        assert "999" not in line
        assert "nine hundred" not in line
        counts = await _pg_counts(dsn)
        assert _empty(counts)
        assert counts["ledger_head"] == 1


async def test_copy_refuses_a_store_in_use(school: Path, postgres_server: PostgresServer) -> None:
    """A store the node (here: an open store) holds is refused; the target is not touched."""
    store = await SqliteStore.open(_data(school))
    try:
        async with fresh_database(postgres_server, migrated=False) as dsn:
            result = await _copy(school, "--to", dsn)
            assert_refused(result, 1, "is in use: stop the node")
            assert await _pg_counts(dsn) == {}
    finally:
        await store.close()


async def test_copy_refuses_a_ledger_that_does_not_verify(
    school: Path, postgres_server: PostgresServer
) -> None:
    """A changed ledger event: refused before anything is written."""
    db = sqlite3.connect(_data(school) / "node.sqlite3")
    [(event,)] = db.execute("SELECT event FROM ledger WHERE idx = 0").fetchall()
    db.execute("UPDATE ledger SET event = ? WHERE idx = 0", (event[:-1] + bytes([event[-1] ^ 1]),))
    db.commit()
    db.close()
    async with fresh_database(postgres_server, migrated=False) as dsn:
        result = await _copy(school, "--to", dsn)
        assert_refused(result, 1, "cannot be copied: the ledger does not verify")
        assert await _pg_counts(dsn) == {}


def test_copy_refuses_a_password_in_the_target(school: Path) -> None:
    """--to with a password: refused without repeating it (it belongs in PGPASSWORD)."""
    secret = "s3cret-word"  # noqa: S105 - a test value
    result = run(
        "db", "copy", "--config", str(school), "--to", f"postgresql://u:{secret}@db.example/x"
    )
    line = assert_refused(result, 1, "--to must not hold a password", "PGPASSWORD")
    assert secret not in result.err + result.text
    assert "database.url" not in line


def test_copy_refuses_a_target_config_without_a_database(school: Path) -> None:
    """--to-config naming a SQLite node: refused in one sentence."""
    result = run("db", "copy", "--config", str(school), "--to-config", str(school))
    assert_refused(result, 1, "has no [database] url")


def test_copy_refuses_a_node_already_on_postgresql(school: Path, tmp_path: Path) -> None:
    """The source must be a SQLite store."""
    config = load_config(school)
    moved = tmp_path / "moved.toml"
    url = "postgresql://exchange@db.example/exchange"
    moved.write_text(config_to_toml(replace(config, database=DatabaseConfig(url=url))))
    result = run("db", "copy", "--config", str(moved), "--to", url)
    assert_refused(result, 1, "already keeps its store in PostgreSQL database exchange")
    assert RECORD.decode() not in result.err
