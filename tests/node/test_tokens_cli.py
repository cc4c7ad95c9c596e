"""``exchange tokens create|list|revoke`` against a node folder made by ``exchange init``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from exchange.auth.api_token import ApiToken, token_hash
from exchange.cli.main import main
from exchange.store import SqliteStore
from tests.node_folder import LA, ready_node_folder


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make a node folder for la:356 that passes ``exchange config check``."""
    return ready_node_folder(tmp_path, monkeypatch, orgs=(LA,)).config


def _create(config: Path, name: str = "mis-export", *extra: str) -> list[str]:
    return ["tokens", "create", "--config", str(config), "--org", "la:356", "--name", name,
            "--role", "staff", *extra]  # fmt: skip


async def _stored(config: Path, token: str) -> ApiToken | None:
    store = await SqliteStore.open(config.parent / "data")
    try:
        return await store.api_token_by_hash(token_hash(token))
    finally:
        await store.close()


def test_create_prints_the_token_once_and_stores_its_hash(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Standard output is the token and nothing else; the store finds it by its hash."""
    assert main(_create(config, "mis-export", "--days", "30")) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert out.out == token + "\n"
    assert len(token) >= 40
    assert token not in out.err
    stored = asyncio.run(_stored(config, token))
    assert stored is not None
    assert (stored.name, stored.org, stored.role) == ("mis-export", "la:356", "staff")
    assert stored.expires_at - stored.created_at == pytest.approx(30 * 86400)
    assert stored.created_by == "command line"
    raw = (config.parent / "data" / "node.sqlite3").read_bytes()
    assert token.encode() not in raw


def test_default_expiry_is_90_days(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without ``--days`` a token lives 90 days."""
    assert main(_create(config)) == 0
    stored = asyncio.run(_stored(config, capsys.readouterr().out.strip()))
    assert stored is not None
    assert stored.expires_at - stored.created_at == pytest.approx(90 * 86400)


def test_list_shows_tokens_without_the_secret(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``list`` names each token, its role and org, never the token; ``--json`` too."""
    assert main(_create(config, "first")) == 0
    first = capsys.readouterr().out.strip()
    assert main(_create(config, "second", "--days", "365")) == 0
    second = capsys.readouterr().out.strip()
    assert main(["tokens", "list", "--config", str(config)]) == 0
    out = capsys.readouterr()
    assert "first" in out.out
    assert "second" in out.out
    assert "never used" in out.out
    assert "2 API token(s)" in out.err
    assert main(["tokens", "list", "--config", str(config), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in listed] == ["second", "first"]
    assert listed[0]["role"] == "staff"
    assert listed[0]["org"] == "la:356"
    assert listed[0]["revoked"] is None
    assert listed[0]["last_used"] is None
    whole = json.dumps(listed)
    assert first not in whole
    assert second not in whole


def test_revoke_by_name_then_by_number(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``revoke`` takes a name or a number; the list then says when it was revoked."""
    assert main(_create(config, "one")) == 0
    assert main(_create(config, "two")) == 0
    capsys.readouterr()
    assert main(["tokens", "revoke", "--config", str(config), "one"]) == 0
    assert "revoked API token one" in capsys.readouterr().err
    assert main(["tokens", "revoke", "--config", str(config), "2"]) == 0
    assert "revoked API token two" in capsys.readouterr().err
    assert main(["tokens", "list", "--config", str(config), "--json"]) == 0
    assert all(t["revoked"] for t in json.loads(capsys.readouterr().out))


def test_revoking_twice_or_an_unknown_token_is_refused(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second revoke and an unknown name each fail with one sentence."""
    assert main(_create(config, "one")) == 0
    assert main(["tokens", "revoke", "--config", str(config), "one"]) == 0
    capsys.readouterr()
    assert main(["tokens", "revoke", "--config", str(config), "one"]) == 1
    assert "the API token one was revoked already" in capsys.readouterr().err
    assert main(["tokens", "revoke", "--config", str(config), "nobody"]) == 1
    assert "there is no API token nobody on this node" in capsys.readouterr().err


def test_duplicate_name_is_refused_and_prints_no_token(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second token of the same name is refused; nothing reaches standard output."""
    assert main(_create(config, "same")) == 0
    capsys.readouterr()
    assert main(_create(config, "same")) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert "a token named same already exists" in out.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--days", "366"), "--days must be between 1 and 365"),
        (("--days", "0"), "--days must be between 1 and 365"),
        (("--days", "soon"), "--days must be a whole number of days"),
        (("--token", "Secret-Value-Xy"), "unrecognised arguments: --token"),
    ],
)
def test_bad_options_are_usage_errors(
    config: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    """An expiry outside 1-365 days, or a token on the command line, is refused (status 2)."""
    assert main(_create(config, "x", *extra)) == 2
    out = capsys.readouterr()
    assert message in out.err
    assert "Secret-Value-Xy" not in out.err
    assert out.out == ""


def test_bad_name_and_unserved_org_are_refused(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name that cannot name a token, or an organisation the node does not serve."""
    assert main(_create(config, "9 bad name")) == 1
    assert "a token's name is 1-64 letters" in capsys.readouterr().err
    argv = _create(config)
    argv[argv.index("la:356")] = "urn:999999"
    assert main(argv) == 1
    assert "this node does not serve urn:999999" in capsys.readouterr().err


def test_missing_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A configuration file that is not there is named in one line, exit status 1."""
    missing = tmp_path / "nowhere.toml"
    assert main(["tokens", "list", "--config", str(missing)]) == 1
    assert f"config {missing}" in capsys.readouterr().err
