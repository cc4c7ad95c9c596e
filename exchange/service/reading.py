"""What staff read of an inbox item: its record, its attachments and what their organisation owes.

Reading goes through :meth:`~exchange.service.inbox.Inbox.open_item`, so every reading is
what the signed receipts and the ledger record: the first one signs the ``opened`` receipt,
and each one (a page showing the record, a download of one attachment) appends an
``accessed`` event. A download is only for an item the organisation has already opened, so
a document can never be the first thing released. The opened content is decoded here, once
per call, into the record and where its files are (:mod:`exchange.records.scanning`);
a file's bytes are streamed from the envelope body, never held whole.

The deadline a receiver owes is worked out from the node's own deadline rules: for a kind
whose deadline is met only by the receiver's decision (a referral's acknowledgement, an
information request's answer), from the envelope's creation and, once opened, the dates in
the record. A kind met by delivery alone (a CP file) owes the receiver nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any, Final

from exchange.model import User
from exchange.policy import CalendarCoverageError, Deadline, DeadlineFacts, deadline_for
from exchange.receipts import ACKNOWLEDGEMENT_CODES, REJECTION_CODES
from exchange.records.scanning import Entry
from exchange.service.context import ServiceContext
from exchange.service.inbox import OPENING_ROLES, Inbox
from exchange.service.opened_bodies import OpenedItem
from exchange.service.views import InboxView
from exchange.sharing.prepare import SATISFIED_BY

#: Kinds whose deadline only the receiver's decision meets: the receiver owes it.
OWED_BY_RECEIVER: Final = frozenset(
    kind for kind, statuses in SATISFIED_BY.items() if "delivered" not in statuses
)


class Reading:
    """Reading opened inbox items, over the node's :class:`ServiceContext` and inbox."""

    def __init__(self, context: ServiceContext, inbox: Inbox) -> None:
        self.context = context
        self.inbox = inbox

    @staticmethod
    def may_open(user: User) -> bool:
        """Whether the user's role may open records (the inbox's open and decide check it)."""
        return user.role in OPENING_ROLES

    @staticmethod
    def decision_codes(*, accept: bool) -> tuple[str, ...]:
        """Return the codes offered for an acknowledgement's outcome or a rejection's reason."""
        return ACKNOWLEDGEMENT_CODES if accept else REJECTION_CODES

    async def read_item(self, user: User, digest: bytes) -> OpenedItem | None:
        """Open an item (recorded as :meth:`Inbox.open_item` records it): its record and files.

        Returns None when the content is not a record container (an item imported from
        elsewhere may hold anything); it is never shown raw.
        """
        opened = await self.inbox.open_item(user, digest)
        return None if opened.record is None else opened

    async def attachment(
        self, user: User, digest: bytes, number: int
    ) -> tuple[Entry, AsyncIterator[bytes]]:
        """Return attachment ``number`` (from 1) of an item the organisation has opened.

        The reading is recorded (:meth:`Inbox.attachment`); the file's bytes come from the
        iterator, verified while they stream: one that breaks part-way raises
        :class:`~exchange.service.opened_bodies.StreamBrokenError`. An item not yet
        opened is refused: a download is never the first opening.
        """
        return await self.inbox.attachment(user, digest, number)

    async def content(self, user: User, digest: bytes) -> tuple[int, AsyncIterator[bytes]]:
        """Open an item (recorded) and return its content's length and its bytes, streamed."""
        return await self.inbox.content(user, digest)

    def deadline_owed(self, view: InboxView, record: dict[str, Any] | None) -> Deadline | None:
        """Return the deadline the receiving organisation owes for an item, or None.

        ``record`` is the opened record's data, or None before opening (a deadline that
        starts from a date inside the record is then unknown).
        """
        envelope = view.item.envelope
        if envelope.record_kind not in OWED_BY_RECEIVER:
            return None
        facts = DeadlineFacts(
            submitted_at=datetime.fromtimestamp(envelope.created, UTC),
            due=_record_date(record, "due_date"),
        )
        setup = self.context.records
        try:
            return deadline_for(envelope.record_kind, facts, setup.policy, setup.calendar)
        except (CalendarCoverageError, ValueError):
            return None


def _record_date(record: dict[str, Any] | None, field: str) -> date | None:
    """Return a date field of a record (validated by its schema), or None."""
    value = None if record is None else record.get(field)
    return date.fromisoformat(value) if isinstance(value, str) else None
