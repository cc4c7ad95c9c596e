"""The embedded store: SQLite in WAL mode with full synchronous commits.

One writing connection lives on one worker thread; every write runs there, so the event loop
never blocks on disk and transactions never interleave. Reads run on their own threads and
connections (:data:`READERS`), each in one read transaction: in WAL mode a reader sees the
last commit and never waits for a writer, so a list page does not queue behind the group
commits of a busy outbox. Each writing method is atomic on its own
(a savepoint) and returns only after the transaction holding it has committed;
``synchronous=FULL`` makes that commit durable, which is what lets the API answer 202 only
after an envelope is safe ("persist, then send", docs/architecture.md §4). Writes that arrive
while a commit is in progress are committed together by the next one ("group commit"): one fsync
for many changes, each still all-or-nothing, none acknowledged before it is on disk.

Envelope bodies are files named by the hex digest under ``bodies/``
(:class:`~exchange.store.blobs.FileBlobs`); the node writes and syncs a body before the
transaction that refers to it commits, so a crash leaves at worst an unreferenced file, never
a row without its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from exchange.keys.ids import OrgId
from exchange.store.backlog import data_version, read_backlog, recount_backlog, track_backlog
from exchange.store.backup import pre_upgrade_backup, schema_version
from exchange.store.blobs import LEFTOVER_AGE, FileBlobs
from exchange.store.damage import StoreDamagedError, damage_of, quick_check
from exchange.store.node_tables import NodeTables
from exchange.store.own_copies import OWN_COPY_DIGESTS
from exchange.store.schema import MIGRATIONS, run_migration
from exchange.store.sql import Db, SqliteDb, StoreTooNewError, connect_sqlite

T = TypeVar("T")

#: A queued write (or read): its function, the future its caller awaits, and its loop.
_Write = tuple[Callable[[Db], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]

#: What a write produced: (True, its result) or (False, the exception it raised).
_Outcome = tuple[bool, Any]

#: Most writes committed by one group commit (bounds the latency a single commit adds).
MAX_GROUP: Final = 256
#: Threads (each with its own connection) that run reads beside the writing thread.
READERS: Final = 2
#: The size of the file the readiness check writes: one block of most file systems.
PROBE_FILE_BYTES: Final = 4096


def _committed_bodies(db: Db) -> set[bytes]:
    """Return the digests of every body a row names: envelopes and the own copies."""
    rows = db.execute(f"SELECT digest FROM envelopes UNION {OWN_COPY_DIGESTS}")
    return {bytes(r[0]) for r in rows}


def _settle(settled: Sequence[tuple[asyncio.Future[Any], _Outcome]]) -> None:
    """Event loop: hand each write's result or exception to its (possibly cancelled) caller."""
    for future, (ok, value) in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _hand_back(batch: Sequence[_Write], outcomes: Sequence[_Outcome]) -> None:
    """Give each queued call its outcome: one wake-up per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], _Outcome]]] = {}
    for (_, future, loop), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, settled in by_loop.items():
        # A loop closed meanwhile has no one left waiting; the writes are committed anyway.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, settled)


class SqliteStore(NodeTables):
    """A :class:`exchange.store.base.Store` on one SQLite file and a bodies folder."""

    def __init__(
        self, folder: Path, *, upgrade_backups: Path | None = None, sweep: bool = False
    ) -> None:
        self.folder = folder
        #: Whether opening removes every uncommitted body at once (only the node's own start:
        #: a command opened beside a running node must not take a body it is writing).
        self.sweep_at_open = sweep
        #: The envelope bodies: files under ``<folder>/bodies``.
        self.blobs = FileBlobs(folder / "bodies")
        #: Where a backup is made before the schema is upgraded (default ``<folder>/backups``).
        self.upgrade_backups = folder / "backups" if upgrade_backups is None else upgrade_backups
        #: The backup made before this opening upgraded the schema, if it did.
        self.upgrade_backup: Path | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._db: SqliteDb | None = None
        self._readers = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="sqlite-read")
        # Each reading thread's connection, made on its first read; all are closed together.
        self._reader = threading.local()
        self._reader_dbs: list[SqliteDb] = []
        self._reader_lock = threading.Lock()
        # Reads waiting for a reading thread: (function, its future, the future's loop).
        self._pending_reads: deque[_Write] = deque()
        self._backlog: Mapping[OrgId, int] = {}
        # The writing connection's data version when the backlog was last known exact.
        self._data_version = 0
        # Writes waiting for the next group commit: (function, its future, the future's loop).
        self._pending: deque[_Write] = deque()
        #: Leftover files removed when the store was opened (temporaries, uncommitted bodies).
        self.leftovers_removed = 0
        self._damage: StoreDamagedError | None = None

    @classmethod
    async def open(
        cls, folder: Path, *, upgrade_backups: Path | None = None, sweep: bool = False
    ) -> SqliteStore:
        """Open (creating and migrating if needed) the store in ``folder``.

        A database at an older schema version is backed up into ``upgrade_backups`` (default
        ``<folder>/backups``) before it is migrated; if that backup fails, nothing is changed
        and :class:`~exchange.store.backup.UpgradeBackupError` is raised.
        """
        store = cls(folder, upgrade_backups=upgrade_backups, sweep=sweep)
        await store._call(store._open)
        return store

    @property
    def damage(self) -> StoreDamagedError | None:
        """The damage found in the database since it was opened, if any."""
        return self._damage

    def _damaged(self, exc: BaseException) -> StoreDamagedError | None:
        """Return (and remember) the damage an error reports, or None."""
        damage = damage_of(exc, self.path)
        if damage is not None and self._damage is None:
            self._damage = damage
        return damage

    @property
    def path(self) -> Path:
        """The database file."""
        return self.folder / "node.sqlite3"

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.blobs.create()
        db = connect_sqlite(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            # Damage is found here, named, before anything is served from the file.
            quick_check(db, self.path)
            found = schema_version(db)
            if 0 < found < len(MIGRATIONS):
                self.upgrade_backup = pre_upgrade_backup(
                    db, self.folder, self.upgrade_backups, found
                )
            self._migrate(db)
            committed = _committed_bodies(db)
            track_backlog(db)
            self._backlog = read_backlog(db)
            self._data_version = data_version(db)
        except BaseException as exc:
            db.close()
            damage = damage_of(exc, self.path)
            if damage is not None:
                raise damage from None
            raise
        self._db = db
        # At the node's own start nothing is being written yet, so every temporary and
        # uncommitted body is a leftover; a command leaves them to the node's hourly sweep.
        if self.sweep_at_open:
            self.leftovers_removed = self.blobs.sweep_now(committed)

    async def sweep_leftovers(self) -> int:
        """Remove temporaries and uncommitted bodies older than an hour; return how many."""
        committed = await self._read(_committed_bodies)
        return await self.blobs.sweep(committed, min_age=LEFTOVER_AGE)

    @staticmethod
    def _migrate(db: SqliteDb) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > len(MIGRATIONS):
            raise StoreTooNewError(current, len(MIGRATIONS))
        for version, statements in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                run_migration(db, statements)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except Exception as exc:
            damage = self._damaged(exc)
            if damage is not None:
                raise damage from None
            raise

    async def _tx(self, fn: Callable[[Db], T]) -> T:
        """Run ``fn`` atomically on the worker thread; return once its commit is durable.

        ``fn`` runs inside a savepoint of an IMMEDIATE transaction that may also hold other
        writes queued at the same time; if ``fn`` raises, only its own changes are undone.
        """
        return await self._queued(self._pending, self._executor, self._commit_pending, fn)

    async def _queued(
        self,
        queue: deque[_Write],
        executor: ThreadPoolExecutor,
        drain: Callable[[], None],
        fn: Callable[[Db], T],
    ) -> T:
        """Queue ``fn`` for ``drain`` on ``executor``'s thread; return what it gave."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        queue.append((fn, future, loop))
        # One drain job per call; a job finding the queue already emptied does nothing.
        executor.submit(drain)
        try:
            return await future
        except Exception as exc:
            damage = self._damaged(exc)
            if damage is not None:
                raise damage from None
            raise

    def _commit_pending(self) -> None:
        """Worker thread: run the queued writes in one transaction and commit them once."""
        batch: list[_Write] = []
        while self._pending and len(batch) < MAX_GROUP:
            batch.append(self._pending.popleft())
        if not batch:
            return
        try:
            outcomes = self._run_group([fn for fn, _, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - nothing committed: every caller fails
            outcomes = [(False, exc)] * len(batch)
        _hand_back(batch, outcomes)

    def _run_group(self, fns: Sequence[Callable[[Db], Any]]) -> list[_Outcome]:
        """Run each write in its own savepoint of one IMMEDIATE transaction, then commit."""
        db = self._db
        if db is None:
            raise RuntimeError("the store is closed")
        outcomes: list[_Outcome] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process committed since (a command beside the node): the triggers did
            # not see it, so the backlog is counted afresh, under this transaction's lock.
            version = data_version(db)
            if version != self._data_version:
                recount_backlog(db)
            for fn in fns:
                db.execute("SAVEPOINT write")
                try:
                    result = fn(db)
                except BaseException as exc:  # noqa: BLE001 - handed to its caller
                    db.execute("ROLLBACK TO write")
                    db.execute("RELEASE write")
                    outcomes.append((False, exc))
                else:
                    db.execute("RELEASE write")
                    outcomes.append((True, result))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._data_version = version
        # Swapped whole, so the event loop reads one commit's counts or the next one's.
        self._backlog = read_backlog(db)
        return outcomes

    @property
    def outbox_backlog(self) -> Mapping[OrgId, int]:
        """Envelope items not yet given to each destination, as of the last commit.

        Kept in memory (:mod:`exchange.store.backlog`): reading it costs no query.
        """
        return self._backlog

    def _reading_db(self) -> SqliteDb:
        """Return the reading thread's own connection, opened on its first read."""
        db: SqliteDb | None = getattr(self._reader, "db", None)
        if db is None:
            if self._db is None:
                raise RuntimeError("the store is closed")
            db = connect_sqlite(str(self.path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA query_only=ON")
            db.execute("PRAGMA busy_timeout=5000")
            with self._reader_lock:
                self._reader_dbs.append(db)
            self._reader.db = db
        return db

    async def _read(self, fn: Callable[[Db], T]) -> T:
        """Run ``fn`` on a reading thread, in one read transaction (one consistent snapshot).

        Reads asked for at the same moment (a page's, or many pages') are run by one job of
        a reading thread and handed back with one wake-up of the event loop, as writes are.
        """
        return await self._queued(self._pending_reads, self._readers, self._run_pending_reads, fn)

    def _run_pending_reads(self) -> None:
        """Run the reads waiting now (on a reading thread), each in its own read transaction."""
        batch: list[_Write] = []
        # Both reading threads take from the queue: one may empty it under the other.
        with contextlib.suppress(IndexError):
            while len(batch) < MAX_GROUP:
                batch.append(self._pending_reads.popleft())
        outcomes: list[_Outcome] = []
        for fn, _, _ in batch:
            try:
                db = self._reading_db()
                db.execute("BEGIN")
                try:
                    outcomes.append((True, fn(db)))
                finally:
                    if db.in_transaction:
                        db.execute("COMMIT")
            except BaseException as exc:  # noqa: BLE001 - handed to its caller
                outcomes.append((False, exc))
        _hand_back(batch, outcomes)

    async def close(self) -> None:
        """Close the database and stop the worker threads."""

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for db in self._reader_dbs:
                db.close()
            self._reader_dbs.clear()
        await self._call(shut)
        self._executor.shutdown(wait=True)

    async def check_writable(self, now: float) -> None:
        """Raise unless the store can commit a write and create a file (the readiness check).

        The database's write is one row, committed like any other write: a write rolled
        back would never reach the disk, so it would not show a full one. The file is
        written, synced and removed again in the data folder, where bodies are kept.
        """

        def tx(db: Db) -> None:
            db.execute(
                "INSERT INTO write_probe (id, at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (now,),
            )

        await self._tx(tx)
        await asyncio.to_thread(self._write_probe_file)

    def _write_probe_file(self) -> None:
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=self.folder)
        try:
            os.write(fd, bytes(PROBE_FILE_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
            Path(name).unlink()

    # --- helpers run inside transactions -------------------------------------------------

    # --- sending --------------------------------------------------------------------------
