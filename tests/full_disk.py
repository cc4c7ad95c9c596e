"""A full disk for one store, switched on and off: commits and new files refused.

:class:`FullDisk` wraps one :class:`~exchange.store.SqliteStore`'s write path: while it is
full, every group commit fails as SQLite fails on a full volume (``database or disk is
full``, SQLITE_FULL) and every temporary file created under the store's folder (envelope
bodies being written, the readiness check's file, drafts) fails with ``ENOSPC``. Reads go
on working, as they do on a full disk. Other stores in the same process (the other node of
a deployment) are untouched, because the files refused are only those under this store's
folder. On PostgreSQL, the database's own disk is full: every write transaction and every
body written fails with SQLSTATE 53100 (``DiskFullError``), as the server answers then.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from exchange.store import SqliteStore
from exchange.store.postgres import PostgresStore


class FullDisk:
    """Makes ``store``'s volume full (:meth:`fill`) and frees it again (:meth:`free`)."""

    def __init__(self, store: SqliteStore | PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = Path(store.folder).resolve()
        #: Whether commits, and whether new files, are refused now.
        self.database_full = False
        self.files_full = False
        #: Writes refused while full: group commits and files.
        self.refused = 0
        if isinstance(store, PostgresStore):
            self._refuse_postgres_writes(store, monkeypatch)
        else:
            run_group = store._run_group

            def refusing_run_group(fns: Sequence[Callable[[sqlite3.Connection], Any]]) -> Any:
                if self.database_full:
                    self.refused += 1
                    raise sqlite3.OperationalError("database or disk is full")
                return run_group(fns)

            monkeypatch.setattr(store, "_run_group", refusing_run_group)
        mkstemp = tempfile.mkstemp

        def refusing_mkstemp(*args: Any, **kwargs: Any) -> Any:
            folder = kwargs.get("dir")
            if self.files_full and folder is not None and self._inside(Path(folder)):
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return mkstemp(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", refusing_mkstemp)

    def _refuse_postgres_writes(
        self, store: PostgresStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """PostgreSQL's disk full: every write transaction and body write fails with 53100."""
        transaction = store._transaction
        blobs = store.blobs

        async def refusing_transaction(fn: Any, *, write: bool) -> Any:
            if write and self.database_full:
                self.refused += 1
                raise asyncpg.DiskFullError("could not extend file: No space left on device")
            return await transaction(fn, write=write)

        monkeypatch.setattr(store, "_transaction", refusing_transaction)
        for name in ("write", "write_file", "write_held", "write_stream"):
            method = getattr(blobs, name)

            async def refusing_write(*args: Any, _method: Any = method) -> Any:
                if self.database_full:
                    self.refused += 1
                    raise asyncpg.DiskFullError("could not extend file: No space left on device")
                return await _method(*args)

            monkeypatch.setattr(blobs, name, refusing_write)

    def _inside(self, folder: Path) -> bool:
        return folder.resolve().is_relative_to(self.folder)

    def fill(self, *, database: bool = True, files: bool = True) -> None:
        """From now on, refuse every commit and every new file of the store (or one of them)."""
        self.database_full = database
        self.files_full = files

    def free(self) -> None:
        """Give the space back: writes succeed again."""
        self.database_full = self.files_full = False
