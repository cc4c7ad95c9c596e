"""``exchange retention due``: the retention review queue, read from the node's store.

It gives the same answer as the staff API's ``GET /api/v1/retention/due`` (docs/node.md,
"Retention"): every item of one organisation whose review date is before ``--before``
(default: tomorrow, so every review due today or earlier), with its rule, the rule's source
and action, its state and the holds covering it, and the items without a review date. It
reads the store directly, so it runs on the node's machine whether or not the node is
running, and never writes to it. No personal data is printed.
"""

from __future__ import annotations

import argparse
import json

from exchange.cli import common
from exchange.cli.errors import CliError
from exchange.cli.register_cmd import _config, _day, _emit, _now, _org, _with_store
from exchange.config import ConfigError
from exchange.service.retention import due_report
from exchange.shipped import load_records_setup


def due_command(args: argparse.Namespace) -> int:
    """List the items due for review (and those without a review date)."""
    config = _config(args)
    org = _org(args, config)
    try:
        setup = load_records_setup(config)
    except ConfigError as exc:
        raise CliError(f"config {args.config}: {exc}") from None
    now = _now(args)
    report = _with_store(
        config, lambda store: due_report(store, setup.retention, org, before=args.before, now=now)
    )
    if args.json:
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    else:
        lines = [
            f"{i['review_date']}  {i['state']:<10} {i['rule']:<34} {i['direction']:<8} "
            f"{i['record_kind']:<20} {i['digest']}"
            + (f"  holds {', '.join(str(h) for h in i['holds'])}" if i["holds"] else "")
            + "\n"
            for i in report["items"]
        ]
        lines += [
            f"unscheduled {u['why']:<17} {u['direction']:<8} {u['record_kind']:<20} {u['digest']}\n"
            for u in report["unscheduled"]
        ]
        text = "".join(lines)
    _emit(text, args.out)
    common.note(
        f"{len(report['items'])} item(s) for review before {report['before']} for {org}; "
        f"{len(report['unscheduled'])} without a review date; "
        f"{len(report['holds'])} hold(s) in force"
    )
    return 0


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange retention`` to the ``exchange`` parser."""
    retention = sub.add_parser("retention", help="retention reviews (for the DPO)")
    actions = retention.add_subparsers(dest="retention_command", metavar="COMMAND", required=True)
    due = actions.add_parser(
        "due",
        parents=[common.clock_options()],
        help="list the items whose retention review date has passed",
        description=(
            "List each item the organisation holds whose review date (from "
            "config/retention.toml: e.g. a school's CP file at the date of birth + 25 years) "
            "is before --before (default: tomorrow), with its rule, source, action, state and "
            "holds, then the items without a review date and why. No personal data."
        ),
    )
    due.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    due.add_argument("--org", help="the organisation (required when the node serves several)")
    due.add_argument("--before", type=_day, metavar="YYYY-MM-DD", help="the end of the window")
    due.add_argument("--json", action="store_true", help="print JSON instead of lines")
    due.add_argument("--out", metavar="FILE", help="write to a new file (mode 0600)")
    due.set_defaults(handler=due_command)
