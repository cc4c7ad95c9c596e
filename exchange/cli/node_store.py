"""Opening a node's configuration and store from a command, the way the node itself does.

Every command given ``--config`` reads it with :func:`node_config`, so a missing, unreadable
or malformed file is refused in the same words whatever the command. Every command that
reads or changes a node's data opens the store through :func:`open_store`, so a store at an
older schema version is backed up before it is upgraded (into ``node.upgrade_backups``)
whichever command finds it first, and the command says where that backup is.
"""

from __future__ import annotations

from pathlib import Path

from exchange.cli import common
from exchange.cli.errors import CliError, describe
from exchange.config import ConfigError, NodeConfig, load_config
from exchange.store.opening import NodeStore, open_node_store


def node_config(path: str) -> NodeConfig:
    """Read the node's configuration file ``path``; refuse in one line naming it."""
    try:
        return load_config(Path(path))
    except OSError as exc:
        # In the words every command uses for a file (missing, a folder, not readable).
        raise CliError(describe(exc, f"config {path}")[1]) from None
    except ConfigError as exc:
        raise CliError(f"config {path}: {exc}") from None


async def open_store(config: NodeConfig) -> NodeStore:
    """Open (migrating if needed, after a backup) the store of the node ``config`` describes."""
    store = await open_node_store(
        config.data_dir,
        database_url=config.database.url,
        pool_size=config.database.pool_size,
        upgrade_backups=config.upgrade_backups,
    )
    if store.upgrade_backup is not None:
        common.note(
            "the node's database was at an older schema version and has been upgraded; "
            f"the backup taken first is {store.upgrade_backup}"
        )
    return store
