"""The guard in tests/conftest.py refuses sockets and processes to tests not marked for them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys

import pytest

from tests.conftest import IO_ATTEMPTS, UnmarkedIOError


def _forget_refusals(request: pytest.FixtureRequest) -> None:
    """Clear the refusals this test provoked on purpose, so its teardown does not fail it."""
    request.node.stash[IO_ATTEMPTS].clear()


def test_binding_a_socket_needs_the_network_marker(request: pytest.FixtureRequest) -> None:
    """An unmarked test that binds a socket, even on loopback, is refused and told the marker."""
    with socket.socket() as sock, pytest.raises(UnmarkedIOError, match=r"pytest\.mark\.network"):
        sock.bind(("127.0.0.1", 0))
    _forget_refusals(request)


def test_connecting_needs_the_network_marker(request: pytest.FixtureRequest) -> None:
    """An unmarked test that connects a socket is refused."""
    with socket.socket() as sock, pytest.raises(UnmarkedIOError, match=r"socket\.connect"):
        sock.connect(("127.0.0.1", 9))
    _forget_refusals(request)


def test_starting_a_process_needs_the_subprocess_marker(request: pytest.FixtureRequest) -> None:
    """An unmarked test that starts a process is refused and told the marker."""
    with pytest.raises(UnmarkedIOError, match=r"pytest\.mark\.subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    _forget_refusals(request)


async def test_an_event_loop_is_not_network_use() -> None:
    """The event loop's own wake-up socketpair is allowed without a marker."""
    await asyncio.sleep(0)
    assert asyncio.get_running_loop().is_running()


def test_a_caught_refusal_still_fails_the_test(request: pytest.FixtureRequest) -> None:
    """A refusal that code under test swallows is still recorded for the teardown check."""
    # Code under test that treats every failure as a network error would hide the refusal.
    with socket.socket() as sock, contextlib.suppress(Exception):
        sock.connect(("127.0.0.1", 9))
    assert request.node.stash[IO_ATTEMPTS]
    _forget_refusals(request)


@pytest.mark.network
def test_a_marked_test_may_listen() -> None:
    """A test marked network may bind and listen on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert sock.getsockname()[1] > 0
