"""``exchange tokens create|list|revoke``: machines' API tokens, read and written in the store.

``create`` makes a named token with one role in one organisation and prints it once on
standard output (nothing else goes there); the store keeps only its hash. ``list`` shows every
token with its role, organisation, times in Europe/London and whether it was revoked, never
the token. ``revoke`` ends one at once, by name or number. Tokens are never read from the
command line: the node accepts them only in the ``Authorization`` header.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from exchange.auth.api_token import DEFAULT_DAYS, MAX_DAYS, ApiToken
from exchange.cli import common
from exchange.cli.errors import CliError
from exchange.cli.node_cmd import _ROLES, _ready_config
from exchange.cli.node_store import node_config, open_store
from exchange.config import NodeConfig
from exchange.keys.ids import OrgId
from exchange.service.api_tokens import ApiTokens
from exchange.service.errors import ServiceError
from exchange.store.opening import store_exists
from exchange.words import london_time

T = TypeVar("T")
#: Who made a token from the command line (the admin pages record the administrator).
CREATED_BY_CLI = "command line"


def _tokens(config: NodeConfig, use: Callable[[ApiTokens], Awaitable[T]]) -> T:
    """Run ``use`` over the node's tokens, refusing a service error in its own words."""

    async def run() -> T:
        store = await open_store(config)
        try:
            return await use(ApiTokens(store, time.time))
        except ServiceError as exc:
            raise CliError(str(exc)) from None
        finally:
            await store.close()

    return asyncio.run(run())


def _existing(args: argparse.Namespace) -> NodeConfig:
    """Return the configuration of a node whose store exists (listing makes none)."""
    config = node_config(args.config)
    if not store_exists(config.data_dir, config.database.url):
        raise CliError(f"no node data in {config.data_dir}: has the node been started?")
    return config


def create_command(args: argparse.Namespace) -> int:
    """Make a token and print it once on standard output."""
    # The data folder is made only for a configuration that can serve.
    config = _ready_config(args)
    if args.org not in {t.org for t in config.tenants}:
        raise CliError(f"this node does not serve {args.org}")
    made, secret = _tokens(
        config,
        lambda tokens: tokens.create(
            name=args.name, org=args.org, role=args.role, days=args.days,
            created_by=CREATED_BY_CLI,
        ),
    )  # fmt: skip
    common.note(
        f"created API token {made.name} (number {made.id}, {made.role} of {made.org}), "
        f"expiring on {london_time(made.expires_at)}; it is shown once:"
    )
    sys.stdout.write(secret + "\n")
    return 0


def _row(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "org": token.org,
        "role": token.role,
        "created": london_time(token.created_at),
        "expires": london_time(token.expires_at),
        "last_used": None if token.last_used_at is None else london_time(token.last_used_at),
        "revoked": None if token.revoked_at is None else london_time(token.revoked_at),
        "created_by": token.created_by,
    }


def list_command(args: argparse.Namespace) -> int:
    """List every token, newest first: never the token itself."""
    org: OrgId | None = args.org
    rows = [_row(t) for t in _tokens(_existing(args), lambda s: s.listed(org))]
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return 0
    for r in rows:
        state = f"revoked {r['revoked']}" if r["revoked"] else f"expires {r['expires']}"
        used = f"last used {r['last_used']}" if r["last_used"] else "never used"
        common.say(
            f"{r['id']:>4}  {r['name']:<24} {r['role']:<6} {r['org']}  created {r['created']}; "
            f"{state}; {used}"
        )
    common.note(f"{len(rows)} API token(s)")
    return 0


def revoke_command(args: argparse.Namespace) -> int:
    """Revoke one token by name or number."""
    token = _tokens(_existing(args), lambda s: s.revoke(args.token_name))
    common.note(f"revoked API token {token.name} (number {token.id}) of {token.org}")
    return 0


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("--days must be a whole number of days") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"--days must be between 1 and {MAX_DAYS}")
    return days


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange tokens`` to the ``exchange`` parser."""
    tokens = sub.add_parser("tokens", help="manage machines' API tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", metavar="COMMAND", required=True)
    create = tokens_sub.add_parser(
        "create",
        help="make a named API token for a machine and print it once",
        description="Make a named API token that acts with one role in one organisation "
        f"until it expires ({DEFAULT_DAYS} days unless --days says otherwise, at most "
        f"{MAX_DAYS}) or is revoked. The token is printed once on standard output and only "
        "its hash is kept.",
    )
    create.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    create.add_argument(
        "--org", required=True, type=common.org_id_arg, help="the organisation (a tenant)"
    )
    create.add_argument(
        "--name", required=True, help="a unique name, e.g. mis-nightly-export (letters first)"
    )
    create.add_argument("--role", required=True, choices=_ROLES, help="the token's role")
    create.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"days until it expires (default {DEFAULT_DAYS}, at most {MAX_DAYS})",
    )
    create.set_defaults(handler=create_command)
    listing = tokens_sub.add_parser(
        "list",
        help="list the API tokens with their last use (never the tokens themselves)",
        description="List every API token, newest first: name, role, organisation, when it "
        "was made, when it expires, when it was last used (to the minute) and whether it "
        "was revoked, in Europe/London time.",
    )
    listing.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    listing.add_argument("--org", type=common.org_id_arg, help="only this organisation's tokens")
    listing.add_argument("--json", action="store_true", help="print JSON instead of lines")
    listing.set_defaults(handler=list_command)
    revoke = tokens_sub.add_parser(
        "revoke",
        help="revoke an API token at once",
        description="Revoke an API token, by its name or number: from now the node answers "
        "it 401 'this API token was revoked'.",
    )
    revoke.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    revoke.add_argument("token_name", metavar="NAME-or-ID", help="the token's name or number")
    revoke.set_defaults(handler=revoke_command)
