"""The PostgreSQL store: any number of node processes on one database, through asyncpg.

:class:`PostgresStore` is the same :class:`~exchange.store.base.Store` as the embedded SQLite
one, with the same table groups (:class:`~exchange.store.node_tables.NodeTables`) running
the same statements: each store method is a plain function of a :class:`~exchange.store.sql.Db`
run in one transaction. Here that function runs on a worker thread while the transaction's
task on the event loop serves its statements: the thread hands each one over with a single
``call_soon_threadsafe`` and waits on a queue, the loop runs it with asyncpg on the
transaction's pooled connection and puts the answer there (:class:`PgDb`). So a statement
costs one wake-up each way, and the loop never waits for the database.

- Writes: one transaction per method at READ COMMITTED, committed before the method
  returns ("persist, then send"). Conditional updates (``... WHERE state = ?``) decide
  races between processes, as they do between SQLite's writers; a transaction PostgreSQL
  aborts as a deadlock or serialisation failure is run again, whole, up to
  :data:`ATTEMPTS` times. A caller cancelled mid-write does not cut the transaction short:
  it commits or rolls back as a whole.
- Reads: one read-only REPEATABLE READ transaction per method, so a page reads one snapshot.
- Schema: :data:`~exchange.store.pg_schema.PG_MIGRATIONS`, applied when the store opens,
  under an advisory lock so processes starting together apply each migration once.

The connection string may name several hosts with ``target_session_attrs=read-write``:
asyncpg then connects to whichever is the primary, which is how the node follows a failover.
It is never logged; a password belongs in the environment (``PGPASSWORD``) or a password
file (``PGPASSFILE``), never in the configuration.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg

from exchange.keys.ids import OrgId
from exchange.store.blobs import LEFTOVER_AGE
from exchange.store.damage import StoreDamagedError
from exchange.store.ledger_tree import append_ledger_now
from exchange.store.node_tables import NodeTables
from exchange.store.own_copies import OWN_COPY_DIGESTS
from exchange.store.pg_blobs import PostgresBlobs
from exchange.store.pg_schema import PG_MIGRATIONS
from exchange.store.sql import Dialect, IntegrityError, StoreTooNewError

T = TypeVar("T")
#: A worker thread's answer or outcome: (True, the value) or (False, the exception).
_Outcome = tuple[bool, Any]
#: What a worker thread asks of the loop: a statement and its parameters, or (None, outcome).
_Request = tuple[str | None, Any]
#: A connection of the pool, or one made alone (a command).
_Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

#: How many times a transaction PostgreSQL aborted as a deadlock or serialisation failure runs.
ATTEMPTS: Final = 5
#: Seconds one statement may run before PostgreSQL's answer is given up on.
STATEMENT_TIMEOUT: Final = 30.0
#: Connections (and worker threads) of one process's pool.
POOL_SIZE: Final = 10
#: Seconds the in-memory backlog may be older than the last write before it is counted again.
BACKLOG_AGE: Final = 0.25
#: The advisory lock key under which the schema is migrated (any constant both sides agree on).
MIGRATION_LOCK: Final = 0x6578_6368_616E_6765  # "exchange"

#: The backlog by destination, kept by a trigger on ``outbox`` (exchange.store.pg_schema).
_BACKLOG: Final = "SELECT destination, waiting FROM outbox_backlog WHERE waiting > 0"
_RETRIED: Final = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_PLACEHOLDER: Final = re.compile(r"'(?:[^']|'')*'|\?")


#: What asyncpg raises when the database cannot be reached: the connection refused, lost or
#: closed, the server starting, shutting down or failing over (SQLSTATE class 08, 57P0x).
_UNREACHABLE: Final = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ReadOnlySQLTransactionError,  # a standby answered: the primary is being replaced
)


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached now (it may be again soon)."""
    # asyncpg reports some losses of the connection as its own interface or internal
    # errors ("unexpected connection_lost() call"); those name the connection.
    return isinstance(exc, _UNREACHABLE) or (
        isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError)
        and "connection" in str(exc).lower()
    )


def is_database_full(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL saying its disk is full (SQLSTATE 53100)."""
    return isinstance(exc, asyncpg.DiskFullError)


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is any error of PostgreSQL or of the connection to it."""
    return isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError) or is_unreachable(exc)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Give a connection back to the pool without asyncpg's reset query (a round trip).

    Every use of a connection is transactions only: nothing sets session settings, listens,
    keeps a cursor or takes a session-level advisory lock, so there is nothing to reset;
    asyncpg still rolls back a transaction left open before this is called.
    """


class PgIntegrityError(IntegrityError):
    """A statement broke a constraint in PostgreSQL (a unique key, a foreign key, NOT NULL)."""


@functools.lru_cache(maxsize=2048)
def numbered(sql: str) -> str:
    """Return ``sql`` with its ``?`` placeholders numbered ``$1``, ``$2``, ... (not in quotes)."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


@functools.lru_cache(maxsize=2048)
def _returns_rows(sql: str) -> bool:
    upper = sql.lstrip().upper()
    return upper.startswith(("SELECT", "WITH")) or " RETURNING " in upper


def _count(status: str) -> int:
    """Return the row count of a command status such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgCursor:
    """The rows and row count of one statement (a :class:`~exchange.store.sql.Cursor`)."""

    __slots__ = ("_at", "_rows", "rowcount")

    def __init__(self, rows: Sequence[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self._at = 0
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        """Return the next row, or None after the last."""
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchall(self) -> list[Any]:
        """Return the rows not yet read."""
        rest = list(self._rows[self._at :])
        self._at = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgDb:
    """One transaction's connection, used from a worker thread (a :class:`~exchange.store.sql.Db`).

    :meth:`call` runs a function of the transaction on a worker thread while the event loop,
    which owns the connection, serves its statements one at a time: the thread hands a
    statement over with one ``call_soon_threadsafe`` and waits on a queue for the answer.
    A transaction is one conversation, so there is never more than one statement in flight.
    """

    def __init__(self, connection: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._connection = connection
        self._loop = loop
        #: Whether a statement named the outbox (so the backlog is read before the commit).
        self.touched_outbox = False
        self._ledger: list[bytes] = []
        self._asked: asyncio.Future[_Request] = loop.create_future()
        self._answers: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()

    @property
    def ledger_at_commit(self) -> list[bytes]:
        """Ledger events appended as this transaction's last statements (:meth:`finish`)."""
        return self._ledger

    def finish(self) -> None:
        """Worker thread, last in the transaction: append the ledger events kept for now.

        So the ledger's head row, which orders every append, is locked only for the rest of
        the transaction and its commit (the outbox's backlog is counted after this, on the
        loop: :meth:`PostgresStore._transaction`).
        """
        if self._ledger:
            append_ledger_now(self, self._ledger)

    @property
    def dialect(self) -> Dialect:
        """Always ``postgresql``."""
        return "postgresql"

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        """Run one statement with ``?`` placeholders bound to ``parameters``."""
        self._loop.call_soon_threadsafe(self._take, (sql, parameters))
        done, answer = self._answers.get()
        if not done:
            raise answer
        assert isinstance(answer, PgCursor)
        return answer

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> PgCursor:
        """Run one statement for each set of parameters; the row count is their sum."""
        total = 0
        for parameters in seq_of_parameters:
            total += self.execute(sql, parameters).rowcount
        return PgCursor((), total)

    async def call(self, fn: Callable[[PgDb], T], executor: Executor, *, finish: bool) -> T:
        """Run ``fn(self)`` (then :meth:`finish` if asked) on a thread of ``executor``.

        Serves the thread's statements until ``fn`` returns; returns what it returned, or
        raises what it raised.
        """
        executor.submit(self._work, fn, finish)
        while True:
            sql, payload = await self._asked
            self._asked = self._loop.create_future()
            if sql is None:  # the function is over: payload is its outcome
                done, value = payload
                if not done:
                    raise value
                return value  # type: ignore[no-any-return]
            try:
                self._answers.put((True, await self._run(sql, payload)))
            except BaseException as exc:
                self._answers.put((False, exc))
                if not isinstance(exc, Exception):
                    raise  # cancelled (the loop is closing): the thread is told, then stops

    def _work(self, fn: Callable[[PgDb], Any], finish: bool) -> None:
        """Worker thread: run ``fn``, then hand its outcome to the loop."""
        try:
            result = fn(self)
            if finish:
                self.finish()
            outcome: _Outcome = (True, result)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, which raises it
            outcome = (False, exc)
        self._loop.call_soon_threadsafe(self._take, (None, outcome))

    def _take(self, request: _Request) -> None:
        """Event loop: take the thread's next request (refused once :meth:`call` has stopped)."""
        if not self._asked.done():
            self._asked.set_result(request)
        elif request[0] is not None:
            self._answers.put((False, asyncio.CancelledError()))

    async def _run(self, sql: str, parameters: Sequence[Any]) -> PgCursor:
        query = numbered(sql)
        self.touched_outbox = self.touched_outbox or "outbox" in sql
        try:
            if _returns_rows(sql):
                rows = await self._connection.fetch(query, *parameters)
                return PgCursor(rows, len(rows))
            status = await self._connection.execute(query, *parameters)
        except asyncpg.IntegrityConstraintViolationError as exc:
            # The constraint's name, never the row: a detail may quote the values.
            raise PgIntegrityError(
                f"the change breaks the constraint {exc.constraint_name or exc.sqlstate}"
            ) from None
        return PgCursor((), _count(status))


class PostgresStore(NodeTables):
    """A :class:`exchange.store.base.Store` on a PostgreSQL database, shared by processes."""

    def __init__(self, pool: asyncpg.Pool, folder: Path, *, dsn: str, pool_size: int) -> None:
        self._pool = pool
        #: The connection string (it holds no password: ``[database] url`` refuses one).
        self.dsn = dsn
        self.folder = folder
        #: Envelope bodies: chunked rows of the database, with this process's own spool.
        self.blobs = PostgresBlobs.open(pool, folder / "spool")
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="pg-store")
        self._backlog: Mapping[OrgId, int] = {}
        self._backlog_at = 0.0
        self._backlog_task: asyncio.Task[None] | None = None
        self.leftovers_removed = 0
        #: Set by SQLite's store after an upgrade; PostgreSQL keeps its backups itself.
        self.upgrade_backup: Path | None = None

    @classmethod
    async def open(cls, dsn: str, folder: Path, *, pool_size: int = POOL_SIZE) -> PostgresStore:
        """Connect to the database ``dsn``, migrate its schema, and return the store."""
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=pool_size,
            command_timeout=STATEMENT_TIMEOUT,
            statement_cache_size=512,
            reset=_keep_session,
            server_settings={"application_name": "exchange", "TimeZone": "UTC"},
        )
        try:
            async with pool.acquire() as connection:
                await migrate(connection)
        except BaseException:
            await pool.close()
            raise
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = cls(pool, folder, dsn=dsn, pool_size=pool_size)
        await store._refresh_backlog()
        return store

    @property
    def damage(self) -> StoreDamagedError | None:
        """Always None: PostgreSQL reports damage itself, to its own log."""
        return None

    async def close(self) -> None:
        """Close every connection and stop the worker threads."""
        if self._backlog_task is not None:
            await asyncio.gather(self._backlog_task, return_exceptions=True)
        await self._pool.close()
        self._executor.shutdown(wait=True)

    async def _tx(self, fn: Callable[[PgDb], T]) -> T:
        """Run ``fn`` in one write transaction; return once it has committed."""
        # Shielded: a cancelled caller must not cut a transaction off half-way through.
        result = await asyncio.shield(self._transaction(fn, write=True))
        self._backlog_stale()
        return result

    async def _read(self, fn: Callable[[PgDb], T]) -> T:
        """Run ``fn`` in one read-only snapshot."""
        return await asyncio.shield(self._transaction(fn, write=False))

    async def _transaction(self, fn: Callable[[PgDb], T], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        for attempt in range(1, ATTEMPTS + 1):
            async with self._pool.acquire() as connection:
                try:
                    async with connection.transaction(
                        isolation="read_committed" if write else "repeatable_read",
                        readonly=not write,
                    ):
                        db = PgDb(connection, loop)
                        result = await db.call(fn, self._executor, finish=write)
                        if db.touched_outbox and write:
                            # The deferred backlog trigger fired last, so a destination's
                            # count row is locked only for the commit; then, as of this
                            # commit, in it: what the trigger counted, ours included.
                            await connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
                            backlog = await connection.fetch(_BACKLOG)
                except _RETRIED:
                    if attempt == ATTEMPTS:
                        raise
                else:
                    if db.touched_outbox and write:
                        self._set_backlog(backlog)
                    return result
            await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the outbox's backlog -----------------------------------------------------------

    @property
    def outbox_backlog(self) -> Mapping[OrgId, int]:
        """Envelope items not yet given to each destination, as of a recent count.

        A trigger keeps the count in the ``outbox_backlog`` table inside every transaction
        that changes the outbox, so a write rolled back takes its change with it. A write of
        this process that touched the outbox reads the count before it commits (exact as of
        that commit); other processes' writes are seen when it is read again, at most
        :data:`BACKLOG_AGE` seconds after this process's next write.
        """
        return self._backlog

    def _backlog_stale(self) -> None:
        if self._backlog_task is None and time.monotonic() - self._backlog_at >= BACKLOG_AGE:
            self._backlog_task = asyncio.get_running_loop().create_task(self._refresh_backlog())

    async def count_backlog(self) -> Mapping[OrgId, int]:
        """Read the backlog now (every process's items) and return it."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(_BACKLOG)
        self._set_backlog(rows)
        return self._backlog

    def _set_backlog(self, rows: Sequence[asyncpg.Record]) -> None:
        # Swapped whole, so a reader sees one count or the next, never half of each.
        self._backlog = {OrgId(r[0]): int(r[1]) for r in rows}
        self._backlog_at = time.monotonic()

    async def _refresh_backlog(self) -> None:
        try:
            await self.count_backlog()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # counted again after the next write; the readiness check reports the outage
        finally:
            self._backlog_task = None

    # --- bodies and readiness -----------------------------------------------------------

    async def sweep_leftovers(self) -> int:
        """Remove bodies no row names (older than an hour) and this process's leftovers."""

        def read(db: PgDb) -> set[bytes]:
            rows = db.execute(f"SELECT digest FROM envelopes UNION {OWN_COPY_DIGESTS}")
            return {bytes(r[0]) for r in rows}

        return await self.blobs.sweep(await self._read(read), min_age=LEFTOVER_AGE)

    async def check_writable(self, now: float) -> None:
        """Raise unless the database commits a write (the readiness check)."""

        def tx(db: PgDb) -> None:
            db.execute(
                "INSERT INTO write_probe (id, at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (now,),
            )

        await self._tx(tx)


async def schema_version(connection: _Connection) -> int:
    """Return the schema version of the database (0 before the first migration)."""
    exists = await connection.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await connection.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def migrate(connection: _Connection) -> list[int]:
    """Apply the migrations the database lacks, under the migration lock; return them."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"
        )
        current = await schema_version(connection)
        if current > len(PG_MIGRATIONS):
            raise StoreTooNewError(current, len(PG_MIGRATIONS))
        applied = []
        for version, statements in enumerate(PG_MIGRATIONS, start=1):
            if version <= current:
                continue
            for statement in statements:
                await connection.execute(statement)
            await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            applied.append(version)
        return applied


def is_postgres_dsn(location: str) -> bool:
    """Return whether a store location names a PostgreSQL database (not a folder)."""
    return location.startswith(("postgresql://", "postgres://"))
