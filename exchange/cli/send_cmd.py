"""``exchange send``: submit a record and its documents through the node, as a script would.

It reads the record (JSON) from a file or standard input, checks each ``--attach`` file
(type by extension, size), and calls ``POST /api/v1/envelopes`` with the body streamed
(:mod:`exchange.cli.upload`: each file base64-encoded as it is read, so memory use does not
grow with the files). Every request carries an ``Idempotency-Key``: if the node is briefly
unavailable (503) or the answer is lost, the request is made again with the same key and the
node seals it once. The key is ``--idempotency-key KEY`` when given, so a run retried after
its answer was lost (the command ended, the machine restarted) still sends the record once;
else a fresh UUID per run, which a failure to reach the node names, for that retry. On a
terminal, a progress bar on standard error shows the upload.

It prints the record's reference (as the web pages show it), its digest, and its deadline
in Europe/London, with the recipients by name; ``--json`` prints the node's answer instead.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import date
from typing import Any, Final

from exchange.cli import common
from exchange.cli.errors import CliError, UsageError, concerning
from exchange.cli.progress import Progress
from exchange.cli.staff_client import Body, StaffClient, UnreachableError, clean
from exchange.cli.staff_cmd import MAX_RECORD_FILE, digest_arg
from exchange.cli.staff_options import (
    connect,
    connection_options,
    reads_token_from_stdin,
)
from exchange.cli.staff_words import Names, deadline, kind, reference, show
from exchange.cli.upload import CONTENT_TYPE_BY_EXTENSION, Upload, attachment_parts
from exchange.files import STDIO, read_limited
from exchange.model import IDEMPOTENCY_KEY_RE, IDEMPOTENCY_KEY_RULE
from exchange.records import KINDS

_DATE_HELP: Final = "YYYY-MM-DD"


def _date_arg(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date ({_DATE_HELP})") from None
    return value


def _read_record(path: str) -> dict[str, Any]:
    with concerning(f"record {path}"):
        record = json.loads(read_limited(path, MAX_RECORD_FILE, what="the record file"))
        if not isinstance(record, dict):
            raise CliError("must hold one JSON object: the record")
    return record


def _fields(args: argparse.Namespace, record: dict[str, Any]) -> dict[str, Any]:
    """Return the submission's fields, in the order the API documents them."""
    fields: dict[str, Any] = {
        "recipients": list(dict.fromkeys(args.to)),
        "purpose": args.purpose,
        "record_kind": args.kind,
        "record": record,
        "categories": list(dict.fromkeys(args.category)),
        "reason": args.reason,
    }
    optional = {
        "lawful_basis": args.lawful_basis,
        "new_school_confirmed": args.new_school_confirmed,
        "due": args.due,
        "in_reply_to": args.in_reply_to,
    }
    fields.update({name: value for name, value in optional.items() if value is not None})
    return fields


def idempotency_key_arg(value: str) -> str:
    """Parse ``--idempotency-key``: what the node accepts as an ``Idempotency-Key``."""
    if IDEMPOTENCY_KEY_RE.fullmatch(value) is None:
        raise argparse.ArgumentTypeError(f"a key is {IDEMPOTENCY_KEY_RULE}")
    return value


def _submit(client: StaffClient, upload: Upload, given_key: str | None) -> Any:
    bar = Progress("sending", upload.length)

    def pieces() -> Any:
        bar.restart()
        return upload.pieces()

    body = Body(upload.content_type, upload.length, pieces, watch=bar.advance)
    key = given_key or str(uuid.uuid4())
    try:
        return client.call("POST", "/api/v1/envelopes", body, headers={"Idempotency-Key": key})
    except UnreachableError as exc:
        if given_key is not None:
            raise
        # The node may have sealed it before the answer was lost: the key makes a retry safe.
        raise CliError(
            f"{exc}; if you run it again, add --idempotency-key {key} so that the record "
            "is sent once"
        ) from None
    finally:
        bar.finish()


def sent_lines(
    answer: dict[str, Any], record_kind: str, recipients: list[str], names: Names
) -> list[str]:
    """Return what was sent, to whom, and its reference, digest and deadline."""
    lines = [
        f"sent       {kind(record_kind)}",
        *(f"to         {names.of(org)}" for org in recipients),
        f"reference  {reference(answer['envelope_id'])}",
        f"digest     {clean(answer['digest'], 64)}",
    ]
    due = answer.get("deadline")
    if isinstance(due, dict):
        lines.append(f"deadline   {deadline(due)} ({clean(due.get('rule'), 80)})")
    else:
        lines.append("deadline   none for this kind of record")
    if answer.get("lawful_basis"):
        lines.append(f"basis      {clean(answer['lawful_basis'], 200)}")
    return lines


def send_command(args: argparse.Namespace) -> int:
    """Check the inputs, send the record, print what the node answered."""
    if args.record == STDIO and reads_token_from_stdin(args):
        raise UsageError("--record - and --token-stdin both want standard input; use one")
    client = connect(args)
    record = _read_record(args.record)
    upload = Upload(_fields(args, record), attachment_parts(args.attach or []))
    answer = _submit(client, upload, args.idempotency_key)
    recipients = upload.fields["recipients"]
    show(
        args, client, answer,
        lambda answer, names: sent_lines(answer, args.kind, recipients, names),
        unexpected="the node accepted the record but its answer is not in the expected form "
        "(print it with --json)",
    )  # fmt: skip
    return 0


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange send``."""
    types = ", ".join(sorted(CONTENT_TYPE_BY_EXTENSION))
    send = sub.add_parser(
        "send",
        parents=[connection_options()],
        help="send a record and its documents through the node (DSL or staff)",
        description=(
            "Send a record through your organisation's node: the node checks it against its "
            "kind's schema and the sharing policy, seals it to each recipient and queues it "
            "(POST /api/v1/envelopes). The documents are streamed, so their size is limited "
            "only by the node. Prints the reference, the digest and the deadline; --json "
            "prints the node's answer. Each run sends once, even if the request has to be "
            "made again (an Idempotency-Key); to retry a run whose answer was lost, give "
            "both runs the same --idempotency-key. Your API token is read from $EXCHANGE_TOKEN, "
            "--token-file or --token-stdin, never from the command line."
        ),
    )
    send.add_argument("--kind", required=True, choices=sorted(KINDS), help="the record kind")
    send.add_argument(
        "--to",
        required=True,
        action="append",
        type=common.org_id_arg,
        metavar="ORG",
        help="a recipient organisation id, e.g. urn:106124 or la:356 (repeatable)",
    )
    send.add_argument(
        "--record", required=True, metavar="FILE", help="the record (JSON; - for standard input)"
    )
    send.add_argument(
        "--attach",
        action="append",
        metavar="FILE",
        help=f"a document to attach, in the record's manifest order ({types}; repeatable)",
    )
    send.add_argument(
        "--purpose", required=True, help="the purpose of sharing, e.g. cp-file-transfer"
    )
    send.add_argument(
        "--category",
        required=True,
        action="append",
        metavar="NAME",
        help="a category of data it carries, e.g. identity (repeatable)",
    )
    send.add_argument(
        "--reason",
        required=True,
        metavar="TEXT",
        help="why sharing is necessary, in plain words (for the sharing register; no names)",
    )
    send.add_argument(
        "--lawful-basis", metavar="BASIS", help="the lawful basis (default: the policy's)"
    )
    send.add_argument(
        "--new-school-confirmed",
        type=_date_arg,
        metavar=_DATE_HELP,
        help="for a CP file: when the new school was confirmed (the deadline counts from it)",
    )
    send.add_argument(
        "--due", type=_date_arg, metavar=_DATE_HELP, help="for an information request: due date"
    )
    send.add_argument(
        "--in-reply-to", type=digest_arg, metavar="DIGEST", help="the item this replies to"
    )
    send.add_argument(
        "--idempotency-key",
        type=idempotency_key_arg,
        metavar="KEY",
        help="give the same key to a retried run to be sure the record is sent once (the "
        f"node keeps it a day; {IDEMPOTENCY_KEY_RULE}; default: a new one each run)",
    )
    send.set_defaults(handler=send_command)
