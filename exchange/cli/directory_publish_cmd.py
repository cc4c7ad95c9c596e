"""``exchange directory publish`` and ``exchange directory refresh``: a new version travels.

The authority signs a version (``exchange directory sign`` or one of the one-change
commands), then ``publish`` puts it in the folder a static HTTPS server serves, as
``directory.note``: atomically (a node fetching meanwhile gets the old note or the new one,
never half of either), and never replacing a newer version or a different note of the same
version. Nodes fetch it from ``[directory] url`` on their schedule.

``refresh`` is the node operator's "fetch it now": it fetches ``[directory] url`` of a node's
configuration, checks it against the trusted authority key and the node's ``[directory]
file``, and writes the file if the fetched version is newer. It touches only that file,
never the node's database, so it is safe whether the node runs or not: a running node
adopts the changed file at its next round, a stopped node at its start, and either records
the version in its ledger then.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Final

from exchange.cli import common
from exchange.cli.errors import CliError, concerning, describe
from exchange.cli.node_store import node_config
from exchange.config import ConfigError
from exchange.files import read_limited, replace_file
from exchange.keys.directory import Directory, load_directory
from exchange.keys.notes import NoteVerifier
from exchange.keys.succession import Succession, judge_note, note_digest
from exchange.node.trusted_directory import load_directory_note, trusted_verifiers
from exchange.service.directory_updates import DirectoryFetchError
from exchange.workers.directory_fetch import NoteFetcher

#: The name of the published note in the folder the HTTPS server serves.
PUBLISHED_NAME: Final = "directory.note"


def add_publish_commands(actions: common.Subcommands) -> None:
    """Add ``publish`` and ``refresh`` to ``exchange directory``."""
    publish = actions.add_parser(
        "publish",
        help="put a signed directory where the nodes fetch it",
        description=(
            f"Check a signed directory against the authority key (--trust) and write it as "
            f"FOLDER/{PUBLISHED_NAME}, atomically, for a static HTTPS server to serve at the "
            "address the nodes have as [directory] url. Refuses a version lower than the "
            "one already there, or a different note with the same version."
        ),
    )
    publish.add_argument("--in", dest="note", required=True, metavar="FILE", help="the note")
    publish.add_argument("--to", required=True, metavar="FOLDER", help="the served folder")
    publish.add_argument(
        "--trust",
        metavar="VKEY",
        help=f"the authority's verifier key, or a file holding it (default: ${common.ENV_TRUST})",
    )
    publish.set_defaults(handler=publish_command)

    refresh = actions.add_parser(
        "refresh",
        help="fetch a node's directory now and write its directory file",
        description=(
            "Fetch the directory at the node's [directory] url, check it against the "
            "trusted authority key, and write it to [directory] file if it is newer than the "
            "version there. Only that file is written: a running node adopts it at its next "
            "round, a stopped node at its start."
        ),
    )
    refresh.add_argument("--config", required=True, metavar="FILE", help="the node's node.toml")
    refresh.set_defaults(handler=refresh_command)


def _read_note(path: Path | str, trusted: list[NoteVerifier], what: str) -> tuple[Directory, bytes]:
    with concerning(what):
        note = read_limited(path, common.MAX_DIRECTORY_LEN, what="the directory")
        return load_directory(note, trusted), note


def _refuse(succession: Succession, where: str) -> None:
    if succession.refused:
        raise CliError(f"{where}: {succession.reason}")


def publish_command(args: argparse.Namespace) -> int:
    """Write the note to the served folder, refusing a rollback or a fork."""
    trusted = common.trusted_keys(args)
    directory, note = _read_note(args.note, trusted, f"directory {args.note}")
    folder = Path(args.to)
    if not folder.is_dir():
        raise CliError(f"{args.to} is not a folder")
    target = folder / PUBLISHED_NAME
    if target.exists():
        served, served_note = _read_note(target, trusted, f"the published {target}")
        succession = judge_note(
            note, trusted, current_version=served.version, current_digest=note_digest(served_note)
        )
        _refuse(succession, f"directory {args.note}")
        if succession.verdict == "same":
            common.say(f"directory version {directory.version} is already published in {target}")
            return 0
    replace_file(target, note, mode=0o644)
    common.say(f"published directory version {directory.version} as {target}")
    return 0


def refresh_command(args: argparse.Namespace) -> int:
    """Fetch ``[directory] url`` and write ``[directory] file`` if the note is newer."""
    where = f"config {args.config}"
    config = node_config(args.config)
    try:
        trusted = trusted_verifiers(config)
        # A node just made by `exchange init` has no directory yet: the first fetch is it.
        first = not config.directory_file.exists() and not config.directory_file.is_symlink()
        current_version, current_digest = 0, b""
        if not first:
            current, note = load_directory_note(config)
            current_version, current_digest = current.version, note_digest(note)
    except OSError as exc:
        raise CliError(describe(exc, where)[1]) from None
    except ConfigError as exc:
        raise CliError(f"{where}: {exc}") from None
    if config.directory_url is None:
        raise CliError(f"{where}: directory.url is not set: there is nowhere to fetch from")
    try:
        fetched = asyncio.run(NoteFetcher(config.directory_url, ca=config.directory_ca)())
    except DirectoryFetchError as exc:
        raise CliError(str(exc)) from None
    succession = judge_note(
        fetched, trusted, current_version=current_version, current_digest=current_digest
    )
    _refuse(succession, "the fetched directory")
    file = config.directory_file
    if succession.verdict == "same":
        common.say(f"directory version {current_version} in {file} is the newest published")
        return 0
    replace_file(file, fetched, mode=0o644)
    was = "there was none" if first else f"was version {current_version}"
    common.say(
        f"wrote directory version {succession.version} to {file} ({was}); the node adopts "
        "it at its next round, or at its start"
    )
    return 0
