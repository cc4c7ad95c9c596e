"""The audit trail of staff accounts: making account events, and the administrator's listing.

:func:`account_event` is how every use case makes an
:class:`~exchange.ledger.account_events.AccountEvent`: the account's user id, who acted on
it if someone else did (the node's operator is the user id ``""``), the time from the
service's clock and a fresh random salt. The use case hands the event to the store method
that makes the change it records, which appends the ledger statement and the readable row
in the change's own transaction; an event that changes nothing else (a refused sign-in, a
step-up) is recorded on its own (``record_account_event``).

:class:`AccountAudit` lists an organisation's events for its administrators, newest first,
a page at a time, optionally for one account.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from exchange.keys.ids import OrgId
from exchange.ledger.account_events import SALT_LEN, AccountEvent
from exchange.model import User
from exchange.service.errors import ForbiddenError, NotFoundError
from exchange.store.account_events import AccountActivity

if TYPE_CHECKING:
    from exchange.service.accounts import AccountsContext

#: Events on one page of the activity listing.
PAGE_SIZE: Final = 50


def account_event(
    kind: str,
    user: User,
    *,
    at: float,
    random: Callable[[int], bytes] = secrets.token_bytes,
    method: str | None = None,
    detail: str = "",
    actor: User | None = None,
    org: OrgId | None = None,
) -> AccountEvent:
    """Return the event ``kind`` about ``user``'s account (in ``org``, default their own).

    ``actor`` is who acted, if not the account itself; ``detail`` a short code, never a
    name or an address (``ValueError`` otherwise).
    """
    acted_by = None if actor is None or actor.id == user.id else actor.id
    return AccountEvent(
        kind=kind, org=user.org if org is None else org, at=int(at), user_id=user.id,
        salt=random(SALT_LEN), method=method, detail=detail, actor_id=acted_by,
    )  # fmt: skip


@dataclass(frozen=True)
class ActivityPage:
    """One page of an organisation's account events, and the cursor of the next (if any)."""

    events: list[AccountActivity]
    older: int | None


class AccountAudit:
    """What an administrator reads of their organisation's account events."""

    def __init__(self, context: AccountsContext) -> None:
        self.context = context

    async def activity(
        self, actor: User, *, account_id: int | None = None, before: int | None = None
    ) -> ActivityPage:
        """Return a page of the administrator's organisation's events, newest first.

        ``account_id`` keeps the events of one account (about it, or done by it);
        ``before`` is the cursor of an earlier page's ``older``.
        """
        if actor.role != "admin":
            raise ForbiddenError("Only an administrator can see account activity")
        store = self.context.store
        user_id = None
        if account_id is not None:
            account = await store.account_by_id(account_id)
            if account is None or account.user.org != actor.org:
                raise NotFoundError("There is no such account in your organisation")
            user_id = account.user.id
        found = await store.account_events(
            actor.org, user_id=user_id, before=before, limit=PAGE_SIZE + 1
        )
        older = found[PAGE_SIZE - 1].id if len(found) > PAGE_SIZE else None
        return ActivityPage(found[:PAGE_SIZE], older)
