"""The options every staff command shares: which node, which token, which CA.

- **The node**: ``--node URL``, else ``EXCHANGE_NODE_URL`` (``EXCHANGE_NODE``, its older
  name, is still read). HTTPS unless ``--allow-http`` (tests on loopback only); a path prefix
  is kept, for a node behind a reverse proxy.
- **The CA**: ``--cacert FILE`` (``--ca`` is the same option), else ``EXCHANGE_CACERT``: trust
  only that CA certificate, for a node with a private CA; otherwise the system's CAs.
- **The token**, never from the command line (it would be kept in the shell history and
  shown to other users by ``ps``): ``--token-stdin`` (one line on standard input),
  ``--token-file FILE`` (refused when other users could read it), or the environment
  variable ``--token-env NAME`` names (default ``EXCHANGE_TOKEN``). ``--token`` is refused
  without repeating what followed it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import ssl
import stat
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Final

from exchange.cli import common
from exchange.cli.errors import CliError, UsageError, concerning
from exchange.cli.staff_client import DEFAULT_TIMEOUT, StaffClient

ENV_NODE: Final = "EXCHANGE_NODE_URL"
#: The older name of :data:`ENV_NODE`, still read when the newer one is not set.
ENV_NODE_OLD: Final = "EXCHANGE_NODE"
ENV_TOKEN: Final = "EXCHANGE_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_CACERT: Final = "EXCHANGE_CACERT"

#: Largest token file read: a token is at most 4096 characters and a newline.
MAX_TOKEN_FILE: Final = 8192
#: Permission bits that let other users of the machine read or change a token file.
_SHARED_BITS: Final = stat.S_IRWXG | stat.S_IRWXO

_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: A bearer token is visible ASCII (RFC 6750 b64token and more); anything else could split
#: the header, and http.client would then quote the value in its error.
_TOKEN_RE: Final = re.compile(r"[\x21-\x7e]{1,4096}")

_NEVER_ON_THE_COMMAND_LINE: Final = (
    "the token is never given on the command line (it would be kept in the shell history and "
    f"shown to other users by ps): set {ENV_TOKEN}, or give --token-file FILE or --token-stdin"
)


def _env_name_arg(value: str) -> str:
    if _ENV_NAME_RE.fullmatch(value) is None:
        # Not repeated: it might be the token itself, given here by mistake.
        raise argparse.ArgumentTypeError("it is not an environment variable name")
    return value


def _timeout_arg(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError("the timeout is more than 0 and at most 3600 seconds")
    return seconds


#: ``--token``: refused without repeating the value, which would be the secret.
RefuseToken: Final = common.refusing_action(_NEVER_ON_THE_COMMAND_LINE)


def connection_options() -> common.Parser:
    """Return a parent parser with the node, token and TLS options, and ``--json``.

    Their defaults are suppressed so that, on ``sent`` and ``sent show`` alike, an option
    given to either is kept (argparse copies a subcommand's defaults over its parent's).
    """
    parent = common.Parser(add_help=False)
    parent.add_argument("--token", nargs="?", action=RefuseToken, help=argparse.SUPPRESS)
    group = parent.add_argument_group("connecting to the node")
    group.add_argument(
        "--node",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"the node's address, e.g. https://exchange.example:8443 (default: ${ENV_NODE})",
    )
    group.add_argument(
        "--cacert",
        "--ca",
        dest="cacert",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=(
            "trust only this CA certificate file (PEM) for the node, for a private CA "
            f"(default: ${ENV_CACERT}, else the system's CAs)"
        ),
    )
    tokens = group.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-env",
        metavar="NAME",
        type=_env_name_arg,
        default=argparse.SUPPRESS,
        help=f"the environment variable holding your API token (default: {ENV_TOKEN})",
    )
    tokens.add_argument(
        "--token-file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="read your API token from FILE, which only you may read (mode 0600)",
    )
    tokens.add_argument(
        "--token-stdin",
        action="store_true",
        default=argparse.SUPPRESS,
        help="read your API token from the first line of standard input",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_timeout_arg,
        default=argparse.SUPPRESS,
        help=f"how long to wait for the node at each step (default: {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--allow-http",
        action="store_true",
        default=argparse.SUPPRESS,
        help="allow a plain http:// address (tests on loopback only: the token travels in clear)",
    )
    parent.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the node's answer as JSON instead of lines",
    )
    return parent


def option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    """Return an option of :func:`connection_options` (their defaults are suppressed)."""
    return getattr(args, name, default)


def wants_json(args: argparse.Namespace) -> bool:
    """Return whether ``--json`` was given."""
    return bool(option(args, "json", default=False))


def reads_token_from_stdin(args: argparse.Namespace) -> bool:
    """Return whether standard input is taken by ``--token-stdin``."""
    return bool(option(args, "token_stdin", default=False))


def _base_url(args: argparse.Namespace) -> tuple[str, bool]:
    """Return the node's base URL from --node or the environment, and whether it is HTTPS."""
    value = option(args, "node") or os.environ.get(ENV_NODE) or os.environ.get(ENV_NODE_OLD)
    if not value:
        raise UsageError(f"no node: give --node URL or set {ENV_NODE}")
    try:
        url = urllib.parse.urlsplit(value.strip())
        _ = url.port  # a port that is not a number raises ValueError
    except ValueError:
        raise UsageError(
            "--node is not a URL (for example https://exchange.school.example:8443)"
        ) from None
    if url.scheme == "http" and not option(args, "allow_http", default=False):
        raise UsageError(
            "--node must be an https:// address: the token and records must not travel in "
            "clear (--allow-http is for tests on loopback only)"
        )
    if url.scheme not in {"https", "http"} or not url.hostname:
        raise UsageError(
            "--node is not an https:// URL (for example https://exchange.example:8443)"
        )
    if url.username is not None or url.password is not None:
        raise UsageError("--node must not hold a user name or password; the token is set apart")
    if url.query or url.fragment:
        raise UsageError("--node must not have a query or fragment")
    base = urllib.parse.urlunsplit((url.scheme, url.netloc, url.path.rstrip("/"), "", ""))
    return base, url.scheme == "https"


def _checked(token: str, shown: str) -> str:
    # What holds the token is an input, refused with status 1; no token at all is a usage error.
    token = token.strip()
    if not token:
        raise CliError(f"{shown} is empty; it must hold your API token")
    if _TOKEN_RE.fullmatch(token) is None:
        raise CliError(f"{shown} does not hold a token: it has spaces or other characters")
    return token


def _token_from_file(path: str) -> str:
    target = Path(path)
    try:
        with target.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            # Windows has no such bits (the folder's ACL decides), so only POSIX is checked.
            if os.name == "posix" and mode & _SHARED_BITS:
                raise CliError(
                    f"token file {path} can be read or changed by other users (mode "
                    f"{stat.S_IMODE(mode):04o}); make it yours alone with: chmod 600 {path}"
                )
            raw = handle.read(MAX_TOKEN_FILE + 1)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
        raise CliError(f"token file {path}: {reason}") from None
    if len(raw) > MAX_TOKEN_FILE:
        raise CliError(f"token file {path} is too large to hold a token")
    try:
        text = raw.decode("ascii")
    except UnicodeError:
        raise CliError(f"token file {path} does not hold a token") from None
    return _checked(text, f"token file {path}")


def _token_from_stdin() -> str:
    if sys.stdin.isatty():
        return _checked(getpass.getpass("API token: "), "the token typed")
    with concerning("standard input"):
        line = sys.stdin.readline(MAX_TOKEN_FILE + 1)
    if len(line) > MAX_TOKEN_FILE:
        raise CliError("standard input does not start with a token (the line is too long)")
    return _checked(line, "the first line of standard input")


def token(args: argparse.Namespace) -> str:
    """Return the API token from standard input, a file, or the environment."""
    if reads_token_from_stdin(args):
        return _token_from_stdin()
    path = option(args, "token_file")
    if path is not None:
        return _token_from_file(str(path))
    given = option(args, "token_env")
    name = given or ENV_TOKEN
    # A name given with --token-env is not repeated: it might be the token, given by mistake.
    shown = "the variable --token-env names" if given else f"the environment variable {name}"
    value = os.environ.get(name)
    if not value:
        raise UsageError(
            f"no API token: set {shown} to your token (printed once by `exchange users add`), "
            "or give --token-file FILE or --token-stdin; it is never taken on the command line"
        )
    return _checked(value, shown)


def _tls_context(cacert: str | None) -> ssl.SSLContext:
    """Return a verifying TLS context: the system's CAs, or only the CA in ``cacert``."""
    if cacert is None:
        return ssl.create_default_context()
    if not Path(cacert).is_file():
        raise CliError(f"--cacert {cacert}: no such file")
    try:
        return ssl.create_default_context(cafile=cacert)
    except (ssl.SSLError, ValueError, UnicodeError):
        raise CliError(f"--cacert {cacert}: not a PEM certificate file") from None


def connect(args: argparse.Namespace) -> StaffClient:
    """Return a client of the node to talk to, checking the address, the token and the CA."""
    base, https = _base_url(args)
    secret = token(args)
    cacert = option(args, "cacert") or os.environ.get(ENV_CACERT) or None
    context = _tls_context(cacert) if https else None
    return StaffClient(base, secret, context, float(option(args, "timeout", DEFAULT_TIMEOUT)))
