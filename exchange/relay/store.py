"""The relay's own storage: mailbox rows in SQLite, sealed bodies as files (docs/relay.md §6).

One SQLite file, ``relay.sqlite`` in the folder given, in WAL mode with ``synchronous=FULL``,
and a ``bodies/`` subfolder holding each body once, named ``<kind>/<digest hex>``. Every
call runs on one worker thread, so the event loop never blocks on disk and no two
operations interleave; only the slow part of a deposit, writing and syncing the body to a
temporary file, runs beside it.

Crash safety follows from one order: a body is written, synced and moved to its final name
(folder synced) *before* the row that refers to it commits, and it is deleted only *after*
the row stopped needing it committed. A crash therefore leaves at worst a body without a
row, which :meth:`RelayStore.open` sweeps away, and never a row without its body. A body
shared by several mailboxes (one envelope for two organisations that collect here) is kept
while any of them still waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, TypeVar, cast

from exchange.connectors.base import HeldBody, MessageKind, body_length
from exchange.files import rename_durably
from exchange.keys.ids import OrgId

T = TypeVar("T")

ItemState = Literal["waiting", "collected", "recalled", "expired"]

KINDS: Final[tuple[MessageKind, ...]] = ("envelope", "receipt")
#: States in which the item is over: its body is gone, its row answers "too late" and status.
ENDED: Final = ("collected", "recalled", "expired")

_SCHEMA: Final = (
    (
        "CREATE TABLE IF NOT EXISTS items ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " owner TEXT NOT NULL,"
        " kind TEXT NOT NULL CHECK (kind IN ('envelope', 'receipt')),"
        " id BLOB NOT NULL CHECK (length(id) = 32),"
        " author TEXT NOT NULL,"
        " length INTEGER NOT NULL,"
        " stored_at REAL NOT NULL,"
        " state TEXT NOT NULL CHECK (state IN ('waiting', 'collected', 'recalled', 'expired')),"
        " fetched_at REAL,"
        " ended_at REAL,"
        " UNIQUE (owner, kind, id))"
    ),
    "CREATE INDEX IF NOT EXISTS items_waiting ON items (owner, state, seq)",
    "CREATE INDEX IF NOT EXISTS items_body ON items (kind, id, state)",
    "CREATE INDEX IF NOT EXISTS items_age ON items (state, stored_at)",
)
_COLUMNS: Final = "seq, owner, kind, id, author, length, stored_at, state, fetched_at, ended_at"
_PARTIAL: Final = ".partial-"
_COLLECT: Final = (
    "UPDATE items SET state = 'collected', ended_at = ? "
    "WHERE owner = ? AND kind = ? AND id = ? AND state = 'waiting'"
)
_RECALL: Final = (
    "UPDATE items SET state = 'recalled', ended_at = ? "
    "WHERE owner = ? AND kind = ? AND id = ? AND state = 'waiting' AND fetched_at IS NULL"
)


class MailboxFullError(Exception):
    """The mailbox already holds its limit of waiting items."""


@dataclass(frozen=True, slots=True)
class RelayItem:
    """One item of one mailbox: routing facts only, never content.

    ``author`` is the organisation that deposited it (an envelope's sender, a receipt's
    receipter); ``fetched_at`` is when its owner first fetched it (from then on its bytes
    may be with the owner, so it can no longer be recalled); ``ended_at`` is when it was
    collected (acknowledged), recalled or expired.
    """

    seq: int
    owner: OrgId
    kind: MessageKind
    id: bytes
    author: OrgId
    length: int
    stored_at: float
    state: ItemState
    fetched_at: float | None
    ended_at: float | None


@dataclass(frozen=True, slots=True)
class _Deposit:
    owner: OrgId
    kind: MessageKind
    digest: bytes
    author: OrgId
    length: int
    now: float
    max_items: int


def _item(row: sqlite3.Row) -> RelayItem:
    return RelayItem(
        seq=row["seq"],
        owner=OrgId(row["owner"]),
        kind=cast("MessageKind", row["kind"]),
        id=bytes(row["id"]),
        author=OrgId(row["author"]),
        length=row["length"],
        stored_at=row["stored_at"],
        state=cast("ItemState", row["state"]),
        fetched_at=row["fetched_at"],
        ended_at=row["ended_at"],
    )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RelayStore:
    """Mailbox items of a relay: ``relay.sqlite`` and ``bodies/`` in ``folder``.

    Use :meth:`open`; every other method is a coroutine that runs on the store's worker
    thread. Identifiers are bytes (the 32-byte digest); organisations are ids already
    checked by the caller.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bodies = folder / "bodies"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-store")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, folder: Path) -> RelayStore:
        """Open (creating if needed) the store in ``folder``; sweep what a crash left."""
        store = cls(folder)
        await store._call(store._open)
        return store

    async def close(self) -> None:
        """Close the database and stop the worker thread (closing twice is fine)."""

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        with contextlib.suppress(RuntimeError):  # the executor was shut down already
            await self._call(shut)
        self._executor.shutdown(wait=True)

    # --- worker-thread plumbing -------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the relay store is closed")
        return self._db

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.bodies.mkdir(exist_ok=True, mode=0o700)
        for kind in KINDS:
            (self.bodies / kind).mkdir(exist_ok=True, mode=0o700)
        db = sqlite3.connect(
            self.folder / "relay.sqlite", isolation_level=None, check_same_thread=False
        )
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        for statement in _SCHEMA:
            db.execute(statement)
        self._db = db
        self._sweep()

    def _sweep(self) -> None:
        """Delete unfinished temporary files and bodies no waiting row needs (crash debris)."""
        for partial in self.bodies.glob(f"{_PARTIAL}*"):
            partial.unlink(missing_ok=True)
        for kind in KINDS:
            for path in (self.bodies / kind).iterdir():
                try:
                    digest = bytes.fromhex(path.name)
                except ValueError:
                    continue
                if len(digest) == 32 and not self._needed(kind, digest):
                    path.unlink(missing_ok=True)

    def body_path(self, kind: MessageKind, digest: bytes) -> Path:
        """Return where the body of ``kind`` named ``digest`` is kept while it waits."""
        if kind not in KINDS or len(digest) != 32:
            raise ValueError("kind must be envelope or receipt and digest 32 bytes")
        return self.bodies / kind / digest.hex()

    def _needed(self, kind: MessageKind, digest: bytes) -> bool:
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM items WHERE kind = ? AND id = ? AND state = 'waiting' LIMIT 1",
                (kind, digest),
            )
            .fetchone()
        )
        return row is not None

    def _release(self, kind: MessageKind, digest: bytes) -> None:
        """After a commit: delete the body unless another mailbox still waits for it."""
        if not self._needed(kind, digest):
            path = self.body_path(kind, digest)
            path.unlink(missing_ok=True)
            _sync_folder(path.parent)

    def _get(self, owner: OrgId, kind: MessageKind, digest: bytes) -> RelayItem | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {_COLUMNS} FROM items WHERE owner = ? AND kind = ? AND id = ?",  # noqa: S608
                (owner, kind, digest),
            )
            .fetchone()
        )
        return None if row is None else _item(row)

    # --- deposits ---------------------------------------------------------------------------

    async def put(
        self,
        *,
        owner: OrgId,
        kind: MessageKind,
        digest: bytes,
        author: OrgId,
        body: bytes | HeldBody,
        now: float,
        max_items: int,
    ) -> tuple[RelayItem, bool]:
        """Store ``body`` in ``owner``'s mailbox once; return the item and whether it is new.

        An item already waiting or collected is answered as it is, storing nothing (a
        redelivery). One that was recalled or expired is stored again: its sender sent it
        anew. Raises :class:`MailboxFullError` if ``owner`` already has ``max_items``
        waiting items.
        """
        path = self.body_path(kind, digest)
        held = await self._call(self._before_put, owner, kind, digest, max_items)
        if held is not None:
            return held, False
        temp = await asyncio.to_thread(self._write_temp, body)
        deposit = _Deposit(owner, kind, digest, author, body_length(body), now, max_items)
        try:
            return await self._call(self._commit_put, temp, path, deposit)
        finally:
            temp.unlink(missing_ok=True)

    def _before_put(
        self, owner: OrgId, kind: MessageKind, digest: bytes, max_items: int
    ) -> RelayItem | None:
        item = self._get(owner, kind, digest)
        if item is not None and item.state in {"waiting", "collected"}:
            return item
        self._check_room(owner, max_items)
        return None

    def _check_room(self, owner: OrgId, max_items: int) -> None:
        (count,) = (
            self._conn()
            .execute("SELECT COUNT(*) FROM items WHERE owner = ? AND state = 'waiting'", (owner,))
            .fetchone()
        )
        if count >= max_items:
            raise MailboxFullError

    def _write_temp(self, body: bytes | HeldBody) -> Path:
        """Write ``body`` to a synced temporary file beside the bodies; return its path.

        A body in a spool is linked there (synced first), not copied.
        """
        if not isinstance(body, bytes):
            temp = self.bodies / f"{_PARTIAL}{secrets.token_hex(8)}"
            body.publish(temp)
            return temp
        fd, name = tempfile.mkstemp(prefix=_PARTIAL, dir=self.bodies)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    def _commit_put(self, temp: Path, path: Path, d: _Deposit) -> tuple[RelayItem, bool]:
        owner, kind, digest = d.owner, d.kind, d.digest
        # Checked again: another deposit may have run between the first check and now.
        held = self._before_put(owner, kind, digest, d.max_items)
        if held is not None:
            return held, False
        if not path.exists():
            # The body is on disk under its final name before the row commits.
            rename_durably(temp, path)
        db = self._conn()
        with _transaction(db):
            # A recalled or expired row gives way to the new deposit, which lists last.
            db.execute(
                "DELETE FROM items WHERE owner = ? AND kind = ? AND id = ?", (owner, kind, digest)
            )
            db.execute(
                "INSERT INTO items (owner, kind, id, author, length, stored_at, state) "
                "VALUES (?, ?, ?, ?, ?, ?, 'waiting')",
                (owner, kind, digest, d.author, d.length, d.now),
            )
        item = self._get(owner, kind, digest)
        assert item is not None
        return item, True

    # --- the owner's side -------------------------------------------------------------------

    async def waiting(self, owner: OrgId, *, limit: int, after: int = 0) -> list[RelayItem]:
        """Return up to ``limit`` items waiting for ``owner`` with ``seq`` after ``after``."""

        def read() -> list[RelayItem]:
            rows = (
                self._conn()
                .execute(
                    f"SELECT {_COLUMNS} FROM items WHERE owner = ? AND state = 'waiting' "  # noqa: S608
                    "AND seq > ? ORDER BY seq LIMIT ?",
                    (owner, after, limit),
                )
                .fetchall()
            )
            return [_item(r) for r in rows]

        return await self._call(read)

    async def item(self, owner: OrgId, kind: MessageKind, digest: bytes) -> RelayItem | None:
        """Return ``owner``'s item, in whatever state, or None."""
        return await self._call(self._get, owner, kind, digest)

    async def open_body(
        self, owner: OrgId, kind: MessageKind, digest: bytes, now: float
    ) -> tuple[RelayItem, BinaryIO] | None:
        """Return a waiting item and its body opened for reading, or None if not waiting.

        The first fetch is recorded (durably, before any byte leaves): from then on the item
        can no longer be recalled. The file is opened on the worker thread, so no
        acknowledgement can delete it in between; once open it stays readable even if it is
        deleted. The caller closes it.
        """

        def run() -> tuple[RelayItem, BinaryIO] | None:
            item = self._get(owner, kind, digest)
            if item is None or item.state != "waiting":
                return None
            if item.fetched_at is None:
                db = self._conn()
                with _transaction(db):
                    db.execute(
                        "UPDATE items SET fetched_at = ? WHERE seq = ? AND fetched_at IS NULL",
                        (now, item.seq),
                    )
                item = replace(item, fetched_at=now)
            return item, self.body_path(kind, digest).open("rb")

        return await self._call(run)

    async def collect(
        self, owner: OrgId, kind: MessageKind, digest: bytes, now: float
    ) -> RelayItem | None:
        """Mark a waiting item collected and delete its body; return the item as it is now."""
        return await self._call(self._end, owner, kind, digest, "collected", now)

    async def recall(
        self, owner: OrgId, kind: MessageKind, digest: bytes, now: float
    ) -> RelayItem | None:
        """Mark an item recalled and delete its body if it waits and was never fetched.

        Returns the item as it is now: ``recalled``, or unchanged (collected, expired, or
        waiting but already fetched by its owner, when it is too late to recall it).
        """
        return await self._call(self._end, owner, kind, digest, "recalled", now)

    def _end(
        self, owner: OrgId, kind: MessageKind, digest: bytes, state: ItemState, now: float
    ) -> RelayItem | None:
        db = self._conn()
        # A recall never ends an item its owner has fetched: the bytes may be with it.
        query = _RECALL if state == "recalled" else _COLLECT
        with _transaction(db):
            cursor = db.execute(query, (now, owner, kind, digest))
        if cursor.rowcount:
            self._release(kind, digest)
        return self._get(owner, kind, digest)

    # --- housekeeping -----------------------------------------------------------------------

    async def expire(self, *, stored_before: float, now: float) -> list[RelayItem]:
        """Expire every item still waiting that was stored before ``stored_before``."""

        def run() -> list[RelayItem]:
            db = self._conn()
            with _transaction(db):
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM items WHERE state = 'waiting' AND stored_at < ? "  # noqa: S608
                    "ORDER BY seq",
                    (stored_before,),
                ).fetchall()
                db.execute(
                    "UPDATE items SET state = 'expired', ended_at = ? "
                    "WHERE state = 'waiting' AND stored_at < ?",
                    (now, stored_before),
                )
            expired = [_item(r) for r in rows]
            for kind, digest in {(i.kind, i.id) for i in expired}:
                self._release(kind, digest)
            return [replace(i, state="expired", ended_at=now) for i in expired]

        return await self._call(run)

    async def forget(self, *, ended_before: float) -> int:
        """Delete the rows of items that ended before ``ended_before``; return how many."""

        def run() -> int:
            db = self._conn()
            with _transaction(db):
                cursor = db.execute(
                    "DELETE FROM items WHERE state != 'waiting' AND ended_at < ?",
                    (ended_before,),
                )
            return cursor.rowcount

        return await self._call(run)

    async def counts(self) -> dict[ItemState, int]:
        """Return how many rows are in each state (for metrics and tests)."""

        def run() -> dict[ItemState, int]:
            rows = self._conn().execute("SELECT state, COUNT(*) FROM items GROUP BY state")
            return {cast("ItemState", state): count for state, count in rows}

        return await self._call(run)
