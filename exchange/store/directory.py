"""The directory versions a node adopted, in the SQLite store.

A table group of :class:`~exchange.store.sqlite.SqliteStore` over ``directory_versions``:
each version of the signed directory the node adopted, with the SHA-256 of its note and
when. A row is written together with the ``directory-adopted`` ledger events in one
transaction, so the ledger and this table always agree. It holds no rules: which note may
replace which is :mod:`exchange.keys.succession`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exchange.store.ledger_tree import append_ledger
from exchange.store.rows import Tables
from exchange.store.sql import Db


@dataclass(frozen=True)
class AdoptedVersion:
    """A directory version the node adopted: its number, note digest and time."""

    version: int
    digest: bytes
    adopted_at: float


class DirectoryTables(Tables):
    """Recording an adopted directory version, and reading the latest."""

    async def record_directory(
        self, adopted: AdoptedVersion, *, ledger_events: Sequence[bytes]
    ) -> None:
        """Record ``adopted`` with its ledger events (a version recorded before is kept)."""

        def tx(db: Db) -> None:
            cursor = db.execute(
                "INSERT INTO directory_versions (version, digest, adopted_at) "
                "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (adopted.version, adopted.digest, adopted.adopted_at),
            )
            if cursor.rowcount:
                append_ledger(db, ledger_events)

        await self._tx(tx)

    async def latest_directory(self) -> AdoptedVersion | None:
        """Return the highest directory version adopted, if any."""

        def read(db: Db) -> AdoptedVersion | None:
            row = db.execute(
                "SELECT version, digest, adopted_at FROM directory_versions "
                "ORDER BY version DESC LIMIT 1"
            ).fetchone()
            return None if row is None else AdoptedVersion(row[0], bytes(row[1]), row[2])

        return await self._read(read)
