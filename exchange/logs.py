"""Structured logging for the exchange, with a processor that keeps personal data out.

Events are named like ``envelope.sealed`` and carry bound context (``envelope_id``,
``route``, ``attempt``...). Two defences keep a child's details out of every log line:

1. **An allow-list of field names.** Only fields in :data:`SAFE_FIELDS` pass with their
   value; any other field is kept by name with the value ``"<redacted>"``, so a developer who
   logs ``name=...`` sees at once that it was dropped, and nothing leaks.
2. **A value scrubber.** Even allowed string values are scanned for things shaped like a UPN,
   an NHS number or a date, which are replaced by ``"<redacted>"``.

Output is JSON when standard error is not a terminal (production) and readable key=value
text when it is. Records of the standard ``logging`` tree, where aiohttp and asyncio write,
come through the same output as one ``stdlib.record`` event naming the logger and the
exception's class only (:class:`StdlibBridge`): their messages and tracebacks can quote a
request's raw bytes, a bearer token or a child's name among them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO, cast

import structlog

#: Field names whose values may appear in logs. Values are still scrubbed.
SAFE_FIELDS: Final = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "component",
        "envelope_id",
        "digest",
        "sender",
        "recipients",
        "recipient",
        "org",
        "record_kind",
        "route",
        "attempt",
        "outcome",
        "status",
        "rule",
        "error",
        "error_class",
        "duration_ms",
        "bytes",
        "count",
        "chunk_count",
        "key_id",
        "version",
        "path",
        "command",
        # Staff sign-in: an account's number, a session's short reference (the start of
        # the hash naming it, which opens nothing) and how it was signed in.
        "account",
        "session",
        "method",
        # Background tasks (exchange.workers.supervisor): the task, the stage that failed
        # and the kind of fault (storage-full, ledger-integrity, store, error).
        "task",
        "stage",
        "cause",
        # Directory updates (exchange.service.directory_updates): where a note came from
        # (url, file, start).
        "source",
        # Single sign-on (exchange.service.sso): the provider's id in the node's settings.
        "provider",
    }
)

REDACTED: Final = "<redacted>"

# A UPN: a check letter then 12 characters, digits with an optional letter at the end
# (DfE "Unique pupil numbers" guidance); NHS numbers: 10 digits, possibly spaced 3-3-4;
# dates in the usual written forms. Over-matching is the safe direction here.
_UPN: Final = re.compile(r"\b[A-HJ-NP-RT-Z]\d{11}[0-9A-HJ-NP-RT-Z]\b")
_NHS: Final = re.compile(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b")
_DATE: Final = re.compile(r"\b(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4})\b")


def scrub(value: str) -> str:
    """Replace anything shaped like a UPN, NHS number or date in ``value``."""
    for pattern in (_UPN, _NHS, _DATE):
        value = pattern.sub(REDACTED, value)
    return value


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub(str(value))


def drop_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Structlog processor: redact fields not on the allow-list and scrub the rest."""
    for key in list(event_dict):
        if key not in SAFE_FIELDS:
            event_dict[key] = REDACTED
        elif key != "timestamp":
            event_dict[key] = _scrub_value(event_dict[key])
    return event_dict


class StdlibBridge(logging.Handler):
    """A ``logging`` handler passing each record on as one structlog event, without its text.

    A record's message, arguments and traceback are dropped, not scrubbed: aiohttp's parser
    errors quote raw header bytes, and asyncio's quote exceptions' messages. What is kept
    is which logger wrote, at which level, and the class of the exception, if any.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Log ``record`` as a ``stdlib.record`` event of component ``record.name``."""
        exc = record.exc_info[1] if record.exc_info else None
        get_logger(record.name).log(
            record.levelno,
            "stdlib.record",
            error_class=None if exc is None else type(exc).__name__,
        )


def _bridge_stdlib_logging(level: int) -> None:
    """Make :class:`StdlibBridge` the root logger's one handler of ours (at WARNING or above).

    With a handler on the root, ``logging.lastResort`` (which prints whole tracebacks to
    standard error) is no longer used. Calling this again replaces the bridge, never adds one.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StdlibBridge)]:
        root.removeHandler(handler)
    root.addHandler(StdlibBridge(level=max(level, logging.WARNING)))


class CurrentStderr:
    """Standard error as it is when a line is written, not when logging was configured.

    ``sys.stderr`` may be replaced after configuration (a test's capture, for one); writing
    to the stream that was current then would write to a closed file.
    """

    def write(self, text: str) -> int:
        """Write ``text`` to the current standard error."""
        return sys.stderr.write(text)

    def flush(self) -> None:
        """Flush the current standard error."""
        sys.stderr.flush()

    def isatty(self) -> bool:
        """Whether the current standard error is a terminal."""
        return sys.stderr.isatty()


def configure(
    *,
    json: bool | None = None,
    level: int = logging.INFO,
    stream: TextIO | CurrentStderr | None = None,
    bridge_stdlib: bool = True,
) -> None:
    """Configure structlog for the process; JSON unless the stream is a terminal.

    ``stream`` defaults to standard error; tests pass a buffer to read what was logged.
    ``bridge_stdlib`` also sends the standard ``logging`` tree's warnings through structlog
    (:class:`StdlibBridge`); a command that only borrows logging for a while leaves it out.
    """
    out = sys.stderr if stream is None else stream
    if json is None:
        json = not out.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_sensitive,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, out)),
        cache_logger_on_first_use=False,
    )
    if bridge_stdlib:
        _bridge_stdlib_logging(level)


def get_logger(name: str) -> Any:
    """Return a lazy structlog logger for component ``name``.

    Lazy, so a module-level logger follows :func:`configure` even if it was created before.
    """
    return structlog.get_logger(component=name)
