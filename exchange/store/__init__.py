"""Persistence of a node behind one interface: SQLite now, PostgreSQL next.

The value types the store keeps live in :mod:`exchange.model`; this package holds the
:class:`Store` protocol and its implementations, which apply changes and hold no rules.
"""

from exchange.store.base import DuplicateError, FirstOpened, ItemOpening, OpeningOutcome, Store
from exchange.store.sqlite import SqliteStore

__all__ = [
    "DuplicateError",
    "FirstOpened",
    "ItemOpening",
    "OpeningOutcome",
    "SqliteStore",
    "Store",
]
