"""Both store engines for the tests: every test of the store runs on SQLite and on PostgreSQL.

:data:`ENGINES` is the parameter list a fixture takes (``@pytest.fixture(params=ENGINES)``);
the PostgreSQL case is marked ``network`` and ``subprocess``, since it talks to the real
server the session starts (:func:`tests.postgres_server.running_postgres`). Each test gets
a database of its own, copied from a template migrated once per session, and dropped after.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import asyncpg
import pytest

from exchange.config_database import DatabaseConfig
from exchange.demo.loopback import Deployment
from exchange.keys.ids import OrgId
from exchange.store.base import Store
from exchange.store.postgres import PostgresStore, migrate, numbered
from exchange.store.sql import Db
from exchange.store.sqlite import SqliteStore
from tests.postgres_server import PostgresServer

#: The engines, as fixture parameters.
ENGINES: Final = (
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql", id="postgresql", marks=[pytest.mark.network, pytest.mark.subprocess]
    ),
)
#: The migrated, empty database each test's database is copied from.
TEMPLATE: Final = "exchange_template"

_numbers = itertools.count(1)
_templates: set[int] = set()


def _dsn(server: PostgresServer, database: str) -> str:
    return server.dsn.rsplit("/", 1)[0] + "/" + database


async def _make_template(server: PostgresServer) -> None:
    """Create the migrated template database once per server."""
    if server.port in _templates:
        return
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(_dsn(server, TEMPLATE))
    try:
        await migrate(connection)
    finally:
        await connection.close()
    _templates.add(server.port)


@asynccontextmanager
async def fresh_database(server: PostgresServer, *, migrated: bool = True) -> AsyncIterator[str]:
    """Yield the connection string of a new database (empty unless ``migrated``); drop it after."""
    if migrated:
        await _make_template(server)
    name = f"test_{next(_numbers)}"
    admin = await asyncpg.connect(server.dsn)
    try:
        copied = f' TEMPLATE "{TEMPLATE}"' if migrated else ""
        await admin.execute(f'CREATE DATABASE "{name}"{copied}')
    finally:
        await admin.close()
    try:
        yield _dsn(server, name)
    finally:
        admin = await asyncpg.connect(server.dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def open_store(
    engine: str, folder: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    """Open a fresh store of ``engine`` (its bodies in ``folder``); close it afterwards."""
    if engine == "sqlite":
        store: Store = await SqliteStore.open(folder)
        try:
            yield store
        finally:
            await store.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    async with fresh_database(server) as dsn:
        store = await PostgresStore.open(dsn, folder)
        try:
            yield store
        finally:
            await store.close()


async def second_opening(first: Store, folder: Path) -> Store:
    """Open ``first``'s database again, as another ``exchange serve`` process would.

    SQLite: the same folder opened a second time. PostgreSQL: the same database, with its
    own pool and its own folder (``folder``), as a process on another machine has.
    """
    if isinstance(first, PostgresStore):
        return await PostgresStore.open(first.dsn, folder)
    return await SqliteStore.open(first.folder)


#: The errors a statement the database refuses raises, on either engine.
DATABASE_ERRORS: Final = (sqlite3.Error, asyncpg.PostgresError)


async def open_again(store: Store) -> Store:
    """Open a second store on ``store``'s database, as another process would."""
    if isinstance(store, PostgresStore):
        return await PostgresStore.open(store.dsn, store.folder / "again")
    assert isinstance(store, SqliteStore)
    return await SqliteStore.open(store.folder)


async def current_backlog(store: Store) -> Mapping[OrgId, int]:
    """Return the outbox backlog as of now (PostgreSQL's is counted again first)."""
    if isinstance(store, PostgresStore):
        await store.count_backlog()
    return store.outbox_backlog


async def stored_bytes(store: Store) -> bytes:
    """Return everything ``store`` keeps in its database, for tests that no secret is in it.

    SQLite: the database file as it is on disk. PostgreSQL: every row of every table, as
    PostgreSQL writes it out as text (``bytea`` as hex, so raw bytes are searched as hex too).
    """
    if isinstance(store, SqliteStore):
        return store.path.read_bytes()

    def dump(db: Db) -> bytes:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' ORDER BY table_name"
            )
        ]
        rows = (db.execute(f'SELECT t::text FROM "{t}" t') for t in tables)  # noqa: S608
        text = [str(r[0]) for found in rows for r in found]
        return "\n".join(text).encode()

    return await store._read(dump)  # type: ignore[attr-defined]


class DeploymentEngine:
    """The engine the running test's loopback deployments keep their stores on.

    Set by an autouse fixture parametrised with :data:`ENGINES` (tests/node/conftest.py):
    ``server`` None means SQLite in each node's data folder.
    """

    server: PostgresServer | None = None


@asynccontextmanager
async def deployment_databases(names: Iterable[str]) -> AsyncIterator[dict[str, DatabaseConfig]]:
    """Yield each node's ``[database]`` for the current engine (fresh databases, dropped after)."""
    server = DeploymentEngine.server
    if server is None:
        yield {}
        return
    async with AsyncExitStack() as stack:
        databases = {}
        for name in dict.fromkeys(names):
            dsn = await stack.enter_async_context(fresh_database(server))
            databases[name] = DatabaseConfig(url=dsn, pool_size=4)
        yield databases


async def node_sql(
    world: Deployment, node: str, sql: str, parameters: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Run one statement on a deployment node's database from outside the node.

    As a tool or a damaged disk would; ``?`` placeholders on either engine. Returns its rows.
    """
    config = world.nodes[node].config
    if config.database.url is None:
        db = sqlite3.connect(config.data_dir / "node.sqlite3", isolation_level=None)
        try:
            return [tuple(r) for r in db.execute(sql, parameters).fetchall()]
        finally:
            db.close()
    connection = await asyncpg.connect(config.database.url)
    try:
        return [tuple(r) for r in await connection.fetch(numbered(sql), *parameters)]
    finally:
        await connection.close()
