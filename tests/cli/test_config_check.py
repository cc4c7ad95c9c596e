"""``exchange config check``: a configuration that can serve passes; each mistake is a line.

The deployment folder is a real one made by :func:`exchange.demo.loopback.start_deployment`
(its ``node-la.toml`` serves the LA and the nurses); each test breaks one thing in a copy of
that configuration and expects its own line naming it.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.cli.main import main
from exchange.demo.loopback import PASSPHRASE_ENV, Deployment
from tests.node.conftest import LA, NURSES, deployed

pytestmark = pytest.mark.network


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a school node and an LA node on loopback; stop them afterwards."""
    async with deployed(tmp_path / "world", {}) as deployment:
        yield deployment


def _run(*argv: str) -> tuple[int, list[str]]:
    """Run ``exchange argv`` in this thread; return the status and standard error's lines."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    try:
        status = main(list(argv))
        err = sys.stderr.getvalue()
    finally:
        sys.stdout, sys.stderr = saved
    return status, err.splitlines()


async def _check(config: Path) -> tuple[int, list[str]]:
    return await asyncio.to_thread(_run, "config", "check", "--config", str(config))


def _variant(world: Deployment, old: str, new: str) -> Path:
    """Write a copy of the LA node's configuration with ``old`` replaced by ``new``."""
    text = (world.folder / "node-la.toml").read_text()
    assert old in text
    path = world.folder / "variant.toml"
    path.write_text(text.replace(old, new))
    return path


async def test_a_good_configuration_is_ready(world: Deployment) -> None:
    """The deployment's own configuration passes, with a summary line."""
    status, lines = await _check(world.folder / "node-la.toml")
    assert status == 0, lines
    assert len(lines) == 1
    assert lines[0].startswith("configuration is ready: 2 organisations, 2 key files")


async def test_a_wrong_passphrase_is_named(
    world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every key file that does not decrypt gets its own line; no passphrase is printed."""
    monkeypatch.setenv(PASSPHRASE_ENV, "not the passphrase")
    config = world.folder / "node-la.toml"
    status, lines = await _check(config)
    assert status == 1
    assert all(line.startswith(f"exchange: config {config}: ") for line in lines), lines
    assert any(f"tenants[0] ({LA}): key file" in line for line in lines), lines
    assert any(f"tenants[1] ({NURSES}): key file" in line for line in lines), lines
    assert any("ledger: key file" in line for line in lines), lines
    assert "not the passphrase" not in "\n".join(lines)


async def test_a_missing_passphrase_variable_is_named(
    world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passphrase variable that is not set is named."""
    monkeypatch.delenv(PASSPHRASE_ENV)
    status, lines = await _check(world.folder / "node-la.toml")
    assert status == 1
    assert any(f"the environment variable {PASSPHRASE_ENV}" in line for line in lines), lines


async def test_a_public_url_the_directory_does_not_list(world: Deployment) -> None:
    """A public_url that no route of the node's organisations has is a mismatch, named."""
    url = world.url("la")
    config = _variant(world, f'public_url = "{url}"', 'public_url = "https://la.invalid"')
    status, lines = await _check(config)
    assert status == 1
    assert len(lines) == 1, lines
    assert "node.public_url https://la.invalid is not the address of any https route" in lines[0]
    assert url in lines[0]


async def test_a_certificate_and_key_that_are_not_a_pair(world: Deployment) -> None:
    """The LA's certificate with the school's key: refused as not a pair."""
    config = _variant(world, "la.key.pem", "school.key.pem")
    status, lines = await _check(config)
    assert status == 1
    assert len(lines) == 1, lines
    assert "are not a pair" in lines[0]
    assert "tls.cert" in lines[0]


async def test_a_missing_key_file(world: Deployment) -> None:
    """A tenant key file that does not exist is named."""
    text = (world.folder / "node-la.toml").read_text()
    key = next(p.name for p in world.folder.glob("ods-X26ABC-*.key"))
    assert key in text
    config = _variant(world, key, "gone.key")
    status, lines = await _check(config)
    assert status == 1
    assert len(lines) == 1, lines
    assert f"tenants[1] ({NURSES}): cannot read key file" in lines[0]
    assert "gone.key" in lines[0]


async def test_users_add_makes_no_data_folder_for_a_configuration_that_cannot_serve(
    world: Deployment,
) -> None:
    """``users add`` runs the check first: refused in one line, and no node.sqlite3 made."""
    data = world.folder / "fresh-data"
    config = _variant(world, str(world.folder / "data-la"), str(data))
    config.write_text(config.read_text().replace(str(world.folder / "ca.pem"), "/nowhere/ca.pem"))
    status, lines = await asyncio.to_thread(
        _run, "users", "add", "--config", str(config), "--org", LA, "--id", "x",
        "--name", "X", "--role", "dsl",
    )  # fmt: skip
    assert status == 1
    assert len(lines) == 1, lines
    assert "tls.ca: /nowhere/ca.pem does not exist" in lines[0]
    assert not data.exists()


async def test_the_summary_says_tls_and_where_the_operations_are(world: Deployment) -> None:
    """The deployment serves TLS; its operations listener is on loopback, no token."""
    status, lines = await _check(world.folder / "node-la.toml")
    assert status == 0, lines
    assert ", TLS, public_url https://127.0.0.1:" in lines[0]
    assert lines[0].endswith(", operations on 127.0.0.1:0")


async def test_the_summary_says_plain_http_behind_a_proxy(world: Deployment) -> None:
    """No [tls] with server.behind_proxy = true: ready, saying so."""
    text = (world.folder / "node-la.toml").read_text()
    tls = text[text.index("[tls]\n") : text.index("\n\n", text.index("[tls]\n")) + 2]
    config = _variant(world, tls, "")
    config.write_text(config.read_text().replace("behind_proxy = false", "behind_proxy = true"))
    status, lines = await _check(config)
    assert status == 0, lines
    assert ", plain HTTP behind a TLS proxy, " in lines[0]
    # Without the setting: refused, naming both.
    config.write_text(config.read_text().replace("behind_proxy = true", "behind_proxy = false"))
    status, lines = await _check(config)
    assert status == 1
    assert len(lines) == 1, lines
    assert "there is no [tls] table and server.behind_proxy is not true" in lines[0]


async def test_the_summary_says_the_token_opens_the_main_listener(
    world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ops.token_env set to a long enough token: said in the summary, never printed."""
    token = "t" * 40
    monkeypatch.setenv("EXCHANGE_TEST_OPS_TOKEN", token)
    config = _variant(
        world,
        'listen = "127.0.0.1:0"\n',
        'listen = "127.0.0.1:0"\ntoken_env = "EXCHANGE_TEST_OPS_TOKEN"\n',
    )
    status, lines = await _check(config)
    assert status == 0, lines
    assert lines[0].endswith(
        ", operations on 127.0.0.1:0 and, with the token, on the main listener"
    )
    assert token not in lines[0]


@pytest.mark.parametrize(
    ("content", "named"),
    [(None, "does not exist"), (b"not a certificate\n", "holds no PEM certificate")],
    ids=["missing", "garbage"],
)
async def test_a_directory_ca_that_cannot_be_used(
    world: Deployment, content: bytes | None, named: str
) -> None:
    """[directory] ca must hold the certificates the fetch trusts: named before any fetch."""
    ca = world.folder / "directory-ca.pem"
    if content is not None:
        ca.write_bytes(content)
    config = _variant(
        world, "[directory]\n", f'[directory]\nurl = "https://d.invalid/n"\nca = "{ca}"\n'
    )
    status, lines = await _check(config)
    assert status == 1
    assert lines == [f"exchange: config {config}: directory.ca {ca} {named}"]
