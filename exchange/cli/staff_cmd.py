"""``exchange recall|rectify|thread|sent``: the staff API of a node, from the command line.

Unlike the node commands (``overdue``, ``register export``...), which read the node's store on
the node's machine, these act *through* the node, as a member of staff: they call the staff
API (docs/openapi.yaml) with the user's bearer token, so the node checks the role, scopes the
answer to the user's organisation, records the action in its ledger and does the work (a
recall notice, a sealed correction). They run anywhere that can reach the node.

- ``recall DIGEST --reason TEXT``: ``POST /api/v1/sent/{digest}/recall``;
- ``rectify DIGEST --record FILE --reason TEXT [--attach FILE ...]``:
  ``POST /api/v1/sent/{digest}/rectify``;
- ``thread DIGEST``: ``GET /api/v1/threads/{digest}``;
- ``sent`` and ``sent show DIGEST``: ``GET /api/v1/sent`` and ``GET /api/v1/sent/{digest}``.

The node, the CA and the token come from the options of :mod:`exchange.cli.staff_options`
(the token never from the command line); :mod:`exchange.cli.staff_client` makes the
requests. A refusal by the node is one ``exchange: the node refused: <message> [<rule>]``
line, exit status 1.
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.parse
from collections.abc import Sequence
from typing import Any, Final

from exchange.cli import common
from exchange.cli.errors import CliError, concerning
from exchange.cli.staff_client import Body, clean
from exchange.cli.staff_options import (
    ENV_NODE,
    ENV_TOKEN,
    connect,
    connection_options,
    wants_json,
)
from exchange.cli.staff_words import Names, columns, deadline, kind, london, reference, show
from exchange.cli.upload import Upload, attachment_parts
from exchange.files import read_limited
from exchange.records import KINDS

#: Largest corrected record file: the largest record JSON any kind allows (docs/records.md §5).
MAX_RECORD_FILE: Final = max(spec.max_document for spec in KINDS.values())
#: Most sent items one page lists (the node's own limit).
MAX_PAGE: Final = 200

_DIGEST_RE: Final = re.compile(r"[0-9a-f]{64}")


# --- arguments ---------------------------------------------------------------------------


def digest_arg(value: str) -> str:
    """Parse an envelope digest: 64 hexadecimal characters (upper case is accepted)."""
    digest = value.strip().lower()
    if _DIGEST_RE.fullmatch(digest) is None:
        raise argparse.ArgumentTypeError(
            "a digest is 64 hexadecimal characters (as `exchange sent` or the API prints it)"
        )
    return digest


def limit_arg(value: str) -> int:
    """Parse how many items one page lists: 1 to the node's most."""
    try:
        limit = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"the limit is 1 to {MAX_PAGE}")
    return limit


# --- showing answers ---------------------------------------------------------------------
# People read times in Europe/London and organisations by name (exchange.cli.staff_words);
# --json prints the node's answer as it is, with unix seconds and ids, for scripts.


def _recall_detail(outcome: dict[str, Any]) -> str:
    parts = [clean(outcome.get("detail") or "")]
    if outcome.get("at") is not None:
        parts.append(f"on {london(outcome['at'])}")
    if outcome.get("opened_by_role"):
        parts.append(f"opened by {clean(outcome['opened_by_role'], 20)}")
    return ", ".join(p for p in parts if p)


def recall_lines(answer: dict[str, Any], names: Names) -> list[str]:
    """One line per recipient: organisation, outcome, route, then what happened and when."""
    return columns(
        [
            (
                names.of(r["organisation"]),
                clean(r["outcome"], 20),
                clean(r.get("route") or "-", 10),
                _recall_detail(r),
            )
            for r in answer["recipients"]
        ]
    )


def rectify_lines(answer: dict[str, Any], names: Names) -> list[str]:
    """Return the correction's names, each recipient sent it, and each left out with why."""
    lines = [
        f"correction {clean(answer['digest'], 64)} (reference {reference(answer['envelope_id'])})",
        f"corrects   {clean(answer['corrects'], 64)}",
    ]
    lines += [f"sent to    {names.of(org)}" for org in answer["recipients"]]
    lines += [
        f"not sent   {names.of(n['organisation'])}: {clean(n['reason'])}"
        for n in answer["not_sent"]
    ]
    due = answer.get("deadline")
    if isinstance(due, dict):
        lines.append(f"deadline   {deadline(due)} ({clean(due['rule'], 80)})")
    return lines


def _receipts(receipts: Sequence[dict[str, Any]], names: Names) -> str:
    orgs = {r["organisation"] for r in receipts}
    return ", ".join(
        (f"{names.of(r['organisation'])} " if len(orgs) > 1 else "")
        + f"{clean(r['status'], 20)} {london(r['time'])}"
        for r in receipts
    )


def thread_lines(answer: dict[str, Any], names: Names) -> list[str]:
    """One line per envelope, oldest first: time, direction, counterparty, kind, receipts."""
    rows = []
    for item in answer["items"]:
        marker = "*" if item["digest"] == answer["digest"] else " "
        direction = "sent to" if item["direction"] == "sent" else "from"
        relation = clean(item.get("relation") or "", 12)
        receipts = _receipts(item["receipts"], names) or "no receipts"
        if item.get("state"):
            receipts += f"; {clean(item['state'], 20)} here"
        rows.append(
            (
                f"{marker} {london(item['time'])}",
                direction,
                ", ".join(names.of(c) for c in item["counterparties"]),
                kind(item["record_kind"]) + (f" ({relation})" if relation else ""),
                clean(item["digest"], 64),
                receipts,
            )
        )
    return columns(rows)


def _recipient_summary(recipient: dict[str, Any], names: Names) -> str:
    text = f"{names.of(recipient['organisation'])} {clean(recipient['delivery_state'], 20)}"
    statuses = [clean(t["status"], 20) for t in recipient["timeline"]]
    if statuses:
        text += f" ({', '.join(statuses)})"
    if recipient.get("overdue"):
        text += " OVERDUE"
    recall = recipient.get("recall")
    if isinstance(recall, dict):
        text += f" recall {clean(recall['outcome'], 20)}"
    return text


def sent_list_lines(answer: dict[str, Any], names: Names) -> list[str]:
    """One line per sent item, newest first: created, kind, digest, each recipient's state."""
    return columns(
        [
            (
                london(item["created"]),
                kind(item["record_kind"]),
                clean(item["digest"], 64),
                "; ".join(_recipient_summary(r, names) for r in item["recipients"]),
            )
            for item in answer["items"]
        ]
    )


def _event_rows(events: Sequence[dict[str, Any]], names: Names) -> list[str]:
    rows = [
        (
            f"  {clean(e['type'], 20)}",
            london(e["time"]),
            names.of(e["counterparty"]) if e.get("counterparty") else "-",
            (f"{clean(e['reason'], 100)}  " if e.get("reason") else "")
            + f"(ledger #{int(e['index'])})",
        )
        for e in events
    ]
    return columns(rows)


def sent_item_lines(item: dict[str, Any], names: Names) -> list[str]:
    """Return one sent item's timeline: each recipient's route, state, receipts and recall."""
    lines = [
        f"digest        {clean(item['digest'], 64)}",
        f"reference     {reference(item['envelope_id'])}",
        f"kind          {kind(item['record_kind'])}",
        f"created       {london(item['created'])} by {clean(item['submitted_by'], 80)}",
    ]
    if item.get("in_reply_to"):
        lines.append(f"in reply to   {clean(item['in_reply_to'], 64)}")
    if item.get("corrects"):
        lines.append(f"corrects      {clean(item['corrects'], 64)}")
    lines += [f"corrected by  {clean(d, 64)}" for d in item.get("corrected_by") or ()]
    for r in item["recipients"]:
        route = clean(r.get("route") or "no route yet", 20)
        state = f"{clean(r['delivery_state'], 20)} via {route}, {int(r['attempts'])} attempt(s)"
        if r.get("overdue"):
            state += ", OVERDUE"
        if r.get("last_error"):
            state += f", last error: {clean(r['last_error'])}"
        lines.append(f"to {names.of(r['organisation'])}")
        lines.append(f"  delivery    {state}")
        lines += [f"  {clean(t['status'], 20):<11} {london(t['time'])}" for t in r["timeline"]]
        recall = r.get("recall")
        if isinstance(recall, dict):
            lines.append(f"  recall      {clean(recall['outcome'], 20)}: {_recall_detail(recall)}")
    events = item.get("events") or ()
    if events:
        lines.append("events")
        lines += _event_rows(events, names)
    return lines


# --- the commands ------------------------------------------------------------------------


def recall_command(args: argparse.Namespace) -> int:
    """Recall a sent envelope from every recipient and show each outcome."""
    node = connect(args)
    body = {"reason": args.reason}
    if args.reason_code is not None:
        body["reason_code"] = args.reason_code
    answer = node.call("POST", f"/api/v1/sent/{args.digest}/recall", body)
    show(args, node, answer, recall_lines)
    if not wants_json(args):
        outcomes = [str(r.get("outcome")) for r in answer.get("recipients", ())]
        counts = ", ".join(f"{outcomes.count(o)} {o}" for o in dict.fromkeys(outcomes))
        retry = (
            " (run it again to retry those pending or failed)"
            if {"pending", "failed"} & set(outcomes)
            else ""
        )
        common.note(f"recall of {args.digest}: {counts or 'no recipients'}{retry}")
    return 0


def rectify_command(args: argparse.Namespace) -> int:
    """Send a corrected record to every organisation that received the original."""
    node = connect(args)
    with concerning(f"record {args.record}"):
        record = json.loads(read_limited(args.record, MAX_RECORD_FILE, what="the record file"))
        if not isinstance(record, dict):
            raise CliError("must hold one JSON object: the corrected record")
    upload = Upload({"record": record, "reason": args.reason}, attachment_parts(args.attach or []))
    body = Body(upload.content_type, upload.length, upload.pieces)
    answer = node.call("POST", f"/api/v1/sent/{args.digest}/rectify", body)
    show(args, node, answer, rectify_lines)
    return 0


def thread_command(args: argparse.Namespace) -> int:
    """Show the conversation an envelope belongs to."""
    node = connect(args)
    show(args, node, node.call("GET", f"/api/v1/threads/{args.digest}"), thread_lines)
    return 0


def sent_command(args: argparse.Namespace) -> int:
    """List the organisation's sent items, newest first."""
    query = {"limit": str(args.limit)}
    if args.before:
        query["before"] = args.before
    node = connect(args)
    answer = node.call("GET", "/api/v1/sent?" + urllib.parse.urlencode(query))
    show(args, node, answer, sent_list_lines)
    if not wants_json(args) and isinstance(answer, dict) and answer.get("next"):
        common.note(f"more: exchange sent --before {clean(answer['next'], 200)}")
    return 0


def sent_show_command(args: argparse.Namespace) -> int:
    """Show one sent item's timeline."""
    node = connect(args)
    show(args, node, node.call("GET", f"/api/v1/sent/{args.digest}"), sent_item_lines)
    return 0


_AFTER: Final = (
    f"The node is --node or ${ENV_NODE}; your API token is read only from ${ENV_TOKEN} (or the "
    "variable --token-env names), --token-file or --token-stdin. A refusal by the node is "
    "printed as one line with its rule."
)


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange recall``, ``rectify``, ``thread`` and ``sent`` to the parser."""
    connection = connection_options()

    recall = sub.add_parser(
        "recall",
        parents=[connection],
        help="recall something sent in error, through the node (DSL or DPO)",
        description=(
            "Ask the node to recall a sent envelope from every recipient, and print each "
            "recipient's outcome: recalled (never sent, deleted from the relay, or withdrawn "
            "at their node before anyone opened it), too-late (when, and by which role, it "
            "was opened or collected) or not-recallable (handed to MESH or mailed: ask them "
            "to delete it). Asking again is safe. " + _AFTER
        ),
    )
    recall.add_argument("digest", type=digest_arg, metavar="DIGEST", help="the sent envelope")
    recall.add_argument(
        "--reason", required=True, metavar="TEXT", help="why, in plain words (no identifiers)"
    )
    recall.add_argument(
        "--reason-code", metavar="CODE", help="a token for the ledger (default: sent-in-error)"
    )
    recall.set_defaults(handler=recall_command)

    rectify = sub.add_parser(
        "rectify",
        parents=[connection],
        help="send a corrected record to everyone who received the original (DSL or DPO)",
        description=(
            "Send a corrected record, of the original's kind, to every organisation that "
            "received the original (UK GDPR Art 19); print the correction's digest, who was "
            "sent it, and who was left out and why. Attachments are .pdf, .png, .jpg, .docx, "
            ".odt or .txt files, listed in the record's manifest in the same order. " + _AFTER
        ),
    )
    rectify.add_argument("digest", type=digest_arg, metavar="DIGEST", help="the original")
    rectify.add_argument(
        "--record", required=True, metavar="FILE", help="the corrected record (JSON; - for stdin)"
    )
    rectify.add_argument(
        "--reason", required=True, metavar="TEXT", help="what was wrong, in plain words"
    )
    rectify.add_argument(
        "--attach", action="append", metavar="FILE", help="a document to attach (repeatable)"
    )
    rectify.set_defaults(handler=rectify_command)

    thread = sub.add_parser(
        "thread",
        parents=[connection],
        help="show the conversation an envelope belongs to",
        description=(
            "Print every envelope of the conversation, oldest first: when, sent to or received "
            "from whom, the record kind (and whether a reply or a correction), its digest and "
            "its receipts. The envelope asked about is marked *. Replies received join the "
            "thread once someone opens them. " + _AFTER
        ),
    )
    thread.add_argument("digest", type=digest_arg, metavar="DIGEST", help="any envelope of it")
    thread.set_defaults(handler=thread_command)

    sent = sub.add_parser(
        "sent",
        parents=[connection],
        help="list what your organisation sent, or show one item ('sent show DIGEST')",
        description=(
            "List your organisation's sent items, newest first, with each recipient's "
            "delivery state, receipts, recall and whether it is overdue; 'exchange sent show "
            "DIGEST' prints one item's whole timeline, with its ledger events. " + _AFTER
        ),
    )
    sent.add_argument(
        "--limit", type=limit_arg, default=50, metavar="N", help="how many (1-200, default 50)"
    )
    sent.add_argument("--before", metavar="CURSOR", help="the page after the one that printed it")
    sent.set_defaults(handler=sent_command)
    actions = sent.add_subparsers(dest="sent_command", metavar="COMMAND", required=False)
    show = actions.add_parser(
        "show",
        parents=[connection],
        help="one sent item's timeline",
        description=(
            "Print one sent item: its names, what it replies to or corrects, then for each "
            "recipient the route, delivery state, attempts, receipts and any recall, and "
            "finally the ledger events. " + _AFTER
        ),
    )
    show.add_argument("digest", type=digest_arg, metavar="DIGEST", help="the sent envelope")
    show.set_defaults(handler=sent_show_command)
