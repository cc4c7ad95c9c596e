"""What only the PostgreSQL store has, on a real server.

Numbered placeholders, the migration lock, the counted backlog, constraint errors that name
no value, and transactions a cancelled caller cannot cut.

Everything the two stores share is tested on both by the rest of tests/store (``store`` is
parametrised over the engines); these tests run on a real server (tests/postgres_server.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.model import NewOutbox
from exchange.store.pg_schema import PG_MIGRATIONS
from exchange.store.postgres import BACKLOG_AGE, PgDb, PostgresStore, migrate, numbered
from exchange.store.sql import IntegrityError, StoreTooNewError
from tests.postgres_server import PostgresServer
from tests.store.conftest import LA, SCHOOL, T0, envelope
from tests.store_engines import fresh_database

pytestmark = [pytest.mark.network, pytest.mark.subprocess]


@given(st.lists(st.sampled_from(["?", "'?'", "'it''s ?'", " a = ", "b", "''"]), max_size=12))
def test_placeholders_are_numbered_outside_quotes_only(parts: list[str]) -> None:
    """Each bare ``?`` becomes ``$1``, ``$2``, ... in order; a ``?`` inside quotes stays."""
    sql = "".join(parts)
    expected, n = [], 0
    for part in parts:
        if part == "?":
            n += 1
            expected.append(f"${n}")
        else:
            expected.append(part)
    assert numbered(sql) == "".join(expected)


async def _submit(store: PostgresStore, n: int) -> None:
    await store.record_submission(
        envelope(n),
        submitted_by="u1",
        now=T0,
        outbox=[NewOutbox("envelope", envelope(n).digest, SCHOOL, LA)],
        ledger_events=[b"event %d" % n],
    )


async def test_two_processes_opening_an_empty_database_migrate_it_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Stores opened together on an empty database: one applies the schema, the other waits."""
    async with fresh_database(postgres_server, migrated=False) as dsn:
        stores = await asyncio.gather(
            PostgresStore.open(dsn, tmp_path / "a"), PostgresStore.open(dsn, tmp_path / "b")
        )
        for store in stores:
            await store.close()
        connection = await asyncpg.connect(dsn)
        try:
            versions = [r[0] for r in await connection.fetch("SELECT version FROM schema_version")]
            assert versions == list(range(1, len(PG_MIGRATIONS) + 1))
            assert await migrate(connection) == []
        finally:
            await connection.close()


async def test_a_database_from_a_newer_node_is_refused(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """A schema version this node does not know stops it opening, in a sentence."""
    async with fresh_database(postgres_server) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("INSERT INTO schema_version (version) VALUES (999)")
        finally:
            await connection.close()
        with pytest.raises(StoreTooNewError, match="schema version 999"):
            await PostgresStore.open(dsn, tmp_path)


async def test_the_backlog_is_counted_again_soon_after_a_write(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Every process writes the outbox, so the count is taken again within BACKLOG_AGE."""
    async with fresh_database(postgres_server) as dsn:
        store = await PostgresStore.open(dsn, tmp_path)
        other = await PostgresStore.open(dsn, tmp_path / "other")
        try:
            assert store.outbox_backlog == {}
            await _submit(other, 1)  # another process's write
            await asyncio.sleep(BACKLOG_AGE)
            await _submit(store, 2)
            for _ in range(100):
                if store.outbox_backlog == {LA: 2}:
                    break
                await asyncio.sleep(0.01)
            assert store.outbox_backlog == {LA: 2}
        finally:
            await other.close()
            await store.close()


async def test_a_broken_constraint_names_the_constraint_never_the_values(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """A duplicate key is an IntegrityError that names the constraint and quotes no value."""
    async with fresh_database(postgres_server) as dsn:
        store = await PostgresStore.open(dsn, tmp_path)
        try:
            await _submit(store, 1)
            with pytest.raises(IntegrityError) as raised:
                await _submit(store, 1)
            assert "constraint" in str(raised.value)
            assert envelope(1).digest.hex() not in str(raised.value)
            assert raised.value.__cause__ is None
        finally:
            await store.close()


async def test_a_cancelled_caller_does_not_cut_its_transaction_short(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Cancelling the caller mid-write leaves the write whole: every row or none."""
    async with fresh_database(postgres_server) as dsn:
        store = await PostgresStore.open(dsn, tmp_path)
        try:
            for n in range(1, 21):
                task = asyncio.create_task(_submit(store, n))
                await asyncio.sleep(0.001 * (n % 5))
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0.2)

            def counts(db: PgDb) -> tuple[int, int, int]:
                # One snapshot: a write still finishing is seen whole or not at all.
                envelopes = db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
                sent = db.execute("SELECT COUNT(*) FROM sent").fetchone()[0]
                events = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
                return int(envelopes), int(sent), int(events)

            envelopes, sent, events = await store._read(counts)
            # Each submission keeps one envelope, one sent row and one event: all or none.
            assert envelopes == sent == events
        finally:
            await store.close()
