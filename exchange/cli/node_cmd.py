"""``exchange serve``, ``exchange users add|sign-out`` and ``exchange ledger verify|prove``.

(``exchange ledger consistency|check-consistency`` are in
:mod:`exchange.cli.ledger_consistency_cmd`.)

``serve`` runs a node until SIGINT or SIGTERM, then shuts down gracefully (stop accepting,
finish in-flight work, sign a last checkpoint). ``users add`` creates a member of staff and
prints their API token once; only its hash is stored. With ``--email`` it also gives them an
account for the web pages, whose initial password is read from standard input
(``--password-stdin``), never from the command line. ``ledger verify`` recomputes the whole
log and checks every checkpoint; ``ledger prove`` prints an offline-verifiable proof bundle
for each ledger event of an envelope. The rest of ``exchange users`` is in
:mod:`exchange.cli.users_cmd`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import secrets
import signal
import sys
import time
from typing import Final

from exchange.auth.account import check_email
from exchange.auth.api_token import token_hash
from exchange.auth.errors import WeakPasswordError
from exchange.auth.passwords import MAX_LENGTH, check_password_rules
from exchange.cli import common
from exchange.cli.errors import EXIT_REFUSED, CliError, UsageError, concerning
from exchange.cli.ledger_audit import LedgerFacts, audit_ledger, ledger_signer
from exchange.cli.ledger_consistency_cmd import add_consistency_commands
from exchange.cli.node_store import node_config, open_store
from exchange.cli.users_cmd import add_lifecycle_commands, logs_to_stderr, refusal
from exchange.config import ConfigError, NodeConfig
from exchange.keys.ids import parse_org_id
from exchange.ledger.events import decode_event
from exchange.ledger.merkle import MAX_TREE_SIZE
from exchange.logs import configure
from exchange.model import EnvelopeDigest, User
from exchange.node.binding import ListenRefusedError
from exchange.node.config_check import ConfigRefusedError, check_config
from exchange.node.heap import freeze_start_up
from exchange.node.runtime import Node, ReadersWithoutSecondFactorError
from exchange.service.accounts import Accounts, StoreClock
from exchange.service.errors import ServiceError
from exchange.service.ledger import NodeLedger
from exchange.store.opening import NodeStore
from exchange.workers.jobs import new_process_id

_ROLES = ("dsl", "staff", "dpo", "admin")
_USER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _config(args: argparse.Namespace) -> NodeConfig:
    return node_config(args.config)


def _refuse(args: argparse.Namespace, problems: list[str]) -> int:
    """Print each problem of the configuration on its own line; return the refusal status."""
    sys.stdout.flush()
    for problem in problems:
        sys.stderr.write(f"exchange: config {args.config}: {problem}\n")
    return EXIT_REFUSED


def config_check_command(args: argparse.Namespace) -> int:
    """Check the configuration without starting the node: one line per problem."""
    config = _config(args)
    report = check_config(config)
    if report.problems:
        return _refuse(args, report.problems)
    for line in report.notes:
        common.note(line)
    common.note(report.summary(config))
    return 0


def _ready_config(args: argparse.Namespace) -> NodeConfig:
    """Return the configuration if it can serve; else refuse with its first problem."""
    config = _config(args)
    problems = check_config(config).problems
    if problems:
        more = (
            f" (and {len(problems) - 1} more: see exchange config check --config {args.config})"
            if len(problems) > 1
            else ""
        )
        raise CliError(f"config {args.config}: {problems[0]}{more}")
    return config


def serve_command(args: argparse.Namespace) -> int:
    """Run the node until interrupted."""
    config = _config(args)
    configure()
    try:
        asyncio.run(_serve(config))
    except ConfigRefusedError as exc:
        # The same lines as `exchange config check`: the node runs the same checks.
        return _refuse(args, exc.problems)
    except ConfigError as exc:
        raise CliError(f"config {args.config}: {exc}") from None
    except ReadersWithoutSecondFactorError as exc:
        raise CliError(str(exc).replace("--config FILE", f"--config {args.config}")) from None
    except ListenRefusedError as exc:
        # Names the setting and the address; the node closed what it had opened.
        raise CliError(f"config {args.config}: {exc}") from None
    return 0


async def _serve(config: NodeConfig) -> None:
    # One id per `exchange serve` process: the owner of its leases in a shared store.
    node = Node(config, process_id=new_process_id())
    await node.start()
    freeze_start_up()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    common.note(
        f"serving {', '.join(t.org for t in config.tenants)} on port {node.port}; "
        f"/healthz, /readyz and /metrics on {config.ops.host}:{node.ops_port}"
    )
    await stop.wait()
    await node.stop()


#: ``--password``: refused without repeating the value, which would be the secret.
_RefusePassword: Final = common.refusing_action(
    "a password is never given on the command line (it would be kept in the shell history "
    "and shown to other users by ps): use --password-stdin"
)


def initial_password(option: str = "--password-stdin") -> str:
    """Read the initial password: typed without echo at a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        password = getpass.getpass("Initial password: ")
    else:
        with concerning("standard input"):
            line = sys.stdin.readline(MAX_LENGTH * 4 + 2)
        password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise UsageError(f"{option}: no password on standard input")
    try:
        check_password_rules(password)
    except WeakPasswordError as exc:
        raise CliError(f"the initial password is refused: {exc}") from None
    return password


def _account_options(args: argparse.Namespace) -> tuple[str, str] | None:
    """Return the checked ``--email`` and the initial password, or None without ``--email``."""
    if args.email is None:
        if args.password_stdin:
            raise UsageError("--password-stdin goes with --email")
        return None
    if not args.password_stdin:
        raise UsageError(
            "--email needs --password-stdin: the initial password is read from standard input"
        )
    try:
        email = check_email(args.email)
    except ValueError:
        raise UsageError("--email must be an email address, like name@example.org") from None
    return email, initial_password()


def users_add_command(args: argparse.Namespace) -> int:
    """Create a user and print their token once; with ``--email``, their account too."""
    # The data folder is made only for a configuration that can serve.
    config = _ready_config(args)
    try:
        org = parse_org_id(args.org, field="--org")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if org not in {t.org for t in config.tenants}:
        raise CliError(f"this node does not serve {org}")
    if _USER_ID_RE.fullmatch(args.id) is None:
        raise UsageError("--id must be 1-64 letters, digits, '.', '_', '@' or '-'")
    account = _account_options(args)
    token = secrets.token_urlsafe(32)
    user = User(args.id, org, args.name, args.role)

    async def add() -> None:
        store = await open_store(config)
        try:
            accounts = Accounts(StoreClock(store))
            if account is None:
                await accounts.add_user(user, token_hash(token))
            else:
                email, password = account
                await accounts.create_user(user, token_hash(token), email=email, password=password)
        except ServiceError as exc:
            raise refusal(exc) from None
        finally:
            await store.close()

    with logs_to_stderr():
        asyncio.run(add())
    if account is not None:
        common.note(
            f"created an account to sign in to the web pages for {args.id}; a role that "
            "reads records sets up a second factor at first sign-in"
        )
    common.note(f"created user {args.id} ({args.role}) of {org}; the token is shown once:")
    sys.stdout.write(token + "\n")
    return 0


def users_sign_out_command(args: argparse.Namespace) -> int:
    """End every web session of one account (by its number), e.g. before the node starts."""
    config = _config(args)

    async def sign_out() -> int | None:
        store = await open_store(config)
        try:
            account = await store.account_by_id(args.account)
            if account is None:
                return None
            return await store.delete_user_sessions(account.user.id)
        finally:
            await store.close()

    count = asyncio.run(sign_out())
    if count is None:
        raise CliError(f"there is no account {args.account} on this node")
    common.note(f"ended {count} session(s) of account {args.account}")
    return 0


async def _ledger(config: NodeConfig) -> LedgerFacts:
    store = await open_store(config)
    try:
        # Every event row (not just the head's count), so rows past the head are audited.
        events = await store.ledger_events(0, MAX_TREE_SIZE)
        notes = [note for _, note in await store.checkpoints()]
        head, stored = await store.ledger_stored_tree()
    finally:
        await store.close()
    return LedgerFacts(events, notes, head, stored)


def ledger_verify_command(args: argparse.Namespace) -> int:
    """Recompute the log, check every checkpoint, then the stored tree against the events."""
    config = _config(args)
    signer = ledger_signer(config)
    audit = audit_ledger(asyncio.run(_ledger(config)), signer.verifier, config.ledger_origin)
    common.note(
        f"ledger verified: {audit.size} events, {audit.checkpoints} checkpoints, "
        f"{audit.attested} events attested by the last checkpoint"
    )
    return 0


def ledger_prove_command(args: argparse.Namespace) -> int:
    """Print a proof bundle for every ledger event of one envelope."""
    config = _config(args)
    wanted = args.envelope.lower()
    if re.fullmatch(r"[0-9a-f]{32}|[0-9a-f]{64}", wanted) is None:
        raise UsageError("ENVELOPE must be an envelope id (32 hex) or digest (64 hex)")
    bundles = asyncio.run(_prove(config, wanted))
    if not bundles:
        raise CliError("no checkpointed ledger event names that envelope")
    for bundle in bundles:
        sys.stdout.buffer.write(bundle)
        sys.stdout.buffer.write(b"\n")
    return 0


async def _prove(config: NodeConfig, wanted: str) -> list[bytes]:
    """Return the bundles of the envelope's events under the last signed checkpoint."""
    signer = ledger_signer(config)
    store = await open_store(config)
    try:
        # The command only reads: the ledger is loaded to prove under the last checkpoint
        # the node signed, and never signs one itself, so the clock is never read.
        ledger = NodeLedger(store, signer, time.time)
        await ledger.load()
        if ledger.last_note is None:
            raise CliError("the ledger has no signed checkpoint yet")
        return await ledger.bundles_for(await _digests_for(store, wanted))
    finally:
        await store.close()


async def _digests_for(store: NodeStore, wanted: str) -> set[EnvelopeDigest]:
    """Return the digest ``wanted`` names: itself, or the logged envelopes with that id."""
    if len(wanted) == 64:
        return {EnvelopeDigest(bytes.fromhex(wanted))}
    envelope_id = bytes.fromhex(wanted)
    found = set()
    for event in await store.ledger_events(0, await store.ledger_size()):
        digest = decode_event(event).envelope_digest
        record = await store.envelope(digest)
        if record is not None and record.envelope_id == envelope_id:
            found.add(record.digest)
    return found


def outbox_requeue_command(args: argparse.Namespace) -> int:
    """Put dead outbox items back in the queue after the cause was fixed."""
    config = _config(args)
    digest = None
    if args.digest is not None:
        if re.fullmatch(r"[0-9a-f]{64}", args.digest) is None:
            raise UsageError("DIGEST must be 64 lower-case hexadecimal characters")
        digest = bytes.fromhex(args.digest)

    async def requeue() -> int:
        store = await open_store(config)
        try:
            return await store.requeue_dead(time.time(), digest)
        finally:
            await store.close()

    count = asyncio.run(requeue())
    common.note(
        f"requeued {count} dead outbox item(s); a running node picks them up within its "
        "poll interval"
    )
    return 0


def add_commands(sub: common.Subcommands) -> None:
    """Add the node commands to the ``exchange`` parser."""
    serve = sub.add_parser(
        "serve",
        help="run a node (staff API, peer protocol, outbox, ledger)",
        description=(
            "Run a node for the organisations in the configuration file until SIGINT or "
            "SIGTERM; then stop accepting, finish in-flight deliveries and sign a last "
            "checkpoint. See config/node.example.toml."
        ),
    )
    serve.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    serve.set_defaults(handler=serve_command)

    config = sub.add_parser("config", help="check a node's configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    check = config_sub.add_parser(
        "check",
        help="check the configuration is ready to serve, without starting the node",
        description="Load the configuration and check it against the directory, the key "
        "files (decrypted with the passphrases from the environment), the TLS certificate "
        "and key, and the data folder. Prints each problem on its own line and exits 1, or "
        "a summary when the node is ready to start. Uses no network.",
    )
    check.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    check.set_defaults(handler=config_check_command)

    users = sub.add_parser("users", help="manage the node's staff accounts")
    users_sub = users.add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    add = users_sub.add_parser(
        "add",
        help="create a user and print their API token once",
        description="Create a member of staff of one organisation; prints the token once.",
    )
    add.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    add.add_argument("--org", required=True, help="the user's organisation (a tenant)")
    add.add_argument("--id", required=True, help="a unique user id, e.g. an email address")
    add.add_argument("--name", required=True, help="the user's display name")
    add.add_argument("--role", required=True, choices=_ROLES, help="the user's role")
    add.add_argument(
        "--email",
        metavar="ADDRESS",
        help="also create an account to sign in to the web pages with this email address "
        "(unique on the node, whatever its case); needs --password-stdin",
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the account's initial password from standard input (one line; typed "
        "without echo at a terminal): at least 12 characters",
    )
    add.add_argument("--password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    add.set_defaults(handler=users_add_command)
    sign_out = users_sub.add_parser(
        "sign-out",
        help="end every web session of an account",
        description="End every web session of one account, given by its number (the number "
        "logs and the node's refusals name). Its next sign-in starts afresh, setting up a "
        "second factor if its role needs one.",
    )
    sign_out.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    sign_out.add_argument(
        "--account", required=True, type=int, metavar="NUMBER", help="the account's number"
    )
    sign_out.set_defaults(handler=users_sign_out_command)
    add_lifecycle_commands(users_sub)

    outbox = sub.add_parser("outbox", help="operate on the node's outbox")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", metavar="COMMAND", required=True)
    requeue = outbox_sub.add_parser(
        "requeue",
        help="put dead items back in the queue",
        description="Give dead outbox items (all, or those of one envelope) a fresh start on "
        "their first route, once the cause (a peer's address, credentials) has been fixed. "
        "The dead-letter age counts again from now.",
    )
    requeue.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    requeue.add_argument("digest", nargs="?", metavar="DIGEST", help="only this envelope")
    requeue.set_defaults(handler=outbox_requeue_command)

    ledger = sub.add_parser(
        "ledger", help="check the ledger, prove an envelope's events or the log's consistency"
    )
    ledger_sub = ledger.add_subparsers(dest="ledger_command", metavar="COMMAND", required=True)
    verify = ledger_sub.add_parser(
        "verify",
        help="recompute the whole log and check every checkpoint",
        description="Recompute the Merkle log from every stored event and check each signed "
        "checkpoint's root and its consistency with the one before.",
    )
    verify.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    verify.set_defaults(handler=ledger_verify_command)
    prove = ledger_sub.add_parser(
        "prove",
        help="print offline-verifiable proof bundles for an envelope's events",
        description="Print a C2SP tlog-proof bundle for each checkpointed ledger event of the "
        "envelope (by envelope id or digest), separated by blank lines.",
    )
    prove.add_argument("--config", required=True, metavar="FILE", help="the node's TOML file")
    prove.add_argument("envelope", metavar="ENVELOPE", help="envelope id or digest (hex)")
    prove.set_defaults(handler=ledger_prove_command)
    add_consistency_commands(ledger_sub)
