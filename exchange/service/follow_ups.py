"""What a reply or a correction starts from: the item it answers or corrects, if allowed.

The send pages offer a reply to an inbox item (``/send/reply/<digest>``) and a correction
of a sent item (``/send/correct/<digest>``). Before a person fills in anything, these
checks say whether the item is the user's organisation's and whether the user's role may
answer or correct it; another organisation's item, a tenant's on the same node included,
is "not found", never "forbidden", so its existence is not disclosed. Sending itself is
checked again, in full, by :class:`~exchange.service.sending.Sending` and
:func:`~exchange.service.corrections.rectify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exchange.keys.ids import OrgId
from exchange.model import User
from exchange.service.context import ServiceContext
from exchange.service.errors import ForbiddenError, GoneError, NotFoundError
from exchange.service.sending import CORRECTION_ROLES, SENDING_ROLES

#: The kinds of record that answer another organisation's item.
REPLY_KINDS: Final = ("outcome", "information-request")


@dataclass(frozen=True)
class ReplyTarget:
    """An inbox item a reply answers: who sent it, and its kind."""

    sender: OrgId
    record_kind: str


@dataclass(frozen=True)
class CorrectionTarget:
    """A sent item a correction replaces: its kind, and the purpose it was registered under."""

    record_kind: str
    purpose: str


class FollowUps:
    """Checks that a reply or a correction may start, over the node's :class:`ServiceContext`."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    async def may_send(self, user: User) -> None:
        """Refuse unless the user may send records (a DSL or member of staff of a tenant)."""
        if user.role not in SENDING_ROLES:
            raise ForbiddenError(f"the role {user.role} may not send records")
        self.context.tenant(user.org)

    async def reply_target(self, user: User, digest: bytes) -> ReplyTarget:
        """Return the inbox item ``digest`` a DSL or member of staff may reply to."""
        await self.may_send(user)
        item = await self.context.store.inbox_item(user.org, digest)
        if item is None:
            raise NotFoundError("no such item in this organisation's inbox")
        if item.state == "recalled":
            raise GoneError("the sender recalled this item")
        return ReplyTarget(item.envelope.sender, item.envelope.record_kind)

    async def correction_target(self, user: User, digest: bytes) -> CorrectionTarget:
        """Return the sent item ``digest`` a DSL or the DPO may send a correction of."""
        if user.role not in CORRECTION_ROLES:
            raise ForbiddenError(f"the role {user.role} may not send corrections")
        self.context.tenant(user.org)
        store = self.context.store
        sent = await store.sent_item(user.org, digest)
        if sent is None:
            raise NotFoundError("no such item among this organisation's sent items")
        registered = await store.register_purpose(user.org, digest)
        purpose = registered[0] if registered is not None else ""
        return CorrectionTarget(sent.envelope.record_kind, purpose)
