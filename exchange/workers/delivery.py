"""The outbox worker: sends envelopes, receipts and notices, with routing, retry and dead letter.

Each outbox item is one message (an envelope or a receipt) for one destination organisation,
or a notice (a PII-free mail telling staff an item waits). The worker claims due items and
hands each to the connector of its current route (:mod:`exchange.outbox.routing`: the
directory's routes in order, HTTPS push, NHS MESH, relay mailbox or SMTP), and records the
outcome in the same transaction as the receipt and ledger events it produced.

- HTTPS push answers with the recipient's signed ``delivered`` receipt, verified here
  against the digest this node computed before the item counts as delivered.
- MESH, relay mailboxes and SMTP only take the item over (``handed-over``); the
  ``delivered`` receipt comes later, collected by :mod:`exchange.workers.collect`, and an item
  without one after ``overdue_after`` is shown overdue.
- Failures that may pass (network errors, timeouts, 5xx, 429) wait with exponential backoff
  and jitter; after ``fallback_after`` of them in a row the next route is tried. Refusals
  (other 4xx, a receipt that does not verify) fall back to the next route at once, or go to
  ``dead`` on the last one, as do items older than the dead-letter age.
- Every attempt that does not end in a verified receipt, and every fallback, is a ledger
  event (``attempted`` with the route kind and outcome, ``fallback``).

Because the state is committed before and after every attempt, a crash at any point leaves
items ``attempting``; the next start puts them back in the queue, and the receiver
de-duplicates by digest, so the effect is exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from exchange.config import DeliveryConfig
from exchange.connectors.base import Delivered, Message, MessageKind, Refused, RetryLater
from exchange.connectors.https import HttpsPushConnector, request_signer
from exchange.connectors.smtp import SmtpConnector
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import OutboxItem
from exchange.outbox.routing import Leg, NoRouteError, Routes
from exchange.receipts import ReceiptError, parse_signed, verify_receipt
from exchange.service.node_service import NodeService
from exchange.service.rows import ledger_event, receipt_record
from exchange.workers.chase import OVERDUE

log = get_logger("exchange.delivery")

#: Largest per-route ``fallback_after`` a directory may set.
MAX_FALLBACK_AFTER: Final = 100


class _RetryError(Exception):
    """The attempt failed in a way that may pass."""


class _RefusedError(Exception):
    """The peer or the check refused the message for good."""


@dataclass
class DeliveryStats:
    """Counters and latencies for /metrics."""

    attempts: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0


class DeliveryWorker:
    """Drains the outbox of one node."""

    def __init__(
        self,
        service: NodeService,
        session: aiohttp.ClientSession,
        config: DeliveryConfig,
        *,
        rng: random.Random | None = None,
        routes: Routes | None = None,
        smtp: SmtpConnector | None = None,
        notify: Mapping[OrgId, tuple[str, ...]] | None = None,
        link_template: str | None = None,
    ) -> None:
        self.service = service
        self.session = session
        # The connector signs every attempt afresh as the item's origin organisation.
        self.https = HttpsPushConnector(
            session,
            request_signer(
                lambda org: service.tenant(org).signing_pair(service.directory, service.now()),
                service.now,
            ),
        )
        self.config = config
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.stats = DeliveryStats()
        self.routes = routes or Routes({})
        self.routes.shared.setdefault("https", self.https)
        #: Staff notifications: the mail connector and each organisation's staff mailboxes.
        self.smtp = smtp
        self.notify = dict(notify or {})
        self.link_template = link_template

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then let in-flight attempts finish.

        Attempts run concurrently up to ``concurrency``; whenever one finishes, the worker
        claims more due items at once, so one slow peer never holds back a whole batch.
        """
        requeued = await self.service.store.requeue_attempting(self.service.clock())
        if requeued:
            log.info("outbox.requeued", count=requeued)
        inflight: set[asyncio.Task[None]] = set()
        wakeup = self.service.outbox_wakeup
        while not stop.is_set():
            room = self.config.concurrency - len(inflight)
            claimed = 0
            if room > 0:
                # Cleared before claiming, so a submission committed after the claim's query
                # sets it again and is never missed.
                wakeup.clear()
                items = await self.service.store.claim_due(
                    self.service.clock(), min(room, self.config.batch)
                )
                claimed = len(items)
                for item in items:
                    task = asyncio.create_task(self.attempt(item))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
            if claimed and claimed == room:
                continue
            waiters: set[asyncio.Future[Any]] = {
                asyncio.ensure_future(wakeup.wait()),
                asyncio.ensure_future(stop.wait()),
            }
            await asyncio.wait(
                waiters | inflight,
                timeout=self.config.poll_interval,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in waiters:
                waiter.cancel()
        # Graceful shutdown: attempts under way finish and record their outcome.
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)

    def _leg(self, item: OutboxItem) -> Leg:
        """Pick the route for this attempt: the item's current one among those usable here."""
        try:
            legs = self.routes.legs(self.service.directory, item.origin, item.destination, item.via)
        except NoRouteError as exc:
            raise _RefusedError(str(exc)) from None
        return legs[item.route_index % len(legs)]

    async def attempt(self, item: OutboxItem) -> None:
        """Make one attempt on the item's current route and record its outcome."""
        started = time.monotonic()
        self.stats.attempts += 1
        now = self.service.clock()
        leg: Leg | None = None
        try:
            if item.kind == "notice":
                await self._send_notice(item)
            else:
                leg = self._leg(item)
                if item.kind == "envelope":
                    await self._push_envelope(item, leg)
                else:
                    await self._push_receipt(item, leg)
        except _RetryError as exc:
            # Back off from the end of the attempt, not its start: an attempt that ran into
            # the timeout would otherwise be due again at once, hammering a hanging peer.
            await self._retry_or_dead(item, leg, str(exc), self.service.clock())
            outcome = "retry"
        except _RefusedError as exc:
            outcome = await self._refused(item, leg, str(exc), now)
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop the worker
            log.error(  # noqa: TRY400 - the class name only: a message could quote anything
                "delivery.failed", digest=item.envelope_digest.hex(),
                error_class=type(exc).__name__,
            )  # fmt: skip
            await self._retry_or_dead(item, leg, f"internal error ({type(exc).__name__})", now)
            outcome = "error"
        else:
            self.stats.delivered += 1
            self.stats.latency_sum += self.service.clock() - item.created_at
            self.stats.latency_count += 1
            outcome = "delivered"
        log.info(
            "delivery.attempted",
            digest=item.envelope_digest.hex(),
            recipient=item.destination,
            route=leg.route.kind if leg else "none",
            attempt=item.attempts,
            outcome=outcome,
            status=item.kind,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _fallback_after(self, leg: Leg) -> int:
        """Return the failures in a row after which ``leg``'s route is left.

        A route may set its own in the directory (option ``fallback_after``, 1 to 100): a
        MESH route that is slow to recover, say; otherwise ``delivery.fallback_after``.
        """
        value = leg.route.options.get("fallback_after", "")
        if value.isdigit() and 1 <= int(value) <= MAX_FALLBACK_AFTER:
            return int(value)
        return self.config.fallback_after

    def _fallback_event(self, item: OutboxItem, leg: Leg, now: float) -> bytes:
        return ledger_event(
            EventType.FALLBACK, int(now), item.origin, item.envelope_digest,
            counterparty=item.destination, reason=leg.route.kind,
        )  # fmt: skip

    def _attempt_event(self, item: OutboxItem, leg: Leg | None, outcome: str, now: float) -> bytes:
        """Return the ledger event of an attempt, reason ``<outcome>:<route kind>``."""
        kind = leg.route.kind if leg is not None else ("smtp" if item.kind == "notice" else "none")
        return ledger_event(
            EventType.ATTEMPTED, int(now), item.origin, item.envelope_digest,
            counterparty=item.destination, reason=f"{outcome}:{kind}",
        )  # fmt: skip

    async def _refused(self, item: OutboxItem, leg: Leg | None, error: str, now: float) -> str:
        """Fall back at once to the next route after a final refusal, or give up."""
        if leg is not None and leg.index + 1 < leg.count:
            await self.service.store.finish_attempt(
                item.id,
                state="retry-wait",
                now=now,
                next_attempt_at=now,
                error=error,
                route_index=leg.index + 1,
                route_failures=0,
                ledger_events=[
                    self._attempt_event(item, leg, "refused", now),
                    self._fallback_event(item, leg, now),
                ],
            )
            log.warning(
                "delivery.fallback", digest=item.envelope_digest.hex(),
                recipient=item.destination, route=leg.route.kind, error=error,
            )  # fmt: skip
            return "fallback"
        await self.service.store.finish_attempt(
            item.id,
            state="dead",
            now=now,
            error=error,
            # An attempt that ended the item, not a recipient's "rejected" receipt.
            ledger_events=[self._attempt_event(item, leg, "refused", now)],
        )
        self.stats.dead += 1
        log.warning(
            "delivery.dead-letter",
            digest=item.envelope_digest.hex(),
            recipient=item.destination,
            attempt=item.attempts,
            error=error,
        )
        return "refused"

    async def _retry_or_dead(
        self, item: OutboxItem, leg: Leg | None, error: str, now: float
    ) -> None:
        if now - item.created_at >= self.config.dead_letter_after:
            await self.service.store.finish_attempt(
                item.id, state="dead", now=now, error=error,
                ledger_events=[self._attempt_event(item, leg, "expired", now)],
            )  # fmt: skip
            self.stats.dead += 1
            log.warning(
                "delivery.dead-letter",
                digest=item.envelope_digest.hex(),
                recipient=item.destination,
                attempt=item.attempts,
            )
            return
        # Exponential backoff with "full jitter" in [half, whole] of the step, so a node that
        # comes back is not hit by every sender at the same instant.
        step = min(self.config.backoff_max, self.config.backoff_base * 2 ** (item.attempts - 1))
        delay = step * (0.5 + self.rng.random() / 2)
        failures = item.route_failures + 1
        route_index: int | None = None
        events = [self._attempt_event(item, leg, "retry", now)]
        if leg is not None and leg.count > 1 and failures >= self._fallback_after(leg):
            # Enough failures in a row here: the next attempt takes the next route, cycling
            # back to the first after the last, so a route that is down never loses an item.
            route_index, failures = (leg.index + 1) % leg.count, 0
            events.append(self._fallback_event(item, leg, now))
        await self.service.store.finish_attempt(
            item.id,
            state="retry-wait",
            now=now,
            next_attempt_at=now + delay,
            error=error,
            route_index=route_index,
            route_failures=failures,
            ledger_events=events,
        )
        self.stats.retried += 1

    async def _send(self, item: OutboxItem, leg: Leg, message_id: bytes, body: bytes) -> Delivered:
        """Hand one message to the leg's connector; return what the destination answered."""
        kind: MessageKind = "envelope" if item.kind == "envelope" else "receipt"
        message = Message(kind, message_id, item.origin, item.destination, body)
        outcome = await leg.connector.deliver(
            message, leg.route.address, timeout=self.config.timeout
        )
        if isinstance(outcome, RetryLater):
            raise _RetryError(outcome.reason)
        if isinstance(outcome, Refused):
            raise _RefusedError(outcome.reason)
        return outcome

    async def _handed_over(self, item: OutboxItem, leg: Leg, answer: Delivered) -> None:
        """Record that the route took the item; its ``delivered`` receipt comes later."""
        now = self.service.clock()
        await self.service.store.finish_attempt(
            item.id,
            state="delivered",
            now=now,
            route_kind=leg.route.kind,
            transport_ref=answer.transport_ref or None,
            ledger_events=[self._attempt_event(item, leg, "handed-over", now)],
        )

    async def _push_envelope(self, item: OutboxItem, leg: Leg) -> None:
        body = await asyncio.to_thread(self.service.store.body_path(item.ref).read_bytes)
        delivered = await self._send(item, leg, item.envelope_digest, body)
        answer = delivered.receipt
        if not answer:
            await self._handed_over(item, leg, delivered)
            return
        envelope = await self.service.store.envelope(item.ref)
        if envelope is None:  # pragma: no cover - the row is committed before the item
            raise _RefusedError("the envelope is no longer held")
        try:
            receipt = verify_receipt(
                answer,
                expected_digest=envelope.digest,
                expected_envelope_id=envelope.envelope_id,
                sender=item.origin,
                recipients=(item.destination,),
                directory=self.service.directory,
                now=self.service.now(),
            )
            signed = parse_signed(answer)
        except ReceiptError as exc:
            # A receipt that does not match what we sealed is never accepted as delivery
            # (the AS2 failure, DESIGN.md §5); the peer may answer properly next time.
            raise _RetryError(f"the delivered receipt was refused [{exc.rule}]") from None
        record = receipt_record(signed)
        await self.service.store.finish_attempt(
            item.id,
            state="delivered",
            now=self.service.clock(),
            receipt=record,
            route_kind=leg.route.kind,
            transport_ref=delivered.transport_ref or None,
            ledger_events=[
                ledger_event(EventType.DELIVERED, receipt.time, item.origin, envelope.digest,
                             counterparty=item.destination, receipt=record.digest)
            ],
        )  # fmt: skip

    async def _push_receipt(self, item: OutboxItem, leg: Leg) -> None:
        record = await self.service.store.receipt(item.ref)
        if record is None:  # pragma: no cover - committed with the item
            raise _RefusedError("the receipt is no longer held")
        delivered = await self._send(item, leg, record.digest, record.signed)
        await self.service.store.finish_attempt(
            item.id,
            state="delivered",
            now=self.service.clock(),
            route_kind=leg.route.kind,
            transport_ref=delivered.transport_ref or None,
        )

    def _link(self, envelope_id: bytes) -> str:
        if self.link_template:
            return self.link_template.replace("{envelope_id}", envelope_id.hex())
        return f"{self.service.public_url}/"

    async def _send_notice(self, item: OutboxItem) -> None:
        """Mail staff: an item from ``origin`` waits, or one sent to ``origin`` is overdue.

        Notices carry no personal data: organisation names, the envelope id, a link and,
        for a chase, the due date and the receipt awaited.
        """
        addresses = self.notify.get(item.destination, ())
        if self.smtp is None or not addresses:
            raise _RefusedError("no mail server or staff mailbox is configured for notices")
        envelope = await self.service.store.envelope(item.envelope_digest)
        if envelope is None:
            raise _RefusedError("the envelope is no longer held")
        late = None
        if item.via == OVERDUE:
            overdue = await self.service.overdue_items(item.destination)
            late = next(
                (
                    o
                    for o in overdue
                    if o.digest == item.envelope_digest and o.recipient == item.origin
                ),
                None,
            )
            if late is None:  # met since it was queued: nothing to say
                await self.service.store.finish_attempt(
                    item.id, state="delivered", now=self.service.clock(),
                    error="met before the chase was sent",
                )  # fmt: skip
                return
        for address in addresses:
            # Each mail has a Message-ID derived from the envelope and organisation, so a
            # retry after a partial success repeats the same message, not a new one.
            if late is None:
                outcome = await self.smtp.send_notification(
                    envelope_id=envelope.envelope_id,
                    origin=item.origin,
                    destination=item.destination,
                    address=address,
                    link=self._link(envelope.envelope_id),
                    timeout=self.config.timeout,
                )
            else:
                outcome = await self.smtp.send_overdue_notice(
                    envelope_id=envelope.envelope_id,
                    origin=item.destination,
                    recipient=item.origin,
                    due=late.due.isoformat(),
                    waiting_for=late.waiting_for[0] if late.waiting_for else "acknowledged",
                    address=address,
                    link=self._link(envelope.envelope_id),
                    timeout=self.config.timeout,
                )
            if isinstance(outcome, RetryLater):
                raise _RetryError(outcome.reason)
            if isinstance(outcome, Refused):
                raise _RefusedError(outcome.reason)
        await self.service.store.finish_attempt(
            item.id, state="delivered", now=self.service.clock(), route_kind="smtp"
        )
