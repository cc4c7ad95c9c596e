"""``exchange seal``, ``exchange open`` and ``exchange inspect``: envelopes on the command line.

``seal`` signs and encrypts a record to the current keys of each recipient in the directory;
``open`` checks and decrypts an envelope and releases its content only when every check
passed; ``inspect`` checks an envelope without any private key and prints its public facts
(never content). All three stream, so envelopes of any size use constant memory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from exchange.cli import common
from exchange.cli.errors import UsageError, concerning
from exchange.envelope import MAX_RECIPIENTS, Recipient, VerifiedEnvelope
from exchange.files import STDIO, open_to_file, seal_file, sweep_partial_outputs, verify_file
from exchange.keys.directory import format_time
from exchange.keys.ids import key_id_text


def add_commands(sub: common.Subcommands) -> None:
    """Add ``seal``, ``open`` and ``inspect``."""
    parents = [common.clock_options(), common.directory_options()]
    seal = sub.add_parser(
        "seal",
        parents=parents,
        help="sign and encrypt a record for one or more organisations",
        description=(
            "Seal a record: sign it with the sender's key and encrypt it to the current keys "
            "of each recipient, as listed in the directory. The sender's key must be in the "
            f"directory and valid now. The passphrase comes from ${common.ENV_PASSPHRASE} "
            "(or is asked for on a terminal). Prints the envelope id and digest on standard "
            "error; keep the digest: receipts name the envelope by it."
        ),
    )
    seal.add_argument("--key", required=True, metavar="SENDER_KEY", help="the sender's key file")
    seal.add_argument(
        "--to",
        required=True,
        action="append",
        type=common.org_id_arg,
        metavar="ORG",
        help=f"a recipient organisation id; repeat for up to {MAX_RECIPIENTS} recipients",
    )
    seal.add_argument(
        "--kind",
        required=True,
        metavar="KIND",
        help="the record kind, e.g. referral or cp-file-transfer (lower-case letters, digits, -)",
    )
    seal.add_argument(
        "--in", dest="input", default=STDIO, metavar="FILE", help="the record (default: - stdin)"
    )
    seal.add_argument(
        "--out",
        dest="output",
        default=STDIO,
        metavar="FILE",
        help="the envelope to write; never overwritten (default: - stdout)",
    )
    seal.set_defaults(handler=seal_command)

    opener = sub.add_parser(
        "open",
        parents=parents,
        help="check and decrypt an envelope addressed to you",
        description=(
            "Open an envelope: check the sender in the directory, both signatures and every "
            "byte, and decrypt it with your key. Give every key generation that might be "
            "addressed (old keys open envelopes sealed before a rotation). Nothing is written "
            "unless every check passes: a failed open leaves no file and writes nothing to "
            "standard output, and the record has no name on disk until it is complete, so an "
            "open killed part-way leaves nothing either. The passphrase comes from "
            f"${common.ENV_PASSPHRASE} (or is asked for on a terminal)."
        ),
    )
    opener.add_argument(
        "--key",
        required=True,
        action="append",
        metavar="KEY",
        help="your key file; repeat to give several key generations",
    )
    opener.add_argument(
        "--in", dest="input", default=STDIO, metavar="FILE", help="the envelope (default: - stdin)"
    )
    opener.add_argument(
        "--out",
        dest="output",
        default=STDIO,
        metavar="FILE",
        help="where to write the record; never overwritten (default: - stdout)",
    )
    opener.set_defaults(handler=open_command)

    inspect = sub.add_parser(
        "inspect",
        parents=parents,
        help="check an envelope without a key and print its public facts as JSON",
        description=(
            "Check an envelope's sender, signatures and integrity without any private key, "
            "and print as JSON what anyone can see: its id, sender, recipients, record kind, "
            "times, sizes and digest. Never the content."
        ),
    )
    inspect.add_argument(
        "--in", dest="input", default=STDIO, metavar="FILE", help="the envelope (default: - stdin)"
    )
    inspect.set_defaults(handler=inspect_command)


def seal_command(args: argparse.Namespace) -> int:
    """Seal a record to the current keys of each recipient."""
    if len(args.to) > MAX_RECIPIENTS:
        raise UsageError(f"an envelope has at most {MAX_RECIPIENTS} recipients, not {len(args.to)}")
    if args.output == STDIO and sys.stdout.isatty():
        raise UsageError("refusing to write an envelope to a terminal: give --out FILE")
    if args.output != STDIO:
        common.refuse_existing(args.output)
    directory = common.load_trusted_directory(args)
    moment = common.now(args)
    sender = common.read_key(args.key, common.ENV_PASSPHRASE)
    with concerning(f"sender key {args.key}"):
        directory.signing_key_for(sender.org_id, sender.signing.public.key_id, moment)
    recipients = [
        Recipient(org_id, directory.current_keys(org_id, moment).encryption) for org_id in args.to
    ]
    with common.input_stream(args.input) as stream:
        sealed = seal_file(
            stream, args.output, sender, recipients, record_kind=args.kind, created=moment
        )
    common.note(
        f"sealed envelope {sealed.envelope_id.hex()} digest {sealed.digest.hex()} for "
        f"{common.join_ids(sealed.recipients)}"
    )
    return 0


def open_command(args: argparse.Namespace) -> int:
    """Open an envelope with the reader's keys."""
    if args.output != STDIO:
        # Plaintext a killed open left in the fallback's temporary goes first, whatever
        # happens next (exchange.files.private_output).
        output = Path(args.output)
        sweep_partial_outputs(output.parent, output.name)
        common.refuse_existing(args.output)
    directory = common.load_trusted_directory(args)
    moment = common.now(args)
    keys = [common.read_key(path, common.ENV_PASSPHRASE) for path in args.key]
    with common.input_stream(args.input) as stream:
        opened = open_to_file(stream, args.output, directory, keys, moment)
    header = opened.verified.header
    common.note(
        f"opened envelope {header.envelope_id.hex()} from {header.sender}, kind "
        f"{header.record_kind}, digest {opened.verified.digest.hex()} "
        f"({opened.content_length} bytes)"
    )
    return 0


def facts(verified: VerifiedEnvelope) -> dict[str, Any]:
    """Return the public facts of a verified envelope as a JSON-ready dict."""
    header = verified.header
    return {
        "envelope_id": header.envelope_id.hex(),
        "sender": header.sender,
        "sender_key_id": key_id_text(header.sender_key),
        "recipients": [
            {"id": slot.recipient, "key_id": key_id_text(slot.recipient_key)}
            for slot in header.slots
        ],
        "record_kind": header.record_kind,
        "created": format_time(header.created),
        "chunk_size": header.chunk_size,
        "chunk_count": verified.chunk_count,
        "envelope_length": verified.envelope_length,
        "digest": verified.digest.hex(),
        "verified": True,
    }


def inspect_command(args: argparse.Namespace) -> int:
    """Verify an envelope without keys and print its public facts."""
    directory = common.load_trusted_directory(args)
    moment = common.now(args)
    with common.input_stream(args.input) as stream:
        verified = verify_file(stream, directory, moment)
    common.say(json.dumps(facts(verified), indent=2))
    return 0
