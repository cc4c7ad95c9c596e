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
from typing import Any, Final, Literal, TypeVar, cast

from exchange.keys.ids import OrgId
from exchange.model import (
    EnvelopeRecord,
    EventHash,
    IdempotencyRecord,
    InboxItem,
    InboxState,
    NewOutbox,
    OutboxItem,
    ReceiptRecord,
    RegisterEntry,
    RetentionSchedule,
    Role,
    SentItem,
    ThreadLink,
    User,
)
from exchange.outbox import machine
from exchange.outbox.machine import Transition
from exchange.store.account_events import AccountEventTables
from exchange.store.accounts import AccountTables, insert_user
from exchange.store.api_tokens import ApiTokenTables
from exchange.store.backlog import data_version, read_backlog, recount_backlog, track_backlog
from exchange.store.backup import pre_upgrade_backup, schema_version
from exchange.store.base import InboxPlace, ItemOpening, OpeningOutcome
from exchange.store.blobs import LEFTOVER_AGE, FileBlobs
from exchange.store.damage import StoreDamagedError, damage_of, quick_check
from exchange.store.directory import DirectoryTables
from exchange.store.idempotency import IdempotencyTables, insert_idempotency
from exchange.store.node_state import NodeStateTables
from exchange.store.own_copies import OWN_COPY_DIGESTS, OwnCopyTables
from exchange.store.passkeys import PasskeyTables
from exchange.store.recall import RecallTables
from exchange.store.register import SharingRegisterTables
from exchange.store.retention import RetentionTables
from exchange.store.rows import (
    ENVELOPE_COLUMNS,
    OUTBOX_COLUMNS,
    append_ledger,
    envelope_row,
    insert_envelope,
    insert_outbox,
    insert_receipt,
    outbox_item,
    outbox_rows,
    step_all,
    write_transition,
)
from exchange.store.schema import MIGRATIONS
from exchange.store.sent_lists import SentFilter, SentListTables
from exchange.store.sql import Db, Row, SqliteDb, connect_sqlite
from exchange.store.sso_links import SsoLinkTables

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


def _receipt(row: Row) -> ReceiptRecord:
    return ReceiptRecord(
        digest=row["digest"],
        envelope_digest=row["envelope_digest"],
        receipter=OrgId(row["receipter"]),
        status=row["status"],
        time=row["time"],
        signed=row["signed"],
    )


def _user(row: Row) -> User:
    return User(row["id"], OrgId(row["org"]), row["name"], cast(Role, row["role"]))


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


class StoreTooNewError(Exception):
    """The database was migrated by a newer version of the node than this one."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the node's database is at schema version {found}, made by a newer version of the "
            f"node (this one knows versions up to {known}); run that newer version, or restore "
            "the backup taken before the upgrade (docs/node.md, 'Before an upgrade')"
        )


class SqliteStore(
    IdempotencyTables,
    SharingRegisterTables,
    RecallTables,
    RetentionTables,
    AccountTables,
    AccountEventTables,
    ApiTokenTables,
    PasskeyTables,
    SentListTables,
    NodeStateTables,
    DirectoryTables,
    OwnCopyTables,
    SsoLinkTables,
):
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
                for statement in statements:
                    db.execute(statement)
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

    async def mark_damaged(self, digest: bytes, now: float) -> None:
        """Record that the body of ``digest`` is damaged (once; the first time is kept)."""

        def tx(db: Db) -> None:
            db.execute(
                "INSERT INTO damaged_bodies (digest, found_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (digest, now),
            )

        await self._tx(tx)

    async def is_damaged(self, digest: bytes) -> bool:
        """Return whether the body of ``digest`` was found damaged."""

        def read(db: Db) -> bool:
            row = db.execute("SELECT 1 FROM damaged_bodies WHERE digest = ?", (digest,))
            return row.fetchone() is not None

        return await self._read(read)

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

    async def record_submission(
        self,
        envelope: EnvelopeRecord,
        *,
        submitted_by: str,
        now: float,
        outbox: Sequence[NewOutbox],
        ledger_events: Sequence[bytes],
        register: RegisterEntry | None = None,
        thread: ThreadLink | None = None,
        retention: RetentionSchedule | None = None,
        idempotency: IdempotencyRecord | None = None,
        own_copy: bytes | None = None,
    ) -> None:
        """Commit a sealed envelope, its outbox rows, ledger events and register row together.

        ``thread`` links it to the envelope it replies to or corrects; ``idempotency`` is
        the caller's key with the answer, so a retry after a crash finds it; ``own_copy`` is
        the digest of the sender's own copy, already written to the bodies folder.
        """

        def tx(db: Db) -> None:
            insert_envelope(db, envelope, now)
            if register is not None:
                self._insert_register(db, register)
            db.execute(
                "INSERT INTO sent (digest, sender, submitted_by, submitted_at, own_copy) "
                "VALUES (?, ?, ?, ?, ?)",
                (envelope.digest, envelope.sender, submitted_by, now, own_copy),
            )
            insert_outbox(db, envelope.digest, outbox, now)
            append_ledger(db, ledger_events)
            if thread is not None:
                self._insert_link(db, thread, envelope.digest, source="sent", now=now)
            if retention is not None:
                # Its review date (exchange/store/retention.py), with the envelope.
                self._insert_retention(db, retention)
            if idempotency is not None:
                insert_idempotency(db, idempotency)

        await self._tx(tx)

    def _sent_items(self, db: Db, rows: list[Row]) -> list[SentItem]:
        items = []
        for row in rows:
            digest = row["digest"]
            deliveries = db.execute(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE envelope_digest = ? AND kind = "
                "'envelope' ORDER BY destination",
                (digest,),
            ).fetchall()
            receipts = db.execute(
                "SELECT * FROM receipts WHERE envelope_digest = ? ORDER BY time, recorded_at",
                (digest,),
            ).fetchall()
            items.append(
                SentItem(
                    envelope=envelope_row(row),
                    submitted_by=row["submitted_by"],
                    submitted_at=row["submitted_at"],
                    deliveries=tuple(outbox_item(d) for d in deliveries),
                    receipts=tuple(_receipt(r) for r in receipts),
                )
            )
        return items

    async def list_sent(
        self,
        sender: OrgId,
        *,
        limit: int,
        before: tuple[float, bytes] | None = None,
        after: tuple[float, bytes] | None = None,
        only: SentFilter | None = None,
    ) -> list[SentItem]:
        """Return the newest ``limit`` envelopes ``sender`` sent, with their timelines.

        ``before`` (submitted_at, digest) continues a listing after its last item; ``after``
        goes back to the page before its first item (the ``limit`` oldest items newer than
        it, still newest first). ``only`` keeps the items a :class:`SentFilter` selects.
        """
        # Row values, so that the index on (sender, submitted_at, digest) seeks to the cursor.
        if after is not None:
            at, digest = after
            where, order = "(s.submitted_at, s.digest) > (?, ?)", "ASC"
        else:
            at, digest = before if before is not None else (float("inf"), b"")
            where, order = "(s.submitted_at, s.digest) < (?, ?)", "DESC"
        condition, extra = ("", ()) if only is None else only.condition()
        if condition:
            where += " AND " + condition

        def read(db: Db) -> list[SentItem]:
            rows = db.execute(
                f"SELECT e.{ENVELOPE_COLUMNS.replace(', ', ', e.')}, s.submitted_by, "
                "s.submitted_at FROM sent s JOIN envelopes e ON e.digest = s.digest "
                f"WHERE s.sender = ? AND {where} "
                f"ORDER BY s.submitted_at {order}, s.digest {order} LIMIT ?",
                (sender, at, digest, *extra, limit),
            ).fetchall()
            if after is not None:
                rows.reverse()
            return self._sent_items(db, rows)

        return await self._read(read)

    async def sent_item(self, sender: OrgId, digest: bytes) -> SentItem | None:
        """Return one sent envelope of ``sender``, or ``None``."""

        def read(db: Db) -> SentItem | None:
            rows = db.execute(
                f"SELECT e.{ENVELOPE_COLUMNS.replace(', ', ', e.')}, s.submitted_by, "
                "s.submitted_at FROM sent s JOIN envelopes e ON e.digest = s.digest "
                "WHERE s.sender = ? AND s.digest = ?",
                (sender, digest),
            ).fetchall()
            items = self._sent_items(db, rows)
            return items[0] if items else None

        return await self._read(read)

    # --- the outbox -----------------------------------------------------------------------
    # The states and their transitions are decided by exchange.outbox.machine; the store
    # selects rows, asks the machine, and writes what it answers
    # (exchange.store.rows.write_transition).

    async def claim_due(self, now: float, limit: int) -> list[OutboxItem]:
        """Move up to ``limit`` due items to ``attempting`` and return them."""

        def tx(db: Db) -> list[OutboxItem]:
            # The condition of exchange.outbox.machine.is_due, as an indexed query.
            due = outbox_rows(
                db,
                "state IN ('queued', 'retry-wait') AND recall_requested_at IS NULL "
                "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                (now, limit),
            )
            claimed = []
            for item in due:
                transition = machine.step(item, machine.Claimed(), now)
                if write_transition(db, transition):
                    claimed.append(transition.after)
            return claimed

        return await self._tx(tx)

    async def apply_transition(self, transition: Transition) -> bool:
        """Write a transition the worker computed, with its receipt and ledger events.

        Returns False, writing nothing, if the item changed since it was read (a recall
        requested meanwhile): the caller reads it again and asks the machine anew.
        """
        return await self._tx(lambda db: write_transition(db, transition))

    async def outbox_item(self, item_id: int) -> OutboxItem | None:
        """Return one outbox item as it is now, or ``None``."""

        def read(db: Db) -> OutboxItem | None:
            found = outbox_rows(db, "id = ?", (item_id,))
            return found[0] if found else None

        return await self._read(read)

    async def requeue_attempting(self, now: float) -> int:
        """After a restart, put items left ``attempting`` back in the queue."""

        def tx(db: Db) -> int:
            items = outbox_rows(db, "state = 'attempting'", ())
            return len(step_all(db, items, machine.Restarted(), now))

        return await self._tx(tx)

    async def requeue_dead(self, now: float, envelope_digest: bytes | None = None) -> int:
        """Give dead items (of one envelope, or all) a fresh start on their first route."""

        def tx(db: Db) -> int:
            items = outbox_rows(
                db,
                "state = 'dead' AND (? IS NULL OR envelope_digest = ?)",
                (envelope_digest, envelope_digest),
            )
            return len(step_all(db, items, machine.RequeueDead(), now))

        return await self._tx(tx)

    async def bring_retries_forward(self, by: float) -> int:
        """Make envelopes and receipts waiting to retry due ``by`` seconds sooner.

        Staff mails (notices, chases) keep their times: a chase is due on a date, not after
        a back-off.
        """

        def tx(db: Db) -> int:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = next_attempt_at - ? "
                "WHERE state = 'retry-wait' AND kind IN ('envelope', 'receipt')",
                (by,),
            )
            return cursor.rowcount

        return await self._tx(tx)

    async def make_due_now(self, destination: OrgId, now: float) -> int:
        """Make ``destination``'s envelopes and receipts waiting to retry due at ``now``.

        Staff mails keep their times, as in :meth:`bring_retries_forward`. The rows are
        found through ``outbox_due`` (state, next attempt), so only waiting rows are read.
        """

        def tx(db: Db) -> int:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE state = 'retry-wait' "
                "AND next_attempt_at > ? AND destination = ? AND kind IN ('envelope', 'receipt')",
                (now, now, destination),
            )
            return cursor.rowcount

        return await self._tx(tx)

    async def add_outbox(
        self, envelope_digest: bytes, rows: Sequence[NewOutbox], *, now: float
    ) -> int:
        """Queue ``rows`` for ``envelope_digest``; an identical row already held is kept.

        Returns how many rows were new.
        """

        def tx(db: Db) -> int:
            return insert_outbox(db, envelope_digest, rows, now)

        return await self._tx(tx)

    async def reopen_handed_over(
        self, route_kind: str, transport_ref: str, *, now: float, error: str
    ) -> OutboxItem | None:
        """Put an item a transport took but later reported undelivered back in the queue.

        The item moves to the next of its destination's routes, with its ``attempted``
        ledger event, in one transaction (:class:`exchange.outbox.machine.NonDeliveryReport`).
        Returns the item as it was, or ``None`` if no delivered item has that transport id
        (a report for something else, or handled before) or the item was recalled.
        """

        def tx(db: Db) -> OutboxItem | None:
            found = outbox_rows(
                db,
                "transport_ref = ? AND route_kind = ? AND state = 'delivered'",
                (transport_ref, route_kind),
            )
            if not found:
                return None
            written = step_all(db, found[:1], machine.NonDeliveryReport(error), now)
            reopened = [t.before for t in written if t.after.state == "retry-wait"]
            return reopened[0] if reopened else None

        return await self._tx(tx)

    async def outbox_counts(self) -> dict[str, int]:
        """Return the number of outbox items in each state."""

        def read(db: Db) -> dict[str, int]:
            rows = db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
            return {r[0]: r[1] for r in rows}

        return await self._read(read)

    async def receipt_counts(self) -> dict[str, int]:
        """Return the number of receipts held, by status."""

        def read(db: Db) -> dict[str, int]:
            rows = db.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall()
            return {r[0]: r[1] for r in rows}

        return await self._read(read)

    # --- receiving ------------------------------------------------------------------------

    async def record_delivery(
        self,
        owner: OrgId,
        envelope: EnvelopeRecord,
        *,
        now: float,
        receipt: ReceiptRecord,
        ledger_events: Sequence[bytes],
        outbox: Sequence[NewOutbox] = (),
    ) -> bytes:
        """Store an inbound envelope once; return the ``delivered`` receipt on record."""

        def tx(db: Db) -> bytes:
            row = db.execute(
                "SELECT delivered_receipt FROM inbox WHERE owner = ? AND digest = ?",
                (owner, envelope.digest),
            ).fetchone()
            if row is not None:
                return cast(bytes, row[0])
            insert_envelope(db, envelope, now)
            db.execute(
                "INSERT INTO inbox (owner, digest, received_at, state, delivered_receipt, "
                "updated_at) VALUES (?, ?, ?, 'delivered', ?, ?)",
                (owner, envelope.digest, now, receipt.signed, now),
            )
            insert_receipt(db, receipt, now)
            insert_outbox(db, envelope.digest, outbox, now)
            append_ledger(db, ledger_events)
            return receipt.signed

        return await self._tx(tx)

    @staticmethod
    def _inbox_item(row: Row) -> InboxItem:
        return InboxItem(
            owner=OrgId(row["owner"]),
            envelope=envelope_row(row),
            received_at=row["received_at"],
            state=row["state"],
            delivered_receipt=row["delivered_receipt"],
        )

    _INBOX_SELECT = (
        "SELECT i.owner, i.received_at, i.state, i.delivered_receipt, e.digest, "
        "e.envelope_id, e.sender, e.recipients, e.record_kind, e.created, e.length "
        "FROM inbox i JOIN envelopes e ON e.digest = i.digest "
    )

    async def inbox(
        self, owner: OrgId, *, limit: int, before: tuple[float, bytes] | None = None
    ) -> list[InboxItem]:
        """Return the newest ``limit`` items delivered to ``owner``.

        ``before`` (received_at, digest) continues a listing after its last item.
        """
        at, digest = before if before is not None else (float("inf"), b"")

        def read(db: Db) -> list[InboxItem]:
            rows = db.execute(
                self._INBOX_SELECT + "WHERE i.owner = ? AND (i.received_at < ? OR "
                "(i.received_at = ? AND i.digest < ?)) "
                "ORDER BY i.received_at DESC, i.digest DESC LIMIT ?",
                (owner, at, at, digest, limit),
            ).fetchall()
            return [self._inbox_item(r) for r in rows]

        return await self._read(read)

    async def inbox_item(self, owner: OrgId, digest: bytes) -> InboxItem | None:
        """Return one inbox item of ``owner``, or ``None``."""

        def read(db: Db) -> InboxItem | None:
            row = db.execute(
                self._INBOX_SELECT + "WHERE i.owner = ? AND i.digest = ?", (owner, digest)
            ).fetchone()
            return None if row is None else self._inbox_item(row)

        return await self._read(read)

    async def inbox_unread_first(
        self, owner: OrgId, *, limit: int, after: InboxPlace | None = None
    ) -> list[InboxItem]:
        """Return ``limit`` of ``owner``'s items: unread (``delivered``) first, then newest.

        ``after`` (the last item's place, :func:`~exchange.store.base.inbox_place`)
        continues a listing.
        """
        read_rank, at, digest = after if after is not None else (0, float("inf"), b"")
        # Two index walks instead of one sort of every item: the unread ones (owner, state,
        # received_at), then, if the page has room, the read ones newest first.
        newer_first = (
            "(i.received_at < ? OR (i.received_at = ? AND i.digest < ?)) "
            "ORDER BY i.received_at DESC, i.digest DESC LIMIT ?"
        )

        def read(db: Db) -> list[InboxItem]:
            rows: list[Row] = []
            if read_rank == 0:
                rows = db.execute(
                    self._INBOX_SELECT
                    + "WHERE i.owner = ? AND i.state = 'delivered' AND "
                    + newer_first,
                    (owner, at, at, digest, limit),
                ).fetchall()
            if len(rows) < limit:
                start = (at, digest) if read_rank == 1 else (float("inf"), b"")
                rows += db.execute(
                    self._INBOX_SELECT
                    + "WHERE i.owner = ? AND i.state <> 'delivered' AND "
                    + newer_first,
                    (owner, start[0], start[0], start[1], limit - len(rows)),
                ).fetchall()
            return [self._inbox_item(r) for r in rows]

        return await self._read(read)

    async def inbox_item_by_envelope_id(self, owner: OrgId, envelope_id: bytes) -> InboxItem | None:
        """Return ``owner``'s inbox item of the envelope with this id, or ``None``."""

        def read(db: Db) -> InboxItem | None:
            row = db.execute(
                self._INBOX_SELECT + "WHERE i.owner = ? AND e.envelope_id = ? "
                "ORDER BY i.received_at LIMIT 1",
                (owner, envelope_id),
            ).fetchone()
            return None if row is None else self._inbox_item(row)

        return await self._read(read)

    async def update_inbox(
        self,
        owner: OrgId,
        digest: bytes,
        *,
        state: InboxState,
        receipt: ReceiptRecord | None,
        outbox: Sequence[NewOutbox],
        ledger_events: Sequence[bytes],
        now: float,
    ) -> bool:
        """Change an inbox item's state with its receipt, outbox rows and ledger events.

        Returns False, and writes nothing, if the item was recalled meanwhile.
        """

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE inbox SET state = ?, updated_at = ? WHERE owner = ? AND digest = ? "
                "AND state != 'recalled'",
                (state, now, owner, digest),
            )
            if cursor.rowcount != 1:
                return False
            if receipt is not None:
                insert_receipt(db, receipt, now)
            insert_outbox(db, digest, outbox, now)
            append_ledger(db, ledger_events)
            return True

        return await self._tx(tx)

    async def record_opening(self, opening: ItemOpening) -> OpeningOutcome:
        """Record one opening of an inbox item in one transaction; return what it found.

        A first opening moves the item from ``delivered`` to ``opened`` only while it is
        still ``delivered``, so exactly one of a recall and the opening wins; if the recall
        won, nothing at all is written. Otherwise the access event, the subject index, the
        thread link and the retention schedule are written with it, each only once.
        """

        def tx(db: Db) -> OpeningOutcome:
            first = opening.first
            state: Literal["opened", "already"] = "already"
            if first is not None:
                cursor = db.execute(
                    "UPDATE inbox SET state = 'opened', opened_at = ?, opened_by = ?, "
                    "opened_by_role = ?, updated_at = ? "
                    "WHERE owner = ? AND digest = ? AND state = 'delivered'",
                    (
                        opening.now, opening.user_id, opening.role, opening.now,
                        opening.owner, opening.digest,
                    ),
                )  # fmt: skip
                if cursor.rowcount == 1:
                    state = "opened"
                else:
                    row = db.execute(
                        "SELECT state FROM inbox WHERE owner = ? AND digest = ?",
                        (opening.owner, opening.digest),
                    ).fetchone()
                    if row is not None and row[0] == "recalled":
                        return OpeningOutcome("recalled", scheduled=False)
            if first is not None and state == "opened":
                insert_receipt(db, first.receipt, opening.now)
                insert_outbox(db, opening.digest, first.outbox, opening.now)
                append_ledger(db, [first.opened_event, opening.accessed_event])
            else:
                append_ledger(db, [opening.accessed_event])
            if opening.index_outcome is not None:
                self._insert_received_index(
                    db, opening.owner, opening.digest,
                    subjects=opening.subjects, outcome=opening.index_outcome, now=opening.now,
                )  # fmt: skip
            if opening.link is not None:
                self._insert_link(
                    db, opening.link, opening.digest, source="opened", now=opening.now
                )
            scheduled = opening.schedule is not None and self._insert_retention(
                db, opening.schedule
            )
            return OpeningOutcome(state, scheduled=scheduled)

        return await self._tx(tx)

    # --- receipts -------------------------------------------------------------------------

    async def add_receipt(
        self, receipt: ReceiptRecord, *, ledger_events: Sequence[bytes], now: float
    ) -> bool:
        """Store a verified receipt; return False (and log nothing) if already held."""

        def tx(db: Db) -> bool:
            added = insert_receipt(db, receipt, now)
            if added:
                append_ledger(db, ledger_events)
            return added

        return await self._tx(tx)

    async def receipt(self, digest: bytes) -> ReceiptRecord | None:
        """Return a receipt by its digest."""

        def read(db: Db) -> ReceiptRecord | None:
            row = db.execute("SELECT * FROM receipts WHERE digest = ?", (digest,)).fetchone()
            return None if row is None else _receipt(row)

        return await self._read(read)

    async def receipts_for(self, envelope_digest: bytes) -> list[ReceiptRecord]:
        """Return every receipt held for an envelope, oldest first."""

        def read(db: Db) -> list[ReceiptRecord]:
            rows = db.execute(
                "SELECT * FROM receipts WHERE envelope_digest = ? ORDER BY time, recorded_at",
                (envelope_digest,),
            ).fetchall()
            return [_receipt(r) for r in rows]

        return await self._read(read)

    async def envelope(self, digest: bytes) -> EnvelopeRecord | None:
        """Return an envelope's facts by digest."""

        def read(db: Db) -> EnvelopeRecord | None:
            row = db.execute(
                f"SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE digest = ?", (digest,)
            ).fetchone()
            return None if row is None else envelope_row(row)

        return await self._read(read)

    async def envelope_to_send(self, digest: bytes) -> tuple[EnvelopeRecord | None, bool]:
        """Return an envelope's facts and whether its body was found damaged, in one read."""

        def read(db: Db) -> tuple[EnvelopeRecord | None, bool]:
            row = db.execute(
                f"SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE digest = ?", (digest,)
            ).fetchone()
            damaged = db.execute("SELECT 1 FROM damaged_bodies WHERE digest = ?", (digest,))
            return None if row is None else envelope_row(row), damaged.fetchone() is not None

        return await self._read(read)

    # --- the ledger -----------------------------------------------------------------------

    async def append_ledger(self, events: Sequence[bytes]) -> int:
        """Append events on their own; return the new size."""

        def tx(db: Db) -> int:
            append_ledger(db, events)
            return int(db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])

        return await self._tx(tx)

    async def ledger_events(self, start: int, end: int) -> list[bytes]:
        """Return the events with indexes ``start <= i < end``, in order."""

        def read(db: Db) -> list[bytes]:
            rows = db.execute(
                "SELECT event FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
            ).fetchall()
            return [r[0] for r in rows]

        return await self._read(read)

    async def ledger_size(self) -> int:
        """Return the number of events in the ledger."""
        return await self._read(
            lambda db: int(db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
        )

    async def ledger_events_for(self, envelope_digest: bytes) -> list[tuple[int, bytes]]:
        """Return ``(index, event)`` for every event naming the envelope, in log order."""

        def read(db: Db) -> list[tuple[int, bytes]]:
            rows = db.execute(
                "SELECT idx, event FROM ledger WHERE envelope_digest = ? ORDER BY idx",
                (envelope_digest,),
            ).fetchall()
            return [(int(r[0]), bytes(r[1])) for r in rows]

        return await self._read(read)

    async def ledger_index_of(self, event_hash: EventHash) -> int | None:
        """Return the index of the first event whose leaf hash is ``event_hash``."""

        def read(db: Db) -> int | None:
            row = db.execute(
                "SELECT MIN(idx) FROM ledger WHERE leaf_hash = ?", (event_hash,)
            ).fetchone()
            return None if row[0] is None else int(row[0])

        return await self._read(read)

    async def save_checkpoint(self, size: int, note: bytes, now: float) -> None:
        """Keep a signed checkpoint (a second one of the same size is ignored)."""

        def tx(db: Db) -> None:
            db.execute(
                "INSERT INTO checkpoints (size, note, signed_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (size, note, now),
            )

        await self._tx(tx)

    async def checkpoints(self) -> list[tuple[int, bytes]]:
        """Return every checkpoint, oldest first."""
        return await self._read(
            lambda db: [
                (int(r[0]), bytes(r[1]))
                for r in db.execute("SELECT size, note FROM checkpoints ORDER BY size")
            ]
        )

    # --- staff ----------------------------------------------------------------------------

    async def add_user(self, user: User, token_hash: bytes, now: float) -> None:
        """Create a user holding the token whose hash is given.

        Raises :class:`DuplicateError` if a user with that id exists.
        """

        def tx(db: Db) -> None:
            insert_user(db, user, token_hash, now)

        await self._tx(tx)

    async def user_by_token_hash(self, token_hash: bytes) -> User | None:
        """Return the user holding a token, by the token's hash."""

        def read(db: Db) -> User | None:
            row = db.execute(
                "SELECT id, org, name, role FROM users WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return None if row is None else _user(row)

        return await self._read(read)

    async def users_of(self, org: OrgId) -> list[User]:
        """Return the users of ``org``, by id (the command line names an account by them)."""

        def read(db: Db) -> list[User]:
            rows = db.execute(
                "SELECT id, org, name, role FROM users WHERE org = ? ORDER BY id", (org,)
            )
            return [_user(r) for r in rows]

        return await self._read(read)

    # --- replay protection -----------------------------------------------------------------

    async def seen_or_record_nonce(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Return True if ``(key, nonce)`` was seen; otherwise record it and return False."""

        def tx(db: Db) -> bool:
            # Nonces older than a day cannot pass the created-time check; forget them.
            db.execute("DELETE FROM nonces WHERE created < ?", (now - 86_400,))
            cursor = db.execute(
                "INSERT INTO nonces (key, nonce, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (key, nonce, created),
            )
            return cursor.rowcount == 0

        return await self._tx(tx)
