"""Staff actions on the inbox: open an item, acknowledge or reject it.

Opening decrypts the stored body (checked again in full), sends the ``opened`` receipt the
first time, indexes the record's subject for the sharing register (keyed hashes only),
threads it to the item its record names and schedules its retention review. Everything is
read and computed first; then one transaction records it all, so an opening is never half
recorded. An item its sender recalled, or one destroyed under retention, is gone (410).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final, NoReturn

from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import HeldItem, InboxItem, NewOutbox, SubjectKey, User
from exchange.receipts import ACKNOWLEDGEMENT_CODES, REJECTION_CODES, ReceiptStatus
from exchange.receipts.receipt import CODE_RE
from exchange.records import Record
from exchange.records.scanning import Entry
from exchange.service.body_checks import BodyDamagedError, body_verifies
from exchange.service.context import PIECE, ServiceContext
from exchange.service.errors import (
    ConflictError,
    DamagedItemError,
    ForbiddenError,
    GoneError,
    NotFoundError,
    ServiceError,
    UnprocessableError,
)
from exchange.service.ledger import RECEIPT_EVENTS, ledger_event
from exchange.service.opened_bodies import (
    OpenedItem,
    StreamBrokenError,
    in_thread,
    scan_body,
    stream_attachment,
    stream_content,
)
from exchange.service.retention import destroyed_sentence, log_scheduled, opened_schedule
from exchange.service.rows import receipt_record
from exchange.service.tenants import Tenant
from exchange.service.threads import opened_link
from exchange.sharing.prepare import subject_identifiers
from exchange.store import FirstOpened, ItemOpening
from exchange.store.blobs import ThreadReader

log = get_logger("exchange.node")

#: The roles that may open records, and so read, download and acknowledge or reject them.
OPENING_ROLES: Final = frozenset({"dsl", "staff"})


#: The answer to opening or deciding an item its sender recalled.
_RECALLED: Final = "the sender recalled this item before it was opened; it is no longer held"


class Inbox:
    """Staff actions on the inbox, over the node's :class:`ServiceContext`."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    async def _held_item(
        self, user: User, digest: bytes
    ) -> tuple[Tenant, InboxItem, HeldItem | None]:
        """Return the user's tenant, inbox item and holding, or refuse.

        The item is refused as not found, or as gone when recalled or destroyed.
        """
        context = self.context
        tenant = context.tenant(user.org)
        item = await context.store.inbox_item(user.org, digest)
        if item is None:
            raise NotFoundError("no such item in this organisation's inbox")
        if item.state == "recalled":
            raise GoneError(_RECALLED)
        held = await context.store.held_item(user.org, digest)
        gone = destroyed_sentence(held)
        if gone is not None:  # destroyed under retention (exchange/service/retention.py)
            raise GoneError(gone)
        return tenant, item, held

    async def open_item(self, user: User, digest: bytes) -> OpenedItem:
        """Open an inbox item for an authorised user; emit ``opened`` the first time.

        The body is read through once, checked in full, and only its record is kept
        (:func:`~exchange.service.opened_bodies.scan_body`); its files are handed out by
        :meth:`content`, streamed.
        """
        if user.role not in OPENING_ROLES:
            raise ForbiddenError(f"the role {user.role} may not open records")
        context = self.context
        tenant, item, held = await self._held_item(user, digest)
        await self._refuse_damaged(digest)
        now = context.now()
        try:
            body = context.store.blobs.in_thread(digest)
            opened = await asyncio.to_thread(
                scan_body, context, tenant, body, digest, item.envelope.created
            )
        except BodyDamagedError:
            await self._damaged(user, digest)
        except FileNotFoundError:
            # A recall (exchange/service/recall.py) or a destruction that won the race
            # deleted the body.
            gone = destroyed_sentence(await context.store.held_item(user.org, digest))
            raise GoneError(gone or _RECALLED) from None
        first = None
        if item.state == "delivered":
            signed = context.sign(tenant, ReceiptStatus.OPENED, item.envelope, now)
            record = receipt_record(signed)
            first = FirstOpened(
                receipt=record,
                outbox=[NewOutbox("receipt", record.digest, user.org, item.envelope.sender)],
                opened_event=ledger_event(
                    EventType.OPENED, now, user.org, item.envelope.digest,
                    counterparty=item.envelope.sender, receipt=record.digest,
                ),
            )  # fmt: skip
        index_outcome, subjects = self._subjects(opened.record)
        link = await opened_link(context.store, user.org, item.envelope, opened.record)
        schedule = await opened_schedule(context, held, item.envelope, opened.record)
        # Only while still "delivered" does the first opening apply: exactly one of a recall
        # and this opening wins, and the content is released only if the opening did.
        outcome = await context.store.record_opening(
            ItemOpening(
                owner=user.org,
                digest=digest,
                user_id=user.id,
                role=user.role,
                now=context.clock(),
                accessed_event=ledger_event(
                    EventType.ACCESSED, now, user.org, item.envelope.digest, reason=user.role
                ),
                first=first,
                subjects=subjects,
                index_outcome=index_outcome,
                link=link,
                schedule=schedule,
            )
        )
        if outcome.state == "recalled":
            raise GoneError(_RECALLED)
        if outcome.state == "opened":
            context.outbox_wakeup.set()
        if outcome.scheduled and schedule is not None:
            log_scheduled(schedule)
        log.info("envelope.opened", digest=digest.hex(), org=user.org, status=item.state)
        return opened

    async def record_reading(self, user: User, digest: bytes) -> InboxItem:
        """Record a later reading of an opened item (a download): an ``accessed`` event.

        Refused like an opening (role, recalled, destroyed, damaged), and for an item not
        yet opened: a download is never the first opening. Nothing is decrypted here.
        """
        if user.role not in OPENING_ROLES:
            raise ForbiddenError(f"the role {user.role} may not open records")
        _, item, _ = await self._held_item(user, digest)
        if item.state == "delivered":
            raise ConflictError("open the record before downloading its attachments")
        await self._refuse_damaged(digest)
        now = self.context.now()
        outcome = await self.context.store.record_opening(
            ItemOpening(
                owner=user.org,
                digest=digest,
                user_id=user.id,
                role=user.role,
                now=self.context.clock(),
                accessed_event=ledger_event(
                    EventType.ACCESSED, now, user.org, item.envelope.digest, reason=user.role
                ),
                first=None,
                subjects=(),
                index_outcome=None,
                link=None,
                schedule=None,
            )
        )
        if outcome.state == "recalled":
            raise GoneError(_RECALLED)
        return item

    async def attachment(
        self, user: User, digest: bytes, number: int
    ) -> tuple[Entry, AsyncIterator[bytes]]:
        """Record a download of attachment ``number`` (from 1) and return it, streamed.

        Verified as it streams (:func:`~exchange.service.opened_bodies.stream_attachment`);
        the item's files passed their content checks when it was opened, and the stream
        checks that the body is still that envelope.
        """
        item = await self.record_reading(user, digest)
        tenant = self.context.tenant(user.org)
        created = item.envelope.created
        try:
            body = self.context.store.blobs.in_thread(digest)
            entry, pieces = await asyncio.to_thread(
                stream_attachment, self.context, tenant, body, digest, created, number=number
            )
        except BodyDamagedError:
            await self._damaged(user, digest)
        except FileNotFoundError:
            gone = destroyed_sentence(await self.context.store.held_item(user.org, digest))
            raise GoneError(gone or _RECALLED) from None
        return entry, self._marking_damage(user, digest, in_thread(pieces))

    async def _marking_damage(
        self, user: User, digest: bytes, pieces: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """Yield ``pieces``; a body found damaged part-way is recorded, then the error raised.

        The caller cuts the transfer (exchange/http/streaming.py); the next reading is
        refused as damaged, as it would be had the damage been found first.
        """
        try:
            async for piece in pieces:
                yield piece
        except StreamBrokenError:
            await self._record_damage(user, digest)
            raise

    async def content(self, user: User, digest: bytes) -> tuple[int, AsyncIterator[bytes]]:
        """Open an item (recorded) and return its content's length and bytes, streamed."""
        opened = await self.open_item(user, digest)
        item = await self.context.store.inbox_item(user.org, digest)
        created = 0 if item is None else item.envelope.created
        tenant = self.context.tenant(user.org)
        body = self.context.store.blobs.in_thread(digest)
        pieces = stream_content(self.context, tenant, body, digest, created)
        return opened.content_length, self._marking_damage(user, digest, in_thread(pieces))

    def _verify_body(self, body: ThreadReader, digest: bytes, created: int) -> None:
        """Check a stored body still verifies as the envelope ``digest`` (no decryption)."""
        if not body_verifies(self.context, digest, body.blocks(PIECE), created):
            raise BodyDamagedError

    async def _refuse_damaged(self, digest: bytes) -> None:
        """Refuse an item whose body was already found damaged."""
        if await self.context.store.is_damaged(digest):
            raise DamagedItemError

    async def _damaged(self, user: User, digest: bytes) -> NoReturn:
        """Record a damaged body, log it (no content), and refuse."""
        await self._record_damage(user, digest)
        raise DamagedItemError

    async def _record_damage(self, user: User, digest: bytes) -> None:
        """Record a damaged body and log it (no content)."""
        await self.context.store.mark_damaged(digest, self.context.clock())
        log.error("inbox.damaged", digest=digest.hex(), org=user.org, outcome="body-damaged")

    def _subjects(self, record: Record | None) -> tuple[str, list[SubjectKey]]:
        """Return how a received record was indexed and its subjects' keyed hashes."""
        if record is None:
            return "not-a-record", []
        pairs = subject_identifiers(record.kind, record.data)
        return "indexed", [self.context.subject_key(k, v) for k, v in pairs]

    async def decide(self, user: User, digest: bytes, *, accept: bool, code: str | None) -> bytes:
        """Acknowledge (with an optional disposition) or reject (with a reason) an item."""
        if user.role not in OPENING_ROLES:
            raise ForbiddenError(f"the role {user.role} may not acknowledge or reject records")
        context = self.context
        tenant, item, _ = await self._held_item(user, digest)
        # The code is signed into the receipt and both ledgers: only a listed one, never a
        # token typed in (docs/receipts.md §6: "a configured list, never a text box"). One
        # that is not a token at all is refused by the receipt's own rule below (400).
        field, codes = (
            ("disposition", ACKNOWLEDGEMENT_CODES) if accept else ("reason", REJECTION_CODES)
        )
        if code is not None and code not in codes and CODE_RE.fullmatch(code) is not None:
            raise UnprocessableError(f"{field} must be one of: {', '.join(codes)}", rule=field)
        if item.state in {"acknowledged", "rejected"}:
            raise ConflictError(f"the item was already {item.state}")
        await self._refuse_damaged(digest)
        try:
            body = context.store.blobs.in_thread(digest)
            await asyncio.to_thread(self._verify_body, body, digest, item.envelope.created)
        except BodyDamagedError:
            await self._damaged(user, digest)
        except FileNotFoundError:
            raise GoneError(_RECALLED) from None
        status = ReceiptStatus.ACKNOWLEDGED if accept else ReceiptStatus.REJECTED
        now = context.now()
        try:
            signed = context.sign(tenant, status, item.envelope, now, disposition=code)
        except ValueError as exc:
            raise ServiceError(str(exc), status=400) from None
        record = receipt_record(signed)
        decided = await context.store.update_inbox(
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
            now=context.clock(),
        )  # fmt: skip
        if not decided:
            raise GoneError(_RECALLED)
        context.outbox_wakeup.set()
        log.info("envelope.decided", digest=digest.hex(), org=user.org, status=status.value)
        return record.digest
