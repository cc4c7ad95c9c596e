"""The ``[database]`` table of a node's configuration: where its store is.

Without it a node keeps everything in SQLite under ``node.data_dir`` (the embedded default:
one school on one machine). With ``url`` set to a ``postgresql://`` connection string, the
node's store is that PostgreSQL database, which any number of ``exchange serve`` processes
of the same node may share (docs/scaling.md). The string may name several hosts, e.g.
``postgresql://exchange@db1:5432,db2:5432/exchange?target_session_attrs=read-write``, so the
node follows a failover to whichever host is the primary.

The password is never in the file: a ``url`` holding one is refused. PostgreSQL's own
``PGPASSWORD`` environment variable or password file (``PGPASSFILE``, ``~/.pgpass``) gives
it, or the server trusts the node's certificate. A refusal never repeats the string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

#: Most connections one process opens to the database.
MAX_POOL_SIZE: Final = 100
#: The longest connection string read.
MAX_URL_LEN: Final = 2048


class DatabaseConfigError(ValueError):
    """A ``[database]`` setting is wrong (the message names it, never its value)."""


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the node's store is: SQLite in the data folder (``url`` None) or PostgreSQL."""

    #: A ``postgresql://`` connection string without a password, or None for SQLite.
    url: str | None = None
    #: Connections (and store threads) of each process.
    pool_size: int = 10

    @property
    def postgresql(self) -> bool:
        """Whether the store is a PostgreSQL database."""
        return self.url is not None


def parse_database(table: Any) -> DatabaseConfig:
    """Return the ``[database]`` settings; refuse a wrong one in a sentence naming it."""
    if not isinstance(table, Mapping):
        raise DatabaseConfigError("database must be a table")
    unknown = sorted(set(table) - {"url", "pool_size"})
    if unknown:
        raise DatabaseConfigError(f"database has an unknown setting: {unknown[0]}")
    url = table.get("url")
    if url is not None:
        _check_url(url)
    pool_size = table.get("pool_size", DatabaseConfig.pool_size)
    if isinstance(pool_size, bool) or not isinstance(pool_size, int):
        raise DatabaseConfigError("database.pool_size must be a whole number")
    if not 1 <= pool_size <= MAX_POOL_SIZE:
        raise DatabaseConfigError(f"database.pool_size must be from 1 to {MAX_POOL_SIZE}")
    return DatabaseConfig(url=url, pool_size=pool_size)


def _check_url(url: Any) -> None:
    if not isinstance(url, str):
        raise DatabaseConfigError("database.url must be text")
    if len(url) > MAX_URL_LEN:
        raise DatabaseConfigError(f"database.url must be at most {MAX_URL_LEN} characters")
    if not url.startswith(("postgresql://", "postgres://")):
        raise DatabaseConfigError(
            "database.url must be a PostgreSQL connection string starting postgresql://"
        )
    try:
        # Several hosts ("h1:5432,h2:5432") are not one netloc: read the user part alone.
        netloc = urlsplit(url).netloc
    except ValueError:
        raise DatabaseConfigError("database.url is not a valid connection string") from None
    userinfo, at, _ = netloc.rpartition("@")
    if at and ":" in userinfo:
        raise DatabaseConfigError(
            "database.url must not hold a password: give it in the PGPASSWORD environment "
            "variable or a password file (PGPASSFILE)"
        )
    if "password=" in url.lower():
        raise DatabaseConfigError(
            "database.url must not hold a password: give it in the PGPASSWORD environment "
            "variable or a password file (PGPASSFILE)"
        )


def database_to_toml(config: DatabaseConfig) -> list[str]:
    """Return the ``[database]`` table's lines (none for the SQLite default)."""
    if config.url is None:
        return []
    return ["[database]", f"url = {_quoted(config.url)}", f"pool_size = {config.pool_size}", ""]


def _quoted(text: str) -> str:
    # TOML basic strings share JSON's escapes for everything a connection string holds.
    return json.dumps(text)
