"""What an exception says about the node's own health: storage full, ledger broken, store.

A request or a background task that fails because of the node itself, not its input, is
reported by the *kind* of fault, never by the exception's message (which could quote
anything): :func:`fault_of` names it, and the words it gives are the ones operators and
users see (docs/node.md, "Failure modes").

- ``storage-full``: SQLite's ``SQLITE_FULL`` ("database or disk is full") or an ``OSError``
  with ``ENOSPC`` or ``EDQUOT``, anywhere in the exception's chain. It passes once space
  returns, with no restart.
- ``ledger-integrity``: the stored ledger no longer matches the checkpoints this node signed (a
  changed or missing row). It does not pass by itself: the ledger must be restored.
- ``store-damaged``: the database file is damaged (:class:`StoreDamagedError`: a malformed
  page, not a database, a stored value that is not UTF-8). It does not pass by itself: the
  database must be restored from a backup.
- ``store-unavailable``: the PostgreSQL database cannot be reached (restarting, failing
  over, the network down). It passes when it answers again; the answer asks to retry.
- ``store``: any other error of the database (SQLite or PostgreSQL).
- ``error``: anything else (a bug, or a fault this module does not know yet).
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass
from typing import Final, Literal

from exchange.ledger.errors import InconsistentCheckpointError, LogVerificationError
from exchange.store.damage import StoreDamagedError
from exchange.store.postgres import is_database_error, is_database_full, is_unreachable

FaultKind = Literal[
    "storage-full", "ledger-integrity", "store-damaged", "store-unavailable", "store", "error"
]

#: SQLite's primary result code for "database or disk is full".
SQLITE_FULL: Final = 13
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
#: How deep :func:`fault_of` looks through ``__cause__`` and ``__context__``.
_MAX_CHAIN: Final = 8

#: What a request refused for a full disk is told (the staff API, the web pages, peers).
STORAGE_FULL_REFUSAL: Final = "the node's storage is full; nothing was saved"
#: What a request needing the ledger is told while the ledger does not verify.
LEDGER_REFUSAL: Final = (
    "the node's ledger does not verify, so it can give no proof now; its administrator must "
    "restore the ledger"
)
#: What a request is told while the node's database is damaged (the log and /readyz name
#: the file; an answer does not).
DAMAGED_REFUSAL: Final = (
    "the node's database is damaged, so nothing can be read or saved; the person who runs "
    "the node must restore it from a backup"
)
#: What a request is told while the node's database cannot be reached.
UNAVAILABLE_REFUSAL: Final = (
    "the node cannot reach its database just now, so nothing was saved; try again in a minute"
)
#: Seconds a client is asked to wait (``Retry-After``) while the database cannot be reached.
UNAVAILABLE_RETRY_AFTER: Final = 30
#: Seconds a peer is asked to wait (``Retry-After``) when this node's storage is full.
STORAGE_FULL_RETRY_AFTER: Final = 30


@dataclass(frozen=True, slots=True)
class Fault:
    """A kind of failure of the node itself, and how to say it in plain words.

    ``urgent`` faults make the node unready at once, not only after a task has failed for a
    while: a full disk refuses every write, and a ledger that does not verify stays so.
    """

    kind: FaultKind
    words: str
    urgent: bool = False


STORAGE_FULL: Final = Fault("storage-full", "the node's storage is full", urgent=True)
LEDGER_BROKEN: Final = Fault("ledger-integrity", "the ledger does not verify", urgent=True)
STORE_DAMAGED: Final = Fault("store-damaged", "the node's database is damaged", urgent=True)
STORE_UNAVAILABLE: Final = Fault(
    "store-unavailable", "the node cannot reach its database", urgent=True
)
STORE_FAILS: Final = Fault("store", "the node's database fails")


def _chain(exc: BaseException) -> list[BaseException]:
    """Return ``exc`` and the exceptions it was raised from or while handling, nearest first."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < _MAX_CHAIN and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _storage_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF == SQLITE_FULL
        # An error made by hand (or by an older driver) carries no code, only SQLite's text.
        return "database or disk is full" in str(exc)
    if is_database_full(exc):
        return True
    return isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS


def is_storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the node's storage is full."""
    return any(_storage_full(e) for e in _chain(exc))


def fault_of(exc: BaseException) -> Fault:
    """Return the fault ``exc`` shows; ``error`` names only its class, never its message."""
    chain = _chain(exc)
    if any(_storage_full(e) for e in chain):
        return STORAGE_FULL
    if any(isinstance(e, InconsistentCheckpointError | LogVerificationError) for e in chain):
        return LEDGER_BROKEN
    if any(isinstance(e, StoreDamagedError) for e in chain):
        return STORE_DAMAGED
    if any(is_unreachable(e) for e in chain):
        return STORE_UNAVAILABLE
    if any(isinstance(e, sqlite3.Error) or is_database_error(e) for e in chain):
        return STORE_FAILS
    return Fault("error", f"it fails ({type(exc).__name__})")
