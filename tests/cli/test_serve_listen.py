"""``exchange serve`` on an address it cannot bind: one line naming the setting, nothing left.

Each test holds a port with a real socket (or names an address that is not this machine's)
and runs ``exchange serve`` through ``main`` in this process, so it can see afterwards that
the node closed what it had opened: the other listener's port is free again and the store's
worker thread has ended.
"""

from __future__ import annotations

import gc
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Result, run
from tests.node_folder import NodeFolder, ready_node_folder

pytestmark = pytest.mark.network


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """Hold a port of 127.0.0.1 with a listening socket, for the node to be told to use."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def _free_port() -> int:
    """Return a port of 127.0.0.1 that nothing listens on (released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    """Whether this process can listen on ``127.0.0.1:port`` now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _node(isolated: Path, monkeypatch: pytest.MonkeyPatch, listen: str, ops: str) -> NodeFolder:
    return ready_node_folder(isolated, monkeypatch, "--listen", listen, "--ops-listen", ops)


def _store_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sqlite-store")]


def _serve(node: NodeFolder) -> Result:
    result = run("serve", "--config", str(node.config))
    # An unclosed client session or socket would warn when collected: the test then fails.
    gc.collect()
    return result


def _refusal(result: Result) -> str:
    """Return the one ``exchange:`` line of a refused start (the log lines aside)."""
    assert result.status == 1, result
    assert "Traceback" not in result.err
    lines = [line for line in result.err_lines if line.startswith("exchange: ")]
    assert len(lines) == 1, result.err
    return lines[0]


def test_node_listen_in_use(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, held: socket.socket
) -> None:
    """A node.listen port another program holds is named, and the ops listener is closed."""
    port = held.getsockname()[1]
    ops_port = _free_port()
    node = _node(isolated, monkeypatch, f"127.0.0.1:{port}", f"127.0.0.1:{ops_port}")
    line = _refusal(_serve(node))
    assert line.endswith(f"node.listen 127.0.0.1:{port} is already in use by another program")
    assert str(node.config) in line
    assert _bindable(ops_port), "the operations listener was left open"
    assert _store_threads() == []


def test_ops_listen_in_use(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, held: socket.socket
) -> None:
    """An ops.listen port another program holds is named, and the main listener never opens."""
    port = held.getsockname()[1]
    main_port = _free_port()
    node = _node(isolated, monkeypatch, f"127.0.0.1:{main_port}", f"127.0.0.1:{port}")
    line = _refusal(_serve(node))
    assert line.endswith(f"ops.listen 127.0.0.1:{port} is already in use by another program")
    assert _bindable(main_port)
    assert _store_threads() == []


def test_node_listen_not_local(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node.listen host that is not this machine's (TEST-NET-1) is refused by name."""
    node = _node(isolated, monkeypatch, "192.0.2.1:8443", "127.0.0.1:0")
    line = _refusal(_serve(node))
    assert line.endswith("node.listen 192.0.2.1:8443 is not an address of this machine")
    assert _store_threads() == []


def test_ops_listen_not_local(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ops.listen host that is not this machine's is refused by name."""
    node = _node(isolated, monkeypatch, "127.0.0.1:0", "192.0.2.1:9180")
    line = _refusal(_serve(node))
    assert line.endswith("ops.listen 192.0.2.1:9180 is not an address of this machine")
    assert _store_threads() == []


def test_the_node_starts_once_the_port_is_free(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a refused start the store is usable: the same folder passes config check."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        node = _node(isolated, monkeypatch, f"127.0.0.1:{port}", "127.0.0.1:0")
        _refusal(_serve(node))
    checked = run("config", "check", "--config", str(node.config))
    assert checked.status == 0, checked
