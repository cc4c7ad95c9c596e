"""The durable delivery state machine of the outbox, as a pure function of its inputs.

Every outbox item (one envelope, receipt or staff notice for one organisation) moves through
the states below. :func:`step` takes the item as stored, one typed event, the time, the
:class:`Policy` and a source of randomness, and returns a :class:`Transition`: the item as
it must be stored next, the receipt to keep with it and the ledger events to append, all in
one transaction. Nothing here reads a clock, a socket, a file or a database: the worker
(:mod:`exchange.workers.delivery`) makes attempts and the store writes what this module
decides. An item whose sender asked for a recall is *marked* (``recall_requested_at``).

State table (``-`` means the state is left as it is; "marked" means a recall was requested)::

    from                    event                       to            ledger events
    ----------------------  --------------------------  ------------  ---------------------------
    queued, retry-wait      Claimed                     attempting    (attempts + 1, leased)
    attempting, its lease   Claimed                     attempting    (attempts + 1, leased to
    expired (not marked)                                              the new owner)
    attempting              Delivered (receipt checked) delivered     delivered
    attempting              HandedOver                  delivered     attempted handed-over:<k>
                                                                      (envelopes only)
    attempting              ChaseMet                    delivered     (no mail is sent)
    attempting              RetryLater / InternalError  retry-wait    attempted retry:<k>
                            (younger than the dead-                   [+ fallback <k> after
                            letter age)                               fallback_after in a row]
    attempting              RetryLater / InternalError  dead          attempted expired:<k>
                            (dead-letter age reached)
    attempting              Refused, a route is left    retry-wait    attempted refused:<k>,
                                                        (next route,  fallback <k>
                                                        due at once)
    attempting              Refused on the last route   dead          attempted refused:<k>
    attempting              NoRoute                     dead          attempted refused:none
    attempting, marked      any outcome not delivered   recalled      (the outcome's events)
    attempting              Restarted                   queued        -
    attempting, marked      Restarted                   recalled      -
    queued, retry-wait,     RecallRequested             recalled      - (item marked)
    dead
    attempting, delivered,  RecallRequested             -             - (item marked)
    recalled
    delivered               NonDeliveryReport           retry-wait    attempted undelivered:<k>
                                                        (next route,
                                                        due at once)
    delivered, marked       NonDeliveryReport           recalled      -
    dead                    RequeueDead                 queued        - (a fresh start: age and
                                                                      route reset)
    dead, marked            RequeueDead                 recalled      -
    queued, retry-wait,     NoticeWithdrawn             recalled      -
    dead (a notice)
    attempting, delivered,  NoticeWithdrawn             -             -
    recalled (a notice)
    dead                    EnvelopeDestroyed           dead          - (last error says so)
    any other state         EnvelopeDestroyed           -             -

An ``attempting`` item is leased to the process making the attempt (``lease_owner``, until
``lease_until``): the process renews the lease while the attempt runs, and an item whose
lease ran out (its process died or hangs) is claimed again by another. Every transition out
of ``attempting`` clears the lease. The store writes a transition only if the row still has
the owner it had when the transition was computed, so the outcome of an attempt whose item
was taken over is dropped: the new owner makes the attempt again, and the receiver's
de-duplication by digest keeps the delivery to one.

``<k>`` is the kind of the route the attempt took (``https``, ``mesh``, ``mailbox``,
``smtp``; ``none`` when there was none). Any other (state, event) pair is a caller's
mistake and raises :class:`TransitionError`.

Back-off: after the n-th failed attempt the item waits ``step * (0.5 + r / 2)`` seconds with
``step = min(backoff_max, backoff_base * 2 ** (n - 1))`` and ``r`` drawn in [0, 1), counted
from the *end* of the attempt, so an attempt that ran into its timeout is not due again at
once and a peer that comes back is not hit by every sender at the same instant. Fallback:
a refusal moves to the next route at once; failures that may pass move to the next route
after ``fallback_after`` of them in a row on one route, cycling back to the first after
the last, so a route that is down never loses an item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

from exchange.ledger.events import EventType, LedgerEvent
from exchange.model import OutboxItem, OutboxState, ReceiptRecord

#: Largest per-route ``fallback_after`` a directory may set: above it a route would keep an
#: item for days before the next one is tried, which is what the dead-letter age is for.
MAX_FALLBACK_AFTER: Final = 100

#: The last error of a chase whose deadline was met before the mail went out.
CHASE_MET: Final = "met before the chase was sent"

#: The last error of a dead delivery whose envelope was destroyed under its retention rule.
DESTROYED: Final = "the envelope was destroyed under its retention rule"

#: States an item may be claimed from.
CLAIMABLE: Final[frozenset[OutboxState]] = frozenset({"queued", "retry-wait"})

#: States in which the item will still be sent (and needs the envelope's body).
PENDING: Final[frozenset[OutboxState]] = frozenset({"queued", "attempting", "retry-wait"})

#: States in which an item has not left the node and a recall cancels it outright.
CANCELLABLE: Final[frozenset[OutboxState]] = frozenset({"queued", "retry-wait", "dead"})


class TransitionError(ValueError):
    """The event cannot happen to an item in its current state (a caller's mistake)."""


class Random(Protocol):
    """Where the jitter comes from: :class:`random.Random` or a fixed value in a test."""

    def random(self) -> float:
        """Return a float in [0, 1)."""
        ...


@dataclass(frozen=True, slots=True)
class Policy:
    """The retry policy of the outbox (from ``exchange.config.DeliveryConfig``)."""

    backoff_base: float = 2.0
    backoff_max: float = 600.0
    dead_letter_after: float = 3 * 24 * 3600.0
    #: Failed attempts in a row on one route before the next route is tried.
    fallback_after: int = 3

    def __post_init__(self) -> None:
        if self.fallback_after < 1:
            raise ValueError("fallback_after must be at least 1")

    def route_fallback_after(self, options: Mapping[str, str]) -> int:
        """Return the failures in a row after which a route with ``options`` is left.

        A route may set its own in the directory (option ``fallback_after``, 1 to
        :data:`MAX_FALLBACK_AFTER`): a MESH route that is slow to recover, say. Any other
        value is ignored and the policy's own applies.
        """
        value = options.get("fallback_after", "")
        if value.isdigit() and 1 <= int(value) <= MAX_FALLBACK_AFTER:
            return int(value)
        return self.fallback_after

    def backoff(self, attempts: int, r: float) -> float:
        """Return the wait after the ``attempts``-th failed attempt, for ``r`` in [0, 1)."""
        step = min(self.backoff_max, self.backoff_base * 2.0 ** (attempts - 1))
        return step * (0.5 + r / 2)


@dataclass(frozen=True, slots=True)
class RouteTaken:
    """The route an attempt took: its place among the usable ones, its kind and options."""

    index: int
    count: int
    kind: str
    options: Mapping[str, str] = field(default_factory=dict, hash=False)


#: The one route of a staff notice or chase: the node's mail server.
MAIL_ROUTE: Final = RouteTaken(0, 1, "smtp")


# --- events: the outcome of an attempt ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A process takes a due item (or one whose lease ran out) for an attempt.

    ``owner`` is the process's id; its lease on the item holds until ``until``.
    """

    owner: str
    until: float


@dataclass(frozen=True, slots=True)
class Delivered:
    """The destination answered with a ``delivered`` receipt that verified against the seal."""

    route: RouteTaken
    receipt: ReceiptRecord
    transport_ref: str | None = None


@dataclass(frozen=True, slots=True)
class HandedOver:
    """The route took the item (a pushed receipt, a mail, or an envelope on MESH or a relay).

    For an envelope the ``delivered`` receipt comes later, collected from a pull route.
    """

    route: RouteTaken
    transport_ref: str | None = None


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The attempt failed in a way that may pass; ``reason`` is a plain sentence."""

    route: RouteTaken | None
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The route refused the item for good; ``reason`` is a plain sentence."""

    route: RouteTaken | None
    reason: str


@dataclass(frozen=True, slots=True)
class NoRoute:
    """None of the destination's routes can be used by this node."""

    reason: str


@dataclass(frozen=True, slots=True)
class InternalError:
    """The attempt raised (a bug): treated as a failure that may pass, by its class name only."""

    route: RouteTaken | None
    error_class: str

    @property
    def reason(self) -> str:
        """Return the last error stored: the class name, never a message that could quote data."""
        return f"internal error ({self.error_class})"


@dataclass(frozen=True, slots=True)
class ChaseMet:
    """The deadline a chase was queued for was met before the mail went out."""


# --- events from outside an attempt ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restarted:
    """The attempt on the item ended with no outcome recorded, and the item is given back.

    A process stopping with attempts it could not record gives their items back; an item
    marked for recall whose process died (its lease ran out) is ended this way too.
    """


@dataclass(frozen=True, slots=True)
class RecallRequested:
    """The sender recalled the envelope the item carries."""


@dataclass(frozen=True, slots=True)
class NonDeliveryReport:
    """A transport that took the item reported later that it could not deliver it."""

    reason: str


@dataclass(frozen=True, slots=True)
class RequeueDead:
    """An operator gives dead items a fresh start once the cause is fixed."""


@dataclass(frozen=True, slots=True)
class NoticeWithdrawn:
    """The item a staff notice is about was recalled before the notice was mailed."""


@dataclass(frozen=True, slots=True)
class EnvelopeDestroyed:
    """The envelope of a sent item was destroyed under its retention rule."""


AttemptOutcome = Delivered | HandedOver | RetryLater | Refused | NoRoute | InternalError | ChaseMet

Event = (
    Claimed
    | AttemptOutcome
    | Restarted
    | RecallRequested
    | NonDeliveryReport
    | RequeueDead
    | NoticeWithdrawn
    | EnvelopeDestroyed
)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one event does to one item: the item before and after, and what goes with it.

    The store writes ``after`` only if the row still is ``before`` in state and recall mark
    (so a recall that raced an attempt is never overwritten), with ``receipt`` and
    ``ledger_events``, in one transaction.
    """

    before: OutboxItem
    after: OutboxItem
    ledger_events: tuple[LedgerEvent, ...] = ()
    receipt: ReceiptRecord | None = None

    @property
    def changed(self) -> bool:
        """Return whether there is anything to write."""
        return self.after != self.before or bool(self.ledger_events) or self.receipt is not None


def _event(
    kind: EventType,
    item: OutboxItem,
    now: float,
    *,
    reason: str | None = None,
) -> LedgerEvent:
    return LedgerEvent(
        type=kind,
        time=int(now),
        org=item.origin,
        envelope_digest=item.envelope_digest,
        counterparty=item.destination,
        reason=reason,
    )


def _attempted(item: OutboxItem, route: RouteTaken | None, outcome: str, now: float) -> LedgerEvent:
    """Return the ``attempted`` event of an attempt, reason ``<outcome>:<route kind>``."""
    kind = route.kind if route is not None else "none"
    return _event(EventType.ATTEMPTED, item, now, reason=f"{outcome}:{kind}")


def _fallback(item: OutboxItem, route: RouteTaken, now: float) -> LedgerEvent:
    """Return the ``fallback`` event of leaving ``route`` for the next one."""
    return _event(EventType.FALLBACK, item, now, reason=route.kind)


def _refuse(state: OutboxState, event: Event) -> TransitionError:
    return TransitionError(
        f"an outbox item in state {state!r} cannot take the event {type(event).__name__}"
    )


def step(
    item: OutboxItem,
    event: Event,
    now: float,
    policy: Policy | None = None,
    rng: Random | None = None,
) -> Transition:
    """Return what ``event`` at time ``now`` does to ``item`` (see the module's state table).

    ``policy`` and ``rng`` are needed only for attempt outcomes that back off; ``rng`` is
    drawn from at most once. Raises :class:`TransitionError` for an event the item's state
    cannot take.
    """
    if isinstance(event, Delivered | HandedOver | RetryLater | Refused | NoRoute | InternalError):
        transition = _recalled_wins(item, _attempt(item, event, now, policy or Policy(), rng))
    else:
        handler = _HANDLERS.get(type(event))
        if handler is None:
            raise TypeError(f"not an outbox event: {type(event).__name__}")
        transition = handler(item, event, now)
    return _lease_ends_with_attempt(transition)


def _lease_ends_with_attempt(transition: Transition) -> Transition:
    """Clear the lease of an item that leaves ``attempting``: nobody is working on it."""
    after = transition.after
    if after.state == "attempting" or (after.lease_owner is None and after.lease_until is None):
        return transition
    return replace(transition, after=replace(after, lease_owner=None, lease_until=None))


def _claimed(item: OutboxItem, event: Event, now: float) -> Transition:
    if not isinstance(event, Claimed) or not is_claimable(item, now):
        raise _refuse(item.state, event)
    after = replace(
        item, state="attempting", attempts=item.attempts + 1, updated_at=now,
        lease_owner=event.owner, lease_until=event.until,
    )  # fmt: skip
    return Transition(item, after)


def _chase_met(item: OutboxItem, event: Event, now: float) -> Transition:
    if item.kind != "chase" or item.state != "attempting":
        raise _refuse(item.state, event)
    after = replace(item, state="delivered", last_error=CHASE_MET, updated_at=now)
    return Transition(item, after)


def _restarted(item: OutboxItem, event: Event, now: float) -> Transition:
    if item.state != "attempting":
        raise _refuse(item.state, event)
    after = replace(item, state="queued", next_attempt_at=now, updated_at=now)
    return _recalled_wins(item, Transition(item, after))


def _requeue_dead(item: OutboxItem, event: Event, now: float) -> Transition:
    if item.state != "dead":
        raise _refuse(item.state, event)
    after = replace(
        item, state="queued", next_attempt_at=now, updated_at=now, created_at=now,
        route_index=0, route_failures=0,
    )  # fmt: skip
    return _recalled_wins(item, Transition(item, after))


def _notice_withdrawn(item: OutboxItem, _event: Event, now: float) -> Transition:
    if item.kind != "notice":
        raise TransitionError("only a staff notice is withdrawn with its item")
    if item.state not in CANCELLABLE:
        return Transition(item, item)
    return Transition(item, replace(item, state="recalled", updated_at=now))


def _envelope_destroyed(item: OutboxItem, _event: Event, _now: float) -> Transition:
    if item.state != "dead":
        return Transition(item, item)
    return Transition(item, replace(item, last_error=DESTROYED))


def _recall(item: OutboxItem, _event: Event, now: float) -> Transition:
    """Cancel an item that has not left the node; mark every item so none is sent again."""
    if item.kind != "envelope":
        raise TransitionError("only an envelope's delivery is recalled by its sender")
    marked = item.recall_requested_at if item.recall_requested_at is not None else now
    if item.state in CANCELLABLE:
        after = replace(item, state="recalled", updated_at=now, recall_requested_at=marked)
    else:
        after = replace(item, recall_requested_at=marked)
    return Transition(item, after)


def _non_delivery(item: OutboxItem, event: Event, now: float) -> Transition:
    """Put a handed-over item back in the queue on its next route, unless it was recalled."""
    if not isinstance(event, NonDeliveryReport) or item.state != "delivered":
        raise _refuse(item.state, event)
    if item.recall_requested_at is not None:
        # The sender recalled it: undelivered is the best outcome, never a resend.
        after = replace(item, state="recalled", last_error=event.reason, updated_at=now)
        return Transition(item, after)
    after = replace(
        item, state="retry-wait", next_attempt_at=now, last_error=event.reason, updated_at=now,
        route_index=item.route_index + 1, route_failures=0, transport_ref=None,
    )  # fmt: skip
    undelivered = _event(
        EventType.ATTEMPTED, item, now, reason=f"undelivered:{item.route_kind or 'none'}"
    )
    return Transition(item, after, (undelivered,))


#: The events from outside an attempt, each with the function that applies it.
_HANDLERS: Final[dict[type, Callable[[OutboxItem, Event, float], Transition]]] = {
    Claimed: _claimed,
    ChaseMet: _chase_met,
    Restarted: _restarted,
    RecallRequested: _recall,
    NonDeliveryReport: _non_delivery,
    RequeueDead: _requeue_dead,
    NoticeWithdrawn: _notice_withdrawn,
    EnvelopeDestroyed: _envelope_destroyed,
}


def is_due(item: OutboxItem, now: float) -> bool:
    """Return whether the worker may claim ``item`` at ``now``.

    The store selects due items with the same condition (an indexed query, not a rule of
    its own): claimable state, not marked for recall, its time come.
    """
    return (
        item.state in CLAIMABLE and item.recall_requested_at is None and item.next_attempt_at <= now
    )


def lease_expired(item: OutboxItem, now: float) -> bool:
    """Return whether ``item`` is ``attempting`` under a lease that ran out by ``now``.

    An item left ``attempting`` without a lease (by a version of the node before leases)
    counts as expired.
    """
    return item.state == "attempting" and (item.lease_until is None or item.lease_until <= now)


def is_claimable(item: OutboxItem, now: float) -> bool:
    """Return whether a process may claim ``item`` at ``now``: due, or its lease ran out.

    An expired item marked for recall is not claimed: :class:`Restarted` ends it.
    """
    return is_due(item, now) or (item.recall_requested_at is None and lease_expired(item, now))


def _recalled_wins(item: OutboxItem, transition: Transition) -> Transition:
    """End an item marked for recall ``recalled`` rather than back in the queue.

    Only an outcome that handed the item over keeps it ``delivered``: it has left the node,
    and the recall goes on at the recipient's side.
    """
    if item.recall_requested_at is None or transition.after.state == "delivered":
        return transition
    return replace(transition, after=replace(transition.after, state="recalled"))


def _attempt(
    item: OutboxItem,
    event: Delivered | HandedOver | RetryLater | Refused | NoRoute | InternalError,
    now: float,
    policy: Policy,
    rng: Random | None,
) -> Transition:
    if item.state != "attempting":
        raise _refuse(item.state, event)
    if isinstance(event, Delivered):
        after = replace(
            item, state="delivered", updated_at=now, last_error=None,
            route_kind=event.route.kind, transport_ref=event.transport_ref or item.transport_ref,
        )  # fmt: skip
        delivered = LedgerEvent(
            type=EventType.DELIVERED,
            time=event.receipt.time,
            org=item.origin,
            envelope_digest=item.envelope_digest,
            counterparty=item.destination,
            receipt_digest=event.receipt.digest,
        )
        return Transition(item, after, (delivered,), event.receipt)
    if isinstance(event, HandedOver):
        after = replace(
            item, state="delivered", updated_at=now, last_error=None,
            route_kind=event.route.kind, transport_ref=event.transport_ref or item.transport_ref,
        )  # fmt: skip
        # Only an envelope's journey is in the ledger: receipts and notices going out are not
        # events about what was shared.
        events = (
            (_attempted(item, event.route, "handed-over", now),) if item.kind == "envelope" else ()
        )
        return Transition(item, after, events)
    if isinstance(event, Refused | NoRoute):
        return _refused(item, event, now)
    return _retry_or_dead(item, event, now, policy, rng)


def _refused(item: OutboxItem, event: Refused | NoRoute, now: float) -> Transition:
    """Fall back at once to the next route after a final refusal, or give the item up."""
    route = event.route if isinstance(event, Refused) else None
    attempted = _attempted(item, route, "refused", now)
    if route is not None and route.index + 1 < route.count:
        after = replace(
            item, state="retry-wait", next_attempt_at=now, last_error=event.reason,
            updated_at=now, route_index=route.index + 1, route_failures=0,
        )  # fmt: skip
        return Transition(item, after, (attempted, _fallback(item, route, now)))
    # An attempt that ended the item, not a recipient's "rejected" receipt.
    after = replace(item, state="dead", last_error=event.reason, updated_at=now)
    return Transition(item, after, (attempted,))


def _retry_or_dead(
    item: OutboxItem,
    event: RetryLater | InternalError,
    now: float,
    policy: Policy,
    rng: Random | None,
) -> Transition:
    """Back off on the same route (or the next, after enough failures), or dead-letter it."""
    route = event.route
    if now - item.created_at >= policy.dead_letter_after:
        after = replace(item, state="dead", last_error=event.reason, updated_at=now)
        return Transition(item, after, (_attempted(item, route, "expired", now),))
    if rng is None:
        raise ValueError("rng is required to back off after a failed attempt")
    delay = policy.backoff(item.attempts, rng.random())
    failures = item.route_failures + 1
    route_index = item.route_index
    events = [_attempted(item, route, "retry", now)]
    if (
        route is not None
        and route.count > 1
        and failures >= policy.route_fallback_after(route.options)
    ):
        route_index, failures = (route.index + 1) % route.count, 0
        events.append(_fallback(item, route, now))
    after = replace(
        item, state="retry-wait", next_attempt_at=now + delay, last_error=event.reason,
        updated_at=now, route_index=route_index, route_failures=failures,
    )  # fmt: skip
    return Transition(item, after, tuple(events))
