"""The storage interface of a node, and the records it holds.

One async interface, :class:`Store`, with an embedded SQLite implementation
(``exchange.store.sqlite``); a PostgreSQL implementation comes next, so nothing here is
SQLite-specific. Every method that changes state is one transaction: an envelope, its outbox
rows and its ledger event are committed together or not at all ("persist, then send",
DESIGN.md §6). Envelope bodies are files named by digest, written and synced before the
transaction that refers to them commits.

Records hold ids, digests, sizes and times only: never record content.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from exchange.keys.ids import OrgId
from exchange.model import (
    EnvelopeRecord,
    InboxItem,
    InboxState,
    NewOutbox,
    OutboxItem,
    ReceiptRecord,
    ReceivedEntry,
    RegisterEntry,
    RegisterRow,
    SentItem,
    SubjectKey,
    User,
)

if TYPE_CHECKING:
    from exchange.model import HeldItem, RetentionSchedule, ThreadLink
    from exchange.outbox.machine import Transition


class DuplicateError(Exception):
    """The row already exists (the caller decides whether that is a replay or a conflict)."""


# --- the sharing register ---------------------------------------------------------


class RegisterStore(Protocol):
    """The register's part of the store (``exchange.store.register``)."""

    async def record_not_shared(self, entry: RegisterEntry) -> int:
        """Store a decision not to share (with its subjects); return its register id."""
        ...

    async def register_rows(
        self, org: OrgId, *, since: float | None = None, until: float | None = None
    ) -> list[RegisterRow]:
        """Return ``org``'s register rows decided in ``since <= t < until``, oldest first."""
        ...

    async def overdue_rows(self, org: OrgId, *, due_before: str) -> list[tuple[RegisterRow, OrgId]]:
        """Return (row, recipient) for deadlines before ``due_before`` not met by a receipt."""
        ...

    async def index_received(
        self,
        owner: OrgId,
        digest: bytes,
        *,
        subjects: Sequence[SubjectKey],
        outcome: str,
        now: float,
    ) -> bool:
        """Index a received item's subjects once (at its first opening); True if new."""
        ...

    async def subject_matches(
        self, org: OrgId, hashes: Sequence[bytes]
    ) -> tuple[list[RegisterRow], list[ReceivedEntry]]:
        """Return the register rows and received items whose subjects have these hashes."""
        ...

    async def received_not_indexed(self, owner: OrgId) -> list[ReceivedEntry]:
        """Return items delivered to ``owner`` whose subjects are not in the index."""
        ...

    async def destroyed_items(self, org: OrgId) -> list[HeldItem]:
        """Return the items ``org`` destroyed under retention (exchange/store/retention.py)."""
        ...


class Store(RegisterStore, Protocol):
    """What a node needs from its database. All methods are coroutines."""

    async def close(self) -> None:
        """Finish pending work and release the database."""
        ...

    # --- envelopes the node's organisations send ---------------------------------------
    async def record_submission(
        self,
        envelope: EnvelopeRecord,
        *,
        submitted_by: str,
        now: float,
        outbox: Sequence[NewOutbox],
        ledger_events: Sequence[bytes],
        register: RegisterEntry | None = None,
        thread: ThreadLink | None = None,
        retention: RetentionSchedule | None = None,
    ) -> None:
        """Commit a sealed envelope, its outbox rows, ledger events and register row together."""
        ...

    async def list_sent(
        self, sender: OrgId, *, limit: int, before: tuple[float, bytes] | None = None
    ) -> list[SentItem]:
        """Return the newest ``limit`` envelopes ``sender`` sent, with their timelines."""
        ...

    async def sent_item(self, sender: OrgId, digest: bytes) -> SentItem | None:
        """Return one sent envelope of ``sender``, or ``None``."""
        ...

    # --- the outbox ---------------------------------------------------------------------
    async def claim_due(self, now: float, limit: int) -> list[OutboxItem]:
        """Move up to ``limit`` due items to ``attempting`` and return them."""
        ...

    async def apply_transition(self, transition: Transition) -> bool:
        """Write a transition of the outbox machine with its receipt and ledger events.

        Returns False, writing nothing, if the item's state or recall mark changed since the
        transition was computed; the caller reads the item again and asks the machine anew.
        """
        ...

    async def outbox_item(self, item_id: int) -> OutboxItem | None:
        """Return one outbox item as it is now, or ``None``."""
        ...

    async def requeue_attempting(self, now: float) -> int:
        """After a restart, put items left ``attempting`` back in the queue; return how many."""
        ...

    async def requeue_dead(self, now: float, envelope_digest: bytes | None = None) -> int:
        """Give dead items (of one envelope, or all) a fresh start; return how many."""
        ...

    async def add_outbox(
        self, envelope_digest: bytes, rows: Sequence[NewOutbox], *, now: float
    ) -> int:
        """Queue ``rows`` unless already held; return how many were new."""
        ...

    async def reopen_handed_over(
        self, route_kind: str, transport_ref: str, *, now: float, error: str
    ) -> OutboxItem | None:
        """Re-queue a handed-over item reported undelivered, on its next route.

        Returns the item as it was, or ``None`` if none matched or it was recalled.
        """
        ...

    async def outbox_counts(self) -> dict[str, int]:
        """Return the number of outbox items in each state."""
        ...

    async def receipt_counts(self) -> dict[str, int]:
        """Return the number of receipts held, by status."""
        ...

    # --- envelopes delivered to the node's organisations ---------------------------------
    async def record_delivery(
        self,
        owner: OrgId,
        envelope: EnvelopeRecord,
        *,
        now: float,
        receipt: ReceiptRecord,
        ledger_events: Sequence[bytes],
        outbox: Sequence[NewOutbox] = (),
    ) -> bytes:
        """Store an inbound envelope once; return the ``delivered`` receipt on record.

        A repeated delivery stores nothing and returns the receipt of the first one.
        """
        ...

    async def inbox(
        self, owner: OrgId, *, limit: int, before: tuple[float, bytes] | None = None
    ) -> list[InboxItem]:
        """Return the newest ``limit`` items delivered to ``owner``."""
        ...

    async def inbox_item(self, owner: OrgId, digest: bytes) -> InboxItem | None:
        """Return one inbox item of ``owner``, or ``None``."""
        ...

    async def update_inbox(
        self,
        owner: OrgId,
        digest: bytes,
        *,
        state: InboxState,
        receipt: ReceiptRecord | None,
        outbox: Sequence[NewOutbox],
        ledger_events: Sequence[bytes],
        now: float,
    ) -> bool:
        """Change an inbox item's state with its receipt, outbox rows and ledger events.

        Returns False, writing nothing, if the item was recalled meanwhile.
        """
        ...

    # --- receipts -----------------------------------------------------------------------
    async def add_receipt(
        self, receipt: ReceiptRecord, *, ledger_events: Sequence[bytes], now: float
    ) -> bool:
        """Store a verified receipt (from a recipient); return False if already held."""
        ...

    async def receipt(self, digest: bytes) -> ReceiptRecord | None:
        """Return a receipt by its digest."""
        ...

    async def receipts_for(self, envelope_digest: bytes) -> list[ReceiptRecord]:
        """Return every receipt held for an envelope, oldest first."""
        ...

    async def envelope(self, digest: bytes) -> EnvelopeRecord | None:
        """Return an envelope's facts by digest."""
        ...

    # --- the ledger ---------------------------------------------------------------------
    async def append_ledger(self, events: Sequence[bytes]) -> int:
        """Append events on their own; return the new size."""
        ...

    async def ledger_events(self, start: int, end: int) -> list[bytes]:
        """Return the events with indexes ``start <= i < end``."""
        ...

    async def ledger_size(self) -> int:
        """Return the number of events in the ledger."""
        ...

    async def ledger_events_for(self, envelope_digest: bytes) -> list[tuple[int, bytes]]:
        """Return ``(index, event)`` for every event naming the envelope, in log order."""
        ...

    async def ledger_index_of(self, event_hash: bytes) -> int | None:
        """Return the index of the event whose leaf hash is ``event_hash``."""
        ...

    async def save_checkpoint(self, size: int, note: bytes, now: float) -> None:
        """Keep a signed checkpoint."""
        ...

    async def checkpoints(self) -> list[tuple[int, bytes]]:
        """Return every checkpoint, oldest first."""
        ...

    # --- staff ----------------------------------------------------------------------------
    async def add_user(self, user: User, token_hash: bytes, now: float) -> None:
        """Create a user holding the token whose hash is given."""
        ...

    async def user_by_token_hash(self, token_hash: bytes) -> User | None:
        """Return the user holding a token, by the token's hash."""
        ...

    # --- replay protection ------------------------------------------------------------------
    async def seen_or_record_nonce(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Return True if ``(key, nonce)`` was seen; otherwise record it and return False."""
        ...
