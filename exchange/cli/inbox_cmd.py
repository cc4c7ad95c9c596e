"""``exchange inbox list|open|acknowledge|reject``: your organisation's inbox, through the node.

- ``inbox list``: ``GET /api/v1/inbox``, one item a line: its reference, when it was received
  and from whom (by name), its kind, the deadline owed (Europe/London) and its status.
- ``inbox open ID --out DIR``: ``POST /api/v1/inbox/{digest}/open`` for the record and the
  list of its attachments (recorded, and the sender gets an ``opened`` receipt), then each
  attachment downloaded straight into its file (``GET .../attachments/{number}``, checked
  against its size and SHA-256), saved in ``DIR``: the record as ``record.json`` and each
  attachment under its sanitised name, files mode
  0600 in a folder of mode 0700 (created if missing), all or none, never replacing a file
  (:func:`exchange.cli.record_cmd.extract`).
- ``inbox acknowledge ID [--outcome CODE]`` and ``inbox reject ID --reason CODE``: the signed
  receipts the sender waits for.

``ID`` is the item's digest, or the short reference the web pages show (``2719-AFB5``, the
envelope id's first 8 hexadecimal digits), which is looked up in the inbox: the API names
items by digest only.

The envelope-level ``exchange open`` (a key file and an envelope file, no node) is another
command and keeps its meaning.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from exchange.cli import common
from exchange.cli.errors import CliError
from exchange.cli.record_cmd import NamedFile, extract
from exchange.cli.staff_client import StaffClient, clean
from exchange.cli.staff_cmd import limit_arg
from exchange.cli.staff_options import connect, connection_options, wants_json
from exchange.cli.staff_words import Names, columns, deadline, kind, london, reference, show
from exchange.receipts.receipt import ACKNOWLEDGEMENT_CODES, REJECTION_CODES

#: The file the opened record is saved as, beside its attachments.
RECORD_FILE: Final = "record.json"
#: Items one page of the inbox holds (the node's most), and the most pages searched for a
#: short reference (10,000 items: any inbox's recent history).
PAGE: Final = 200
MAX_PAGES: Final = 50

_DIGEST_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
_REFERENCE_RE: Final = re.compile(r"([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})")


@dataclass(frozen=True)
class _Saved:
    """A file to save: the record, beside the attachments."""

    name: str
    data: bytes


def _item_id(value: str) -> str:
    text = value.strip()
    if _DIGEST_RE.fullmatch(text) or _REFERENCE_RE.fullmatch(text):
        return text
    raise argparse.ArgumentTypeError(
        "give the item's digest (64 hexadecimal characters) or its reference (like 2719-AFB5)"
    )


def _pages(client: StaffClient) -> Any:
    """Yield the inbox's items page by page, newest first (at most :data:`MAX_PAGES`)."""
    before: str | None = None
    for _ in range(MAX_PAGES):
        query = {"limit": str(PAGE)} | ({"before": before} if before else {})
        answer = client.call("GET", "/api/v1/inbox?" + urllib.parse.urlencode(query))
        yield from answer["items"]
        before = answer.get("next")
        if not before:
            return


def resolve(client: StaffClient, item: str) -> str:
    """Return the digest of ``item``: a digest as it is, a reference looked up in the inbox."""
    if _DIGEST_RE.fullmatch(item):
        return item.lower()
    match = _REFERENCE_RE.fullmatch(item)
    assert match is not None  # checked by the argument's type
    prefix = (match.group(1) + match.group(2)).lower()
    try:
        found = [
            str(i["digest"]) for i in _pages(client) if str(i["envelope_id"]).startswith(prefix)
        ]
    except (KeyError, TypeError, AttributeError):
        raise CliError("the node's inbox answer is not in the expected form") from None
    shown = f"{prefix[:4].upper()}-{prefix[4:].upper()}"
    if not found:
        raise CliError(f"no item in your organisation's inbox has the reference {shown}")
    if len(set(found)) > 1:
        raise CliError(f"the reference {shown} names {len(found)} items; give the digest instead")
    return found[0]


# --- list --------------------------------------------------------------------------------


def inbox_lines(answer: dict[str, Any], names: Names) -> list[str]:
    """One line per item under a heading: reference, received, from, kind, deadline, status."""
    items = list(answer["items"])
    if not items:
        return ["the inbox is empty"]
    rows = [("REFERENCE", "RECEIVED", "FROM", "KIND", "DEADLINE", "STATUS")]
    rows += [
        (
            reference(i["envelope_id"]),
            london(i["received_at"]),
            names.of(i["sender"]),
            kind(i["record_kind"]),
            deadline(i.get("deadline")),
            clean(i["state"], 20),
        )
        for i in items
    ]
    return columns(rows)


def list_command(args: argparse.Namespace) -> int:
    """List the inbox, newest first."""
    client = connect(args)
    query = {"limit": str(args.limit)} | ({"before": args.before} if args.before else {})
    answer = client.call("GET", "/api/v1/inbox?" + urllib.parse.urlencode(query))
    show(args, client, answer, inbox_lines)
    if not wants_json(args) and isinstance(answer, dict) and answer.get("next"):
        common.note(f"more: exchange inbox list --before {clean(answer['next'], 200)}")
    return 0


# --- open --------------------------------------------------------------------------------


def _refuse_unusable(directory: Path) -> None:
    """Refuse before asking the node when ``--out`` cannot take the files.

    Opening is recorded by the node and tells the sender, so a folder that is not one, a
    missing parent, or a record file name already taken is found first, and nothing is opened.
    """
    if directory.exists() and not directory.is_dir():
        raise CliError(f"--out {directory} is not a folder; nothing was opened")
    if not directory.exists():
        parent = directory.parent
        if not parent.is_dir():
            raise CliError(
                f"--out {directory}: the folder {parent} does not exist; nothing was opened"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise CliError(
                f"--out {directory}: the folder {parent} is not writable; nothing was opened"
            )
    elif not os.access(directory, os.W_OK | os.X_OK):
        raise CliError(f"--out {directory} is not writable; nothing was opened")
    target = directory / RECORD_FILE
    if target.exists() or target.is_symlink():
        raise CliError(f"{target} already exists; refusing to overwrite it; nothing was saved")


@dataclass(frozen=True)
class _Download:
    """An attachment of an opened item, downloaded into its file as it is saved."""

    client: StaffClient
    digest: str
    number: int
    name: str
    size: int
    sha256: str

    def write_to(self, handle: BinaryIO) -> None:
        """Download the file into ``handle`` and check its size and SHA-256."""
        self.client.fetch(
            "GET", f"/api/v1/inbox/{self.digest}/attachments/{self.number}",
            accept="application/octet-stream", limit=self.size, into=handle,
        )  # fmt: skip
        handle.flush()
        handle.seek(0)
        hasher = hashlib.sha256()
        size = 0
        while piece := handle.read(1024 * 1024):
            hasher.update(piece)
            size += len(piece)
        if size != self.size or hasher.hexdigest() != self.sha256:
            raise CliError(
                f"item {self.digest}: attachment {self.number} did not arrive whole; "
                "nothing was saved"
            )


def _opened_files(client: StaffClient, digest: str, opened: Any) -> list[NamedFile | _Download]:
    """Return the record and a download of each attachment the node listed."""
    if not isinstance(opened, dict) or not isinstance(opened.get("attachments"), list):
        raise CliError(f"item {digest}: the node's answer is not an opened record")
    if opened.get("record") is None:
        raise CliError(f"item {digest}: the content is not a record container; nothing was saved")
    record = json.dumps(opened["record"], indent=2, ensure_ascii=False) + "\n"
    files: list[NamedFile | _Download] = [_Saved(RECORD_FILE, record.encode("utf-8"))]
    files += [
        _Download(client, digest, int(entry["number"]), str(entry["name"]),
                  int(entry["size"]), str(entry["sha256"]))
        for entry in opened["attachments"]
    ]  # fmt: skip
    return files


def open_command(args: argparse.Namespace) -> int:
    """Open an item and save its record and attachments in ``--out``.

    The node answers the record and the list of its attachments; each is then downloaded
    straight into its file, so a CP file of any size is saved without being held in memory.
    """
    directory = Path(args.out)
    client = connect(args)
    _refuse_unusable(directory)
    digest = resolve(client, args.item)
    opened = client.call("POST", f"/api/v1/inbox/{digest}/open")
    files = _opened_files(client, digest, opened)
    extract(files, directory)
    names = [f.name for f in files]
    if wants_json(args):
        common.say(json.dumps({"digest": digest, "folder": str(directory), "files": names}))
    else:
        common.say(f"opened {digest}")
        common.say(f"saved in {directory}: " + ", ".join(names))
    return 0


# --- acknowledge and reject --------------------------------------------------------------


def _decide(args: argparse.Namespace, action: str, body: dict[str, str]) -> int:
    client = connect(args)
    digest = resolve(client, args.item)
    answer = client.call("POST", f"/api/v1/inbox/{digest}/{action}", body)
    if wants_json(args):
        common.say(json.dumps(answer, indent=2, ensure_ascii=True))
    else:
        receipt = clean(answer.get("receipt_digest") if isinstance(answer, dict) else None, 64)
        common.say(f"{clean(answer.get('status'), 20)} {digest} (receipt {receipt})")
    return 0


def acknowledge_command(args: argparse.Namespace) -> int:
    """Acknowledge an item, with an outcome if given."""
    return _decide(
        args, "acknowledge", {} if args.outcome is None else {"disposition": args.outcome}
    )


def reject_command(args: argparse.Namespace) -> int:
    """Reject an item with a reason."""
    return _decide(args, "reject", {"reason": args.reason})


_ID_HELP: Final = "the item's digest, or its reference as the web pages show it (2719-AFB5)"


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange inbox list|open|acknowledge|reject``."""
    connection = connection_options()
    inbox = sub.add_parser(
        "inbox",
        help="list, open, acknowledge or reject what your organisation received (through the node)",
        description=(
            "Your organisation's inbox on its node, as a member of staff: the node checks your "
            "role and records every action. Your API token is read from $EXCHANGE_TOKEN, "
            "--token-file or --token-stdin, never from the command line."
        ),
    )
    actions = inbox.add_subparsers(dest="inbox_command", metavar="COMMAND", required=True)

    listing = actions.add_parser(
        "list",
        parents=[connection],
        help="what has arrived, newest first",
        description=(
            "One line per item, newest first: its reference, when it was received (Europe/"
            "London), who sent it, its kind, the deadline you owe, and its status. --json "
            "prints the node's answer."
        ),
    )
    listing.add_argument(
        "--limit", type=limit_arg, default=50, metavar="N", help=f"how many (1-{PAGE}, default 50)"
    )
    listing.add_argument(
        "--before", metavar="CURSOR", help="the page after the one that printed it"
    )
    listing.set_defaults(handler=list_command)

    opening = actions.add_parser(
        "open",
        parents=[connection],
        help="open an item and save its record and documents in a folder",
        description=(
            "Open an item (recorded; the sender is told it was opened) and save the record as "
            f"{RECORD_FILE} and each document under its name in DIR: files mode 0600, DIR "
            "created mode 0700 if missing. Nothing is saved unless everything is, and no file "
            "is ever replaced: if a name is taken, it refuses and saves nothing."
        ),
    )
    opening.add_argument("item", type=_item_id, metavar="ID", help=_ID_HELP)
    opening.add_argument("--out", required=True, metavar="DIR", help="the folder to save into")
    opening.set_defaults(handler=open_command)

    ack = actions.add_parser(
        "acknowledge",
        parents=[connection],
        help="acknowledge an item (the sender gets a signed receipt)",
        description="Acknowledge an item, with an outcome; the sender gets a signed receipt.",
    )
    ack.add_argument("item", type=_item_id, metavar="ID", help=_ID_HELP)
    ack.add_argument("--outcome", choices=ACKNOWLEDGEMENT_CODES, help="what happens next")
    ack.set_defaults(handler=acknowledge_command)

    reject = actions.add_parser(
        "reject",
        parents=[connection],
        help="reject an item with a reason (the sender gets a signed receipt)",
        description="Reject an item, saying why; the sender gets a signed receipt.",
    )
    reject.add_argument("item", type=_item_id, metavar="ID", help=_ID_HELP)
    reject.add_argument("--reason", required=True, choices=REJECTION_CODES, help="why")
    reject.set_defaults(handler=reject_command)
