"""What an organisation's administrator sees of the node: routes, outbox, directory, keys.

The use case behind ``/admin/node``. Everything is about the administrator's own
organisation: the routes to the organisations it sends to (envelopes, and receipts going
back) with each route's recent failures and last success, its outbox backlog and dead
letters (which it may requeue), and its keys' expiry dates. The only node-wide facts are the
signed directory's version and issue date, which every organisation on the node shares and
which say nothing about anyone's items. No record content is read: outbox rows, ledger
events (digests, organisation ids and reason codes) and the directory.

A route's recent failures are the ``attempted`` ledger events of the organisation's
envelopes over :data:`HEALTH_WINDOW` whose outcome was a failure (``retry``, ``refused``,
``expired``, ``undelivered``, each with the route kind, :mod:`exchange.outbox.machine`);
its last success is the latest item, envelope or receipt, it delivered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from exchange.keys.errors import KeysError
from exchange.keys.ids import OrgId
from exchange.ledger.errors import LedgerError
from exchange.ledger.events import EventType, decode_event
from exchange.logs import get_logger
from exchange.model import User
from exchange.service.context import ServiceContext
from exchange.service.errors import ForbiddenError, NotFoundError
from exchange.service.key_expiry import WARN_DAYS
from exchange.store.node_state import DeadLetter, OutboxSummary

log = get_logger("exchange.node_state")

#: How far back a route's failures count as recent: a week.
HEALTH_WINDOW: Final = 7 * 24 * 3600
#: Keys expiring sooner than this are warned about, in days: the first of the thresholds
#: (60, 30 and 7 days) at which the node also warns in its log and metrics.
KEY_WARNING_DAYS: Final = max(WARN_DAYS)
#: Most dead letters listed at once (the requeue of all takes every one).
MAX_DEAD_LISTED: Final = 100
#: Outcomes of an ``attempted`` event that are failures.
FAILED: Final = frozenset({"retry", "refused", "expired", "undelivered"})
#: Outbox states counted as waiting to go.
WAITING: Final = ("queued", "attempting", "retry-wait")
DAY: Final = 24 * 3600


@dataclass(frozen=True)
class RouteHealth:
    """One route to an organisation: its kind, failures in the window, last success."""

    kind: str
    failures: int
    last_failure: float | None
    last_success: float | None
    #: Whether the directory still lists the route (a route no longer listed may have
    #: failures or successes from before).
    listed: bool = True


@dataclass(frozen=True)
class Destination:
    """An organisation the administrator's organisation sends to, and how that goes."""

    org: OrgId
    routes: tuple[RouteHealth, ...]
    waiting: int
    dead: int
    delivered: int


@dataclass(frozen=True)
class KeyGenerationState:
    """One generation of the organisation's keys as the directory lists it."""

    not_before: int
    not_after: int
    revoked: bool
    #: Whether this node holds its private keys.
    held: bool
    #: Whole days from now until it expires (negative once expired).
    days_left: int

    @property
    def in_use(self) -> bool:
        """Whether it is neither revoked nor expired."""
        return not self.revoked and self.days_left >= 0


@dataclass(frozen=True)
class NodeStateView:
    """The administrator's view of the node for their organisation."""

    org: OrgId
    destinations: tuple[Destination, ...]
    backlog: Mapping[str, int]
    dead_letters: tuple[DeadLetter, ...]
    dead_total: int
    directory_version: int
    directory_issued: int
    keys: tuple[KeyGenerationState, ...]
    #: The latest expiry of a generation in use that this node holds (None: none is).
    keys_expire: int | None
    now: int

    @property
    def keys_expire_soon(self) -> bool:
        """Whether the keys in use expire within :data:`KEY_WARNING_DAYS` (or none is)."""
        return self.keys_expire is None or self.keys_expire - self.now < KEY_WARNING_DAYS * DAY


def _failures(
    events: list[bytes], org: OrgId, since: float
) -> tuple[Counter[tuple[OrgId, str]], dict[tuple[OrgId, str], float]]:
    """Count the failed attempts of ``org``'s envelopes by (destination, route kind)."""
    counts: Counter[tuple[OrgId, str]] = Counter()
    latest: dict[tuple[OrgId, str], float] = {}
    for raw in events:
        try:
            event = decode_event(raw)
        except LedgerError:
            continue
        if (
            event.type is not EventType.ATTEMPTED
            or event.org != org
            or event.counterparty is None
            or event.time < since
            or event.reason is None
        ):
            continue
        outcome, _, kind = event.reason.partition(":")
        if outcome in FAILED:
            key = (event.counterparty, kind or "none")
            counts[key] += 1
            latest[key] = max(latest.get(key, 0.0), float(event.time))
    return counts, latest


class NodeState:
    """Read the node's state for an administrator; requeue their organisation's dead letters."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def _admin(self, actor: User) -> None:
        if actor.role != "admin":
            raise ForbiddenError("Only an administrator can see the node's state")
        self.context.tenant(actor.org)

    def _listed_routes(self, org: OrgId) -> tuple[str, ...]:
        try:
            return tuple(route.kind for route in self.context.directory.organisation(org).routes)
        except KeysError:
            return ()

    def _destinations(
        self, org: OrgId, summary: list[OutboxSummary], events: list[bytes], since: float
    ) -> tuple[Destination, ...]:
        failures, last_failure = _failures(events, org, since)
        orgs = sorted({row.destination for row in summary} | {d for d, _ in failures})
        destinations = []
        for dest in orgs:
            rows = [row for row in summary if row.destination == dest]
            successes: dict[str, float] = {}
            for row in rows:
                if row.state == "delivered" and row.route_kind is not None:
                    successes[row.route_kind] = max(
                        successes.get(row.route_kind, 0.0), row.last_updated
                    )
            listed = self._listed_routes(dest)
            seen = [k for d, k in failures if d == dest] + list(successes)
            kinds = list(dict.fromkeys([*listed, *seen]))
            routes = tuple(
                RouteHealth(
                    kind=kind,
                    failures=failures.get((dest, kind), 0),
                    last_failure=last_failure.get((dest, kind)),
                    last_success=successes.get(kind),
                    listed=kind in listed,
                )
                for kind in kinds
            )
            count = Counter[str]()
            for row in rows:
                count[row.state] += row.count
            destinations.append(
                Destination(
                    dest,
                    routes,
                    waiting=sum(count[s] for s in WAITING),
                    dead=count["dead"],
                    delivered=count["delivered"],
                )
            )
        return tuple(destinations)

    def _keys(self, org: OrgId, now: int) -> tuple[tuple[KeyGenerationState, ...], int | None]:
        held = {pair.signing.public.key_id for pair in self.context.tenant(org).keys}
        try:
            generations = self.context.directory.organisation(org).keys
        except KeysError:
            return (), None
        keys = tuple(
            KeyGenerationState(
                not_before=gen.not_before,
                not_after=gen.not_after,
                revoked=gen.revoked_at is not None,
                held=gen.signing.key_id in held,
                days_left=(gen.not_after - now) // DAY,
            )
            for gen in generations
        )
        in_use = [
            gen.not_after for gen in generations
            if gen.valid_at(now) and gen.signing.key_id in held
        ]  # fmt: skip
        return keys, max(in_use, default=None)

    async def view(self, actor: User) -> NodeStateView:
        """Return the node's state as the administrator's organisation sees it."""
        self._admin(actor)
        org = actor.org
        store = self.context.store
        now = self.context.now()
        since = now - HEALTH_WINDOW
        summary = await store.outbox_summary(org)
        events = await store.attempt_events(org, since)
        backlog: Counter[str] = Counter()
        for row in summary:
            backlog[row.state] += row.count
        dead = await store.dead_letters(org, MAX_DEAD_LISTED)
        keys, expire = self._keys(org, now)
        directory = self.context.directory
        return NodeStateView(
            org=org,
            destinations=self._destinations(org, summary, events, since),
            backlog=dict(backlog),
            dead_letters=tuple(dead),
            dead_total=backlog["dead"],
            directory_version=directory.version,
            directory_issued=directory.issued,
            keys=keys,
            keys_expire=expire,
            now=now,
        )

    async def dead_letters_of(self, actor: User, digest: bytes) -> tuple[DeadLetter, ...]:
        """Return the organisation's dead letters of one envelope, or refuse as not found."""
        self._admin(actor)
        found = tuple(
            dead
            for dead in await self.context.store.dead_letters(actor.org, MAX_DEAD_LISTED)
            if dead.item.envelope_digest == digest
        )
        if not found:
            raise NotFoundError("Your organisation has no dead letter of this envelope")
        return found

    async def requeue(self, actor: User, digest: bytes | None = None) -> int:
        """Put the organisation's dead letters (of one envelope, or all) back in the queue.

        Each starts again on its first route, with its dead-letter age counted from now, as
        ``exchange outbox requeue`` does; the outbox worker is woken at once.
        """
        self._admin(actor)
        count = await self.context.store.requeue_dead_of(
            actor.org, float(self.context.now()), digest
        )
        if digest is not None and count == 0:
            raise NotFoundError("Your organisation has no dead letter of this envelope")
        if count:
            self.context.outbox_wakeup.set()
        log.info("outbox.requeued_by_admin", org=actor.org, count=count)
        return count
