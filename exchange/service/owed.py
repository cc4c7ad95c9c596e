"""What an organisation owes: received items still waiting for its answer, by deadline.

The overdue list (:mod:`exchange.service.register_reports`) is the sender's side: deadlines
its recipients missed. This is the other side. A received item is owed an answer when its
kind's deadline is met only by the recipient acting (an acknowledgement: a referral, an
information request; a CP file's deadline is met once it is held, so nothing is owed) and
nobody has acknowledged or rejected it yet.

The sender's register holds the deadline, on the sender's node; the recipient works it out
again with its own node's rules (``[deadlines.<kind>]``, docs/policy.md §3) when the rule
starts from the submission, using the time the sender sealed the envelope. A due date the
sender put in the record (an information request's) is sealed inside it, so the list says
it is in the record rather than opening anything: opening is what the ledger records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from exchange.keys.ids import OrgId
from exchange.model import InboxItem, User
from exchange.policy import (
    CalendarCoverageError,
    ClockStart,
    DeadlineFacts,
    deadline_for,
    local_date,
)
from exchange.service.context import ServiceContext
from exchange.service.errors import ForbiddenError
from exchange.sharing.prepare import SATISFIED_BY

#: The roles that may see what their organisation owes (as for the overdue list).
OWED_ROLES: Final = frozenset({"dsl", "staff", "dpo"})


@dataclass(frozen=True)
class OwedItem:
    """A received item waiting for the organisation's answer: ids, kinds, dates only.

    ``due`` is None when the due date is sealed in the record (or the calendar does not
    reach it); ``overdue`` is true once the end of ``due`` has passed in London.
    """

    digest: bytes
    envelope_id: bytes
    sender: OrgId
    record_kind: str
    received_at: float
    opened: bool
    due: date | None
    rule: str | None
    overdue: bool


class Owed:
    """Received items an organisation has not answered, over a :class:`ServiceContext`."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    async def owed_by(self, user: User) -> list[OwedItem]:
        """Return what the user's organisation owes, soonest deadline first (DSL, staff, DPO).

        Items whose due date is in the record come last, oldest first.
        """
        if user.role not in OWED_ROLES:
            raise ForbiddenError(f"the role {user.role} may not see overdue items")
        self.context.tenant(user.org)
        now = datetime.fromtimestamp(self.context.clock(), UTC)
        today = local_date(now, argument="now")
        owed = [
            self._owed(item, today)
            for item in await self.context.store.inbox_awaiting(user.org)
            if _needs_answer(item.envelope.record_kind)
        ]
        return sorted(owed, key=lambda o: (o.due is None, o.due or date.max, o.received_at))

    def _owed(self, item: InboxItem, today: date) -> OwedItem:
        env = item.envelope
        kind = env.record_kind
        records = self.context.records
        rule = records.policy.deadlines.get(kind)
        due: date | None = None
        if rule is not None and rule.start is ClockStart.SUBMITTED:
            facts = DeadlineFacts(submitted_at=datetime.fromtimestamp(env.created, UTC))
            try:
                deadline = deadline_for(kind, facts, records.policy, records.calendar)
            except (CalendarCoverageError, ValueError):
                deadline = None
            due = None if deadline is None else deadline.due
        return OwedItem(
            digest=env.digest,
            envelope_id=env.envelope_id,
            sender=env.sender,
            record_kind=kind,
            received_at=item.received_at,
            opened=item.state == "opened",
            due=due,
            rule=None if rule is None else rule.rule,
            overdue=due is not None and today > due,
        )


def _needs_answer(kind: str) -> bool:
    """Whether a received item of ``kind`` waits for its recipient to answer it."""
    satisfied = SATISFIED_BY.get(kind)
    return satisfied is not None and "delivered" not in satisfied
