"""What the sent-items and overdue lists read beyond the items: filters, deadlines, owed items.

A sent list may be narrowed to the items still **awaiting acknowledgement** from a
recipient, or to the **overdue** ones (:class:`SentFilter`). Both are conditions on one
``sent`` row, per recipient (its ``envelope`` outbox row), so the list keeps its order and
its cursor; the words are those of :attr:`exchange.service.views.RecipientView.status`:

- a recipient is settled once it was recalled (its outbox item cancelled, or a recall
  outcome ``recalled``) or it answered (an ``acknowledged`` or ``rejected`` receipt);
- awaiting acknowledgement: some recipient is not settled;
- overdue: some recipient is neither recalled nor has rejected it, and either the register's
  deadline passed without a receipt that meets it, or no ``delivered`` receipt came long
  after submission (the service's ``overdue_after``).

:meth:`SentListTables.sent_deadlines` reads each sent item's deadline from its register row;
:meth:`SentListTables.inbox_awaiting` the received items nobody has answered yet, which the
overdue page turns into what an organisation owes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from exchange.keys.ids import OrgId
from exchange.model import InboxItem
from exchange.store.rows import Tables, envelope_row
from exchange.store.sql import Db

#: The sent list's filters, as the pages and the service name them.
SentFilterKind = Literal["awaiting-acknowledgement", "overdue"]

#: Most received items the overdue page lists as owed.
MAX_OWED: Final = 500

_RECALLED: Final = (
    "(o.state = 'recalled' OR EXISTS (SELECT 1 FROM recalls rc WHERE rc.org = s.sender "
    "AND rc.digest = s.digest AND rc.recipient = o.destination AND rc.outcome = 'recalled'))"
)


def _answered(statuses: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM receipts x WHERE x.envelope_digest = s.digest "
        f"AND x.receipter = o.destination AND x.status IN ({statuses}))"
    )


_ANSWERED: Final = _answered("'acknowledged', 'rejected'")
_REJECTED: Final = _answered("'rejected'")
_DELIVERED: Final = _answered("'delivered'")

_AWAITING: Final = (
    "EXISTS (SELECT 1 FROM outbox o WHERE o.envelope_digest = s.digest AND o.kind = 'envelope' "
    f"AND o.origin = s.sender AND NOT {_RECALLED} "
    f"AND NOT {_ANSWERED})"
)
_OVERDUE: Final = (
    "EXISTS (SELECT 1 FROM outbox o WHERE o.envelope_digest = s.digest AND o.kind = 'envelope' "
    f"AND o.origin = s.sender AND NOT {_REJECTED} AND NOT {_RECALLED} AND ("
    "EXISTS (SELECT 1 FROM register r WHERE r.org = s.sender AND r.envelope_digest = s.digest "
    "AND r.deadline_due IS NOT NULL AND r.deadline_due < ? AND NOT EXISTS (SELECT 1 FROM "
    "receipts y WHERE y.envelope_digest = s.digest AND y.receipter = o.destination "
    "AND r.satisfied_by LIKE '%,' || y.status || ',%')) "
    f"OR (s.submitted_at < ? AND NOT {_DELIVERED})))"
)


@dataclass(frozen=True)
class SentFilter:
    """A narrowing of a sent list: which items, and the moments it depends on.

    ``today`` is the London date (``YYYY-MM-DD``) whose earlier deadlines have passed;
    ``late_before`` the submission time before which an item without a ``delivered``
    receipt is overdue.
    """

    kind: SentFilterKind
    today: str
    late_before: float

    def condition(self) -> tuple[str, tuple[object, ...]]:
        """Return the SQL condition on a ``sent s`` row, and its parameters."""
        if self.kind == "awaiting-acknowledgement":
            return _AWAITING, ()
        return _OVERDUE, (self.today, self.late_before)


@dataclass(frozen=True)
class SentDeadline:
    """A sent item's deadline from its register row: a London date, its rule and its words."""

    due: str
    rule: str
    explanation: str
    satisfied_by: tuple[str, ...]


class SentListTables(Tables):
    """Deadlines of sent items and unanswered received items, for the lists staff see."""

    async def sent_deadlines(
        self, org: OrgId, digests: Sequence[bytes]
    ) -> dict[bytes, SentDeadline]:
        """Return the deadline ``org`` registered for each of these sent items that has one."""

        def read(db: Db) -> dict[bytes, SentDeadline]:
            found: dict[bytes, SentDeadline] = {}
            for digest in digests:
                row = db.execute(
                    "SELECT deadline_due, deadline_rule, deadline_explanation, satisfied_by "
                    "FROM register WHERE org = ? AND envelope_digest = ? "
                    "AND deadline_due IS NOT NULL",
                    (org, digest),
                ).fetchone()
                if row is not None:
                    found[digest] = SentDeadline(
                        due=str(row[0]),
                        rule=str(row[1] or ""),
                        explanation=str(row[2] or ""),
                        satisfied_by=tuple(s for s in str(row[3]).split(",") if s),
                    )
            return found

        return await self._read(read)

    async def inbox_awaiting(self, owner: OrgId, *, limit: int = MAX_OWED) -> list[InboxItem]:
        """Return ``owner``'s received items nobody has acknowledged or rejected, oldest first."""

        def read(db: Db) -> list[InboxItem]:
            rows = db.execute(
                "SELECT i.owner, i.received_at, i.state, i.delivered_receipt, e.digest, "
                "e.envelope_id, e.sender, e.recipients, e.record_kind, e.created, e.length "
                "FROM inbox i JOIN envelopes e ON e.digest = i.digest "
                "WHERE i.owner = ? AND i.state IN ('delivered', 'opened') "
                "ORDER BY i.received_at, i.digest LIMIT ?",
                (owner, limit),
            ).fetchall()
            return [
                InboxItem(
                    owner=OrgId(r["owner"]),
                    envelope=envelope_row(r),
                    received_at=r["received_at"],
                    state=r["state"],
                    delivered_receipt=r["delivered_receipt"],
                )
                for r in rows
            ]

        return await self._read(read)
