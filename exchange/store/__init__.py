"""Persistence of a node behind one interface: SQLite now, PostgreSQL next."""

from exchange.store.base import (
    EnvelopeRecord,
    InboxItem,
    NewOutbox,
    OutboxItem,
    ReceiptRecord,
    SentItem,
    Store,
    User,
)
from exchange.store.sqlite import SqliteStore

__all__ = [
    "EnvelopeRecord",
    "InboxItem",
    "NewOutbox",
    "OutboxItem",
    "ReceiptRecord",
    "SentItem",
    "SqliteStore",
    "Store",
    "User",
]
