"""The one place where exceptions become the CLI's one-line messages and exit statuses.

Every command lets library exceptions propagate; :func:`describe` turns any of them into an
exit status and one plain sentence, and ``main`` prints it as ``exchange: <sentence>``. The
statuses: 2 when the command line itself is wrong (:class:`UsageError`), 1 when an input was
refused (a key, passphrase, directory, envelope or file), 130 on Ctrl-C. Library messages are
written to name fields, rules and offsets, never content or keys (the project's error style), so
they are shown as they are; an exception this module does not know is reported by its type
name only, because its message might hold anything.

:func:`concerning` adds the subject (``key file oak.key``) to whatever goes wrong inside it,
so a message says which of several inputs was at fault.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Final

from exchange.envelope import EnvelopeError
from exchange.files import FilesError
from exchange.keys.errors import KeysError
from exchange.store.backup import BackupError
from exchange.store.damage import StoreDamagedError
from exchange.store.sql import StoreTooNewError

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


class CliError(Exception):
    """A refusal the CLI reports as one line, with its exit status."""

    status: int = EXIT_REFUSED

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(CliError):
    """The command line is wrong: a bad option, a missing setting, a malformed value."""

    status = EXIT_USAGE


class _ConcerningError(Exception):
    """An exception raised while handling one named input."""

    def __init__(self, subject: str, cause: BaseException) -> None:
        super().__init__(subject)
        self.subject = subject
        self.cause = cause


@contextlib.contextmanager
def concerning(subject: str) -> Iterator[None]:
    """Prefix the message of any exception raised in the block with ``subject``."""
    try:
        yield
    except (_ConcerningError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise _ConcerningError(subject, exc) from exc


def _os_error(exc: OSError, subject: str | None) -> str:
    name = subject or (str(exc.filename) if exc.filename is not None else "a file")
    if isinstance(exc, FileExistsError):
        return f"{name} already exists; refusing to overwrite it"
    if isinstance(exc, FileNotFoundError):
        return f"{name}: no such file or directory"
    if isinstance(exc, IsADirectoryError):
        return f"{name} is a directory, not a file"
    if isinstance(exc, PermissionError):
        return f"{name}: permission denied"
    if isinstance(exc, BrokenPipeError):
        return "the output was closed before everything was written"
    reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
    return f"{name}: {reason}"


def describe(exc: BaseException, subject: str | None = None) -> tuple[int, str]:
    """Return the exit status and the one-line message for ``exc``."""
    status, message = _describe(exc, subject)
    # One line, whatever the message: a newline could make a second line look like ours.
    return status, " ".join(message.split())


def _describe(exc: BaseException, subject: str | None) -> tuple[int, str]:  # noqa: PLR0911
    # One return per family of exceptions: this is the one place they are all translated.
    if isinstance(exc, _ConcerningError):
        return _describe(exc.cause, exc.subject)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, OSError):
        # OSError messages already name the file; the subject says what the file was for.
        return EXIT_REFUSED, _os_error(exc, subject)
    prefix = f"{subject}: " if subject else ""
    if isinstance(exc, CliError):
        return exc.status, prefix + str(exc)
    if isinstance(exc, StoreDamagedError | StoreTooNewError | BackupError):
        # Names the file and the restore procedure; never quotes a stored value.
        return EXIT_REFUSED, prefix + str(exc)
    if isinstance(exc, UnicodeError):
        return EXIT_REFUSED, prefix + "is not valid UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return EXIT_REFUSED, prefix + f"is not valid JSON (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, (EnvelopeError, KeysError, FilesError, ValueError)):
        # Library messages are plain sentences naming fields and rules, never secrets.
        return EXIT_REFUSED, prefix + str(exc)
    return (
        EXIT_REFUSED,
        prefix + f"internal error ({type(exc).__name__}); please report this as a bug",
    )
