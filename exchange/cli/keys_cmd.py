"""``exchange authority create`` and ``exchange keys create``: making keys.

Both write a passphrase-encrypted key file (mode 0600) that is never allowed to replace an
existing file, plus a public companion: the authority's verifier key (``FILE.vkey``), which
every node is configured to trust, or an organisation's public directory entry
(``FILE.pub.json``), which the authority signs into the directory.
"""

from __future__ import annotations

import argparse
from typing import Final, cast

from exchange.cli import common
from exchange.files import write_new_file
from exchange.keys.directory import ORG_KINDS, OrgKind, format_time
from exchange.keys.ids import OrgId, key_id_text, parse_org_id
from exchange.keys.keyfile import encode_key_file
from exchange.keys.keypairs import OrgKeyPair
from exchange.keys.new_keys import DEFAULT_VALID_DAYS, new_org_keys
from exchange.keys.notes import NoteSigner

#: Longest validity accepted: ten years. Keys should rotate far sooner; this only stops typos.
MAX_VALID_DAYS: Final = 3_650

VKEY_SUFFIX: Final = ".vkey"
PUBLIC_SUFFIX: Final = ".pub.json"


def _valid_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_VALID_DAYS:
        raise argparse.ArgumentTypeError(f"the validity must be 1 to {MAX_VALID_DAYS} days")
    return days


def add_authority_commands(sub: common.Subcommands) -> None:
    """Add ``exchange authority create``."""
    authority = sub.add_parser(
        "authority",
        help="manage the directory authority's signing key",
        description="Manage the key that signs the directory of organisations.",
    )
    actions = authority.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        parents=[common.kdf_options()],
        help="create a directory authority signing key",
        description=(
            "Create a directory authority's signing key, encrypted with the passphrase in "
            f"${common.ENV_AUTHORITY_PASSPHRASE} (or asked for on a terminal). Writes FILE "
            "(mode 0600) and FILE.vkey, the verifier key every node must trust, and prints "
            "the verifier key. Never overwrites a file."
        ),
    )
    create.add_argument(
        "--name",
        required=True,
        type=common.authority_name_arg,
        help="the authority's name, e.g. directory.example-la.gov.uk (letters, digits, . _ -)",
    )
    create.add_argument("--out", required=True, metavar="FILE", help="the key file to create")
    create.set_defaults(handler=create_authority)


def create_authority(args: argparse.Namespace) -> int:
    """Create the authority key file and its verifier key file."""
    out = str(args.out)
    vkey_path = out + VKEY_SUFFIX
    common.refuse_existing(out, vkey_path)
    org_id = parse_org_id(common.AUTHORITY_NAMESPACE + args.name)
    secret = common.passphrase(
        common.ENV_AUTHORITY_PASSPHRASE,
        f"New passphrase for the authority key {out}: ",
        confirm=True,
    )
    pair = OrgKeyPair.generate(org_id)
    data = encode_key_file(pair, secret, params=common.kdf_params(args))
    vkey = NoteSigner(args.name, pair.signing).verifier.vkey()
    write_new_file(out, data)
    write_new_file(vkey_path, (vkey + "\n").encode("ascii"), mode=0o644)
    common.say(vkey)
    common.note(f"wrote the authority key {out} and its verifier key {vkey_path}")
    return 0


def add_keys_commands(sub: common.Subcommands) -> None:
    """Add ``exchange keys create``."""
    keys = sub.add_parser(
        "keys",
        help="manage an organisation's keys",
        description="Manage an organisation's signing and encryption keys.",
    )
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        parents=[common.clock_options(), common.kdf_options()],
        help="create a new generation of an organisation's keys",
        description=(
            "Create a new generation of an organisation's keys (an Ed25519 signing key and "
            "an X25519 encryption key), encrypted with the passphrase in "
            f"${common.ENV_PASSPHRASE} (or asked for on a terminal). Writes FILE (mode 0600) "
            "and FILE.pub.json, the public directory entry to give to the directory "
            "authority. To rotate, create another key for the same organisation and have the "
            "authority sign the new entry into the directory; keep the old key file to open "
            "envelopes sealed to it. Never overwrites a file."
        ),
    )
    create.add_argument(
        "--org",
        required=True,
        type=common.org_id_arg,
        help="the organisation id, e.g. urn:106123 (school), la:356 (LA), ods:X26ABC (NHS)",
    )
    create.add_argument(
        "--name", required=True, type=common.display_name_arg, help="the organisation's name"
    )
    create.add_argument(
        "--kind", required=True, choices=sorted(ORG_KINDS), help="the kind of organisation"
    )
    create.add_argument("--out", required=True, metavar="FILE", help="the key file to create")
    create.add_argument(
        "--valid-from",
        type=common.iso_time_arg,
        metavar="ISO",
        help="when the keys become valid, e.g. 2025-09-01 or 2025-09-01T08:00:00Z (UTC "
        "unless given); default: now",
    )
    create.add_argument(
        "--valid-days",
        type=_valid_days,
        default=DEFAULT_VALID_DAYS,
        metavar="N",
        help=f"how many days the keys stay valid (default {DEFAULT_VALID_DAYS})",
    )
    create.set_defaults(handler=create_keys)


def create_keys(args: argparse.Namespace) -> int:
    """Create an organisation's key file and its public directory entry."""
    out = str(args.out)
    public_path = out + PUBLIC_SUFFIX
    common.refuse_existing(out, public_path)
    not_before = args.valid_from if args.valid_from is not None else common.now(args)
    org_id: OrgId = args.org
    keys = new_org_keys(
        org_id, args.name, cast("OrgKind", args.kind), not_before=not_before,
        valid_days=args.valid_days,
    )  # fmt: skip
    secret = common.passphrase(
        common.ENV_PASSPHRASE, f"New passphrase for the key file {out} ({org_id}): ", confirm=True
    )
    data = keys.key_file(secret, common.kdf_params(args))
    write_new_file(out, data)
    write_new_file(public_path, keys.public_entry(), mode=0o644)
    generation, pair = keys.generation, keys.pair
    common.say(
        f"created keys for {org_id}, valid {format_time(generation.not_before)} to "
        f"{format_time(generation.not_after)}\n"
        f"  signing key    {key_id_text(pair.signing.public.key_id)}\n"
        f"  encryption key {key_id_text(pair.encryption.public.key_id)}\n"
        f"  key file       {out}\n"
        f"  public entry   {public_path} (give this to the directory authority)"
    )
    return 0
