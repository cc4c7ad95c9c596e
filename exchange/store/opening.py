"""Opening a node's store on whichever engine its configuration names.

:func:`open_node_store` is the one way the node (``exchange serve``) and every command open
the store: SQLite in the data folder by default, or the PostgreSQL database of
``[database] url``. Bodies stay in the data folder on both until the blob store takes them.
"""

from __future__ import annotations

from pathlib import Path

from exchange.store.postgres import POOL_SIZE, PostgresStore
from exchange.store.sqlite import SqliteStore

#: A node's store, on either engine.
NodeStore = SqliteStore | PostgresStore


async def open_node_store(
    data_dir: Path,
    *,
    database_url: str | None = None,
    pool_size: int = POOL_SIZE,
    upgrade_backups: Path | None = None,
    sweep: bool = False,
) -> NodeStore:
    """Open (creating and migrating if needed) the store of a node.

    ``database_url`` None: SQLite in ``data_dir``, backed up into ``upgrade_backups`` before
    a schema upgrade, its leftovers swept when ``sweep`` (the node's own start). Otherwise
    the PostgreSQL database it names, ``pool_size`` connections per process.
    """
    if database_url is None:
        return await SqliteStore.open(data_dir, upgrade_backups=upgrade_backups, sweep=sweep)
    return await PostgresStore.open(database_url, data_dir, pool_size=pool_size)


def store_exists(data_dir: Path, database_url: str | None) -> bool:
    """Return whether a node's store has been made (a PostgreSQL one always counts as made)."""
    return database_url is not None or (data_dir / "node.sqlite3").exists()
