"""``exchange directory sign`` and ``exchange directory show``, and the commands beside them.

The authority builds each version of the directory from the previous one plus the public
entries organisations sent it (new organisations, new key generations) and any revocations,
and signs it as a signed note. Anyone holding the authority's verifier key can check and
read it; ``show`` prints what it says, after checking it like every other command does.
The one-change commands (``add-org``, ``set-routes``, ``add-key``, ``revoke-key``) are in
:mod:`exchange.cli.directory_edit_cmd`; ``publish`` and ``refresh`` in
:mod:`exchange.cli.directory_publish_cmd`.
"""

from __future__ import annotations

import argparse
from typing import Final

from exchange.cli import common
from exchange.cli.directory_edit_cmd import (
    add_edit_commands,
    authority_signer,
    key_id_arg,
    read_entry,
    read_signed_directory,
)
from exchange.cli.directory_publish_cmd import add_publish_commands
from exchange.cli.errors import UsageError
from exchange.files import write_new_file
from exchange.keys.directory import (
    MAX_VERSION,
    Directory,
    KeyGeneration,
    format_time,
    merge_directory,
    sign_directory,
)
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import key_id_text

_SHORT: Final = 16


def _version(value: str) -> int:
    try:
        version = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= version <= MAX_VERSION:
        raise argparse.ArgumentTypeError(f"the version must be from 1 to {MAX_VERSION}")
    return version


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange directory sign`` and ``exchange directory show``."""
    directory = sub.add_parser(
        "directory",
        help="build, sign and show the directory of organisations",
        description="Build, sign and show the signed directory of organisations and keys.",
    )
    actions = directory.add_subparsers(dest="action", metavar="ACTION", required=True)
    sign = actions.add_parser(
        "sign",
        parents=[common.clock_options()],
        help="build and sign a new version of the directory",
        description=(
            "Build the next version of the directory from the previous version (if any), "
            "the public entry files given (new organisations, or new key generations of "
            "known ones), and revocations, then sign it with the authority key (passphrase "
            f"in ${common.ENV_AUTHORITY_PASSPHRASE}). Never overwrites a file."
        ),
    )
    sign.add_argument(
        "--authority", required=True, metavar="AUTH_KEY", help="the authority key file"
    )
    sign.add_argument(
        "--version",
        required=True,
        type=_version,
        metavar="N",
        help="the version number; must be greater than the previous version's",
    )
    sign.add_argument("--out", required=True, metavar="FILE", help="the directory file to write")
    sign.add_argument(
        "--previous",
        metavar="DIRECTORY_FILE",
        help="the current directory, signed by the same authority, to build on",
    )
    sign.add_argument(
        "--revoke",
        action="append",
        type=key_id_arg,
        default=[],
        metavar="KEY_ID",
        help="revoke the key generation holding this signing or encryption key id (64 hex "
        "digits, as `exchange directory show` prints them); repeat for several keys. "
        "Revoked keys are refused at every time",
    )
    sign.add_argument(
        "entries",
        nargs="*",
        metavar="PUBLIC_ENTRY.json",
        help="public entry files written by `exchange keys create`",
    )
    sign.set_defaults(handler=sign_command)

    show = actions.add_parser(
        "show",
        parents=[common.clock_options(), common.directory_options()],
        help="check the directory's signature and print a summary",
        description=(
            "Check the directory's signature against the trusted authority key and print "
            "its organisations, their kinds, key ids, validity and revocations."
        ),
    )
    show.set_defaults(handler=show_command)
    add_edit_commands(actions)
    add_publish_commands(actions)


def sign_command(args: argparse.Namespace) -> int:
    """Build and sign the next directory version."""
    if not args.entries and not args.previous:
        raise UsageError("nothing to sign: give public entry files, --previous, or both")
    out = str(args.out)
    common.refuse_existing(out)
    moment = common.now(args)
    entries = [read_entry(path) for path in args.entries]
    signer = authority_signer(args.authority)
    previous: Directory | None = None
    if args.previous:
        previous = read_signed_directory(args.previous, signer)
    directory = merge_directory(
        previous,
        entries,
        version=args.version,
        issued=moment,
        authority=signer.verifier.name,
        revoke=dict.fromkeys(args.revoke, moment),
    )
    write_new_file(out, sign_directory(directory, signer), mode=0o644)
    count = len(directory.organisations)
    common.say(
        f"signed directory version {directory.version} of {signer.verifier.name} "
        f"({count} organisation{'s' if count != 1 else ''}) to {out}"
    )
    return 0


def _status(gen: KeyGeneration, current: KeyGeneration | None, at: int) -> str:
    if gen.revoked_at is not None:
        return f"REVOKED at {format_time(gen.revoked_at)}"
    if at < gen.not_before:
        return "not yet valid"
    if at >= gen.not_after:
        return "expired"
    return "valid, current" if gen is current else "valid"


def summary(directory: Directory, at: int) -> str:
    """Return a readable summary of a verified directory at time ``at``."""
    count = len(directory.organisations)
    lines = [
        (
            f"directory version {directory.version}, issued {format_time(directory.issued)} "
            f"by {directory.authority} (signature verified), {count} organisation"
            f"{'s' if count != 1 else ''}"
        ),
    ]
    for org in directory.organisations.values():
        try:
            current: KeyGeneration | None = directory.current_keys(org.id, at)
        except KeyLookupError:
            current = None
        lines.append("")
        lines.append(f"{org.id}  {org.name}  ({org.kind})")
        for gen in org.keys:
            lines.append(
                f"  keys valid {format_time(gen.not_before)} to {format_time(gen.not_after)}: "
                f"{_status(gen, current, at)}"
            )
            lines.append(f"    signing    {key_id_text(gen.signing.key_id)}")
            lines.append(f"    encryption {key_id_text(gen.encryption.key_id)}")
        lines.extend(f"  route {route.kind} {route.address}" for route in org.routes)
        if current is None:
            lines.append("  no key is valid now: nothing can be sealed to it")
    return "\n".join(lines)


def show_command(args: argparse.Namespace) -> int:
    """Verify the directory and print its summary."""
    directory = common.load_trusted_directory(args)
    common.say(summary(directory, common.now(args)))
    return 0
