"""``exchange users list|invite|set-role|disable|enable|remove|reset-factors``.

The node's operator manages staff accounts from the node's console through the same service
as the administrator's web pages (:class:`AccountAdministration`), acting as an
administrator of the account's organisation: the same rules hold (the last administrator
who can sign in cannot be demoted, disabled or removed) and every change ends the
account's sessions. Accounts are named by their number, as in the pages and the logs.

``list`` prints no password or token hash; ``invite`` prints the invitation code once, on
standard output, and nowhere else (the service logs only the account number).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from exchange.auth.account import Account
from exchange.cli import common
from exchange.cli.errors import CliError
from exchange.cli.register_cmd import _config, _org, _with_store
from exchange.cli.staff_words import columns
from exchange.config import ConfigError, NodeConfig
from exchange.keys.errors import KeysError
from exchange.keys.ids import OrgId
from exchange.model import User
from exchange.node.trusted_directory import load_trusted_directory
from exchange.policy import LONDON
from exchange.service.account_admin import (
    ROLES,
    AccountAdministration,
    Invitation,
    InvitationProblemError,
    account_state,
    operator,
)
from exchange.service.accounts import StoreClock
from exchange.service.errors import ServiceError
from exchange.store.opening import NodeStore
from exchange.words import london_time


def logs_to_stderr() -> contextlib.AbstractContextManager[object]:
    """Keep standard output for the result alone while the service runs.

    Unless the process configured logging (``exchange serve`` does), structlog prints to
    standard output; the service's lines (account numbers, never a code) go to standard
    error instead, so a script reading a token or a code reads only that.
    """
    return contextlib.redirect_stdout(sys.stderr)


def refusal(exc: ServiceError) -> CliError:
    """Return the service's refusal as the CLI's one line (which starts in lower case)."""
    text = str(exc)
    if isinstance(exc, InvitationProblemError):
        return CliError(f"--{exc.field}: {text}")
    return CliError(text[:1].lower() + text[1:])


def _administer(
    config: NodeConfig,
    act: Callable[[AccountAdministration, NodeStore], Awaitable[Any]],
) -> Any:
    """Run ``act`` with the service on the node's store; refuse its refusals in one line."""

    async def use(store: NodeStore) -> Any:
        try:
            return await act(AccountAdministration(StoreClock(store)), store)
        except ServiceError as exc:
            raise refusal(exc) from None

    with logs_to_stderr():
        return _with_store(config, use)


# --- list ------------------------------------------------------------------------------


def _names(config: NodeConfig) -> Callable[[OrgId], str]:
    """Return the directory's name of each organisation (its id if the directory is not read)."""
    try:
        directory = load_trusted_directory(config)
    except ConfigError:
        return str

    def name(org: OrgId) -> str:
        try:
            return directory.organisation(org).name
        except KeysError:
            return org

    return name


def _iso_london(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).astimezone(LONDON).isoformat(timespec="seconds")


def _row(account: Account, now: float, name_of: Callable[[OrgId], str]) -> dict[str, Any]:
    """Return what ``list`` shows of an account: never a password, code or token hash."""
    return {
        **_user_row(account.user, name_of),
        "account": account.id,
        "email": account.email,
        "web_sign_in": True,
        "state": account_state(account, now),
        "second_factor": account.has_second_factor,
        "last_sign_in": _iso_london(account.last_sign_in),
    }


def _user_row(user: User, name_of: Callable[[OrgId], str]) -> dict[str, Any]:
    """Return what ``list`` shows of a user with no account: no web sign-in at all."""
    return {
        "account": None,
        "user_id": user.id,
        "name": user.name,
        "email": None,
        "role": user.role,
        "org": user.org,
        "organisation": name_of(user.org),
        "web_sign_in": False,
        "state": None,
        "second_factor": None,
        "last_sign_in": None,
    }


def _cells(row: dict[str, Any], last_sign_in: float | None) -> list[str]:
    """Return a row of the ``list`` table."""
    if not row["web_sign_in"]:
        return [
            "-", row["user_id"], row["name"], row["role"], row["organisation"], "none",
            "-", "-", "-",
        ]  # fmt: skip
    return [
        str(row["account"]), row["user_id"], row["name"], row["role"], row["organisation"],
        "yes", row["state"], "set up" if row["second_factor"] else "not set up",
        "never" if last_sign_in is None else london_time(last_sign_in),
    ]  # fmt: skip


def users_list_command(args: argparse.Namespace) -> int:
    """Print the staff of one organisation, or of every one the node serves.

    Accounts first, then the users who have none (an API token only): they are listed too,
    with ``none`` under WEB SIGN-IN.
    """
    config = _config(args)
    orgs = [_org(args, config)] if args.org is not None else [t.org for t in config.tenants]

    async def staff(
        admin: AccountAdministration, _: NodeStore
    ) -> list[tuple[Account | None, User]]:
        found: list[tuple[Account | None, User]] = []
        for org in orgs:
            found += [(a, a.user) for a in await admin.organisation_accounts(operator(org))]
            found += [(None, u) for u in await admin.users_without_account(operator(org))]
        return found

    found: list[tuple[Account | None, User]] = _administer(config, staff)
    now = time.time()
    name_of = _names(config)
    rows = [
        _user_row(user, name_of) if account is None else _row(account, now, name_of)
        for account, user in found
    ]
    if args.json:
        common.say(json.dumps(rows, indent=2, ensure_ascii=True))
        return 0
    if not rows:
        common.note("no staff accounts")
        return 0
    table = [["ACCOUNT", "USER ID", "NAME", "ROLE", "ORGANISATION", "WEB SIGN-IN", "STATE",
              "SECOND FACTOR", "LAST SIGN-IN (LONDON)"]]  # fmt: skip
    for row, (account, _) in zip(rows, found, strict=True):
        table.append(_cells(row, None if account is None else account.last_sign_in))
    for line in columns(table):
        common.say(line)
    return 0


# --- invite ----------------------------------------------------------------------------


def users_invite_command(args: argparse.Namespace) -> int:
    """Invite a member of staff; print their invitation code once."""
    config = _config(args)
    org = _org(args, config)

    async def invite(admin: AccountAdministration, _: NodeStore) -> Invitation:
        return await admin.invite(operator(org), name=args.name, email=args.email, role=args.role)

    invitation: Invitation = _administer(config, invite)
    common.note(
        f"invited account {invitation.account_id} ({args.role}) of {org}; they choose a "
        f"password with this code at {config.public_url.rstrip('/')}/sign-in/invitation "
        f"until {london_time(invitation.expires)} (Europe/London), then set up an "
        "authenticator app. The code is shown once:"
    )
    common.say(invitation.code)
    return 0


# --- one account -----------------------------------------------------------------------


def _on_account(
    args: argparse.Namespace,
    change: Callable[[AccountAdministration, Account], Awaitable[None]],
    done: str,
) -> int:
    """Apply ``change`` to account ``--account`` as its organisation's administrator."""
    config = _config(args)

    async def act(admin: AccountAdministration, store: NodeStore) -> None:
        account = await store.account_by_id(args.account)
        if account is None or account.user.org not in {t.org for t in config.tenants}:
            raise CliError(f"there is no account {args.account} on this node")
        await change(admin, account)

    _administer(config, act)
    common.note(f"account {args.account}: {done}")
    return 0


def users_set_role_command(args: argparse.Namespace) -> int:
    """Give an account a new role; its sessions end, so the role applies at once."""
    return _on_account(
        args,
        lambda admin, a: admin.change_role(operator(a.user.org), a.id, args.role),
        f"the role is now {args.role}; its sessions have ended",
    )


def users_disable_command(args: argparse.Namespace) -> int:
    """Disable an account; its sessions end."""
    return _on_account(
        args,
        lambda admin, a: admin.set_disabled(operator(a.user.org), a.id, disabled=True),
        "disabled; its sessions have ended",
    )


def users_enable_command(args: argparse.Namespace) -> int:
    """Let a disabled account sign in again."""
    return _on_account(
        args,
        lambda admin, a: admin.set_disabled(operator(a.user.org), a.id, disabled=False),
        "enabled; it can sign in again",
    )


def users_remove_command(args: argparse.Namespace) -> int:
    """Remove an account: no more sign-in, and its API token stops working."""
    return _on_account(
        args,
        lambda admin, a: admin.remove(operator(a.user.org), a.id),
        "removed; it cannot sign in or use an API token, and what it did keeps its user id",
    )


def users_reset_factors_command(args: argparse.Namespace) -> int:
    """Forget an account's authenticator app and recovery codes; its sessions end."""
    return _on_account(
        args,
        lambda admin, a: admin.reset_second_factor(operator(a.user.org), a.id),
        "second factor reset; it sets up an authenticator app at its next sign-in",
    )


def _account_command(
    users: common.Subcommands,
    name: str,
    help_text: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    parser = users.add_parser(
        name, help=help_text, description=help_text[:1].upper() + help_text[1:] + "."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    parser.add_argument(
        "--account",
        required=True,
        type=int,
        metavar="NUMBER",
        help="the account's number (see users list)",
    )
    parser.set_defaults(handler=handler)
    return parser


def add_lifecycle_commands(users: common.Subcommands) -> None:
    """Add ``users list|invite|set-role|disable|enable|remove|reset-factors``."""
    listing = users.add_parser(
        "list",
        help="list the staff accounts, and users with no web sign-in",
        description="List the staff accounts of one organisation (--org) or of every one the "
        "node serves: number, user id, name, email address, role, organisation, state, "
        "whether a second factor is set up, and the last sign-in (Europe/London); then the "
        "users who have no account (an API token only), with WEB SIGN-IN none. No "
        "password or token hash is shown.",
    )
    listing.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    listing.add_argument("--org", help="only this organisation's accounts")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    listing.set_defaults(handler=users_list_command)

    invite = users.add_parser(
        "invite",
        help="invite a member of staff and print their invitation code once",
        description="Create an account that waits for its invitation: the person chooses "
        "a password with the code (valid for a week) on the node's sign-in page, then sets "
        "up an authenticator app. The code is printed once and stored only as a hash.",
    )
    invite.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    invite.add_argument("--org", help="the organisation (needed when the node serves several)")
    invite.add_argument("--name", required=True, help="the person's full name")
    invite.add_argument("--email", required=True, metavar="ADDRESS", help="their email address")
    invite.add_argument("--role", required=True, choices=ROLES, help="their role")
    invite.set_defaults(handler=users_invite_command)

    set_role = _account_command(
        users, "set-role", "give an account a new role (its sessions end)", users_set_role_command
    )
    set_role.add_argument("--role", required=True, choices=ROLES, help="the new role")
    _account_command(
        users, "disable", "disable an account (its sessions end)", users_disable_command
    )
    _account_command(users, "enable", "let a disabled account sign in again", users_enable_command)
    _account_command(
        users,
        "remove",
        "remove an account for good: no sign-in, no API token",
        users_remove_command,
    )
    _account_command(
        users,
        "reset-factors",
        "forget an account's authenticator app and recovery codes (its sessions end)",
        users_reset_factors_command,
    )
