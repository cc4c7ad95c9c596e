"""Back-pressure: a node whose outbox is behind refuses new submissions for a while.

Accepting work faster than the outbox delivers it only grows a queue: every item then waits
longer, and a burst that never ends never drains. So when the outbox's backlog reaches
``[delivery] max_backlog``, a submission is refused as busy (503 with ``Retry-After`` on
the staff API, a "service is busy" page on the web) before anything is read or sealed, and
the sender tries again once the outbox has caught up.

What counts (:meth:`Backpressure.waiting`): envelope items not yet given to a destination
(queued, being attempted, or waiting to retry) whose destination is *answering*. A
destination whose last attempt failed (its node down, its route refusing) is not counted
until an attempt to it succeeds again: its items wait for it, not for this node, and a
referral to a local authority that is up must not be refused because a school's node
elsewhere is down. Receipts and staff mails are never counted.

The check is cheap: the store keeps the backlog by destination in memory, updated at each
commit (:mod:`exchange.store.backlog`); the delivery worker tells this module each attempt's
outcome (:meth:`Backpressure.attempted`). ``Retry-After`` is the time the outbox needs, at
the rate it delivered over the last :data:`RATE_WINDOW` seconds, to bring the backlog
back under the limit, from :data:`MIN_RETRY_AFTER` to :data:`MAX_RETRY_AFTER` seconds.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from exchange.keys.ids import OrgId
from exchange.service.errors import ServiceError

if TYPE_CHECKING:
    from exchange.service.node_service import NodeService

#: Seconds of deliveries the rate behind ``Retry-After`` is measured over.
RATE_WINDOW: Final = 10
#: Bounds of ``Retry-After``, in seconds.
MIN_RETRY_AFTER: Final = 1
MAX_RETRY_AFTER: Final = 60
#: ``Retry-After`` when nothing was delivered within the window (no rate to go by).
UNKNOWN_RATE_RETRY_AFTER: Final = 10


class BusyError(ServiceError):
    """The outbox is behind: the submission is refused, to be tried again later."""

    status = 503

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "the node is busy: its outbox has too much waiting for delivery, so "
            f"nothing was sent; try again in {retry_after} seconds"
        )
        #: Seconds after which the sender may try again (the ``Retry-After`` header).
        self.retry_after = retry_after


@dataclass
class Backpressure:
    """The busy rule, with what it learns from the delivery worker.

    ``max_backlog`` of 0 switches back-pressure off (never busy).
    """

    max_backlog: int = 0
    #: Destinations whose last attempt failed; their items are not counted.
    down: set[OrgId] = field(default_factory=set)
    #: Submissions refused as busy since the start (for /metrics).
    refused: int = 0
    #: Envelopes delivered per whole second of the clock, the last :data:`RATE_WINDOW`.
    _seconds: deque[tuple[int, int]] = field(default_factory=deque, init=False, repr=False)

    def attempted(self, destination: OrgId, *, delivered: bool, envelope: bool, now: float) -> None:
        """Note an attempt's outcome: a destination answering or not, and the rate."""
        if not delivered:
            self.down.add(destination)
            return
        self.down.discard(destination)
        if envelope:
            second = int(now)
            if self._seconds and self._seconds[-1][0] == second:
                self._seconds[-1] = (second, self._seconds[-1][1] + 1)
            else:
                self._seconds.append((second, 1))
            self._forget(now)

    def _forget(self, now: float) -> None:
        while self._seconds and self._seconds[0][0] <= now - RATE_WINDOW:
            self._seconds.popleft()

    def rate(self, now: float) -> float:
        """Return the envelopes delivered per second over the last :data:`RATE_WINDOW` s."""
        self._forget(now)
        return sum(count for _, count in self._seconds) / RATE_WINDOW

    def waiting(self, backlog: Mapping[OrgId, int]) -> int:
        """Return the backlog that counts: items of destinations not known to be down."""
        down = self.down
        return sum(count for destination, count in backlog.items() if destination not in down)

    def retry_after(self, backlog: Mapping[OrgId, int], now: float) -> int | None:
        """Return the seconds to wait if a submission now must be refused, else None."""
        if self.max_backlog <= 0:
            return None
        excess = self.waiting(backlog) - self.max_backlog
        if excess < 0:
            return None
        rate = self.rate(now)
        if rate <= 0:
            return UNKNOWN_RATE_RETRY_AFTER
        return min(MAX_RETRY_AFTER, max(MIN_RETRY_AFTER, math.ceil((excess + 1) / rate)))


def refuse_when_busy(service: NodeService) -> None:
    """Raise :class:`BusyError` if the outbox is too far behind to take a submission."""
    rule = service.backpressure
    wait = rule.retry_after(service.store.outbox_backlog, service.clock())
    if wait is not None:
        rule.refused += 1
        raise BusyError(wait)
