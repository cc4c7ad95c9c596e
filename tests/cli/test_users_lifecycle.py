"""``exchange users list|invite|set-role|disable|enable|remove|reset-factors``.

A node folder made by ``exchange init`` (one administrator, ``admin`` of Oak Primary
School), changed by the commands run in this process and checked in its store.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from exchange.auth.account import Account
from exchange.service.accounts import Accounts, StoreClock
from exchange.service.node_service import token_hash
from exchange.store import SqliteStore
from tests.cli.conftest import Result, assert_refused, run
from tests.node_folder import ADMIN_EMAIL, ADMIN_PASSWORD, ready_node_folder

SECOND_PASSWORD = "another long password for tests"  # noqa: S105 - a test fixture


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make a node folder for Oak Primary School, with its first administrator."""
    return ready_node_folder(tmp_path, monkeypatch).config


def users(config: Path, command: str, *extra: str, stdin: bytes = b"") -> Result:
    """Run ``exchange users COMMAND --config CONFIG ...``."""
    return run("users", command, "--config", str(config), *extra, stdin=stdin)


def listed(config: Path) -> list[dict[str, Any]]:
    """Return ``users list --json``."""
    result = users(config, "list", "--json")
    assert result.status == 0, result
    rows: list[dict[str, Any]] = json.loads(result.out)
    return rows


def number_of(config: Path, user_id: str) -> int:
    """Return the account number ``list`` gives for ``user_id``."""
    (row,) = [row for row in listed(config) if row["user_id"] == user_id]
    return int(row["account"])


def stored(config: Path, user_id: str) -> tuple[Account | None, bytes | None]:
    """Return the account of ``user_id`` and the hash of their API token, from the store."""

    async def account() -> Account | None:
        store = await SqliteStore.open(config.parent / "data")
        try:
            return await store.account_by_user(user_id)
        finally:
            await store.close()

    db = sqlite3.connect(config.parent / "data" / "node.sqlite3")
    try:
        row = db.execute("SELECT token_hash FROM users WHERE id = ?", (user_id,)).fetchone()
    finally:
        db.close()
    return asyncio.run(account()), None if row is None else bytes(row[0])


def add_admin(config: Path, user_id: str = "deputy") -> tuple[int, str]:
    """Add a second administrator with a password; return their account number and token."""
    added = users(config, "add", "--org", "urn:106123", "--id", user_id, "--name",
                  "Deputy Head", "--role", "admin", "--email", f"{user_id}@oak.example",
                  "--password-stdin", stdin=f"{SECOND_PASSWORD}\n".encode())  # fmt: skip
    assert added.status == 0, added
    token = added.out.decode().strip()
    assert added.out.decode() == token + "\n"  # the token alone: log lines go to stderr
    return number_of(config, user_id), token


def test_list_shows_accounts_without_any_hash(config: Path) -> None:
    """``list`` names the organisation, the state and the factor; no hash of any secret."""
    (row,) = listed(config)
    assert row["user_id"] == "admin"
    assert row["email"] == ADMIN_EMAIL
    assert row["organisation"] == "Oak Primary School"
    assert (row["role"], row["state"], row["second_factor"]) == ("admin", "active", False)
    assert row["last_sign_in"] is None
    text = users(config, "list")
    assert text.status == 0, text
    lines = text.out.decode().splitlines()
    assert lines[0].split()[:3] == ["ACCOUNT", "USER", "ID"]
    assert "Oak Primary School" in lines[1]
    assert "not set up" in lines[1]
    assert lines[1].rstrip().endswith("never")
    for out in (text.out.decode(), json.dumps(row)):
        assert "argon2" not in out
        assert ADMIN_PASSWORD not in out
        assert "hash" not in out.lower()


def test_list_shows_users_with_no_web_sign_in(config: Path) -> None:
    """A user made with an API token only is listed after the accounts, as "none" for sign-in."""
    added = users(config, "add", "--org", "urn:106123", "--id", "mis-sync", "--name",
                  "MIS connector", "--role", "staff")  # fmt: skip
    assert added.status == 0, added
    rows = listed(config)
    assert [r["user_id"] for r in rows] == ["admin", "mis-sync"]
    assert rows[0]["web_sign_in"] is True
    assert rows[1] == {
        "account": None, "user_id": "mis-sync", "name": "MIS connector", "email": None,
        "role": "staff", "org": "urn:106123", "organisation": "Oak Primary School",
        "web_sign_in": False, "state": None, "second_factor": None, "last_sign_in": None,
    }  # fmt: skip
    text = users(config, "list")
    assert text.status == 0, text
    header, admin, token_only = text.out.decode().splitlines()
    assert "WEB SIGN-IN" in header
    assert admin.split()[0] == "1"
    assert token_only.split() == [
        "-", "mis-sync", "MIS", "connector", "staff", "Oak", "Primary", "School", "none",
        "-", "-", "-",
    ]  # fmt: skip
    assert added.out.decode().strip() not in text.out.decode()


def test_list_refuses_an_organisation_the_node_does_not_serve(config: Path) -> None:
    """``--org`` of another organisation is one plain line."""
    assert_refused(users(config, "list", "--org", "la:356"), 1, "does not serve la:356")


def test_invite_prints_the_code_once_and_it_works(config: Path) -> None:
    """The code is on stdout only, stored only as a hash, and sets a first password."""
    result = users(config, "invite", "--name", "New Teacher", "--email", "new@oak.example",
                   "--role", "staff")  # fmt: skip
    assert result.status == 0, result
    code = result.out.decode().strip()
    assert result.out.decode() == code + "\n"  # the code alone: log lines go to stderr
    assert len(code) >= 16
    assert code not in result.err
    assert "/sign-in/invitation" in result.err
    data = config.parent / "data"
    assert all(code.encode() not in f.read_bytes() for f in data.rglob("*") if f.is_file())
    row = next(r for r in listed(config) if r["email"] == "new@oak.example")
    assert (row["state"], row["role"], row["organisation"]) == (
        "invited",
        "staff",
        "Oak Primary School",
    )

    async def accept() -> str:
        store = await SqliteStore.open(data)
        try:
            step = await Accounts(StoreClock(store)).accept_invitation(
                "new@oak.example", code, SECOND_PASSWORD
            )
            return type(step).__name__
        finally:
            await store.close()

    assert asyncio.run(accept()) == "SignInStep"
    assert next(r for r in listed(config) if r["email"] == "new@oak.example")["state"] == "active"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--email", "not-an-address"), "Enter an email address in the correct format"),
        (("--email", ADMIN_EMAIL.upper()), "--email: This email address already has an account"),
        (("--email", "x@oak.example", "--name", "   "), "--name: Enter the person's full name"),
    ],
)
def test_invite_refusals_are_one_line_and_create_nothing(
    config: Path, extra: tuple[str, ...], fragment: str
) -> None:
    """A bad invitation says what is wrong, exits 1 and adds no account."""
    options = dict(zip(extra[::2], extra[1::2], strict=True))
    argv = ["--name", options.get("--name", "Someone"), "--email", options["--email"],
            "--role", "staff"]  # fmt: skip
    assert_refused(users(config, "invite", *argv), 1, fragment)
    assert len(listed(config)) == 1


def test_invite_role_must_be_one_of_the_roles(config: Path) -> None:
    """An unknown role is a usage error."""
    result = users(config, "invite", "--name", "A", "--email", "a@oak.example", "--role", "boss")
    assert result.status == 2
    assert "--role" in result.err


def test_the_last_administrator_is_kept(config: Path) -> None:
    """Demoting, disabling or removing the only administrator is refused; nothing changes."""
    admin = str(number_of(config, "admin"))
    for command, extra in (("set-role", ("--role", "staff")), ("disable", ()), ("remove", ())):
        refused = users(config, command, "--account", admin, *extra)
        assert_refused(refused, 1, "must keep an administrator who can sign in")
    account, _ = stored(config, "admin")
    assert account is not None
    assert (account.user.role, account.disabled) == ("admin", False)


def test_reset_factors_of_the_last_administrator_is_allowed(config: Path) -> None:
    """The console is how a locked-out last administrator gets back in."""
    admin = number_of(config, "admin")
    result = users(config, "reset-factors", "--account", str(admin))
    assert result.status == 0, result
    assert "second factor reset" in result.err
    account, _ = stored(config, "admin")
    assert account is not None
    assert account.factor_required


def test_with_a_second_administrator_the_first_changes(config: Path) -> None:
    """set-role, disable, enable and remove act when another administrator remains."""
    add_admin(config)
    admin = str(number_of(config, "admin"))
    assert users(config, "disable", "--account", admin).status == 0
    assert next(r for r in listed(config) if r["user_id"] == "admin")["state"] == "disabled"
    assert users(config, "enable", "--account", admin).status == 0
    assert next(r for r in listed(config) if r["user_id"] == "admin")["state"] == "active"
    assert users(config, "set-role", "--account", admin, "--role", "dsl").status == 0
    assert next(r for r in listed(config) if r["user_id"] == "admin")["role"] == "dsl"
    # Now the deputy is the last administrator.
    deputy = str(number_of(config, "deputy"))
    assert_refused(users(config, "disable", "--account", deputy), 1, "must keep")


def test_remove_ends_sign_in_and_the_api_token(config: Path) -> None:
    """A removed account is gone (its user stays, with no web sign-in); its token names nobody."""
    number, token = add_admin(config)
    _, before = stored(config, "deputy")
    assert before == token_hash(token)
    result = users(config, "remove", "--account", str(number))
    assert result.status == 0, result
    account, after = stored(config, "deputy")
    assert account is None
    assert after is not None
    assert after != before
    rows = listed(config)
    assert [(r["user_id"], r["account"], r["web_sign_in"]) for r in rows] == [
        ("admin", 1, True), ("deputy", None, False),
    ]  # fmt: skip
    # The id stays taken: what the user did still names them.
    again = users(config, "add", "--org", "urn:106123", "--id", "deputy", "--name", "D",
                  "--role", "staff")  # fmt: skip
    assert_refused(again, 1, "user ID already exists")


def test_adding_an_id_that_exists_says_so(config: Path) -> None:
    """``users add`` of an existing id is "already exists", not an internal error."""
    for extra in ((), ("--email", "other@oak.example", "--password-stdin")):
        stdin = f"{SECOND_PASSWORD}\n".encode()
        result = users(config, "add", "--org", "urn:106123", "--id", "admin", "--name", "A",
                       "--role", "staff", *extra, stdin=stdin)  # fmt: skip
        line = assert_refused(result, 1, "user ID already exists")
        assert "IntegrityError" not in line
    assert len(listed(config)) == 1


@pytest.mark.parametrize("command", ["set-role", "disable", "enable", "remove", "reset-factors"])
def test_an_unknown_account_number_is_refused(config: Path, command: str) -> None:
    """A number no account has is one plain line naming it."""
    extra = ("--role", "staff") if command == "set-role" else ()
    refused = users(config, command, "--account", "999", *extra)
    assert_refused(refused, 1, "there is no account 999 on this node")


def test_the_account_must_be_a_number(config: Path) -> None:
    """``--account`` that is not a number is a usage error."""
    result = users(config, "disable", "--account", "admin")
    assert result.status == 2
    assert "--account" in result.err
