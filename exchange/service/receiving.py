"""Receiving from peers: envelopes pushed, collected or imported, and receipts.

An envelope is verified, stored once for each recipient this node serves, and answered with
its signed ``delivered`` receipt; a receipt for an envelope the node sent is verified against
the digest the node computed.
"""

from __future__ import annotations

import asyncio
from typing import Final

from exchange.connectors.base import HeldBody
from exchange.envelope import OpenError, VerifiedEnvelope, Verifier
from exchange.envelope.format import MAX_CLOCK_SKEW
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import NewOutbox, User
from exchange.receipts import ReceiptError, ReceiptStatus, parse_signed, verify_receipt
from exchange.service.context import PIECE, ServiceContext
from exchange.service.errors import ForbiddenError, NotYetError, ServiceError
from exchange.service.ledger import RECEIPT_EVENTS, ledger_event
from exchange.service.rows import envelope_record, receipt_record

log = get_logger("exchange.node")

#: Seconds a peer is asked to wait before sending again an envelope dated in the future.
ENVELOPE_RETRY_AFTER: Final = 60


class InboundCheck:
    """Verifies an envelope for ``owner`` as it arrives, piece by piece (no private key).

    :meth:`feed` raises as soon as the bytes so far cannot be a valid envelope (a bad
    header signature, an unknown sender, a broken structure; the peer endpoint gives that
    verdict once the body has matched its Content-Digest); :meth:`finish` returns the
    verified envelope once all of it was fed, so the body is never read a second time.
    Refusals are the service's: :class:`ServiceError` (422, or 403 for an envelope not
    addressed to ``owner``) and :class:`NotYetError` for one dated in the future. Not
    thread-safe; it may be fed from a worker thread, one piece at a time.
    """

    def __init__(self, context: ServiceContext, owner: OrgId) -> None:
        context.tenant(owner)
        self.owner = owner
        self._verifier = Verifier(context.directory, now=context.now())

    def feed(self, piece: bytes | memoryview) -> None:
        """Verify the next piece of the envelope."""
        try:
            self._verifier.feed(piece)
        except OpenError as exc:
            raise _refusal(exc) from None

    def finish(self) -> VerifiedEnvelope:
        """Return the envelope verified, once every piece was fed."""
        try:
            verified = self._verifier.finish()
        except OpenError as exc:
            raise _refusal(exc) from None
        if self.owner not in verified.header.recipients:
            raise ServiceError(f"the envelope is not addressed to {self.owner}", status=403)
        return verified


def _refusal(exc: OpenError) -> ServiceError:
    if exc.rule == "created.not-future":
        # Sealed by a fast clock: it is genuine, only early. Taken once it is due.
        return NotYetError(
            "the envelope is dated in the future of this node's clock; send it again later",
            rule=exc.rule,
            retry_after=ENVELOPE_RETRY_AFTER,
        )
    return ServiceError(f"the envelope was refused: {exc}", status=422)


class Receiving:
    """Receiving from peers: envelopes and receipts, over the node's :class:`ServiceContext`."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def inbound_check(self, owner: OrgId) -> InboundCheck:
        """Return a check that verifies an envelope for ``owner`` while it arrives."""
        return InboundCheck(self.context, owner)

    async def receive_envelope(
        self,
        peer_org: OrgId,
        owner: OrgId,
        body: bytes | HeldBody,
        *,
        checked: InboundCheck | None = None,
    ) -> bytes:
        """Verify, store once and answer with the signed ``delivered`` receipt of ``owner``.

        ``peer_org`` is the organisation that signed the push request; it must be the
        envelope's sender. A large ``body`` comes in its spool and is linked into place,
        never read whole (the caller closes the spool). ``checked`` is the
        :meth:`inbound_check` the body was fed to as it arrived: then it is not read again.
        """
        body = _small_as_bytes(body)
        if checked is not None:
            verified = checked.finish()
        else:
            verified = await self._verify_inbound(owner, body)
        if verified.header.sender != peer_org:
            raise ServiceError(
                f"the request was signed by {peer_org} but the envelope is from "
                f"{verified.header.sender}",
                status=403,
            )
        # The receipt is the answer to the push; it is not also sent separately.
        return await self._accept(owner, verified, body, via=None, send_receipt=False)

    async def receive_collected(
        self, owner: OrgId, body: bytes | HeldBody, route_kind: str
    ) -> bool:
        """Take an envelope collected from a pull route (a relay mailbox, NHS MESH).

        The envelope's own signature authenticates its sender. The ``delivered`` receipt
        goes back the way the envelope came (docs/architecture.md §4): through the relay where
        ``owner`` collects, or over MESH to the sender's mailbox, and by the sender's other
        routes if that fails. Returns whether it was new. A large ``body`` is taken from its
        spool as :meth:`receive_envelope` takes one.
        """
        body = _small_as_bytes(body)
        verified = await self._verify_inbound(owner, body)
        existing = await self.context.store.inbox_item(owner, verified.digest)
        if existing is not None:
            return False
        via = self._return_route(owner, route_kind, verified.header.sender)
        await self._accept(owner, verified, body, via=via, send_receipt=True)
        return True

    async def import_envelope(self, user: User, body: bytes) -> tuple[bytes, bool]:
        """Take an envelope a member of staff received another way (the ``smtp`` route).

        It is verified like any other; the ``delivered`` receipt is sent to the sender by
        its routes. Returns the digest and whether it was new.
        """
        if user.role not in {"dsl", "staff"}:
            raise ForbiddenError(f"the role {user.role} may not import records")
        verified = await self._verify_inbound(user.org, body)
        if await self.context.store.inbox_item(user.org, verified.digest) is not None:
            return verified.digest, False
        await self._accept(user.org, verified, body, via=None, send_receipt=True)
        return verified.digest, True

    def _return_route(self, owner: OrgId, route_kind: str, sender: OrgId) -> str | None:
        """Return the ``via`` of a receipt for an envelope collected over ``route_kind``."""
        org = owner if route_kind == "mailbox" else sender
        try:
            routes = self.context.directory.organisation(org).routes
        except KeyLookupError:
            return None
        for route in routes:
            if route.kind == route_kind:
                return f"{route.kind} {route.address}"
        return None

    async def _verify_inbound(self, owner: OrgId, body: bytes | HeldBody) -> VerifiedEnvelope:
        """Verify an envelope: in memory on the loop, or from its spool in a worker thread."""
        check = InboundCheck(self.context, owner)

        def verify() -> VerifiedEnvelope:
            for piece in [body] if isinstance(body, bytes) else body.pieces(PIECE):
                check.feed(piece)
            return check.finish()

        return verify() if isinstance(body, bytes) else await asyncio.to_thread(verify)

    async def _accept(
        self,
        owner: OrgId,
        verified: VerifiedEnvelope,
        body: bytes | HeldBody,
        *,
        via: str | None,
        send_receipt: bool,
    ) -> bytes:
        """Store a verified envelope once for ``owner``; return its ``delivered`` receipt."""
        tenant = self.context.tenant(owner)
        header = verified.header
        existing = await self.context.store.inbox_item(owner, verified.digest)
        if existing is not None:
            return existing.delivered_receipt
        blobs = self.context.store.blobs
        # A concurrent identical delivery may write the same body first, which is harmless:
        # the digest names what was verified, and writing a body already held changes nothing.
        if await blobs.size(verified.digest) is None:
            if isinstance(body, bytes):
                await blobs.write([(verified.digest, body)])
            else:
                await blobs.write_held(verified.digest, body)
        now = self.context.now()
        record_of_envelope = envelope_record(verified)
        signed = self.context.sign(tenant, ReceiptStatus.DELIVERED, record_of_envelope, now)
        record = receipt_record(signed)
        outbox: list[NewOutbox] = []
        if send_receipt:
            # A pull route has no answer to carry the receipt: it is sent like any other.
            outbox.append(NewOutbox("receipt", record.digest, owner, header.sender, via=via))
        if owner in self.context.notified:
            outbox.append(NewOutbox("notice", verified.digest, header.sender, owner))
        receipt_bytes = await self.context.store.record_delivery(
            owner,
            record_of_envelope,
            now=self.context.clock(),
            receipt=record,
            ledger_events=[
                ledger_event(
                    EventType.DELIVERED, now, owner, record_of_envelope.digest,
                    counterparty=header.sender, receipt=record.digest,
                )
            ],
            outbox=outbox,
        )  # fmt: skip
        if outbox:
            self.context.outbox_wakeup.set()
        log.info(
            "envelope.received",
            envelope_id=header.envelope_id.hex(),
            digest=verified.digest.hex(),
            sender=header.sender,
            recipient=owner,
        )
        return receipt_bytes

    async def receive_receipt(self, peer_org: OrgId | None, owner: OrgId, data: bytes) -> None:
        """Verify a receipt for an envelope ``owner`` sent, against the digest we computed.

        ``peer_org`` is the organisation that signed the push request, or ``None`` for a
        receipt collected from a pull route, authenticated by its own signature alone.
        """
        self.context.tenant(owner)
        try:
            signed = parse_signed(data)
        except ReceiptError as exc:
            raise ServiceError(f"the receipt was refused: {exc}", status=422) from None
        claimed = signed.receipt
        sent = await self.context.store.sent_item(owner, claimed.envelope_digest)
        if sent is None:
            log.warning("receipt.refused", rule="receipt.digest", org=owner, error_class="unknown")
            raise ServiceError(
                "the receipt names an envelope this organisation did not send", status=422
            )
        if peer_org is not None and peer_org != claimed.receipter:
            raise ServiceError(
                "the request was not signed by the receipting organisation", status=403
            )
        env = sent.envelope
        try:
            receipt = verify_receipt(
                data,
                expected_digest=env.digest,
                expected_envelope_id=env.envelope_id,
                sender=owner,
                recipients=env.recipients,
                directory=self.context.directory,
                now=self.context.now(),
            )
        except ReceiptError as exc:
            if exc.rule == "receipt.time":
                # Signed by a fast clock: genuine but early. Taken once it is no longer in
                # the future; the peer's outbox, or the collector, tries again.
                ahead = claimed.time - self.context.now()
                log.warning(
                    "receipt.early", org=owner, digest=env.digest.hex(),
                    recipient=claimed.receipter, ahead_seconds=ahead,
                )  # fmt: skip
                raise NotYetError(
                    f"the receipt is dated {ahead} seconds ahead of this node's clock; "
                    "send it again later",
                    rule=exc.rule,
                    retry_after=ahead - MAX_CLOCK_SKEW + 1,
                ) from None
            log.warning("receipt.refused", rule=exc.rule, org=owner, digest=env.digest.hex())
            raise ServiceError(f"the receipt was refused: {exc}", status=422) from None
        if receipt.time < env.created:
            # Signed by a slow clock: genuine, but dated before the envelope existed. Kept
            # with the envelope's time, so no deadline is met before the record was sent.
            log.warning(
                "receipt.time-clamped", org=owner, digest=env.digest.hex(),
                recipient=receipt.receipter, behind_seconds=env.created - receipt.time,
            )  # fmt: skip
        record = receipt_record(signed, not_before=env.created)
        await self.context.store.add_receipt(
            record,
            ledger_events=[
                ledger_event(
                    RECEIPT_EVENTS[receipt.status], self.context.now(), owner, env.digest,
                    counterparty=receipt.receipter, receipt=record.digest,
                )
            ],
            now=self.context.clock(),
        )  # fmt: skip
        log.info(
            "receipt.received",
            digest=env.digest.hex(),
            status=receipt.status.value,
            org=owner,
            recipient=receipt.receipter,
        )


def _small_as_bytes(body: bytes | HeldBody) -> bytes | HeldBody:
    """Return a body small enough to be in memory as bytes (the fast path), else as it is."""
    if isinstance(body, bytes) or not body.in_memory:
        return body
    return body.read(body.length)
