"""Fixtures shared by several test packages, and the guard that keeps the markers honest.

A test says what it needs with a marker: ``network`` if it listens or connects (loopback
counts), ``subprocess`` if it starts a process, ``slow`` for exhaustive property runs.
``make unit`` deselects all three. Tests that use a fixture which starts servers or
processes are marked here automatically (:data:`NETWORK_FIXTURES`,
:data:`SUBPROCESS_FIXTURES`); modules that start their own say so with ``pytestmark``. So
that a missing marker cannot hide, every test without the marker fails if it connects,
binds or listens on a socket, or starts a process, in ``make unit`` and ``make test`` alike:
the attempt raises :class:`UnmarkedIOError` and, in case the code under test catches it as
an ordinary network failure, the test fails at teardown with the marker it needs.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.connectors import mesh_sandbox
from tests.connectors.mesh_sandbox import Sandbox
from tests.postgres_server import PostgresServer, running_postgres

#: Shared fixtures that start a server on loopback (TLS nodes, SMTP, the MESH sandbox), by
#: the module that defines them and their name (several packages have a pure ``world``).
NETWORK_FIXTURES = frozenset(
    {
        "tests.conftest.mesh_sandbox_server",
        "tests.conftest.postgres_server",
        "tests.node.conftest.world",
        "tests.node.conftest.smtp",
    }
)
#: Shared fixtures that start another process (the MESH sandbox runs as one).
SUBPROCESS_FIXTURES = frozenset(
    {"tests.conftest.mesh_sandbox_server", "tests.conftest.postgres_server"}
)


class UnmarkedIOError(RuntimeError):
    """A test without the matching marker opened a socket or started a process."""


#: Where the guard keeps the refused attempts of the running test, for its teardown check.
IO_ATTEMPTS = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Run a real PostgreSQL on loopback once for the whole session (tests/postgres_server.py)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def mesh_sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Run the real NHS MESH sandbox once for the whole session."""
    yield from mesh_sandbox.sandbox_session(tmp_path_factory.mktemp("mesh"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the server- and process-starting fixtures it uses (before ``-m``)."""
    for item in items:
        fixtures = _fixtures_used(item)
        if fixtures & NETWORK_FIXTURES:
            item.add_marker(pytest.mark.network)
        if fixtures & SUBPROCESS_FIXTURES:
            item.add_marker(pytest.mark.subprocess)


def _fixtures_used(item: pytest.Item) -> set[str]:
    """Return the fixtures a test uses, each as ``defining.module.name``."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    return {
        f"{definition.func.__module__}.{name}"
        for name, definitions in info.name2fixturedefs.items()
        for definition in definitions[-1:]
    }


def _refusing(attempts: list[str], what: str, marker: str) -> Callable[..., Any]:
    """Return a stand-in that records and refuses an attempt needing ``marker``."""

    def refuse(*_args: object, **_kwargs: object) -> Any:
        message = f"the test {what} but is not marked {marker}: add @pytest.mark.{marker}"
        attempts.append(message)
        raise UnmarkedIOError(message)

    return refuse


@pytest.fixture(autouse=True)
def _io_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse sockets to tests not marked network and processes to tests not marked subprocess."""
    markers = {mark.name for mark in request.node.iter_markers()}
    attempts = request.node.stash.setdefault(IO_ATTEMPTS, [])
    if "network" not in markers:
        # Only connecting, binding and listening are refused: the event loop's own
        # socketpair (its wake-up channel) is not network use.
        for method in ("connect", "connect_ex", "bind", "listen"):
            what = f"called socket.{method}"
            monkeypatch.setattr(socket.socket, method, _refusing(attempts, what, "network"))
    if "subprocess" not in markers:
        # Every subprocess.Popen (asyncio's included) starts its child here.
        refuse = _refusing(attempts, "started a process", "subprocess")
        monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)
        monkeypatch.setattr(os, "fork", refuse)
        monkeypatch.setattr(os, "posix_spawn", refuse)
    yield
    if attempts:
        pytest.fail("; ".join(dict.fromkeys(attempts)), pytrace=False)
