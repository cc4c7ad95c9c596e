"""``exchange register export`` and ``exchange overdue``.

They read the node's store directly (the data folder of ``--config``), so a DPO or an
operator can run them on the node's machine whether or not the node is running; they never
write to the store. The answers are the same as the staff API's ``GET /api/v1/register``,
``GET /api/v1/overdue`` and ``POST /api/v1/subject-access`` (docs/node.md).

Pupil identifiers given to ``subject-access`` are checked (check characters included) and
turned into their keyed hash with the node's ``register.key``; they are never printed. To
keep an identifier out of the shell history, give ``-`` and type it on standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

from exchange.cli import common
from exchange.cli.errors import CliError, UsageError
from exchange.cli.node_store import node_config, open_store
from exchange.config import NodeConfig
from exchange.files import write_new_file
from exchange.keys.ids import OrgId, parse_org_id
from exchange.service.register_reports import (
    export_register,
    london_days,
    overdue_items,
)
from exchange.store.opening import NodeStore, store_exists

T = TypeVar("T")

#: Longest identifier line read from standard input.
_MAX_IDENTIFIER_LINE = 64


def _config(args: argparse.Namespace) -> NodeConfig:
    return node_config(args.config)


def _org(args: argparse.Namespace, config: NodeConfig) -> OrgId:
    served = [t.org for t in config.tenants]
    if args.org is None:
        if len(served) != 1:
            raise UsageError(f"--org is required: this node serves {', '.join(served)}")
        return served[0]
    try:
        org = parse_org_id(args.org, field="--org")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if org not in served:
        raise CliError(f"this node does not serve {org}")
    return org


def _now(args: argparse.Namespace) -> datetime:
    return datetime.fromtimestamp(common.now(args), UTC)


def _with_store(config: NodeConfig, use: Callable[[NodeStore], Awaitable[T]]) -> T:
    async def run() -> T:
        if not store_exists(config.data_dir, config.database.url):
            raise CliError(f"no node data in {config.data_dir}: has the node been started?")
        store = await open_store(config)
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a date (YYYY-MM-DD)") from None


def _emit(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    # 0600 and never over an existing file: the export is the register of disclosures.
    write_new_file(Path(out), text.encode("utf-8"), mode=0o600)
    common.note(f"wrote {out}")


def export_command(args: argparse.Namespace) -> int:
    """Write the register (CSV or JSON) of one organisation the node serves."""
    config = _config(args)
    org = _org(args, config)
    since, until = london_days(args.date_from, args.date_to)
    now = _now(args)
    result = _with_store(
        config,
        lambda store: export_register(
            store, org, since=since, until=until, now=now, form=args.format
        ),
    )
    if isinstance(result, str):
        _emit(result, args.out)
    else:
        _emit(json.dumps(result, indent=2, ensure_ascii=False) + "\n", args.out)
    return 0


def overdue_command(args: argparse.Namespace) -> int:
    """List the deadlines past due without the receipt that meets them."""
    config = _config(args)
    org = _org(args, config)
    now = _now(args)
    items = _with_store(config, lambda store: overdue_items(store, org, now))
    if args.json:
        text = json.dumps([i.as_json() for i in items], indent=2) + "\n"
    else:
        text = "".join(
            f"{item.due.isoformat()}  {item.record_kind:<18} {item.recipient:<14} "
            f"waiting for {' or '.join(item.waiting_for)}  envelope {item.envelope_id.hex()}\n"
            for item in items
        )
    _emit(text, args.out)
    common.note(f"{len(items)} overdue item(s) for {org}")
    return 0


def add_commands(sub: common.Subcommands) -> None:
    """Add the register commands to the ``exchange`` parser."""
    clock = common.clock_options()

    def common_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
        parser.add_argument(
            "--org", help="the organisation (required when the node serves several)"
        )

    reg = sub.add_parser("register", help="the sharing register (for the DPO)")
    reg_sub = reg.add_subparsers(dest="register_command", metavar="COMMAND", required=True)
    export = reg_sub.add_parser(
        "export",
        parents=[clock],
        help="export the sharing register as CSV or JSON",
        description=(
            "Write every decision to share and not to share of one organisation, with the "
            "lawful basis, reason, pupil identifiers as keyed hashes only, deadlines and the "
            "receipts per recipient. Dates are London days, both included."
        ),
    )
    common_options(export)
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--from", dest="date_from", type=_day, metavar="YYYY-MM-DD")
    export.add_argument("--to", dest="date_to", type=_day, metavar="YYYY-MM-DD")
    export.add_argument(
        "--out", metavar="FILE", help="write to a new file (mode 0600) instead of stdout"
    )
    export.set_defaults(handler=export_command)

    overdue = sub.add_parser(
        "overdue",
        parents=[clock],
        help="list deadlines past due without their receipt",
        description=(
            "List each recipient whose deadline (CP file 5 school days, referral "
            "acknowledgement 1 working day, information request due date) has passed "
            "without the receipt that meets it. No personal data is printed."
        ),
    )
    common_options(overdue)
    overdue.add_argument("--json", action="store_true", help="print JSON instead of lines")
    overdue.add_argument("--out", metavar="FILE", help="write to a new file (mode 0600)")
    overdue.set_defaults(handler=overdue_command)
