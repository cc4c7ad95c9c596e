"""A real PostgreSQL server for the tests: its own cluster on loopback in a temporary folder.

:func:`running_postgres` makes a cluster with ``initdb`` and starts it with ``pg_ctl`` on
127.0.0.1 at a free port, its socket in the same folder, and stops it and removes the
folder at the end. The binaries are found on ``PATH`` or under Debian's
``/usr/lib/postgresql/<version>/bin``; without them the tests fail with a sentence that says
what to install (in CI a missing server is a failure, never a skip: ``.ci/run`` installs
Debian's ``postgresql``).

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


def _free_port() -> int:
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


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a fresh cluster on 127.0.0.1 with an ``exchange`` database; stop it at the end."""
    binaries = server_binaries()
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="exchange-pg-"))
    data = str(folder / "data")
    port = str(_free_port())
    ctl = [str(binaries / "pg_ctl"), "-D", data, "-w", "-t", str(WAIT)]
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        _run(owner, [str(binaries / "initdb"), "-D", data, "-U", ROLE, "--auth=trust",
                     "--encoding=UTF8", "--locale=C"])  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder}"
        _run(owner, [*ctl, "-l", str(folder / "server.log"), "-o", options, "start"])
        try:
            _run(owner, [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", port,
                         "-U", ROLE, DATABASE])  # fmt: skip
            yield PostgresServer("127.0.0.1", int(port), folder)
        finally:
            _run(owner, [*ctl, "-m", "fast", "stop"], check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
