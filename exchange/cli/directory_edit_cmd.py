"""The authority's changes to the directory, each making the next signed version.

``exchange directory add-org``, ``set-routes``, ``add-key`` and ``revoke-key`` read the
current signed directory (``--from``, checked against the authority's own key), make one
change, and sign the result as the next version (version + 1, issued now) to a new file
(``--out``, never overwritten). Nobody edits a ``.pub.json`` or a directory by hand:

- ``add-org``: a new organisation, from the public entry its ``exchange keys create`` wrote;
- ``set-routes``: an organisation's routes, in order of preference, replacing the old ones;
- ``add-key``: a new key generation of a known organisation (a key rotation: the old
  generation stays until it expires, so what was sealed to it still opens);
- ``revoke-key``: a key generation refused from now on (a lost or stolen key).

A refused change writes nothing and says why in one line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace

from exchange.cli import common
from exchange.cli.errors import CliError, UsageError, concerning
from exchange.files import read_limited, write_new_file
from exchange.keys.directory import (
    MAX_ROUTES,
    ROUTE_KINDS,
    Directory,
    Organisation,
    Route,
    format_time,
    load_directory,
    merge_directory,
    org_entry_from_json,
    sign_directory,
)
from exchange.keys.ids import KeyId, key_id_text, parse_key_id_text
from exchange.keys.notes import NoteSigner

#: What a change does to the previous directory: the entries to merge and the revocations.
Change = tuple[list[Organisation], dict[bytes, int]]
Parser = argparse.ArgumentParser


def key_id_arg(value: str) -> KeyId:
    """Parse a key id given on the command line (64 hex digits)."""
    try:
        return parse_key_id_text(value.lower(), field="the key id")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def route_arg(value: str) -> Route:
    """Parse ``KIND=ADDRESS`` (``https=https://school.example``) as a route."""
    kind, sep, address = value.partition("=")
    if not sep or kind not in ROUTE_KINDS:
        raise argparse.ArgumentTypeError(
            f"a route is KIND=ADDRESS with KIND one of {', '.join(sorted(ROUTE_KINDS))}"
        )
    try:
        return Route(kind, address)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"the route's {exc}") from None


def authority_signer(path: str) -> NoteSigner:
    """Return the note signer of the authority key file ``path`` (its passphrase asked)."""
    pair = common.read_key(path, common.ENV_AUTHORITY_PASSPHRASE, authority=True)
    return NoteSigner(pair.org_id.removeprefix(common.AUTHORITY_NAMESPACE), pair.signing)


def read_signed_directory(path: str, signer: NoteSigner) -> Directory:
    """Read the directory at ``path``, which must verify against ``signer``'s own key."""
    with concerning(f"directory {path}"):
        note = read_limited(path, common.MAX_DIRECTORY_LEN, what="the directory")
        return load_directory(note, [signer.verifier])


def read_entry(path: str) -> Organisation:
    """Read an organisation's public entry file (``.pub.json``)."""
    with concerning(f"public entry {path}"):
        data = read_limited(path, common.MAX_ENTRY_FILE_LEN, what="the public entry")
        return org_entry_from_json(json.loads(data.decode("utf-8")))


def _edit_parser(actions: common.Subcommands, name: str, summary: str, detail: str) -> Parser:
    parser = actions.add_parser(
        name,
        parents=[common.clock_options()],
        help=summary,
        description=(
            f"{detail} Reads the current directory (--from), signs the next version (its "
            "version plus one, issued now) with the authority key (passphrase in "
            f"${common.ENV_AUTHORITY_PASSPHRASE}) and writes it to --out, never overwriting "
            "a file."
        ),
    )
    parser.add_argument(
        "--authority", required=True, metavar="AUTH_KEY", help="the authority key file"
    )
    parser.add_argument(
        "--from",
        dest="previous",
        required=True,
        metavar="DIRECTORY_FILE",
        help="the current signed directory, signed by this authority",
    )
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="the next directory version to write"
    )
    return parser


def add_edit_commands(actions: common.Subcommands) -> None:
    """Add ``add-org``, ``set-routes``, ``add-key`` and ``revoke-key`` to ``exchange directory``."""
    add_org = _edit_parser(
        actions, "add-org", "add an organisation to the directory",
        "Add a new organisation, from the public entry file its `exchange keys create` wrote.",
    )  # fmt: skip
    add_org.add_argument(
        "--entry", required=True, metavar="PUBLIC_ENTRY.json", help="the organisation's entry"
    )
    add_org.set_defaults(handler=add_org_command)

    routes = _edit_parser(
        actions, "set-routes", "set an organisation's routes",
        "Replace an organisation's routes with the --route options given, in that order of "
        "preference.",
    )  # fmt: skip
    routes.add_argument("--org", required=True, type=common.org_id_arg, help="the organisation")
    routes.add_argument(
        "--route",
        dest="routes",
        action="append",
        required=True,
        type=route_arg,
        metavar="KIND=ADDRESS",
        help="a route, e.g. https=https://exchange.hillside.example or "
        "mailbox=https://relay.example; repeat in order of preference",
    )
    routes.set_defaults(handler=set_routes_command)

    add_key = _edit_parser(
        actions, "add-key", "add a new key generation of an organisation (a rotation)",
        "Add the new key generation in a public entry file of an organisation already in the "
        "directory (made by `exchange keys create` for the same organisation). Its older "
        "generations stay until they expire, so what was sealed to them still opens.",
    )  # fmt: skip
    add_key.add_argument(
        "--entry", required=True, metavar="PUBLIC_ENTRY.json", help="the entry with the new key"
    )
    add_key.set_defaults(handler=add_key_command)

    revoke = _edit_parser(
        actions, "revoke-key", "revoke a key generation of an organisation",
        "Revoke the key generation holding a signing or encryption key id (as `exchange "
        "directory show` prints it): it is refused at every time from this version on.",
    )  # fmt: skip
    revoke.add_argument(
        "--key-id", required=True, type=key_id_arg, metavar="KEY_ID", help="64 hex digits"
    )
    revoke.set_defaults(handler=revoke_key_command)


def _next_version(args: argparse.Namespace, change: Callable[[Directory], Change]) -> int:
    """Sign ``change`` applied to ``--from`` as the next version in ``--out``."""
    out = str(args.out)
    common.refuse_existing(out)
    moment = common.now(args)
    signer = authority_signer(args.authority)
    previous = read_signed_directory(args.previous, signer)
    entries, revoke = change(previous)
    directory = merge_directory(
        previous,
        entries,
        version=previous.version + 1,
        issued=max(moment, previous.issued),
        authority=signer.verifier.name,
        revoke=revoke,
    )
    write_new_file(out, sign_directory(directory, signer), mode=0o644)
    count = len(directory.organisations)
    common.say(
        f"signed directory version {directory.version} of {signer.verifier.name} "
        f"({count} organisation{'s' if count != 1 else ''}) to {out}"
    )
    return 0


def add_org_command(args: argparse.Namespace) -> int:
    """Sign the next version with a new organisation."""
    entry = read_entry(args.entry)

    def change(previous: Directory) -> Change:
        if entry.id in previous.organisations:
            raise CliError(
                f"{entry.id} is already in the directory: use `exchange directory add-key` for "
                "a new key generation, or `set-routes` for its routes"
            )
        return [entry], {}

    return _next_version(args, change)


def set_routes_command(args: argparse.Namespace) -> int:
    """Sign the next version with an organisation's new routes."""
    routes: list[Route] = args.routes
    if len(routes) > MAX_ROUTES:
        raise UsageError(f"--route: an organisation has at most {MAX_ROUTES} routes")

    def change(previous: Directory) -> Change:
        org = previous.organisation(args.org)
        return [replace(org, routes=tuple(routes))], {}

    return _next_version(args, change)


def add_key_command(args: argparse.Namespace) -> int:
    """Sign the next version with a new key generation of a known organisation."""
    entry = read_entry(args.entry)

    def change(previous: Directory) -> Change:
        if entry.id not in previous.organisations:
            raise CliError(
                f"{entry.id} is not in the directory: use `exchange directory add-org` first"
            )
        known = {gen.signing.key_id for gen in previous.organisations[entry.id].keys}
        if all(gen.signing.key_id in known for gen in entry.keys):
            raise CliError(
                f"the entry {args.entry} has no key generation that is not already in the directory"
            )
        # Only the keys: the name, kind and routes the directory holds stay as they are.
        current = previous.organisations[entry.id]
        return [replace(current, keys=entry.keys, routes=current.routes)], {}

    return _next_version(args, change)


def revoke_key_command(args: argparse.Namespace) -> int:
    """Sign the next version with a key generation revoked from now on."""
    wanted: bytes = args.key_id
    moment = common.now(args)

    def change(previous: Directory) -> Change:
        for org in previous.organisations.values():
            for gen in org.keys:
                if wanted not in (gen.signing.key_id, gen.encryption.key_id):
                    continue
                if gen.revoked_at is not None:
                    raise CliError(
                        f"the key {key_id_text(wanted)} of {org.id} was already revoked at "
                        f"{format_time(gen.revoked_at)}"
                    )
                return [], {wanted: moment}
        raise CliError(f"no organisation in the directory has the key {key_id_text(wanted)}")

    return _next_version(args, change)
