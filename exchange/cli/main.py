"""Entry point of the ``exchange`` command: parse the command line, run, report.

Every failure, whatever raised it, ends here as one ``exchange: <sentence>`` line on standard
error and an exit status (see :mod:`exchange.cli.errors`); no traceback reaches the user.

This module imports only the standard library at its top: the commands (and the libraries
they need, which take a moment to load) are imported inside :func:`main`, so a Ctrl-C while
they load is reported like any other, as ``exchange: interrupted``, not as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

from exchange import __version__

if TYPE_CHECKING:
    from exchange.cli.common import Parser

#: Exit status after Ctrl-C (128 + SIGINT), as :data:`exchange.cli.errors.EXIT_INTERRUPTED`.
_EXIT_INTERRUPTED: Final = 130

_EPILOG = """\
environment:
  EXCHANGE_DIRECTORY             the signed directory file (instead of --directory)
  EXCHANGE_TRUST                 the authority's verifier key or a file holding it (--trust)
  EXCHANGE_PASSPHRASE            the passphrase of organisation key files
  EXCHANGE_AUTHORITY_PASSPHRASE  the passphrase of the directory authority's key file
  EXCHANGE_STATE_DIR             where the newest accepted directory version is remembered
                                 (default: $XDG_STATE_HOME/exchange or ~/.local/state/exchange)

Without a passphrase variable, the command asks for the passphrase when run in a terminal.
Exit status: 0 success, 1 an input was refused, 2 the command line was wrong.
See docs/cli.md for a worked example.
"""


#: Packages only ``exchange demo`` needs, installed by the ``demo`` extra (see pyproject.toml).
DEMO_PACKAGES = frozenset({"aiosmtpd"})
DEMO_INSTALL = "pip install 'safeguarding-exchange[demo]'"


def _run_demo(args: argparse.Namespace) -> int:
    from exchange.cli.errors import CliError  # noqa: PLC0415 - see the module's docstring

    # Imported only when asked for: the demo pulls in more than the other commands need, and
    # its own packages are an extra that a node's installation may leave out.
    try:
        module = importlib.import_module("exchange.demo.story")
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top in DEMO_PACKAGES:
            message = f"the demo needs packages this installation lacks: {DEMO_INSTALL}"
            raise CliError(message) from None
        if exc.name != "exchange.demo.story":
            raise
        raise CliError("the demo is not part of this installation") from None
    mesh_sandbox: Path | None = args.mesh_sandbox
    if mesh_sandbox is not None:
        services = importlib.import_module("exchange.demo.services")
        problem = cast("Callable[[Path], str | None]", services.sandbox_folder_problem)
        if (reason := problem(mesh_sandbox)) is not None:
            raise CliError(f"--mesh-sandbox {mesh_sandbox}: {reason}")
    run_demo = cast("Callable[..., int]", module.run_demo)
    return run_demo(serve=not args.no_serve, mesh_sandbox=mesh_sandbox)


def build_parser() -> Parser:
    """Return the parser for every command."""
    # The commands load here, not at the module's top (see the module's docstring).
    from exchange.cli import (  # noqa: PLC0415
        backup_cmd,
        common,
        db_cmd,
        directory_cmd,
        envelope_cmd,
        inbox_cmd,
        init_cmd,
        keys_cmd,
        node_cmd,
        record_cmd,
        register_cmd,
        retention_cmd,
        send_cmd,
        staff_cmd,
        subject_access_cmd,
        tokens_cmd,
    )

    parser = common.Parser(
        prog="exchange",
        description=(
            "Secure exchange of safeguarding records between schools, local authorities and\n"
            "NHS teams: create keys, sign the directory of organisations, and seal, open and\n"
            "inspect envelopes. Run 'exchange COMMAND --help' for each command."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"exchange {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    keys_cmd.add_authority_commands(sub)
    keys_cmd.add_keys_commands(sub)
    directory_cmd.add_commands(sub)
    envelope_cmd.add_commands(sub)
    init_cmd.add_commands(sub)
    node_cmd.add_commands(sub)
    tokens_cmd.add_commands(sub)
    backup_cmd.add_commands(sub)
    db_cmd.add_commands(sub)
    record_cmd.add_commands(sub)
    register_cmd.add_commands(sub)
    retention_cmd.add_commands(sub)
    subject_access_cmd.add_commands(sub)
    staff_cmd.add_commands(sub)
    send_cmd.add_commands(sub)
    inbox_cmd.add_commands(sub)
    demo = sub.add_parser(
        "demo",
        help="run a self-contained demonstration in a temporary folder",
        description=(
            "Create an authority, a school, a local authority and an NHS team in a temporary "
            "folder, send a synthetic referral, and show each step. Touches nothing else. "
            "Run in a terminal, it then keeps the demo nodes serving their web pages, with "
            "synthetic accounts, until Ctrl-C."
        ),
    )
    demo.add_argument(
        "--no-serve",
        action="store_true",
        help="end after the story, even in a terminal (do not serve the web pages)",
    )
    demo.add_argument(
        "--mesh-sandbox",
        type=Path,
        metavar="DIR",
        help=(
            "the virtual environment for NHS England's MESH sandbox, which the NHS MESH leg "
            "runs against: installed there from the package index if it is not yet (a new "
            "or empty folder, or one made this way before); make demo passes "
            ".cache/mesh-sandbox-venv"
        ),
    )
    demo.set_defaults(handler=_run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``exchange`` command with ``argv`` (default: the process arguments)."""
    try:
        return _run(argv)
    except KeyboardInterrupt:
        # Ctrl-C before the commands had loaded (afterwards, _run reports it itself).
        _flush_stdout()
        sys.stderr.write("exchange: interrupted\n")
        return _EXIT_INTERRUPTED


def _run(argv: list[str] | None) -> int:
    from exchange.cli.errors import EXIT_USAGE, describe  # noqa: PLC0415

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler = cast("Callable[[argparse.Namespace], int]", args.handler)
        with _logs_to_stderr():
            return handler(args)
    except SystemExit as exc:
        # --help and --version end the parse this way; they have printed what they must.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BaseException as exc:  # noqa: BLE001 - the one place every failure is reported
        status, message = describe(exc)
        _flush_stdout()
        sys.stderr.write(f"exchange: {message}\n")
        return status


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """Send log lines to standard error, warnings and worse only, unless logging is set up.

    Standard output is a command's result (a token, a list, JSON) and nothing else; a
    command that runs the node (``exchange serve``) configures its own logging. What is
    set here is undone when the command ends, so a command run inside another program (the
    tests) leaves that program's logging as it was.
    """
    import logging  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    from exchange.logs import CurrentStderr, configure  # noqa: PLC0415

    if structlog.is_configured():
        yield
        return
    configure(level=logging.WARNING, stream=CurrentStderr(), bridge_stdlib=False)
    try:
        yield
    finally:
        structlog.reset_defaults()


def _flush_stdout() -> None:
    # Anything already printed goes out before the error line; a closed pipe is not news.
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
