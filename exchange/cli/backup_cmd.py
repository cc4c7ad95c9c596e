"""``exchange backup create|verify|restore``: backups of a node's data, made while it runs.

The work is done by :mod:`exchange.store.backup`; this module reads the configuration,
chooses the backup's folder, and prints. A backup never holds the key files, their
passphrases, the configuration or ``register.key``: those are kept apart (docs/node.md §8),
and a restore takes ``register.key`` back with ``--register-key``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from exchange.cli import common
from exchange.cli.errors import EXIT_REFUSED, CliError
from exchange.cli.node_cmd import _config
from exchange.config import NodeConfig
from exchange.files import read_limited
from exchange.policy import LONDON
from exchange.service.register_reports import KEY_FILE, KEY_LEN
from exchange.store.backup import (
    create_backup,
    restore_backup,
    utc_stamp,
    verify_backup,
)


def _target(out: Path, node: str, now: float) -> Path:
    """Return the backup's folder: ``out`` if new, else a new, dated folder inside it."""
    if out.is_dir():
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", node).strip(".-") or "node"
        return out / f"exchange-backup-{safe}-{utc_stamp(now)}"
    return out


def _when(manifest: dict[str, Any]) -> str:
    made = datetime.fromisoformat(manifest["created"]).astimezone(LONDON)
    return made.strftime("%-d %B %Y at %H:%M:%S %Z")


def _summary(manifest: dict[str, Any]) -> str:
    counts = manifest["counts"]
    text = (
        f"{counts.get('envelopes', 0)} envelopes ({counts.get('sent', 0)} sent, "
        f"{counts.get('inbox', 0)} received), {counts.get('bodies', 0)} bodies, "
        f"{counts.get('ledger_events', 0)} ledger events"
    )
    if manifest["relay"]:
        text += f", {counts.get('relay_items_waiting', 0)} relay items waiting"
    return f"{text}; schema version {manifest['schema_version']}; made {_when(manifest)}"


def _sqlite_node(args: argparse.Namespace) -> NodeConfig:
    """Return the configuration of a node whose store is SQLite; refuse a PostgreSQL one."""
    config = _config(args)
    if config.database.postgresql:
        raise CliError(
            "this node keeps its store in PostgreSQL ([database] url): back it up with "
            "pg_dump or PostgreSQL's point-in-time recovery (docs/scaling.md, 'Backups')"
        )
    return config


def create_command(args: argparse.Namespace) -> int:
    """Copy the node's store, consistently, while the node may be running."""
    config = _sqlite_node(args)
    now = time.time()
    target = _target(Path(args.out), config.name, now)
    result = create_backup(config.data_dir, target, node=config.name, now=now)
    for rel, what in result.damaged.items():
        common.note(f"exchange: warning: {rel} is {what}; the backup records it as damaged")
    common.note(f"backup of {config.name} written: {_summary(result.manifest)}")
    common.say(str(target))
    return 0


def _verified(backup: str) -> bool:
    """Check a backup, printing each problem on its own line; return whether it is sound."""
    problems = verify_backup(Path(backup))
    sys.stdout.flush()
    for problem in problems:
        sys.stderr.write(f"exchange: {backup}: {problem}\n")
    return not problems


def verify_command(args: argparse.Namespace) -> int:
    """Check a backup; print each problem on its own line."""
    if not _verified(args.backup):
        return EXIT_REFUSED
    common.note(f"backup verified: {args.backup}")
    return 0


def _register_key(path: str | None) -> dict[str, bytes]:
    if path is None:
        return {}
    secret = read_limited(path, KEY_LEN + 1, what=f"the register key {path}")
    if len(secret) != KEY_LEN:
        raise CliError(f"the register key {path} must hold exactly {KEY_LEN} bytes")
    return {KEY_FILE: secret}


def restore_command(args: argparse.Namespace) -> int:
    """Restore a verified backup into the node's empty (or new) data folder."""
    config = _sqlite_node(args)
    extra = _register_key(args.register_key)
    problems = verify_backup(Path(args.backup))
    if problems:
        # One line: the first problem; `exchange backup verify` lists them all.
        more = (
            f" (and {len(problems) - 1} more: see exchange backup verify {args.backup})"
            if len(problems) > 1
            else ""
        )
        raise CliError(
            f"the backup {args.backup} does not verify, so nothing was restored: "
            f"{problems[0]}{more}"
        )
    manifest = restore_backup(Path(args.backup), config.data_dir, extra=extra)
    common.note(f"restored into {config.data_dir}: {_summary(manifest)}")
    if not extra:
        common.note(
            f"exchange: warning: {config.data_dir} has no {KEY_FILE}: copy it in from where the "
            "keys are kept (mode 0600) before the node starts, or subject access will not find "
            "what was registered before"
        )
    common.note(
        f"next: exchange ledger verify --config {args.config}, then start the node "
        "(docs/node.md, 'Restoring from a backup')"
    )
    return 0


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange backup`` to the parser."""
    backup = sub.add_parser(
        "backup",
        help="back up a node's data while it runs, check a backup, restore one",
        description="Back up a node's store (its database and envelope bodies, and the relay "
        "mailboxes if it keeps any) while it runs; check a backup; restore one into an empty "
        "data folder. Keys, their passphrases, the configuration and register.key are never "
        "in a backup: keep them apart (docs/node.md §8).",
    )
    commands = backup.add_subparsers(dest="backup_command", metavar="COMMAND", required=True)
    create = commands.add_parser(
        "create",
        help="make a consistent copy of the node's data, while it runs",
        description="Copy the node's database (one consistent snapshot, taken while the node "
        "runs) and every envelope body it needs, with a manifest of SHA-256 hashes. The copy "
        "is written beside its place under a hidden name and appears only when complete. "
        "Prints the backup's folder.",
    )
    create.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    create.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="a new folder to make the backup in, or an existing folder to make a new, dated "
        "backup folder inside",
    )
    create.set_defaults(handler=create_command)
    verify = commands.add_parser(
        "verify",
        help="check a backup: hashes, the database, every body",
        description="Check the manifest, every file's SHA-256, the database (quick_check, "
        "counts, schema version) and that every body it needs is present and is the envelope "
        "its name says. Prints one line per problem and exits 1 if there is any.",
    )
    verify.add_argument("backup", metavar="BACKUP", help="the backup's folder")
    verify.set_defaults(handler=verify_command)
    restore = commands.add_parser(
        "restore",
        help="restore a backup into the node's empty or new data folder",
        description="Verify the backup, then copy it into the configured data folder, which "
        "must be empty or not exist (nothing is changed otherwise). Then run 'exchange "
        "ledger verify' and start the node.",
    )
    restore.add_argument("backup", metavar="BACKUP", help="the backup's folder")
    restore.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    restore.add_argument(
        "--register-key",
        metavar="FILE",
        help=f"the node's {KEY_FILE}, from where the keys are kept, to put in the data folder",
    )
    restore.set_defaults(handler=restore_command)
