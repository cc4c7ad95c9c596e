"""Naming and reaching a node's database from the ``exchange db`` commands.

A connection string is shown only as the database, its hosts and its user (:func:`where`),
never whole: a password has no place in it (``[database] url`` and ``--to`` refuse one;
PostgreSQL reads it from ``PGPASSWORD`` or a password file), and nothing else in it is
needed to say which database a command used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from exchange.cli.errors import CliError
from exchange.config import NodeConfig
from exchange.config_database import DatabaseConfigError, parse_database
from exchange.store.backup import NODE_DB

#: Seconds to wait for PostgreSQL to accept the connection.
CONNECT_TIMEOUT: Final = 15.0


def sqlite_path(config: NodeConfig) -> Path:
    """Return the SQLite file of the node ``config`` describes (whether or not it exists)."""
    return config.data_dir / NODE_DB


def engine_of(config: NodeConfig) -> str:
    """Return which database the node uses: ``SQLite FILE`` or :func:`where` its database is."""
    if config.database.url is None:
        return f"SQLite {sqlite_path(config)}"
    return where(config.database.url)


def where(dsn: str) -> str:
    """Return ``PostgreSQL database NAME on HOST:PORT[, ...] as USER``, without a password."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user = unquote(userinfo.partition(":")[0]) or query.get("user", [""])[0]
    hosts = unquote(hostlist).replace(",", ", ") or ", ".join(query.get("host", []))
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", [""])[0] or user
    text = f"PostgreSQL database {database or '(the default)'} on {hosts or 'the local socket'}"
    return f"{text} as {user}" if user else text


def checked_url(text: str, option: str) -> str:
    """Return ``text`` if it is a PostgreSQL connection string without a password."""
    try:
        parse_database({"url": text})
    except DatabaseConfigError as exc:
        raise CliError(str(exc).replace("database.url", option, 1)) from None
    return text


async def connect(dsn: str) -> asyncpg.Connection:
    """Connect to ``dsn`` (times in UTC); refuse in one line naming the database, not the string."""
    try:
        return await asyncpg.connect(
            dsn,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": "exchange db", "TimeZone": "UTC"},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"cannot connect to {where(dsn)}: {reason or type(exc).__name__}") from None
