"""``exchange users add --email --password-stdin`` creates a user with a web account."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from exchange.auth.passwords import verify_password
from exchange.cli import node_cmd
from exchange.cli.main import main
from exchange.node.config_check import CheckReport
from exchange.store import SqliteStore

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "node.example.toml"
PASSWORD = "a long enough passphrase"  # noqa: S105 - a synthetic test password


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write the example configuration with its data folder under ``tmp_path``.

    The example names key files that do not exist, so ``exchange config check`` (which
    ``users add`` runs first, tests/cli/test_config_check.py) is passed over here: these
    tests are about accounts.
    """
    monkeypatch.setattr(node_cmd, "check_config", lambda _config: CheckReport())
    text = EXAMPLE.read_text().replace(
        'data_dir = "data"', f"data_dir = {json.dumps(str(tmp_path / 'data'))}"
    )
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def _argv(config: Path, *extra: str) -> list[str]:
    return ["users", "add", "--config", str(config), "--org", "la:356", "--id", "dsl1",
            "--name", "Synthetic DSL", "--role", "dsl", *extra]  # fmt: skip


async def _account(config: Path, email: str) -> tuple[str, str] | None:
    store = await SqliteStore.open(config.parent / "data")
    try:
        account = await store.account_by_email(email)
    finally:
        await store.close()
    return None if account is None else (account.user.id, account.password_hash)


def test_email_and_password_from_stdin_create_an_account(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user gets a token and an account whose password is the line read from stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(_argv(config, "--email", "DSL@la.example", "--password-stdin")) == 0
    out = capsys.readouterr()
    assert len(out.out.strip()) >= 40
    assert PASSWORD not in out.out + out.err
    found = asyncio.run(_account(config, "dsl@la.example"))
    assert found is not None
    assert found[0] == "dsl1"
    verify_password(PASSWORD, found[1])


def test_password_on_the_command_line_is_refused_without_echo(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--password`` is a usage error that does not repeat the value."""
    assert main(_argv(config, "--email", "dsl@la.example", "--password", PASSWORD)) == 2
    err = capsys.readouterr().err
    assert "use --password-stdin" in err
    assert PASSWORD not in err


def test_email_needs_password_stdin(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--email`` alone is a usage error naming the option it needs."""
    assert main(_argv(config, "--email", "dsl@la.example")) == 2
    assert "--email needs --password-stdin" in capsys.readouterr().err


def test_weak_initial_password_creates_nothing(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A password breaking a rule is refused with the rule, and no user is created."""
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(_argv(config, "--email", "dsl@la.example", "--password-stdin")) == 1
    assert "Password must be 12 characters or more" in capsys.readouterr().err
    assert not (config.parent / "data").exists()


def test_without_email_the_token_behaviour_is_unchanged(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--email`` only the user and token are made, as before."""
    assert main(_argv(config)) == 0
    assert len(capsys.readouterr().out.strip()) >= 40
    assert asyncio.run(_account(config, "dsl@la.example")) is None
