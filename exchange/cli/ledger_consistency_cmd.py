"""``exchange ledger consistency`` and ``exchange ledger check-consistency``.

``consistency`` prints a consistency bundle (docs/ledger.md §6.1) from the node's stored
tree: the signed checkpoint of a stored size (the last by default) and the RFC 9162 proof
that it extends an older size. ``check-consistency`` checks such a bundle offline, given
only the node's ledger verifier key and what the relying party already trusts: an older
checkpoint of the same log, or an older size's root.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

from exchange.cli import common
from exchange.cli.errors import CliError, UsageError, concerning
from exchange.cli.ledger_audit import ledger_signer
from exchange.cli.node_store import node_config, open_store
from exchange.files import read_limited
from exchange.keys.errors import NoteError
from exchange.keys.notes import NoteVerifier, parse_verifier_key
from exchange.ledger.bundle import MAX_BUNDLE_LEN
from exchange.ledger.checkpoint import MAX_CHECKPOINT_NOTE_LEN, open_checkpoint
from exchange.ledger.consistency_bundle import verify_consistency_bundle
from exchange.ledger.errors import LedgerError
from exchange.service.ledger import ConsistencyRequestError, NodeLedger

#: A verifier key file holds one key of under 300 characters.
_MAX_KEY_FILE_LEN = 4096


def ledger_consistency_command(args: argparse.Namespace) -> int:
    """Print the consistency bundle from ``--from`` to the stored checkpoint ``--to``."""
    config = node_config(args.config)
    signer = ledger_signer(config)

    async def prove() -> bytes:
        store = await open_store(config)
        try:
            # Only reads: the bundle is of a checkpoint already signed, so no clock is read.
            ledger = NodeLedger(store, signer, time.time)
            return await ledger.consistency_bundle(args.old, args.new)
        finally:
            await store.close()

    try:
        bundle = asyncio.run(prove())
    except ConsistencyRequestError as exc:
        raise CliError(str(exc)) from None
    except LedgerError as exc:
        raise CliError(f"the ledger does not verify: {exc}") from None
    sys.stdout.buffer.write(bundle)
    return 0


def _verifier_key(value: str) -> NoteVerifier:
    """Return the verifier key ``value`` holds, or the one in the file it names."""
    text = value
    if Path(value).is_file():
        with concerning(f"key file {value}"):
            text = read_limited(value, _MAX_KEY_FILE_LEN, what="the key file").decode("ascii")
    try:
        return parse_verifier_key(text.strip())
    except NoteError as exc:
        raise UsageError(f"--key is not a verifier key, nor a file holding one: {exc}") from None


def check_consistency_command(args: argparse.Namespace) -> int:
    """Check a consistency bundle against the node's key and an older checkpoint or root."""
    key = _verifier_key(args.key)
    old_size = None
    if args.old_root is not None:
        if re.fullmatch(r"[0-9a-fA-F]{64}", args.old_root) is None:
            raise UsageError("--old-root must be 64 hexadecimal characters (a SHA-256 root)")
        old_root = bytes.fromhex(args.old_root)
    else:
        with concerning(f"old checkpoint {args.old_checkpoint}"):
            note = read_limited(args.old_checkpoint, MAX_CHECKPOINT_NOTE_LEN, what="the file")
            old = open_checkpoint(note, [key], key.name)
        old_size, old_root = old.size, old.root
    with concerning(f"bundle {args.bundle}"):
        bundle = read_limited(args.bundle, MAX_BUNDLE_LEN, what="the bundle")
    try:
        size, checkpoint = verify_consistency_bundle(bundle, [key], key.name, old_root, old_size)
    except LedgerError as exc:
        raise CliError(f"the consistency bundle does not verify: {exc}") from None
    common.say(
        f"consistent: the checkpoint of {checkpoint.size} events signed by {key.name} "
        f"extends the tree of {size} events"
    )
    return 0


def add_consistency_commands(ledger_sub: common.Subcommands) -> None:
    """Add ``consistency`` and ``check-consistency`` to the ``exchange ledger`` parser."""
    consistency = ledger_sub.add_parser(
        "consistency",
        help="print a consistency bundle: a signed checkpoint extends an older size",
        description="Print the consistency bundle (docs/ledger.md §6.1) from the tree of "
        "--from events to the checkpoint the node signed at --to events (its last checkpoint "
        "if omitted). --to must be the size of a checkpoint the node stored: the command "
        "signs nothing. --from is from 1 to --to; equal sizes give an empty proof.",
    )
    consistency.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    consistency.add_argument(
        "--from", dest="old", required=True, type=int, metavar="SIZE", help="the older size"
    )
    consistency.add_argument(
        "--to", dest="new", type=int, metavar="SIZE", help="a stored checkpoint's size"
    )
    consistency.set_defaults(handler=ledger_consistency_command)
    check = ledger_sub.add_parser(
        "check-consistency",
        help="check a consistency bundle offline with the node's verifier key",
        description="Check, with no network and no database, that the bundle's checkpoint is "
        "signed by the node's ledger key and extends the older tree you trust: an older "
        "checkpoint of the same log (--old-checkpoint, which must be of the bundle's old "
        "size) or the root of the bundle's old size (--old-root). Prints one line and exits "
        "0 if it does; exits 1 naming what failed if not.",
    )
    check.add_argument("bundle", metavar="BUNDLE", help="the bundle file ('-' for standard input)")
    check.add_argument(
        "--key",
        required=True,
        metavar="VKEY_OR_FILE",
        help="the node's ledger verifier key, or a file holding it",
    )
    old = check.add_mutually_exclusive_group(required=True)
    old.add_argument("--old-root", metavar="HEX", help="the root of the old size, in hex")
    old.add_argument(
        "--old-checkpoint", metavar="FILE", help="an older checkpoint note of the same log"
    )
    check.set_defaults(handler=check_consistency_command)
