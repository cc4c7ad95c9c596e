"""A real PostgreSQL server for the tests: its own cluster on loopback in a temporary folder.

:func:`running_postgres` makes a cluster with ``initdb`` and starts it with ``pg_ctl`` on
127.0.0.1 at a free port, its socket in the same folder, and stops it and removes the
folder at the end. The binaries are found on ``PATH`` or under Debian's
``/usr/lib/postgresql/<version>/bin``; without them the tests fail with a sentence that says
what to install (in CI a missing server is a failure, never a skip: ``.ci/run`` installs
Debian's ``postgresql``).

For the failover tests, :func:`running_standby` makes a hot standby of a running cluster
(``pg_basebackup -R``: streaming replication, asynchronous unless asked to be synchronous),
and :func:`pg_ctl` stops, starts, restarts or promotes either.

PostgreSQL refuses to run as root. When the tests run as root (a CI container), the cluster
belongs to the ``postgres`` account Debian's package creates, and the server is run as it
(``runuser``); the folder is made outside pytest's own temporary folder, which only root
may enter.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: The database and role the tests use (the cluster trusts loopback: it lives for one run).
DATABASE: Final = "exchange"
ROLE: Final = "exchange"
#: Seconds ``pg_ctl`` waits for the server to start or stop.
WAIT: Final = 60


class PostgresMissingError(RuntimeError):
    """The PostgreSQL server binaries are not on this machine."""


@dataclass(frozen=True)
class PostgresServer:
    """A running test cluster: where it listens and how to reach its database."""

    host: str
    port: int
    folder: Path

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.folder / "data"

    @property
    def dsn(self) -> str:
        """A libpq connection string for the test database."""
        return f"postgresql://{ROLE}@{self.host}:{self.port}/{DATABASE}"


def server_binaries() -> Path:
    """Return the folder holding ``initdb`` and ``pg_ctl``; refuse in a sentence if none."""
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresMissingError(
        "the PostgreSQL server (initdb, pg_ctl) is not installed: install Debian's "
        "postgresql package (.ci/run does)"
    )


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_owner(owner: pwd.struct_passwd | None, command: list[str]) -> list[str]:
    """Run ``command`` as the cluster's owner (only needed when the tests run as root)."""
    if owner is None:
        return command
    return ["runuser", "-u", owner.pw_name, "--", *command]


def _run(owner: pwd.struct_passwd | None, command: list[str], *, check: bool = True) -> None:
    """Run one of the server's programs as the cluster's owner, with a deadline."""
    subprocess.run(_as_owner(owner, command), check=check, capture_output=True, timeout=WAIT)


def _owner() -> pwd.struct_passwd | None:
    """Return the account the cluster runs as when the tests run as root, else None."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def _new_folder(owner: pwd.struct_passwd | None) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="exchange-pg-"))
    if owner is not None:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    return folder


def pg_ctl(server: PostgresServer, action: str, *options: str, check: bool = True) -> None:
    """Run ``pg_ctl action`` (start, stop, restart, promote) on ``server``'s cluster.

    ``start`` and ``restart`` listen on the server's own port and socket folder again;
    ``check`` False ignores a failure (stopping a cluster a test stopped already).
    """
    command = [str(server_binaries() / "pg_ctl"), "-D", str(server.data), "-w", "-t", str(WAIT)]
    if action in {"start", "restart"}:
        listen = f"-c listen_addresses={server.host} -c port={server.port} -k {server.folder}"
        command += ["-l", str(server.folder / "server.log"), "-o", listen]
    _run(_owner(), [*command, *options, action], check=check)


def psql(server: PostgresServer, sql: str) -> str:
    """Run one SQL command on ``server``'s test database with psql; return its output."""
    command = [str(server_binaries() / "psql"), "-h", server.host, "-p", str(server.port),
               "-U", ROLE, "-d", DATABASE, "-Atc", sql]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=WAIT)
    return done.stdout.strip()


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a fresh cluster on 127.0.0.1 with an ``exchange`` database; stop it at the end."""
    binaries = server_binaries()
    owner = _owner()
    folder = _new_folder(owner)
    server = PostgresServer("127.0.0.1", free_port(), folder)
    try:
        _run(owner, [str(binaries / "initdb"), "-D", str(server.data), "-U", ROLE,
                     "--auth=trust", "--encoding=UTF8", "--locale=C"])  # fmt: skip
        pg_ctl(server, "start")
        try:
            _run(owner, [str(binaries / "createdb"), "-h", server.host, "-p", str(server.port),
                         "-U", ROLE, DATABASE])  # fmt: skip
            yield server
        finally:
            pg_ctl(server, "stop", "-m", "fast", check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running_standby(
    primary: PostgresServer, *, synchronous: bool = False
) -> Iterator[PostgresServer]:
    """Start a hot standby of ``primary`` streaming its WAL; stop and remove it at the end.

    The standby is a ``pg_basebackup -R`` copy (``standby.signal`` and ``primary_conninfo``
    written for it) on a port of its own, read-only until promoted (:func:`pg_ctl` promote).
    ``synchronous``: the primary waits for the standby to have flushed each commit before
    answering it (``synchronous_standby_names = '*'``, ``synchronous_commit = on``), so a
    failover loses nothing acknowledged; otherwise replication is asynchronous.
    """
    owner = _owner()
    folder = _new_folder(owner)
    standby = PostgresServer(primary.host, free_port(), folder)
    try:
        _run(owner, [str(server_binaries() / "pg_basebackup"), "-h", primary.host,
                     "-p", str(primary.port), "-U", ROLE, "-D", str(standby.data),
                     "-R", "-X", "stream", "-c", "fast"])  # fmt: skip
        pg_ctl(standby, "start")
        try:
            if synchronous:
                psql(primary, "ALTER SYSTEM SET synchronous_standby_names = '*'")
                psql(primary, "ALTER SYSTEM SET synchronous_commit = 'on'")
                psql(primary, "SELECT pg_reload_conf()")
            yield standby
        finally:
            pg_ctl(standby, "stop", "-m", "fast", check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
