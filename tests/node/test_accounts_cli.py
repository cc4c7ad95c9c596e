"""``exchange users add --email --password-stdin`` creates a user with a web account."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from exchange.auth.passwords import verify_password
from exchange.cli.main import main
from exchange.store import SqliteStore
from tests.node_folder import LA, ready_node_folder

PASSWORD = "a long enough passphrase"  # noqa: S105 - a synthetic test password


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make a node folder for la:356 with ``exchange init`` and give it its directory.

    ``users add`` runs ``exchange config check`` first: this deployment passes it for real.
    """
    return ready_node_folder(tmp_path, monkeypatch, orgs=(LA,)).config


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
    assert asyncio.run(_account(config, "dsl@la.example")) is None


def test_without_email_the_token_behaviour_is_unchanged(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--email`` only the user and token are made, as before."""
    assert main(_argv(config)) == 0
    assert len(capsys.readouterr().out.strip()) >= 40
    assert asyncio.run(_account(config, "dsl@la.example")) is None
