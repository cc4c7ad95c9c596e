"""Staff actions on the inbox: open an item, acknowledge or reject it.

Opening decrypts the stored body (checked again in full), sends the ``opened`` receipt the
first time, and indexes the record's subject for the sharing register (keyed hashes only).
An item its sender recalled, or one destroyed under retention, is gone (410).
"""

from __future__ import annotations

import asyncio
from typing import Final

from exchange.envelope import Opener, OpenError
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import InboxItem, NewOutbox, SubjectKey, User
from exchange.receipts import ReceiptStatus
from exchange.records import RecordError, decode_container
from exchange.service.base import PIECE, ServiceBase
from exchange.service.errors import (
    ConflictError,
    ForbiddenError,
    GoneError,
    NotFoundError,
    ServiceError,
)
from exchange.service.ledger import RECEIPT_EVENTS, ledger_event
from exchange.service.retention import destroyed_message, schedule_opened
from exchange.service.rows import receipt_record
from exchange.service.tenants import Tenant
from exchange.service.threads import link_opened
from exchange.sharing.prepare import subject_identifiers

log = get_logger("exchange.node")

#: The answer to opening or deciding an item its sender recalled.
_RECALLED: Final = "the sender recalled this item before it was opened; it is no longer held"


class InboxMixin(ServiceBase):
    """Staff actions on the inbox."""

    async def _held_item(self, user: User, digest: bytes) -> tuple[Tenant, InboxItem]:
        """Return the user's tenant and inbox item, or refuse: not found, recalled, destroyed."""
        tenant = self.tenant(user.org)
        item = await self.store.inbox_item(user.org, digest)
        if item is None:
            raise NotFoundError("no such item in this organisation's inbox")
        if item.state == "recalled":
            raise GoneError(_RECALLED)
        gone = await destroyed_message(self.store, user.org, digest)
        if gone is not None:  # destroyed under retention (exchange/service/retention.py)
            raise GoneError(gone)
        return tenant, item

    async def open_item(self, user: User, digest: bytes) -> bytes:
        """Decrypt an inbox item for an authorised user; emit ``opened`` the first time."""
        if user.role not in {"dsl", "staff"}:
            raise ForbiddenError(f"the role {user.role} may not open records")
        tenant, item = await self._held_item(user, digest)
        now = self.now()
        try:
            content = await asyncio.to_thread(
                self._open_body, tenant, digest, item.envelope.created
            )
        except FileNotFoundError:
            # A recall (exchange/service/recall.py) or a destruction that won the race
            # deleted the body.
            gone = await destroyed_message(self.store, user.org, digest)
            raise GoneError(gone or _RECALLED) from None
        accessed = ledger_event(
            EventType.ACCESSED, now, user.org, item.envelope.digest, reason=user.role
        )
        first = item.state == "delivered"
        if first:
            signed = self._sign(tenant, ReceiptStatus.OPENED, item.envelope, now)
            record = receipt_record(signed)
            # Only while still "delivered": exactly one of a recall and this opening wins,
            # and the content is released only if the opening did.
            outcome = await self.store.mark_opened(
                user.org,
                digest,
                user_id=user.id,
                role=user.role,
                receipt=record,
                outbox=[NewOutbox("receipt", record.digest, user.org, item.envelope.sender)],
                ledger_events=[
                    ledger_event(
                        EventType.OPENED, now, user.org, item.envelope.digest,
                        counterparty=item.envelope.sender, receipt=record.digest,
                    ),
                    accessed,
                ],
                now=self.clock(),
            )  # fmt: skip
            if outcome == "recalled":
                raise GoneError(_RECALLED)
            first = outcome == "opened"
            if first:
                self.outbox_wakeup.set()
        if not first:
            await self.store.append_ledger([accessed])
        await self._index_opened(user.org, digest, content)
        await link_opened(self.store, user.org, item.envelope, content, now=self.clock())
        await schedule_opened(self, user.org, item.envelope, content)
        log.info("envelope.opened", digest=digest.hex(), org=user.org, status=item.state)
        return content

    def _open_body(self, tenant: Tenant, digest: bytes, created: int) -> bytes:
        # The body was verified on arrival; opening checks everything again, so a body
        # altered on disk is refused, never released.
        opener = Opener(self.directory, tenant.keys, now=max(self.now(), created))
        pieces: list[bytes] = []
        try:
            with self.store.body_path(digest).open("rb") as handle:
                while block := handle.read(PIECE):
                    pieces += opener.feed_pieces(block)
            opener.finish_opened()
        except OpenError as exc:
            raise ServiceError(
                f"the stored envelope could not be opened: {exc}", status=500
            ) from None
        return b"".join(pieces)

    async def decide(self, user: User, digest: bytes, *, accept: bool, code: str | None) -> bytes:
        """Acknowledge (with an optional disposition) or reject (with a reason) an item."""
        if user.role not in {"dsl", "staff"}:
            raise ForbiddenError(f"the role {user.role} may not acknowledge or reject records")
        tenant, item = await self._held_item(user, digest)
        if item.state in {"acknowledged", "rejected"}:
            raise ConflictError(f"the item was already {item.state}")
        status = ReceiptStatus.ACKNOWLEDGED if accept else ReceiptStatus.REJECTED
        now = self.now()
        try:
            signed = self._sign(tenant, status, item.envelope, now, disposition=code)
        except ValueError as exc:
            raise ServiceError(str(exc), status=400) from None
        record = receipt_record(signed)
        decided = await self.store.update_inbox(
            user.org,
            digest,
            state="acknowledged" if accept else "rejected",
            receipt=record,
            outbox=[NewOutbox("receipt", record.digest, user.org, item.envelope.sender)],
            ledger_events=[
                ledger_event(
                    RECEIPT_EVENTS[status], now, user.org, item.envelope.digest,
                    counterparty=item.envelope.sender, receipt=record.digest, reason=code,
                )
            ],
            now=self.clock(),
        )  # fmt: skip
        if not decided:
            raise GoneError(_RECALLED)
        self.outbox_wakeup.set()
        log.info("envelope.decided", digest=digest.hex(), org=user.org, status=status.value)
        return record.digest

    async def _index_opened(self, org: OrgId, digest: bytes, content: bytes) -> None:
        """Index a received record's subject at its first opening (keyed hashes only)."""

        def read() -> tuple[str, list[SubjectKey]]:
            try:
                container = decode_container(content)
            except RecordError:
                return "not-a-record", []
            pairs = subject_identifiers(container.record.kind, container.record.data)
            return "indexed", [self.subject_key(k, v) for k, v in pairs]

        outcome, subjects = await asyncio.to_thread(read)
        await self.store.index_received(
            org, digest, subjects=subjects, outcome=outcome, now=self.clock()
        )
