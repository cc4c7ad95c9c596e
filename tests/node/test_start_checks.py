"""A node runs ``exchange config check``'s checks at start, and refuses before it does anything.

Each test breaks one thing in a copy of the LA node's configuration (written by the loopback
harness) and expects the same line ``exchange config check`` prints, with nothing bound and
no data folder made. ``exchange serve`` prints those lines the same way and exits 1.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.config import load_config
from exchange.demo.loopback import PASSPHRASE_ENV, Deployment
from exchange.keys.keyfile import decode_key_file
from exchange.node.config_check import ConfigRefusedError
from exchange.node.runtime import Node
from exchange.service.register_reports import KEY_FILE

from .conftest import deployed
from .helpers import client

pytestmark = pytest.mark.network

EXCHANGE = Path(sys.executable).with_name("exchange")
TOKEN_ENV = "EXCHANGE_TEST_OPS_TOKEN"  # noqa: S105 - a variable name, not a secret
TLS_TABLE = re.compile(r"^\[tls\]\n(?:\w+ = .*\n)*", re.MULTILINE)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a school node and an LA node on loopback; stop them afterwards."""
    async with deployed(tmp_path / "world", {}) as deployment:
        yield deployment


def variant(world: Deployment, *changes: tuple[str, str], fresh_data: bool = True) -> Path:
    """Write a copy of the LA node's configuration with each (old, new) replaced.

    With ``fresh_data`` its data folder is one that does not exist yet, so a test can see
    that a refusal made none.
    """
    text = (world.folder / "node-la.toml").read_text()
    if fresh_data:
        changes = (*changes, (str(world.folder / "data-la"), str(world.folder / "fresh-data")))
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = world.folder / "variant.toml"
    path.write_text(text)
    return path


def share_register_key(world: Deployment) -> None:
    """Give the fresh data folder the LA node's register key when its store is shared.

    On PostgreSQL a variant with a fresh data folder is a second process of the LA node, and
    every process of a node must hold the node's one register key (docs/scaling.md): the
    operator copies it, as this does. On SQLite the fresh folder is a new store of its own.
    """
    if world.nodes["la"].config.database.url is None:
        return
    fresh = world.folder / "fresh-data"
    fresh.mkdir(mode=0o700)
    key = fresh / KEY_FILE
    key.write_bytes((world.folder / "data-la" / KEY_FILE).read_bytes())
    key.chmod(0o600)


def without_tls(world: Deployment) -> str:
    """Return the ``[tls]`` table of the LA node's configuration, to replace with nothing."""
    found = TLS_TABLE.search((world.folder / "node-la.toml").read_text())
    assert found is not None
    return found[0]


PLAIN = ("behind_proxy = false", "behind_proxy = true")
OPS_TOKEN = ('listen = "127.0.0.1:0"\n', f'listen = "127.0.0.1:0"\ntoken_env = "{TOKEN_ENV}"\n')


async def refused(config: Path) -> list[str]:
    """Start a node from ``config``; return its refusal's lines, checking nothing happened."""
    node = Node(load_config(config))
    with pytest.raises(ConfigRefusedError) as caught:
        await node.start()
    assert node.site is None
    assert node.ops_site is None
    assert not (config.parent / "fresh-data").exists()
    return caught.value.problems


async def test_no_tls_and_not_behind_a_proxy_is_refused(world: Deployment) -> None:
    """No [tls] and no server.behind_proxy: one line naming both."""
    problems = await refused(variant(world, (without_tls(world), "")))
    assert len(problems) == 1, problems
    assert problems[0].startswith("there is no [tls] table and server.behind_proxy is not true")


async def test_tls_and_behind_a_proxy_contradict(world: Deployment) -> None:
    """[tls] with server.behind_proxy = true: refused as a contradiction."""
    problems = await refused(variant(world, PLAIN))
    assert problems == [
        (
            "[tls] and server.behind_proxy = true contradict each other: a node behind a TLS "
            "proxy serves plain HTTP; remove one of them"
        )
    ]


async def test_a_public_url_the_directory_does_not_list_is_refused(world: Deployment) -> None:
    """The node's configured port is real: public_url is compared with the directory."""
    url = world.url("la")
    problems = await refused(
        variant(world, (f'public_url = "{url}"', 'public_url = "https://la.invalid"'))
    )
    assert len(problems) == 1, problems
    assert problems[0].startswith("node.public_url https://la.invalid is not the address")


async def test_the_harness_may_skip_the_public_url_comparison(world: Deployment) -> None:
    """``match_public_url=False`` is the one way to skip it at a real port (and port 0)."""
    url = world.url("la")
    await world.nodes["la"].stop()
    config = variant(world, (f'public_url = "{url}"', 'public_url = "https://la.invalid"'))
    share_register_key(world)
    node = Node(load_config(config), match_public_url=False)
    await node.start()
    try:
        assert node.port == world.nodes["la"].port
    finally:
        await node.stop()


async def test_a_missing_or_short_ops_token_is_refused(
    world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ops.token_env must name a variable that is set, holding 32 characters or more."""
    config = variant(world, OPS_TOKEN)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert await refused(config) == [
        (
            f"ops.token_env: the environment variable {TOKEN_ENV} holding the operations token "
            "is not set"
        )
    ]
    monkeypatch.setenv(TOKEN_ENV, "")
    assert len(await refused(config)) == 1
    monkeypatch.setenv(TOKEN_ENV, "x" * 31)
    problems = await refused(config)
    assert problems == [
        f"ops.token_env: the operations token in {TOKEN_ENV} is shorter than 32 characters"
    ]
    assert "x" * 31 not in problems[0]


async def test_the_ops_listener_may_not_take_the_main_address(world: Deployment) -> None:
    """[ops] listen on node.listen's host and port: refused, naming both."""
    port = world.nodes["la"].port
    config = variant(world, ('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"'))
    problems = await refused(config)
    assert problems == [
        (
            f"ops.listen 127.0.0.1:{port} takes the address of node.listen 127.0.0.1:{port}: "
            "give the operations listener its own port"
        )
    ]


async def test_every_problem_is_named_at_once(
    world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong passphrase and plain HTTP by accident: a line each, in one refusal."""
    monkeypatch.setenv(PASSPHRASE_ENV, "not the passphrase")
    problems = await refused(variant(world, (without_tls(world), "")))
    assert any("key file" in p for p in problems), problems
    assert any("server.behind_proxy" in p for p in problems), problems
    assert "not the passphrase" not in "\n".join(problems)


async def test_behind_a_proxy_serves_plain_http(world: Deployment) -> None:
    """No [tls] with server.behind_proxy = true: the node starts and serves plain HTTP."""
    await world.nodes["la"].stop()
    config = variant(world, (without_tls(world), ""), PLAIN)
    share_register_key(world)
    node = Node(load_config(config))
    await node.start()
    try:
        async with client(world) as http:
            async with http.get(f"http://127.0.0.1:{node.port}/sign-in") as resp:
                assert resp.status == 200
            async with http.get(f"http://127.0.0.1:{node.ops_port}/readyz") as resp:
                assert resp.status == 200
    finally:
        await node.stop()
    assert (world.folder / "fresh-data").is_dir()


async def test_key_files_are_decrypted_once_at_start(
    world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks and the node share what was read: one slow decryption per key file."""
    await world.nodes["la"].stop()
    calls: list[object] = []

    def counted(data: bytes, passphrase: bytes) -> object:
        calls.append(None)
        return decode_key_file(data, passphrase)

    monkeypatch.setattr("exchange.service.tenants.decode_key_file", counted)
    share_register_key(world)
    node = Node(load_config(variant(world)))
    await node.start()
    await node.stop()
    # Two tenants with one key file each, and the ledger key.
    assert len(calls) == 3


@pytest.mark.subprocess
async def test_serve_prints_the_same_lines_as_config_check(world: Deployment) -> None:
    """``exchange serve`` refuses with ``exchange config check``'s lines, status 1."""
    config = variant(world, (without_tls(world), ""))
    outputs = []
    for command in ("serve", "config check"):
        proc = await asyncio.create_subprocess_exec(
            str(EXCHANGE), *command.split(), "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60.0)
        assert proc.returncode == 1, err
        assert out == b""
        outputs.append(err.decode().splitlines())
    serve, check = outputs
    assert serve == check
    assert serve == [
        (
            f"exchange: config {config}: there is no [tls] table and server.behind_proxy is "
            "not true: give [tls] cert and key to serve HTTPS, or set server.behind_proxy = "
            "true if TLS ends at a proxy in front of the node"
        )
    ]
    assert not (world.folder / "fresh-data").exists()
