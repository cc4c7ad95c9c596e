"""``exchange init``: make a node folder, from options or by asking in a terminal.

Every value comes from an option; in a terminal, what is missing is asked for (passphrases
and the administrator's password without echo). Without a terminal nothing is asked: a
missing option is a usage error naming it. Everything is checked before anything is
written; then :func:`~exchange.node.init_folder.build_node_folder` makes the folder, or
nothing, and the next steps are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar, cast
from urllib.parse import urlsplit

from exchange.auth.account import check_email
from exchange.auth.passwords import DEFAULT_PARAMS, PasswordParams
from exchange.cli import common
from exchange.cli.errors import CliError, UsageError, concerning
from exchange.cli.node_cmd import initial_password
from exchange.files import read_limited
from exchange.keys.directory import ORG_KINDS, OrgKind
from exchange.keys.ids import OrgId, parse_org_id
from exchange.keys.keyfile import KdfParams
from exchange.keys.new_keys import DEFAULT_VALID_DAYS
from exchange.node.init_folder import (
    CONFIG_NAME,
    AdminPlan,
    InitError,
    InitPlan,
    Secrets,
    TenantPlan,
    TlsMode,
    TlsPlan,
    build_node_folder,
    check_target,
    next_steps,
    plan_tls,
    stem,
    tenant_stems_clash,
)
from exchange.node.tls_material import MAX_PEM_LEN, TlsMaterialError, load_bundle

ENV_LEDGER_PASSPHRASE: Final = "EXCHANGE_LEDGER_PASSPHRASE"  # noqa: S105 - a variable name
_TLS_MODES: Final = ("csr", "test-ca", "proxy")
_TLS_CHOICES: Final = {
    "1": "files",
    "2": "csr",
    "3": "test-ca",
    "4": "proxy",
}
_TRIES: Final = 3

T = TypeVar("T")


def _env_name(value: str) -> str:
    if (
        not value
        or not (value[0].isalpha() or value[0] == "_")
        or not all(c.isalnum() or c == "_" for c in value)
    ):
        raise argparse.ArgumentTypeError(
            "must be the name of an environment variable (letters, digits and '_')"
        )
    return value


def public_url_arg(value: str) -> str:
    """Parse ``--public-url``: an https address with a host and no path."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise argparse.ArgumentTypeError(
            "must be an https address with a host and no path, such as "
            "https://exchange.oak.example:8443"
        )
    return value.rstrip("/")


def directory_url_arg(value: str) -> str:
    """Parse ``--directory-url``: an https address (where the authority publishes)."""
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        raise argparse.ArgumentTypeError("must be an https:// address, with a host")
    return value


def _directory_ca(args: argparse.Namespace) -> bytes | None:
    if args.directory_ca is None:
        return None
    if args.directory_url is None:
        raise UsageError("--directory-ca goes with --directory-url")
    pem = _read_pem(args.directory_ca, "--directory-ca")
    load_bundle(pem, "--directory-ca")
    return pem


def listen_arg(value: str) -> str:
    """Parse a ``host:port`` to listen on."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError("must be host:port, such as 0.0.0.0:8443")
    return value


def _node_name(value: str) -> str:
    try:
        parse_org_id(f"node:{value}")
    except ValueError:
        raise argparse.ArgumentTypeError(
            "must be 1 to 47 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ) from None
    return value


def _origin(value: str) -> str:
    if not 0 < len(value) <= 200 or any(c.isspace() or c == "+" or ord(c) < 32 for c in value):
        raise argparse.ArgumentTypeError(
            "must be 1 to 200 characters with no spaces or '+', such as oak.example/ledger"
        )
    return value


def _email(value: str) -> str:
    try:
        return check_email(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "must be an email address, like name@example.org"
        ) from None


def _kind(value: str) -> str:
    if value not in ORG_KINDS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(sorted(ORG_KINDS))}")
    return value


def _valid_days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 3650:
        raise argparse.ArgumentTypeError("must be a whole number of days from 1 to 3650")
    return int(value)


# --- asking in a terminal ------------------------------------------------------------------


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(option: str, question: str, parse: Callable[[str], T]) -> T:
    """Ask ``question`` in a terminal until the answer parses; without one, refuse."""
    if not _interactive():
        raise UsageError(f"{option} is missing (run exchange init in a terminal to be asked)")
    for _ in range(_TRIES):
        sys.stderr.write(f"{question}: ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip()
        try:
            return parse(answer)
        except argparse.ArgumentTypeError as exc:
            common.note(f"{option} {exc}")
    raise UsageError(f"{option}: no usable answer after {_TRIES} tries")


def _given(
    args: argparse.Namespace, name: str, option: str, question: str, parse: Callable[[str], T]
) -> T:
    value = getattr(args, name)
    return cast("T", value) if value is not None else _ask(option, question, parse)


def _yes(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


# --- gathering the plan --------------------------------------------------------------------


def _tenants(args: argparse.Namespace) -> tuple[TenantPlan, ...]:
    orgs, names, kinds = args.org or [], args.name or [], args.kind or []
    if orgs or names or kinds:
        if not len(orgs) == len(names) == len(kinds):
            raise UsageError(
                "give --org, --name and --kind once for each organisation, in the same order"
            )
    else:
        while True:
            orgs.append(
                _ask("--org", "Organisation id (urn:NNNNNN, la:NNN, ods:CODE)", common.org_id_arg)
            )
            names.append(_ask("--name", "Organisation name", common.display_name_arg))
            kinds.append(_ask("--kind", f"Kind ({', '.join(sorted(ORG_KINDS))})", _kind))
            if not _yes("Does this node serve another organisation?"):
                break
    tenants = tuple(
        TenantPlan(OrgId(org), name, cast("OrgKind", kind))
        for org, name, kind in zip(orgs, names, kinds, strict=True)
    )
    if tenant_stems_clash(tenants):
        raise UsageError("each --org must be a different organisation")
    return tenants


def _read_pem(path: str, what: str) -> bytes:
    with concerning(f"{what} {path}"):
        return read_limited(path, MAX_PEM_LEN, what=f"the {what} file")


def _tls_mode(args: argparse.Namespace) -> TlsMode:
    if args.tls_cert is not None or args.tls_key is not None:
        if args.tls is not None:
            raise UsageError("give either --tls or --tls-cert and --tls-key, not both")
        if args.tls_cert is None or args.tls_key is None:
            raise UsageError("--tls-cert and --tls-key go together")
        return "files"
    if args.tls is not None:
        return cast("TlsMode", args.tls)

    def choose(answer: str) -> TlsMode:
        if answer not in _TLS_CHOICES:
            raise argparse.ArgumentTypeError("must be 1, 2, 3 or 4")
        return cast("TlsMode", _TLS_CHOICES[answer])

    return _ask(
        "--tls (or --tls-cert and --tls-key)",
        "TLS: 1 an existing certificate and key, 2 a certificate signing request, "
        "3 a private CA for a test deployment, 4 a proxy in front ends TLS",
        choose,
    )


def _tls(args: argparse.Namespace, host: str, now: int) -> TlsPlan:
    mode = _tls_mode(args)
    cert = key = peers = None
    if mode == "files":
        cert_path = args.tls_cert or _ask("--tls-cert", "Certificate file (PEM)", str)
        key_path = args.tls_key or _ask("--tls-key", "Its key file (PEM)", str)
        cert, key = _read_pem(cert_path, "--tls-cert"), _read_pem(key_path, "--tls-key")
    if args.peers_ca is not None:
        if mode == "proxy":
            raise UsageError("--peers-ca goes in the [tls] table, which --tls proxy leaves out")
        peers = _read_pem(args.peers_ca, "--peers-ca")
    try:
        return plan_tls(
            mode, host, datetime.fromtimestamp(now, UTC), cert=cert, key=key, peers_ca=peers
        )
    except TlsMaterialError as exc:
        raise CliError(str(exc)) from None


def _trust(args: argparse.Namespace) -> str:
    if not (args.trust or os.environ.get(common.ENV_TRUST)):
        args.trust = _ask("--trust", "The directory authority's verifier key, or its file", str)
    return "".join(f"{key.vkey()}\n" for key in common.trusted_keys(args))


def _admin(args: argparse.Namespace, tenants: tuple[TenantPlan, ...]) -> tuple[str, str, OrgId]:
    email = _given(
        args, "admin_email", "--admin-email", "The administrator's email address", _email
    )
    name = _given(
        args, "admin_name", "--admin-name", "The administrator's name", common.display_name_arg
    )
    org = args.admin_org if args.admin_org is not None else tenants[0].org
    if org not in {t.org for t in tenants}:
        raise UsageError(f"--admin-org {org} is not one of the organisations given with --org")
    return email, name, org


def _password(from_stdin: bool) -> str:
    # At a terminal the password is typed without echo; otherwise only with the option.
    if not _interactive() and not from_stdin:
        raise UsageError(
            "no initial password for the administrator: give --admin-password-stdin with the "
            "password on standard input, or run exchange init in a terminal to be asked"
        )
    return initial_password("--admin-password-stdin")


def make_plan(args: argparse.Namespace) -> InitPlan:
    """Return the checked plan of the node folder, asking for what is missing in a terminal."""
    folder = Path(args.folder)
    now = common.now(args)
    public_url = _given(
        args,
        "public_url",
        "--public-url",
        "The node's public address (https://host:port)",
        public_url_arg,
    )
    parts = urlsplit(public_url)
    host = parts.hostname or ""
    tenants = _tenants(args)
    trust = _trust(args)
    tls = _tls(args, host, now)
    email, admin_name, admin_org = _admin(args, tenants)
    default_listen = "127.0.0.1:8080" if tls.mode == "proxy" else f"0.0.0.0:{parts.port or 8443}"
    node_name = args.node_name or stem(tenants[0].org)
    tenant_secret = common.passphrase(
        args.passphrase_env, "New passphrase for the organisation key files: ", confirm=True
    )
    ledger_secret = common.passphrase(
        args.ledger_passphrase_env, "New passphrase for the ledger key file: ", confirm=True
    )
    password = _password(bool(args.admin_password_stdin))
    test = args.kdf_profile == "test"
    return InitPlan(
        folder=folder,
        public_url=public_url,
        listen=args.listen or default_listen,
        node_name=node_name,
        ledger_origin=args.ledger_origin or f"{host}/ledger",
        tenants=tenants,
        trust=trust,
        tls=tls,
        admin=AdminPlan(email, admin_name, admin_org, password),
        passphrase_env=args.passphrase_env,
        ledger_passphrase_env=args.ledger_passphrase_env,
        secrets=Secrets(tenant_secret, ledger_secret),
        now=now,
        kdf=KdfParams.fast_for_tests() if test else KdfParams.default(),
        password_params=PasswordParams.fast_for_tests() if test else DEFAULT_PARAMS,
        valid_days=args.valid_days,
        ops_listen=args.ops_listen,
        directory_url=args.directory_url,
        directory_ca=_directory_ca(args),
    )


def init_command(args: argparse.Namespace) -> int:
    """Make the node folder and print the next steps."""
    folder = Path(args.folder)
    try:
        check_target(folder)
        plan = make_plan(args)
        build_node_folder(plan)
    except InitError as exc:
        raise CliError(str(exc)) from None
    config = folder / CONFIG_NAME
    common.note(f"made the node folder {folder} for {', '.join(t.org for t in plan.tenants)}")
    common.say("Next steps:")
    for number, step in enumerate(next_steps(plan, config=config, shown_folder=str(folder)), 1):
        common.say(f"{number}. {step}")
    return 0


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange init``."""
    init = sub.add_parser(
        "init",
        parents=[common.clock_options(), common.kdf_options()],
        help="make a node folder: keys, configuration, TLS, data and the first administrator",
        description=(
            "Make a working node folder FOLDER (new, or an empty folder): the organisations' "
            "keys and public entries, the ledger key, node.toml, TLS, the data folder and the "
            "first administrator's account; then print the next steps. In a terminal it asks "
            "for what the options do not give; otherwise a missing option is an error. "
            "Passphrases come from the environment variables named by --passphrase-env and "
            "--ledger-passphrase-env, or are asked for without echo. Writes nothing when it "
            "refuses or fails. See docs/cli.md."
        ),
    )
    init.add_argument("folder", metavar="FOLDER", help="the node folder to make")
    init.add_argument(
        "--public-url",
        type=public_url_arg,
        metavar="URL",
        help="the node's https address, how peers and staff reach it",
    )
    init.add_argument(
        "--listen",
        type=listen_arg,
        metavar="HOST:PORT",
        help="where the node listens (default 0.0.0.0 and the port of "
        "--public-url or 8443; with --tls proxy, 127.0.0.1:8080)",
    )
    init.add_argument(
        "--org",
        action="append",
        type=common.org_id_arg,
        metavar="ORG",
        help="an organisation the node serves, e.g. urn:106123 (school), "
        "la:356 (LA), ods:X26ABC (NHS); repeat for several, each with "
        "--name and --kind",
    )
    init.add_argument(
        "--name",
        action="append",
        type=common.display_name_arg,
        metavar="NAME",
        help="the organisation's name (one per --org)",
    )
    init.add_argument(
        "--kind",
        action="append",
        type=_kind,
        metavar="KIND",
        help=f"the organisation's kind: {', '.join(sorted(ORG_KINDS))} (one per --org)",
    )
    init.add_argument(
        "--trust",
        metavar="VKEY",
        help="the directory authority's verifier key, or a file holding it "
        f"(default: ${common.ENV_TRUST})",
    )
    init.add_argument(
        "--tls",
        choices=_TLS_MODES,
        help="csr: make a key and a certificate signing request; test-ca: make "
        "a private CA and a certificate for a test deployment; proxy: TLS ends "
        "at a proxy in front",
    )
    init.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="an existing certificate (PEM, with its chain) for the host of "
        "--public-url; with --tls-key",
    )
    init.add_argument("--tls-key", metavar="FILE", help="the certificate's key (PEM, unencrypted)")
    init.add_argument(
        "--peers-ca",
        metavar="FILE",
        help="CA certificates to trust when calling peers (default: the system's)",
    )
    init.add_argument(
        "--admin-email",
        type=_email,
        metavar="ADDRESS",
        help="the first administrator's email address (they sign in with it)",
    )
    init.add_argument(
        "--admin-name",
        type=common.display_name_arg,
        metavar="NAME",
        help="the first administrator's name",
    )
    init.add_argument(
        "--admin-org",
        type=common.org_id_arg,
        metavar="ORG",
        help="the administrator's organisation (default: the first --org)",
    )
    init.add_argument(
        "--admin-password-stdin",
        action="store_true",
        help="read the administrator's initial password from standard input "
        "(one line, at least 12 characters)",
    )
    init.add_argument(
        "--passphrase-env",
        type=_env_name,
        default=common.ENV_PASSPHRASE,
        metavar="NAME",
        help="the environment variable holding the organisation "
        f"key files' passphrase (default {common.ENV_PASSPHRASE})",
    )
    init.add_argument(
        "--ledger-passphrase-env",
        type=_env_name,
        default=ENV_LEDGER_PASSPHRASE,
        metavar="NAME",
        help="the environment variable holding the ledger key "
        f"file's passphrase (default {ENV_LEDGER_PASSPHRASE})",
    )
    init.add_argument(
        "--node-name",
        type=_node_name,
        metavar="NAME",
        help="the node's label in logs and metrics (default: the first "
        "organisation id with '-' for ':')",
    )
    init.add_argument(
        "--ledger-origin",
        type=_origin,
        metavar="ORIGIN",
        help="the ledger checkpoints' origin line (default: HOST/ledger)",
    )
    init.add_argument(
        "--ops-listen",
        type=listen_arg,
        metavar="HOST:PORT",
        help="write an [ops] table: where /healthz, /readyz and /metrics listen "
        "(default: left out, 127.0.0.1:9180)",
    )
    init.add_argument(
        "--directory-url",
        type=directory_url_arg,
        metavar="URL",
        help="where the directory authority publishes the signed directory (https://); "
        "the node fetches each new version from there",
    )
    init.add_argument(
        "--directory-ca",
        metavar="FILE",
        help="the CA certificate(s) (PEM) to trust for --directory-url, copied to "
        "directory/ca.pem (default: the system's store)",
    )
    init.add_argument(
        "--valid-days",
        type=_valid_days,
        default=DEFAULT_VALID_DAYS,
        metavar="N",
        help=f"how many days the organisation keys stay valid (default {DEFAULT_VALID_DAYS})",
    )
    init.set_defaults(handler=init_command)
