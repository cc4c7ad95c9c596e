"""What staff see of their sent items and inbox: each item with every fact other features add.

A sent item carries its per-recipient delivery timelines, whether each recipient is overdue,
each recipient's recall outcome, its thread links and corrections, and its retention
standing; an inbox item carries when and by which role it was opened or recalled, its thread
links and its retention standing. :class:`Views` builds them in one place, so the HTTP layer
only renders them and no feature patches another's output. Every query is scoped to the
user's organisation: a foreign item is "not found", never "forbidden".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Final, Literal

from exchange.keys.ids import OrgId
from exchange.ledger.events import decode_event
from exchange.model import InboxItem, OutboxItem, RecallRow, ReceiptRecord, SentItem, User
from exchange.outbox.machine import PENDING
from exchange.outbox.skew import skew_in_reason
from exchange.policy import Deadline, deadline_status, local_date
from exchange.service.context import ServiceContext
from exchange.service.errors import ForbiddenError, NotFoundError
from exchange.service.ledger import NodeLedger
from exchange.service.retention import RetentionStanding, standing
from exchange.store.base import InboxPlace
from exchange.store.sent_lists import SentDeadline, SentFilter, SentFilterKind

#: Where a sent item stands with one recipient (:attr:`RecipientView.status`).
RecipientStatus = Literal[
    "queued", "sent", "delivered", "opened", "acknowledged", "rejected", "overdue", "recalled",
    "failed",
]  # fmt: skip

#: Ledger events shown in a sent item's status timeline.
_TIMELINE_EVENTS: Final = frozenset({"submitted", "attempted", "fallback", "delivered", "recalled"})


@dataclass(frozen=True)
class Links:
    """An item's place in its thread: the item it replies to or corrects, and its correctors."""

    in_reply_to: bytes | None = None
    corrects: bytes | None = None
    corrected_by: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class RecipientView:
    """One recipient of a sent item: its delivery, its receipts, overdue or not, its recall.

    ``overdue`` is true when no ``delivered`` receipt came long after submission;
    ``deadline_status`` is where the item's deadline stands for this recipient (``pending``,
    ``met``, ``met-late``, ``overdue``), or None when the item has no deadline.
    """

    delivery: OutboxItem
    receipts: tuple[ReceiptRecord, ...]
    overdue: bool
    recall: RecallRow | None
    deadline_status: str | None = None

    @property
    def clock_skew(self) -> int | None:
        """How far the far side's clock is off (seconds, negative: behind), if that holds it up.

        Set while the delivery waits to be tried again because the recipient's node (or its
        relay) refused the request's time; None otherwise.
        """
        if self.delivery.state not in PENDING:
            return None
        return skew_in_reason(self.delivery.last_error)

    @property
    def status(self) -> RecipientStatus:
        """Where the item stands with this recipient, in one word (the sent list's filters).

        Settled first (recalled, rejected, acknowledged), then a delivery that failed, then
        overdue (undelivered for long, or past its deadline), then how far it got: opened,
        delivered (the recipient's node holds it), sent (handed over, no receipt yet, as in
        a relay mailbox not yet collected), queued.
        """
        statuses = {r.status for r in self.receipts}
        recalled = self.recall is not None and self.recall.outcome == "recalled"
        if self.delivery.state == "recalled" or recalled:
            return "recalled"
        for answer in ("rejected", "acknowledged"):
            if answer in statuses:
                return answer
        if self.delivery.state == "dead":
            return "failed"
        if self.overdue or self.deadline_status == "overdue":
            return "overdue"
        for reached in ("opened", "delivered"):
            if reached in statuses:
                return reached
        return "sent" if self.delivery.state == "delivered" else "queued"


@dataclass(frozen=True)
class TimelineEvent:
    """One of the sender's own ledger events about a sent item (an attempt, a fallback)."""

    index: int
    type: str
    time: int
    counterparty: str | None
    reason: str | None


@dataclass(frozen=True)
class SentView:
    """A sent item as staff see it; ``events`` is given for a single item only."""

    item: SentItem
    recipients: tuple[RecipientView, ...]
    links: Links
    retention: RetentionStanding
    events: tuple[TimelineEvent, ...] | None = None
    deadline: SentDeadline | None = None


@dataclass(frozen=True)
class InboxView:
    """An inbox item as staff see it: when and by which role opened or recalled, its links."""

    item: InboxItem
    opened_at: float | None
    opened_by_role: str | None
    recalled_at: float | None
    links: Links
    retention: RetentionStanding


@dataclass(frozen=True)
class ReceiptsView:
    """The receipts held for an item and inclusion proofs of the organisation's events."""

    receipts: tuple[ReceiptRecord, ...]
    origin: str
    #: (index, proof bundle) of each of the organisation's ledger events about the item.
    proofs: tuple[tuple[int, bytes], ...]


#: The roles that see their organisation's sent and received items (never their content:
#: opening is the inbox's, for fewer roles). An administrator runs accounts and the node,
#: and sees items only as counts and dead letters (``exchange.service.node_state``).
ITEM_ROLES: Final = frozenset({"dsl", "staff", "dpo"})


def check_sees_items(user: User) -> None:
    """Refuse unless the user's role sees its organisation's items."""
    if user.role not in ITEM_ROLES:
        raise ForbiddenError(f"the role {user.role} does not see sent or received items")


class Views:
    """Sent items, inbox items and receipts as staff see them, over a :class:`ServiceContext`.

    Every method first checks the role (:data:`ITEM_ROLES`), then looks only at the user's
    own organisation, so another organisation's item is not found, even on the same node.
    """

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    async def sent_items(
        self,
        user: User,
        *,
        limit: int,
        before: tuple[float, bytes] | None,
        after: tuple[float, bytes] | None = None,
        only: SentFilterKind | None = None,
    ) -> list[SentView]:
        """Return the newest ``limit`` items the user's organisation sent (before a cursor).

        ``after`` gives the page before a cursor instead; ``only`` keeps the items awaiting
        acknowledgement, or the overdue ones, as :attr:`RecipientView.status` has them.
        """
        check_sees_items(user)
        narrowed = None
        if only is not None:
            now = self.context.clock()
            narrowed = SentFilter(
                kind=only,
                today=self._today().isoformat(),
                late_before=now - self.context.overdue_after,
            )
        items = await self.context.store.list_sent(
            user.org, limit=limit, before=before, after=after, only=narrowed
        )
        return await self._sent_views(user.org, items)

    async def sent_item(self, user: User, digest: bytes) -> SentView:
        """Return one sent item with the sender's timeline events, or refuse as not found."""
        check_sees_items(user)
        store = self.context.store
        item = await store.sent_item(user.org, digest)
        if item is None:
            raise NotFoundError("no such item among this organisation's sent items")
        events = await self._timeline(user.org, item.envelope.digest)
        (view,) = await self._sent_views(user.org, [item])
        return replace(view, events=events)

    async def inbox_items(
        self, user: User, *, limit: int, before: tuple[float, bytes] | None
    ) -> list[InboxView]:
        """Return the newest ``limit`` items delivered to the user's organisation."""
        check_sees_items(user)
        items = await self.context.store.inbox(user.org, limit=limit, before=before)
        return await self._inbox_views(user.org, items)

    async def inbox_unread_first(
        self, user: User, *, limit: int, after: InboxPlace | None
    ) -> list[InboxView]:
        """Return ``limit`` of the organisation's items, unread first, then newest first."""
        check_sees_items(user)
        items = await self.context.store.inbox_unread_first(user.org, limit=limit, after=after)
        return await self._inbox_views(user.org, items)

    async def inbox_item(self, user: User, digest: bytes) -> InboxView:
        """Return one item of the organisation's inbox, or refuse as not found."""
        check_sees_items(user)
        item = await self.context.store.inbox_item(user.org, digest)
        if item is None:
            raise NotFoundError("no such item in this organisation's inbox")
        (view,) = await self._inbox_views(user.org, [item])
        return view

    async def inbox_item_by_envelope_id(self, user: User, envelope_id: bytes) -> InboxView:
        """Return the organisation's inbox item of an envelope id, or refuse as not found.

        The notice mailed when an item arrives names the envelope by its id, not its digest.
        """
        check_sees_items(user)
        item = await self.context.store.inbox_item_by_envelope_id(user.org, envelope_id)
        if item is None:
            raise NotFoundError("no such item in this organisation's inbox")
        (view,) = await self._inbox_views(user.org, [item])
        return view

    async def _inbox_views(self, org: OrgId, items: Sequence[InboxItem]) -> list[InboxView]:
        store = self.context.store
        digests = [i.envelope.digest for i in items]
        if not digests:
            return []
        opened, links, held = await asyncio.gather(
            store.inbox_opened(org, digests),
            store.links_of(org, digests),
            store.held_items(org, digests),
        )
        today = self._today()
        views = []
        for item in items:
            digest = item.envelope.digest
            opened_at, role, recalled_at = opened.get(digest, (None, None, None))
            views.append(
                InboxView(
                    item=item,
                    opened_at=opened_at,
                    opened_by_role=role,
                    recalled_at=recalled_at,
                    links=_links(links.get(digest), ()),
                    retention=standing(held.get(digest), today),
                )
            )
        return views

    async def receipts(self, user: User, digest: bytes, ledger: NodeLedger) -> ReceiptsView:
        """Return the receipts held for one of the organisation's items, with proofs.

        The sender sees every recipient's receipts; a recipient only its own, or a
        co-recipient served by the same node would see the other organisation's opened and
        acknowledged. The node's log is shared by its tenants, so only this organisation's
        events are proved.
        """
        check_sees_items(user)
        store = self.context.store
        sent = await store.sent_item(user.org, digest)
        received = await store.inbox_item(user.org, digest)
        if sent is None and received is None:
            raise NotFoundError("no such item for this organisation")
        held = tuple(
            r
            for r in await store.receipts_for(digest)
            if sent is not None or r.receipter == user.org
        )
        await ledger.checkpoint()
        proofs = []
        for index, event in await store.ledger_events_for(digest):
            if decode_event(event).org != user.org:
                continue
            bundle = await ledger.bundle_at(index, event)
            if bundle is not None:
                proofs.append((index, bundle))
        return ReceiptsView(held, ledger.origin, tuple(proofs))

    def _today(self) -> date:
        """Return today's date where the node's rules are read (for retention standings)."""
        return local_date(datetime.fromtimestamp(self.context.clock(), UTC), argument="now")

    async def _sent_views(self, org: OrgId, items: Sequence[SentItem]) -> list[SentView]:
        store = self.context.store
        digests = [i.envelope.digest for i in items]
        if not digests:
            return []
        # Asked together: the store runs them in one go on a reading thread.
        recalls, links, corrections, held, deadlines = await asyncio.gather(
            store.recalls_for(org, digests),
            store.links_of(org, digests),
            store.corrections_of(org, digests),
            store.held_items(org, digests),
            store.sent_deadlines(org, digests),
        )
        now = self.context.clock()
        today = self._today()
        views = []
        for item in items:
            digest = item.envelope.digest
            deadline = deadlines.get(digest)
            by_recipient = {r.recipient: r for r in recalls.get(digest, [])}
            # Overdue: no "delivered" receipt yet, long after submission (a relay mailbox
            # not collected, a MESH message not downloaded, a route down for a day).
            late = now - item.submitted_at > self.context.overdue_after
            recipients = []
            for delivery in item.deliveries:
                if delivery.kind != "envelope":
                    continue
                receipts = tuple(r for r in item.receipts if r.receipter == delivery.destination)
                overdue = late and not any(r.status == "delivered" for r in receipts)
                recipient = RecipientView(
                    delivery,
                    receipts,
                    overdue,
                    by_recipient.get(delivery.destination),
                    _deadline_status(deadline, receipts, now),
                )
                recipients.append(recipient)
            views.append(
                SentView(
                    item=item,
                    recipients=tuple(recipients),
                    links=_links(links.get(digest), corrections.get(digest, [])),
                    retention=standing(held.get(digest), today),
                    deadline=deadline,
                )
            )
        return views

    async def _timeline(self, org: OrgId, digest: bytes) -> tuple[TimelineEvent, ...]:
        """Return the sender's own ledger events for an envelope: every attempt and fallback."""
        events = []
        for index, raw in await self.context.store.ledger_events_for(digest):
            event = decode_event(raw)
            if event.org != org or event.type.value not in _TIMELINE_EVENTS:
                continue
            events.append(
                TimelineEvent(index, event.type.value, event.time, event.counterparty, event.reason)
            )
        return tuple(events)


def _links(link: tuple[bytes, str] | None, corrected_by: Sequence[bytes]) -> Links:
    """Return an item's links from its (parent, relation) and the items correcting it."""
    if link is None:
        return Links(corrected_by=tuple(corrected_by))
    parent, relation = link
    corrects = parent if relation == "correction" else None
    return Links(in_reply_to=parent, corrects=corrects, corrected_by=tuple(corrected_by))


def _deadline_status(
    deadline: SentDeadline | None, receipts: Sequence[ReceiptRecord], now: float
) -> str | None:
    """Return where a deadline stands for one recipient, met by its first satisfying receipt."""
    if deadline is None:
        return None
    met = [r.time for r in receipts if r.status in deadline.satisfied_by]
    moment = datetime.fromtimestamp(now, UTC)
    # A receipt carries the recipient's clock, which may run a little ahead of ours.
    met_at = None if not met else min(datetime.fromtimestamp(min(met), UTC), moment)
    due = Deadline(date.fromisoformat(deadline.due), deadline.rule, "")
    return deadline_status(due, met_at, moment).value
