"""Account events in the SQLite store: the ledger statement and the readable row, together.

A table group of :class:`~exchange.store.sqlite.SqliteStore` over ``account_events``
(migration 19). Each account event (:class:`~exchange.ledger.account_events.AccountEvent`)
is written twice in one transaction: its statement appended to the ledger, which holds
commitments only, and a row here with the user ids in the clear, the salt that opens the
commitments and the ledger index, so an administrator can list their organisation's events
by account. :func:`insert_account_event` is called inside the transaction of the change an
event records (a session started, a role changed, a token revoked), so the change, the
statement and the row are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from exchange.keys.ids import OrgId
from exchange.ledger.account_events import AccountEvent
from exchange.store.ledger_tree import append_ledger_now
from exchange.store.rows import Tables
from exchange.store.sql import Db, Row

#: The most rows one listing returns.
MAX_ACTIVITY: Final = 200


@dataclass(frozen=True)
class AccountActivity:
    """One account event as the administrator reads it: ids, codes, names and times.

    ``user_name`` and ``actor_name`` are the users' names now (None for the node's operator,
    whose user id is ``""``); ``actor_id`` is None when the account acted itself. ``salt``
    opens the statement's commitments (docs/ledger.md §3.3), for an auditor of this event.
    """

    id: int
    org: OrgId
    at: float
    kind: str
    method: str | None
    detail: str
    user_id: str
    user_name: str | None
    actor_id: str | None
    actor_name: str | None
    ledger_index: int
    salt: bytes = field(repr=False)


def insert_account_event(db: Db, event: AccountEvent) -> None:
    """Append ``event``'s statement to the ledger and its readable row, in ``db``'s transaction."""
    # Its index is kept in its row, so it is appended now, not at the commit.
    index = append_ledger_now(db, [event.statement().encode()])
    db.execute(
        "INSERT INTO account_events (org, at, kind, method, detail, user_id, actor_id, salt, "
        "ledger_idx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.org, event.at, event.kind, event.method, event.detail, event.user_id,
            event.actor_id, event.salt, index,
        ),
    )  # fmt: skip


_SELECT: Final = (
    "SELECT e.id, e.org, e.at, e.kind, e.method, e.detail, e.user_id, u.name AS user_name, "
    "e.actor_id, a.name AS actor_name, e.ledger_idx, e.salt FROM account_events e "
    "LEFT JOIN users u ON u.id = e.user_id LEFT JOIN users a ON a.id = e.actor_id "
)


def _activity(row: Row) -> AccountActivity:
    return AccountActivity(
        id=int(row["id"]),
        org=OrgId(row["org"]),
        at=float(row["at"]),
        kind=row["kind"],
        method=row["method"],
        detail=row["detail"],
        user_id=row["user_id"],
        user_name=row["user_name"],
        actor_id=row["actor_id"],
        actor_name=row["actor_name"],
        ledger_index=int(row["ledger_idx"]),
        salt=bytes(row["salt"]),
    )


class AccountEventTables(Tables):
    """Recording account events on their own, and listing an organisation's."""

    async def record_account_event(self, event: AccountEvent) -> None:
        """Record an event that changes nothing else (a refused sign-in, a step-up)."""
        await self._tx(lambda db: insert_account_event(db, event))

    async def account_events(
        self,
        org: OrgId,
        *,
        user_id: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[AccountActivity]:
        """Return ``org``'s events (of ``user_id``, as subject or actor, if given), newest first.

        ``before`` is an event id: only older events are returned (the next page's cursor).
        """
        where = ["e.org = ?"]
        args: list[object] = [org]
        if user_id is not None:
            where.append("(e.user_id = ? OR e.actor_id = ?)")
            args += [user_id, user_id]
        if before is not None:
            where.append("e.id < ?")
            args.append(before)
        args.append(max(1, min(limit, MAX_ACTIVITY)))

        def read(db: Db) -> list[AccountActivity]:
            rows = db.execute(
                _SELECT + f"WHERE {' AND '.join(where)} ORDER BY e.id DESC LIMIT ?", args
            )
            return [_activity(r) for r in rows]

        return await self._read(read)
