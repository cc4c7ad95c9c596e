"""What several commands share: options, the clock, passphrases, key files, the directory.

Settings come from options first and environment variables second: ``--directory``
(``EXCHANGE_DIRECTORY``), ``--trust`` (``EXCHANGE_TRUST``), passphrases from
``EXCHANGE_PASSPHRASE`` and ``EXCHANGE_AUTHORITY_PASSPHRASE`` or a prompt on a terminal, and
the hidden ``--now`` (``EXCHANGE_NOW``) that tests use to fix the clock.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final, NoReturn, TypeAlias

from exchange.cli.errors import CliError, UsageError, concerning
from exchange.cli.state import load_with_rollback_check
from exchange.files import STDIO, read_limited
from exchange.keys.directory import MAX_NAME_LEN, MAX_TIME, Directory
from exchange.keys.errors import NoteError
from exchange.keys.ids import OrgId, parse_org_id
from exchange.keys.keyfile import MAX_KEY_FILE_LEN, KdfParams, decode_key_file, read_key_file_public
from exchange.keys.keypairs import OrgKeyPair
from exchange.keys.notes import DEFAULT_MAX_NOTE_LEN, NoteVerifier, parse_verifier_key

ENV_DIRECTORY: Final = "EXCHANGE_DIRECTORY"
ENV_TRUST: Final = "EXCHANGE_TRUST"
ENV_PASSPHRASE: Final = "EXCHANGE_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
ENV_AUTHORITY_PASSPHRASE: Final = "EXCHANGE_AUTHORITY_PASSPHRASE"  # noqa: S105 - a name
ENV_NOW: Final = "EXCHANGE_NOW"

#: A directory is a signed note; the note reader's own limit (50,000 organisations).
MAX_DIRECTORY_LEN: Final = DEFAULT_MAX_NOTE_LEN
#: A trust file holds a few verifier keys of under 100 characters each.
MAX_TRUST_FILE_LEN: Final = 64 * 1024
#: A public entry with the maximum 16 key generations and 8 routes is well under 64 KiB.
MAX_ENTRY_FILE_LEN: Final = 64 * 1024

#: An authority's name is its signed-note key name and the code of its organisation id
#: ``authority:<name>``, so it follows the org-id code rule (docs/envelope.md §3).
_AUTHORITY_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,46}")
AUTHORITY_NAMESPACE: Final = "authority:"

_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")


class Parser(argparse.ArgumentParser):
    """An argument parser that reports mistakes as one line instead of usage and exit.

    Options are never abbreviated (``--tok`` is not ``--token-env``), and arguments it does
    not recognise are named only when they look like option names: a value typed in the
    wrong place may be a secret or a child's identifier.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError`; ``main`` prints it as the one error line."""
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            words = message[len(prefix) :].split()
            names = [w for w in words if _OPTION_NAME_RE.fullmatch(w)]
            hidden = len(words) - len(names)
            shown = ", ".join(names)
            if hidden:
                more = f"{hidden} other value{'s' if hidden > 1 else ''} (not shown)"
                shown = f"{shown} and {more}" if shown else more
            message = f"unrecognised arguments: {shown}"
        raise UsageError(f"{message} (see '{self.prog} --help')")


_OPTION_NAME_RE = re.compile(r"--?[A-Za-z][A-Za-z0-9-]{0,40}")


#: What ``add_subparsers`` returns for a :class:`Parser`; each command module adds to it.
Subcommands: TypeAlias = "argparse._SubParsersAction[Parser]"


def say(text: str) -> None:
    """Write a result line to standard output."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """Write a progress or summary line to standard error (results stay on stdout)."""
    sys.stderr.write(text + "\n")


# --- argument types (argparse turns their errors into usage errors) ----------------------


def org_id_arg(value: str) -> OrgId:
    """Parse an organisation id argument."""
    try:
        return parse_org_id(value, field="an organisation id")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None


def authority_name_arg(value: str) -> str:
    """Parse a directory authority name."""
    if _AUTHORITY_NAME_RE.fullmatch(value) is None:
        raise argparse.ArgumentTypeError(
            "the authority name must be 1 to 47 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (for example 'exchange-directory.example.org')"
        )
    return value


def display_name_arg(value: str) -> str:
    """Parse an organisation's display name."""
    if not 0 < len(value) <= MAX_NAME_LEN or _CONTROL_RE.search(value):
        raise argparse.ArgumentTypeError(
            f"the name must be 1 to {MAX_NAME_LEN} characters with no control characters"
        )
    return value


def iso_time_arg(value: str) -> int:
    """Parse an ISO 8601 date or time (UTC unless it says otherwise) as unix seconds."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or time (for example 2025-09-01 or "
            "2025-09-01T08:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    if not 0 <= seconds <= MAX_TIME:
        raise argparse.ArgumentTypeError(f"{value!r} is not between 1970 and 9999")
    return seconds


def unix_time_arg(value: str) -> int:
    """Parse a time in unix seconds."""
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if not 0 <= seconds <= MAX_TIME:
        raise argparse.ArgumentTypeError(f"{value!r} is out of range")
    return seconds


# --- shared options ----------------------------------------------------------------------


def clock_options() -> Parser:
    """Return a parent parser with the hidden ``--now`` option."""
    parent = Parser(add_help=False)
    parent.add_argument("--now", type=unix_time_arg, default=None, help=argparse.SUPPRESS)
    return parent


def directory_options() -> Parser:
    """Return a parent parser with ``--directory`` and ``--trust``."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "--directory",
        metavar="FILE",
        help=f"the signed directory of organisations (default: ${ENV_DIRECTORY})",
    )
    parent.add_argument(
        "--trust",
        metavar="VKEY",
        help=(
            "the directory authority's verifier key, or a file holding it, one key per line "
            f"(default: ${ENV_TRUST}); the directory must be signed by this key"
        ),
    )
    return parent


def kdf_options() -> Parser:
    """Return a parent parser with the hidden ``--kdf-profile`` option (tests only)."""
    parent = Parser(add_help=False)
    # Hidden: "test" makes key files that a stolen copy could brute-force in no time. It
    # exists so the test suite does not spend seconds on Argon2id for every key it makes.
    parent.add_argument(
        "--kdf-profile", choices=("default", "test"), default="default", help=argparse.SUPPRESS
    )
    return parent


def kdf_params(args: argparse.Namespace) -> KdfParams:
    """Return the key-file KDF parameters chosen by ``--kdf-profile``."""
    if args.kdf_profile == "test":
        return KdfParams.fast_for_tests()
    return KdfParams.default()


def now(args: argparse.Namespace) -> int:
    """Return the current time in unix seconds (``--now`` or ``EXCHANGE_NOW`` in tests)."""
    if getattr(args, "now", None) is not None:
        return int(args.now)
    fixed = os.environ.get(ENV_NOW)
    if fixed:
        try:
            return unix_time_arg(fixed)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{ENV_NOW}: {exc}") from None
    return int(time.time())


# --- passphrases and key files -----------------------------------------------------------


def passphrase(env: str, prompt: str, *, confirm: bool = False) -> bytes:
    """Return a passphrase from ``env``, or from a prompt if standard input is a terminal."""
    value = os.environ.get(env)
    if value is not None:
        if not value:
            raise UsageError(f"{env} is set but empty; a passphrase must not be empty")
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise UsageError(
            f"no passphrase: set {env}, or run the command in a terminal to be asked for it"
        )
    entered = getpass.getpass(prompt)
    if not entered:
        raise UsageError("a passphrase must not be empty")
    if confirm and getpass.getpass("Repeat the passphrase: ") != entered:
        raise UsageError("the two passphrases differ")
    return entered.encode("utf-8")


def read_key(path: str, env: str, *, authority: bool = False) -> OrgKeyPair:
    """Read and decrypt a key file, checking its form before asking for the passphrase.

    With ``authority``, the file must hold a directory authority's key; without, it must not.
    """
    with concerning(f"key file {path}"):
        data = read_limited(path, MAX_KEY_FILE_LEN, what="the key file")
        org, _, _ = read_key_file_public(data)
        if authority and not org.startswith(AUTHORITY_NAMESPACE):
            raise CliError(
                f"it holds the keys of {org}, not of a directory authority (made by "
                "`exchange authority create`)"
            )
        if not authority and org.startswith(AUTHORITY_NAMESPACE):
            raise CliError(
                f"it holds the directory authority key {org}, which signs only the directory"
            )
        secret = passphrase(env, f"Passphrase for key file {path} ({org}): ")
        return decode_key_file(data, secret)


def refuse_existing(*paths: str | Path) -> None:
    """Raise ``FileExistsError`` if any output path exists (checked before any work)."""
    for path in paths:
        target = Path(path)
        if target.exists() or target.is_symlink():
            raise FileExistsError(17, "the output file already exists", str(target))


# --- the directory -----------------------------------------------------------------------


def trusted_keys(args: argparse.Namespace) -> list[NoteVerifier]:
    """Return the authority verifier keys from ``--trust`` or ``EXCHANGE_TRUST``."""
    value = args.trust or os.environ.get(ENV_TRUST)
    if not value:
        raise UsageError(f"no trusted authority key: give --trust VKEY_OR_FILE or set {ENV_TRUST}")
    candidate = Path(value)
    if candidate.is_file():
        with concerning(f"trust file {value}"):
            text = read_limited(candidate, MAX_TRUST_FILE_LEN, what="the trust file")
            lines = [line.strip() for line in text.decode("utf-8").splitlines()]
            keys = [parse_verifier_key(line) for line in lines if line and line[0] != "#"]
            if not keys:
                raise CliError("holds no verifier key")
            return keys
    try:
        return [parse_verifier_key(value.strip())]
    except NoteError as exc:
        raise UsageError(f"--trust is not a readable file, nor a verifier key: {exc}") from None


def directory_path(args: argparse.Namespace) -> str:
    """Return the directory file named by ``--directory`` or ``EXCHANGE_DIRECTORY``."""
    value = args.directory or os.environ.get(ENV_DIRECTORY)
    if not value:
        raise UsageError(f"no directory: give --directory FILE or set {ENV_DIRECTORY}")
    return str(value)


def load_trusted_directory(args: argparse.Namespace) -> Directory:
    """Read, verify and parse the directory, with rollback protection."""
    trusted = trusted_keys(args)
    path = directory_path(args)
    with concerning(f"directory {path}"):
        note = read_limited(path, MAX_DIRECTORY_LEN, what="the directory")
        return load_with_rollback_check(note, trusted)


@contextlib.contextmanager
def input_stream(path: str) -> Iterator[BinaryIO]:
    """Yield ``path`` open for reading; ``-`` is standard input, which is left open."""
    if path == STDIO:
        yield sys.stdin.buffer
        return
    with concerning(f"input {path}"):
        handle = Path(path).open("rb")  # noqa: SIM115 - closed by the `with` below
    with handle:
        yield handle


def join_ids(ids: Sequence[str]) -> str:
    """Return organisation ids as ``a, b, c``."""
    return ", ".join(ids)


def refusing_action(message: str) -> type[argparse.Action]:
    """Return an argparse action that refuses its option with ``message`` (a usage error).

    For an option that would carry a secret (``--token``, ``--password``): present only to
    say where the secret goes instead, and never repeating the value given.
    """

    class _Refuse(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: object,
            option_string: str | None = None,
        ) -> None:
            del parser, namespace, values, option_string
            raise UsageError(message)

    return _Refuse
