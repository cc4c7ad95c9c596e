"""``exchange subject-access`` (the report) and ``exchange subject-access export`` (the copies).

Both read the node's store directly (the data folder of ``--config``), so the DPO or an
operator runs them on the node's machine whether or not the node is running. The child's
identifiers never come from the command line's values: on a terminal they are asked for
(UPN, then NHS number; either may be left empty); otherwise standard input holds a JSON
object with ``upn``, ``nhs_number`` or both, as the staff API takes them. For the report,
``--upn -`` and ``--nhs-number -`` still read one identifier per line from standard input.
Identifiers are checked (check characters included), hashed with the node's
``register.key`` and never printed.

The export also opens the records, so it needs the organisation's keys (their passphrase
from the environment variable the configuration names). It writes into ``--out`` (created
mode 0700 if absent): ``index.html``, ``report.json``, each record as a readable page and its
documents, every file mode 0600 and never over an existing one (nothing is written if any
would be). Each copy is an ``accessed`` event in the node's ledger, naming the account given
by ``--user`` (the organisation's DPO account; needed only when it has several).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from exchange.cli import common
from exchange.cli.errors import CliError, UsageError, concerning
from exchange.cli.register_cmd import _config, _emit, _now, _org, _with_store
from exchange.config import ConfigError, NodeConfig
from exchange.files import write_new_file
from exchange.keys.ids import OrgId
from exchange.model import User
from exchange.node.trusted_directory import load_trusted_directory
from exchange.records import InvalidIdentifierError, validate_nhs_number, validate_upn
from exchange.service.context import ServiceContext
from exchange.service.errors import ServiceError
from exchange.service.register_reports import RegisterKey, RegisterKeyError
from exchange.service.subject_access import Identifier, SubjectAccess, subject_access_report
from exchange.service.tenants import load_tenants
from exchange.shipped import load_records_setup
from exchange.store.opening import NodeStore
from exchange.web.dpo.copies import export_files

#: Longest identifier line, and longest JSON object, read from standard input.
_MAX_IDENTIFIER_LINE: Final = 64
_MAX_IDENTIFIERS_JSON: Final = 4096
#: The fields of the JSON object and the prompts, with the option that names each.
_FIELDS: Final = (("upn", "UPN", "--upn"), ("nhs_number", "NHS number", "--nhs-number"))


def _validated(field: str, value: object, where: str) -> Identifier:
    if not isinstance(value, str):
        raise UsageError(f"{where} must be a string")
    try:
        if field == "upn":
            return "upn", validate_upn(value, field=where)
        return "nhs-number", validate_nhs_number(value, field=where)
    except InvalidIdentifierError as exc:
        raise UsageError(str(exc)) from None


def _prompted() -> list[Identifier]:
    found = []
    for field, words, _ in _FIELDS:
        sys.stderr.write(f"{words} (press Enter if not known): ")
        sys.stderr.flush()
        with concerning("standard input"):
            typed = "".join(sys.stdin.readline(_MAX_IDENTIFIER_LINE).split()).upper()
        if typed:
            found.append(_validated(field, typed, words))
    return found


def _from_json() -> list[Identifier]:
    # What standard input holds is an input: refused with status 1, never repeated.
    with concerning("standard input"):
        text = sys.stdin.read(_MAX_IDENTIFIERS_JSON + 1)
    if len(text) > _MAX_IDENTIFIERS_JSON:
        raise CliError(f"standard input must be at most {_MAX_IDENTIFIERS_JSON} characters")
    try:
        doc = json.loads(text)
    except ValueError:
        raise CliError(
            'standard input must be a JSON object such as {"upn": ..., "nhs_number": ...}'
        ) from None
    if not isinstance(doc, dict):
        raise CliError("standard input must be a JSON object with upn and/or nhs_number")
    unknown = sorted(k for k in doc if k not in {f for f, _, _ in _FIELDS})
    if unknown:
        raise CliError(f"standard input has unknown fields: {', '.join(unknown)}")
    return [_validated(f, doc[f], f) for f, _, _ in _FIELDS if f in doc]


def read_identifiers(args: argparse.Namespace) -> list[Identifier]:
    """Return the child's identifiers: from ``--upn -``/``--nhs-number -``, a prompt or JSON."""
    given = [(f, getattr(args, f, None), option) for f, _, option in _FIELDS]
    if any(value is not None for _, value, _ in given):
        found = []
        for field, value, option in given:
            if value is None:
                continue
            if value == "-":
                with concerning("standard input"):
                    typed = sys.stdin.readline(_MAX_IDENTIFIER_LINE).strip()
            else:
                typed = value
            found.append(_validated(field, typed, option))
        return found
    found = _prompted() if sys.stdin.isatty() else _from_json()
    if not found:
        raise UsageError("give the child's UPN, NHS number or both")
    return found


def _register_key(config: NodeConfig) -> RegisterKey | None:
    try:
        return RegisterKey.load(config.data_dir, create=False)
    except RegisterKeyError as exc:
        raise CliError(str(exc)) from None


def search_command(args: argparse.Namespace) -> int:
    """Print the subject access report (JSON) for the child's identifiers."""
    if args.config is None:
        raise UsageError("--config is required")
    config = _config(args)
    org = _org(args, config)
    identifiers = read_identifiers(args)
    key = _register_key(config)
    now = _now(args)
    try:
        directory = load_trusted_directory(config)
    except ConfigError:
        directory = None

    def name_of(o: OrgId) -> str:
        entry = None if directory is None else directory.organisations.get(o)
        return o if entry is None else entry.name

    report = _with_store(
        config,
        lambda store: subject_access_report(store, key, org, identifiers, now=now, name_of=name_of),
    )
    _emit(json.dumps(report, indent=2, ensure_ascii=False) + "\n", args.out)
    return 0


def _out_folder(out: str) -> Path:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--out {out} is a file, not a folder")
    return folder


def _dpo(users: list[User], wanted: str | None, org: OrgId) -> User:
    dpos = [u for u in users if u.role == "dpo"]
    if wanted is not None:
        for user in dpos:
            if user.id == wanted:
                return user
        raise CliError(f"--user: {org} has no DPO account with that id")
    if len(dpos) != 1:
        raise UsageError(
            f"--user is required: {org} has {len(dpos)} DPO accounts; name the one answering"
        )
    return dpos[0]


def export_command(args: argparse.Namespace) -> int:
    """Write the copies a subject access response must contain into a new folder."""
    config = _config(args)
    org = _org(args, config)
    folder = _out_folder(args.out)
    identifiers = read_identifiers(args)
    key = _register_key(config)
    if key is None:
        raise CliError(f"no register.key in {config.data_dir}: has the node been started?")
    try:
        directory = load_trusted_directory(config)
        tenants = load_tenants(config.tenants)
        records = load_records_setup(config)
    except ConfigError as exc:
        raise CliError(f"config {args.config}: {exc}") from None
    moment = float(common.now(args))

    async def run(store: NodeStore) -> list[tuple[str, bytes]]:
        user = _dpo(await store.users_of(org), args.user, org)
        context = ServiceContext(
            store=store, directory=directory, tenants=tenants, records=records,
            register_key=key, clock=lambda: moment, max_envelope_bytes=0, public_url="",
            overdue_after=0.0,
        )  # fmt: skip
        access = SubjectAccess(context)
        # Refused names are checked before anything is opened, so a refusal records nothing.
        _refuse_existing(folder, ["index.html", "report.json"])
        try:
            copies = await access.copies(user, identifiers)
        except ServiceError as exc:
            raise CliError(str(exc)) from None

        def name_of(o: str) -> str:
            entry = directory.organisations.get(OrgId(o))
            return o if entry is None else entry.name

        report: dict[str, Any] = copies.report
        files = export_files(report, copies.items, name_of)
        files.insert(1, ("report.json", json.dumps(report, indent=2).encode("utf-8")))
        return files

    files = _with_store(config, run)
    _refuse_existing(folder, [name for name, _ in files])
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in files:
        write_new_file(folder / name, data, mode=0o600)
    common.note(f"wrote {len(files)} file(s) to {folder}")
    return 0


def _refuse_existing(folder: Path, names: list[str]) -> None:
    for name in names:
        if (folder / name).exists():
            raise CliError(f"{folder / name} already exists; choose a new --out folder")


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange subject-access`` and ``exchange subject-access export``."""
    clock = common.clock_options()
    sar = sub.add_parser(
        "subject-access",
        parents=[clock],
        help="report every exchange about one child (subject access request)",
        description=(
            "Find every item sent or received about the child, by every identifier given at "
            "once (UPN, NHS number or both: asked for on a terminal, or a JSON object on "
            "standard input), each saying which kind of identifier found it, and the items "
            "no search can find, to review. Identifiers are never printed."
        ),
    )
    sar.add_argument("--config", metavar="FILE", help="the node's TOML file")
    sar.add_argument("--org", help="the organisation (required when the node serves several)")
    sar.add_argument("--upn", metavar="-", help="read a UPN from standard input ('-')")
    sar.add_argument(
        "--nhs-number", metavar="-", help="read an NHS number from standard input ('-')"
    )
    sar.add_argument("--out", metavar="FILE", help="write to a new file (mode 0600)")
    sar.set_defaults(handler=search_command)
    actions = sar.add_subparsers(dest="subject_access_command", metavar="COMMAND")
    export = actions.add_parser(
        "export",
        parents=[clock],
        help="write the copies a subject access response must contain",
        description=(
            "Write each item sent or received about the child as a readable page with its "
            "documents, and those to review, into a new folder (0700, files 0600, never over "
            "an existing file). Each copy is recorded in the ledger."
        ),
    )
    export.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    export.add_argument("--org", help="the organisation (required when the node serves several)")
    export.add_argument("--out", required=True, metavar="DIR", help="the folder to write into")
    export.add_argument("--user", metavar="ID", help="the DPO account answering the request")
    export.set_defaults(handler=export_command)
