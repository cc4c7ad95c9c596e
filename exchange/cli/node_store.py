"""Opening a node's store from a command, the way the node itself opens it.

Every command that reads or changes a node's data opens the store through
:func:`open_store`, so a store at an older schema version is backed up before it is
upgraded (into ``node.upgrade_backups``) whichever command finds it first, and the command
says where that backup is.
"""

from __future__ import annotations

from exchange.cli import common
from exchange.config import NodeConfig
from exchange.store import SqliteStore


async def open_store(config: NodeConfig) -> SqliteStore:
    """Open (migrating if needed, after a backup) the store of the node ``config`` describes."""
    store = await SqliteStore.open(config.data_dir, upgrade_backups=config.upgrade_backups)
    if store.upgrade_backup is not None:
        common.note(
            "the node's database was at an older schema version and has been upgraded; "
            f"the backup taken first is {store.upgrade_backup}"
        )
    return store
