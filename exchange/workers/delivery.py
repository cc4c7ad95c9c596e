"""The outbox worker: claims due items, makes one attempt each, and records what happened.

Each outbox item is one message (an envelope or a receipt) for one destination organisation,
or a staff mail (a ``notice`` that an item waits, a ``chase`` that one is overdue). The
worker claims due items, hands each to the connector of its current route
(:mod:`exchange.outbox.routing`: the directory's routes in order, HTTPS push, NHS MESH,
relay mailbox or SMTP) or, for a staff mail, to the :class:`Notifier`, and turns the
connector's outcome into an event of the outbox machine (:mod:`exchange.outbox.machine`).
The machine decides the item's next state, back-off, fallback and ledger events; the store
writes that transition, with any receipt, in one transaction.

- HTTPS push answers with the recipient's signed ``delivered`` receipt, verified here
  against the digest this node computed before the item counts as delivered.
- MESH, relay mailboxes and SMTP only take the item over (``handed-over``); the
  ``delivered`` receipt comes later, collected by :mod:`exchange.workers.collect`, and an item
  without one after ``overdue_after`` is shown overdue.

Several ``exchange serve`` processes may share one store, each with its own worker. A
worker claims items under a lease for its process (``owner``; exchange.store.leases): it
renews the leases of the attempts it is still making every ``lease_renew`` seconds, and
another process takes over an item whose lease ran out (``lease`` seconds without renewal).
An attempt whose item was taken over meanwhile has its outcome dropped (the store writes it
only while the row names this process); the new owner attempts again.

Because the state is committed before and after every attempt, a crash at any point leaves
items ``attempting`` under a lease that runs out; another process, or this node started
again, then claims them, and the receiver de-duplicates by digest, so the effect is exactly
once. A graceful stop gives back at once the items whose attempt it could not finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol

from exchange.config import DeliveryConfig
from exchange.connectors.base import Body, Connector, Message, MessageKind, Outcome, StoredBody
from exchange.connectors.base import Delivered as Taken
from exchange.connectors.base import Refused as RefusedOutcome
from exchange.connectors.base import RetryLater as RetryOutcome
from exchange.keys.ids import OrgId
from exchange.logs import get_logger
from exchange.model import OutboxItem
from exchange.outbox import machine
from exchange.outbox.routing import Leg, NoRouteError, Routes
from exchange.outbox.skew import skew_reason
from exchange.receipts import ReceiptError, parse_signed, verify_receipt
from exchange.service.body_checks import LOCAL_DAMAGE
from exchange.service.node_service import NodeService
from exchange.service.rows import receipt_record
from exchange.store.blobs import BlobMissingError, ThreadReader
from exchange.workers.jobs import new_process_id
from exchange.workers.supervisor import TaskHealth, pause

log = get_logger("exchange.delivery")

#: A clock that reads this many seconds less than it did before was put back (a fast clock
#: corrected): deliveries waiting to retry are brought forward by as much.
CLOCK_WENT_BACK: Final = 60.0

#: How often a transition is computed again when the item changed under the attempt (a
#: recall marks it once; more than that means something else writes the row).
MAX_RECOMPUTE: Final = 3


class Notifier(Protocol):
    """Mails staff mailboxes; :class:`exchange.connectors.smtp.SmtpConnector` is one.

    Each mail has a Message-ID derived from the envelope and organisation, so a retry after
    a partial success repeats the same message, not a new one.
    """

    async def send_notification(
        self,
        *,
        envelope_id: bytes,
        origin: OrgId,
        destination: OrgId,
        address: str,
        link: str,
        timeout: float,
    ) -> Outcome:
        """Tell the staff mailbox ``address`` of ``destination`` that an item is waiting."""
        ...

    async def send_overdue_notice(
        self,
        *,
        envelope_id: bytes,
        origin: OrgId,
        recipient: OrgId,
        due: str,
        waiting_for: str,
        address: str,
        link: str,
        timeout: float,
    ) -> Outcome:
        """Tell ``origin``'s staff mailbox ``address`` that an item to ``recipient`` is late."""
        ...


def delivery_policy(config: DeliveryConfig) -> machine.Policy:
    """Return the outbox machine's policy for the node's delivery settings."""
    return machine.Policy(
        backoff_base=config.backoff_base,
        backoff_max=config.backoff_max,
        dead_letter_after=config.dead_letter_after,
        fallback_after=config.fallback_after,
    )


def route_taken(leg: Leg) -> machine.RouteTaken:
    """Return what the machine needs to know of the route an attempt takes."""
    return machine.RouteTaken(leg.index, leg.count, leg.route.kind, leg.route.options)


def outcome_event(route: machine.RouteTaken, outcome: Outcome) -> machine.AttemptOutcome:
    """Return the machine event of a connector's outcome (the item was not verified yet)."""
    if isinstance(outcome, RetryOutcome):
        return machine.RetryLater(route, outcome.reason)
    if isinstance(outcome, RefusedOutcome):
        return machine.Refused(route, outcome.reason)
    return machine.HandedOver(route, outcome.transport_ref or None)


def staff_of(item: OutboxItem) -> OrgId:
    """Return the organisation whose staff a notice or chase mails (model.OutboxKind)."""
    return item.origin if item.kind == "chase" else item.destination


@dataclass
class DeliveryStats:
    """Counters and latencies for /metrics."""

    attempts: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    #: The last clock skew seen per destination organisation (its node's, or its relay's,
    #: clock minus ours, in whole seconds), from the far side's ``Date``.
    clock_skew: dict[OrgId, int] = field(default_factory=dict)
    #: Attempts whose outcome was dropped: another process took the item over meanwhile.
    lease_lost: int = 0


#: The slowest transfer an attempt is given time for, in bytes per second: an attempt's
#: deadline is ``delivery.timeout`` plus the message's length at this rate, so a 1 GiB
#: envelope gets about 18 minutes more than a receipt, over a link of 1 MB/s or better.
MIN_TRANSFER_RATE: Final = 1_000_000


def attempt_timeout(base: float, length: int) -> float:
    """Return the deadline of one attempt to send ``length`` bytes (``base`` for no bytes)."""
    return base + length / MIN_TRANSFER_RATE


#: Whether a stored body (by digest; its bytes, or its file; its envelope's creation time) may
#: be sent: its SHA-256 as read, or None for a damaged one. A body already recorded as
#: damaged is not checked again.
BodyCheck = Callable[[bytes, bytes | ThreadReader, int], Awaitable[bytes | None]]

#: Bodies up to this size are read on the event loop (a 10 KB referral takes microseconds).
SMALL_BODY: Final = 64 * 1024


class DeliveryWorker:
    """Drains the outbox of one node.

    ``https`` carries HTTPS push routes (it signs each attempt as the item's origin);
    ``notifier`` mails staff, with ``notify`` each organisation's staff mailboxes.
    """

    def __init__(
        self,
        service: NodeService,
        config: DeliveryConfig,
        *,
        https: Connector,
        rng: machine.Random | None = None,
        routes: Routes | None = None,
        notifier: Notifier | None = None,
        notify: Mapping[OrgId, tuple[str, ...]] | None = None,
        link_template: str | None = None,
        intact: BodyCheck | None = None,
        owner: str | None = None,
    ) -> None:
        self.service = service
        #: The id of this process, the owner of the leases on the items it attempts.
        self.owner = owner or new_process_id()
        #: The items this worker is attempting now (their leases are renewed).
        self._attempting: set[int] = set()
        #: Checks a stored body of the node's own before it is sent (local damage); the
        #: node passes :func:`exchange.service.body_checks.own_body_intact`.
        self.intact = intact
        self.https = https
        self.config = config
        self.policy = delivery_policy(config)
        self.rng: machine.Random = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.stats = DeliveryStats()
        self.routes = routes or Routes({})
        self.routes.shared.setdefault("https", self.https)
        self.notifier = notifier
        self.notify = dict(notify or {})
        self.link_template = link_template
        #: The outbox's health (a supervisor's, when run under one: exchange.node.runtime).
        self.health = TaskHealth("outbox", "the outbox")
        self._stop: asyncio.Event | None = None
        self._slots: dict[OrgId, asyncio.Semaphore] = {}
        #: Destinations whose last attempt here was delivered. One that delivers when not
        #: in it (its first since the start, or its first after a failure) has its waiting
        #: items made due at once (:meth:`_answering_again`).
        self._answering: set[OrgId] = set()

    async def run(self, stop: asyncio.Event, health: TaskHealth | None = None) -> None:
        """Work until ``stop`` is set, then let in-flight attempts finish.

        Attempts run concurrently up to ``concurrency``; whenever one finishes, the worker
        claims more due items at once, so one slow peer never holds back a whole batch. A
        store that cannot write (a full disk) fails a round, not the worker: the failure
        goes to ``health`` (logged once per cause, counted) and the round is tried again
        after the back-off, so delivery resumes by itself when the cause goes away.
        """
        if health is not None:
            self.health = health
        self._stop = stop
        renewing = asyncio.create_task(self._renew_leases(), name="outbox-leases")
        try:
            await self._claim_and_attempt(stop)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        await self._give_back()

    async def _give_back(self) -> None:
        """At the stop, give back the items whose attempt could not be recorded."""
        try:
            requeued = await self.service.store.requeue_attempting(self.owner, self.service.clock())
        except Exception as exc:  # noqa: BLE001 - their leases run out instead; noted
            self.health.failed(exc, "give-back")
            return
        if requeued:
            log.info("outbox.requeued", count=requeued)

    async def _renew_leases(self) -> None:
        """Renew the leases of the items being attempted, every ``lease_renew`` seconds."""
        config = self.config
        while True:
            await asyncio.sleep(config.lease_renew)
            if not self._attempting:
                continue
            try:
                await self.service.store.renew_leases(
                    self.owner, set(self._attempting), self.service.clock() + config.lease
                )
            except Exception as exc:  # noqa: BLE001 - tried again at the next renewal
                self.health.failed(exc, "renew")

    async def _claim_and_attempt(self, stop: asyncio.Event) -> None:
        """Claim due items and attempt them until ``stop``; let attempts under way finish."""
        health = self.health
        inflight: set[asyncio.Task[None]] = set()
        wakeup = self.service.outbox_wakeup
        latest = self.service.clock()
        while not stop.is_set():
            try:
                latest = await self._notice_clock_put_back(latest)
            except Exception as exc:  # noqa: BLE001 - tried again after the back-off
                await pause(stop, health.failed(exc, "clock"))
                continue
            room = self.config.concurrency - len(inflight)
            claimed = 0
            if room > 0:
                # Cleared before claiming, so a submission committed after the claim's query
                # sets it again and is never missed.
                wakeup.clear()
                try:
                    items = await self.service.store.claim_due(
                        self.service.clock(), min(room, self.config.batch),
                        self.owner, self.config.lease,
                    )  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - tried again after the back-off
                    await pause(stop, health.failed(exc, "claim"))
                    continue
                claimed = len(items)
                # Claiming wrote to the store: the outbox makes progress again. An empty
                # claim wrote nothing, so it ends only a spell of failed claims.
                health.succeeded(stage=None if claimed else "claim")
                for item in items:
                    task = asyncio.create_task(self.attempt(item))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
            if claimed and claimed == room:
                continue
            await self._wait_for_work(stop, inflight)
        # Graceful shutdown: attempts under way finish and record their outcome.
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)

    async def _wait_for_work(self, stop: asyncio.Event, inflight: set[asyncio.Task[None]]) -> None:
        """Wait until an attempt ends, a submission wakes the worker, ``stop``, or the poll."""
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
        if len(inflight) < self.config.concurrency:
            # With every slot taken, a submission's wake-up changes nothing until an attempt
            # ends (it stays set until the next claim): the worker is not woken for each one.
            waiters.add(asyncio.ensure_future(self.service.outbox_wakeup.wait()))
        await asyncio.wait(
            waiters | inflight,
            timeout=self.config.poll_interval,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for waiter in waiters:
            waiter.cancel()

    async def _notice_clock_put_back(self, latest: float) -> float:
        """Bring retries forward if the node's clock went back; return the latest reading.

        A retry's wait is counted from the clock: after a clock that ran ahead is corrected,
        every wait would otherwise last as much longer as the clock was ahead.
        """
        now = self.service.clock()
        if now >= latest - CLOCK_WENT_BACK:
            return max(latest, now)
        moved = await self.service.store.bring_retries_forward(latest - now)
        log.warning("outbox.clock-put-back", seconds=round(latest - now), items=moved)
        return now

    async def attempt(self, item: OutboxItem) -> None:
        """Make one attempt on the item's current route and record its outcome.

        At most ``per_destination`` attempts go to one organisation at once: a receiving
        node takes only so many uploads from one peer (docs/protocol.md §6), and an attempt
        it turned away as busy would count towards falling back to another route.
        """
        slot = self._slots.get(item.destination)
        if slot is None:
            slot = self._slots[item.destination] = asyncio.Semaphore(self.config.per_destination)
        self._attempting.add(item.id)
        try:
            async with slot:
                await self._attempt(item)
        finally:
            self._attempting.discard(item.id)

    async def _attempt(self, item: OutboxItem) -> None:
        started = time.monotonic()
        self.stats.attempts += 1
        route: machine.RouteTaken | None = None
        event: machine.AttemptOutcome
        try:
            if item.kind in {"notice", "chase"}:
                route = machine.MAIL_ROUTE
                event = await self._mail(item)
            else:
                try:
                    leg = self._leg(item)
                except NoRouteError as exc:
                    event = machine.NoRoute(str(exc))
                else:
                    route = route_taken(leg)
                    if item.kind == "envelope":
                        event = await self._push_envelope(item, leg, route)
                    else:
                        event = await self._push_receipt(item, leg, route)
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop the worker
            log.error(  # noqa: TRY400 - the class name only: a message could quote anything
                "delivery.failed", digest=item.envelope_digest.hex(),
                error_class=type(exc).__name__,
            )  # fmt: skip
            event = machine.InternalError(route, type(exc).__name__)
        transition = await self._record_until_stored(item, event)
        if transition is False:
            return
        outcome = self._count(item, event, transition)
        await self._answering_again(item, outcome)
        log.info(
            "delivery.attempted",
            digest=item.envelope_digest.hex(),
            recipient=item.destination,
            route=route.kind if route else "none",
            attempt=item.attempts,
            outcome=outcome,
            status=item.kind,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    async def _answering_again(self, item: OutboxItem, outcome: str) -> None:
        """After a delivery to a destination that was failing, send its backlog now.

        Items waiting on their own back-off timers would otherwise drain at the pace of
        those timers long after the destination is back. Made due now, they are claimed
        at once, as many at a time as ``concurrency`` and ``per_destination`` allow.
        Staff mails are not destinations' deliveries and change nothing here.
        """
        if item.kind not in {"envelope", "receipt"}:
            return
        destination = item.destination
        # The busy rule counts only destinations that answer, and the rate they are served at.
        self.service.backpressure.attempted(
            destination, delivered=outcome == "delivered", envelope=item.kind == "envelope",
            now=self.service.clock(),
        )  # fmt: skip
        if outcome != "delivered":
            self._answering.discard(destination)
            return
        if destination in self._answering:
            return
        self._answering.add(destination)
        try:
            moved = await self.service.store.make_due_now(destination, self.service.clock())
        except Exception as exc:  # noqa: BLE001 - the timers still bring them; noted
            self.health.failed(exc, "backlog")
            return
        if moved:
            log.info("outbox.destination-answers", recipient=destination, count=moved)
            self.service.outbox_wakeup.set()

    def _leg(self, item: OutboxItem) -> Leg:
        """Pick the route for this attempt: the item's current one among those usable here."""
        legs = self.routes.legs(self.service.directory, item.origin, item.destination, item.via)
        return legs[item.route_index % len(legs)]

    async def _record_until_stored(
        self, item: OutboxItem, event: machine.AttemptOutcome
    ) -> machine.Transition | Literal[False] | None:
        """Record the attempt's outcome, trying again after the back-off if the store fails.

        Outside :meth:`run` (one attempt made directly) a failure is raised. Under
        :meth:`run`, the item stays ``attempting`` until its outcome is written; if the node
        stops first, the attempt is given up (False) and the item given back to the queue
        (or, if the store cannot write that either, taken by whoever claims it once its
        lease runs out), like an attempt cut short by a crash. False too when the item was
        taken over by another process: its outcome is dropped.
        """
        while True:
            # Back off from the end of the attempt, not its start: an attempt that ran into
            # the timeout would otherwise be due again at once, hammering a hanging peer.
            try:
                transition = await self._record(item, event, self.service.clock())
            except Exception as exc:
                if self._stop is None:
                    raise
                delay = self.health.failed(exc, "record")
                if self._stop.is_set():
                    log.warning("delivery.unrecorded", digest=item.envelope_digest.hex())
                    return False
                await pause(self._stop, delay)
                continue
            self.health.succeeded()
            return transition

    async def _record(
        self, item: OutboxItem, event: machine.AttemptOutcome, now: float
    ) -> machine.Transition | Literal[False] | None:
        """Ask the machine what the outcome does to the item and have the store write it.

        A recall requested during the attempt changes the row under it; the transition is
        then computed again from the row as it is, so the recall is never overwritten. An
        item another process has claimed since (this worker's lease ran out) is left to
        it: the outcome is dropped (False), and the other process attempts again.
        """
        current = item
        for _ in range(MAX_RECOMPUTE):
            transition = machine.step(current, event, now, self.policy, self.rng)
            if await self.service.store.apply_transition(transition):
                return transition
            fresh = await self.service.store.outbox_item(item.id)
            if fresh is not None and fresh.lease_owner != item.lease_owner:
                self.stats.lease_lost += 1
                log.warning("delivery.lease-lost", digest=item.envelope_digest.hex(), item=item.id)
                return False
            if fresh is None or fresh.state != "attempting":
                break
            current = fresh
        log.error("delivery.unrecorded", digest=item.envelope_digest.hex(), item=item.id)
        return None

    def _count(
        self, item: OutboxItem, event: machine.AttemptOutcome, transition: machine.Transition | None
    ) -> str:
        """Update the counters for /metrics and return the outcome's name for the log."""
        state = transition.after.state if transition is not None else item.state
        error = transition.after.last_error if transition is not None else None
        if state == "delivered":
            self.stats.delivered += 1
            self.stats.latency_sum += self.service.clock() - item.created_at
            self.stats.latency_count += 1
            return "delivered"
        if state == "dead":
            self.stats.dead += 1
            log.warning(
                "delivery.dead-letter", digest=item.envelope_digest.hex(),
                recipient=item.destination, attempt=item.attempts, error=error,
            )  # fmt: skip
        if isinstance(event, machine.Refused | machine.NoRoute):
            if state == "retry-wait":
                log.warning(
                    "delivery.fallback", digest=item.envelope_digest.hex(),
                    recipient=item.destination,
                    route=event.route.kind if isinstance(event, machine.Refused) and event.route
                    else "none",
                    error=error,
                )  # fmt: skip
                return "fallback"
            return "refused"
        if state == "retry-wait":
            self.stats.retried += 1
        return "error" if isinstance(event, machine.InternalError) else "retry"

    async def _send(self, item: OutboxItem, leg: Leg, message_id: bytes, body: Body) -> Outcome:
        """Hand one message to the leg's connector; return what the destination answered."""
        kind: MessageKind = "envelope" if item.kind == "envelope" else "receipt"
        message = Message(kind, message_id, item.origin, item.destination, body)
        outcome = await leg.connector.deliver(
            message, leg.route.address, timeout=attempt_timeout(self.config.timeout, message.length)
        )
        return self._observe_clock(item, leg, outcome)

    def _observe_clock(self, item: OutboxItem, leg: Leg, outcome: Outcome) -> Outcome:
        """Note how far the far side's clock is from ours; word a refusal for time.

        A far side that refused the request's signature time (its clock or ours is off) is
        tried again with back-off, never given up on for that (docs/node.md, failure modes):
        the item's last error says how far off its clock is, and so does the log.
        """
        far = outcome.far_time if isinstance(outcome, Taken | RetryOutcome) else None
        if far is None:
            return outcome
        skew = round(far - self.service.clock())
        self.stats.clock_skew[item.destination] = skew
        if not (isinstance(outcome, RetryOutcome) and outcome.clock):
            return outcome
        reason = skew_reason(skew, relay=leg.route.kind == "mailbox")
        log.warning(
            "delivery.clock-skew", digest=item.envelope_digest.hex(),
            recipient=item.destination, route=leg.route.kind, skew_seconds=skew, error=reason,
        )  # fmt: skip
        return replace(outcome, reason=reason)

    async def _push_envelope(
        self, item: OutboxItem, leg: Leg, route: machine.RouteTaken
    ) -> machine.AttemptOutcome:
        blobs = self.service.store.blobs
        envelope, damaged = await self.service.store.envelope_to_send(item.ref)
        if envelope is None:  # pragma: no cover - the row is committed before the item
            return machine.Refused(route, "the envelope is no longer held")
        # A small body (nearly all) is read whole here; a larger one stays where it is kept:
        # the connector reads it in pieces as it sends it.
        small = await blobs.read_small(item.ref, SMALL_BODY)
        sha256 = None
        if not damaged and self.intact is not None:
            checked = blobs.in_thread(item.ref) if small is None else small
            sha256 = await self.intact(item.ref, checked, envelope.created)
        if damaged or (self.intact is not None and sha256 is None):
            # Never sent: the receiver would refuse it, and that would read as its refusal.
            return machine.NoRoute(LOCAL_DAMAGE)
        body: bytes | StoredBody
        if small is not None:
            body = small
        else:
            size = await blobs.size(item.ref)
            if size is None:
                raise BlobMissingError
            body = StoredBody(functools.partial(blobs.read_at, item.ref), size, sha256)
        outcome = await self._send(item, leg, item.envelope_digest, body)
        if not isinstance(outcome, Taken) or not outcome.receipt:
            return outcome_event(route, outcome)
        try:
            verify_receipt(
                outcome.receipt,
                expected_digest=envelope.digest,
                expected_envelope_id=envelope.envelope_id,
                sender=item.origin,
                recipients=(item.destination,),
                directory=self.service.directory,
                now=self.service.now(),
            )
            signed = parse_signed(outcome.receipt)
        except ReceiptError as exc:
            # A receipt that does not match what we sealed is never accepted as delivery
            # (the AS2 failure, docs/receipts.md); the peer may answer properly next time.
            return machine.RetryLater(route, f"the delivered receipt was refused [{exc.rule}]")
        # A slow clock's receipt is kept with the envelope's time, never before it.
        record = receipt_record(signed, not_before=envelope.created)
        return machine.Delivered(route, record, outcome.transport_ref or None)

    async def _push_receipt(
        self, item: OutboxItem, leg: Leg, route: machine.RouteTaken
    ) -> machine.AttemptOutcome:
        record = await self.service.store.receipt(item.ref)
        if record is None:  # pragma: no cover - committed with the item
            return machine.Refused(route, "the receipt is no longer held")
        return outcome_event(route, await self._send(item, leg, record.digest, record.signed))

    def _link(self, envelope_id: bytes) -> str:
        if self.link_template:
            return self.link_template.replace("{envelope_id}", envelope_id.hex())
        return f"{self.service.public_url}/"

    async def _mail(self, item: OutboxItem) -> machine.AttemptOutcome:
        """Mail staff: an item from ``origin`` waits, or one ``origin`` sent is overdue.

        Notices carry no personal data: organisation names, the envelope id, a link and,
        for a chase, the due date and the receipt awaited.
        """
        route = machine.MAIL_ROUTE
        addresses = self.notify.get(staff_of(item), ())
        if self.notifier is None or not addresses:
            return machine.Refused(
                route, "no mail server or staff mailbox is configured for notices"
            )
        envelope = await self.service.store.envelope(item.envelope_digest)
        if envelope is None:
            return machine.Refused(route, "the envelope is no longer held")
        link = self._link(envelope.envelope_id)
        notifier = self.notifier
        mails: list[Callable[[], Awaitable[Outcome]]]
        if item.kind == "notice":
            mails = [
                functools.partial(
                    notifier.send_notification, envelope_id=envelope.envelope_id,
                    origin=item.origin, destination=item.destination, address=address,
                    link=link, timeout=self.config.timeout,
                )
                for address in addresses
            ]  # fmt: skip
        else:
            overdue = await self.service.overdue_items(item.origin)
            late = next(
                (
                    o
                    for o in overdue
                    if o.digest == item.envelope_digest and o.recipient == item.destination
                ),
                None,
            )
            if late is None:  # met since it was queued: nothing to say
                return machine.ChaseMet()
            mails = [
                functools.partial(
                    notifier.send_overdue_notice, envelope_id=envelope.envelope_id,
                    origin=item.origin, recipient=item.destination, due=late.due.isoformat(),
                    waiting_for=late.waiting_for[0] if late.waiting_for else "acknowledged",
                    address=address, link=link, timeout=self.config.timeout,
                )
                for address in addresses
            ]  # fmt: skip
        for mail in mails:
            outcome = await mail()
            if not isinstance(outcome, Taken):
                return outcome_event(route, outcome)
        return machine.HandedOver(route)
