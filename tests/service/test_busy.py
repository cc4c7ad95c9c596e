"""The busy rule: what counts towards the backlog, when a submission is refused, how long for."""

from __future__ import annotations

from exchange.keys.ids import OrgId
from exchange.service.busy import (
    MAX_RETRY_AFTER,
    MIN_RETRY_AFTER,
    RATE_WINDOW,
    UNKNOWN_RATE_RETRY_AFTER,
    Backpressure,
    BusyError,
)
from tests.store.conftest import LA, NURSES, SCHOOL, T0


def _delivered(rule: Backpressure, count: int, *, at: float, to: OrgId = LA) -> None:
    for _ in range(count):
        rule.attempted(to, delivered=True, envelope=True, now=at)


def test_below_the_limit_nothing_is_refused() -> None:
    """A backlog under ``max_backlog`` takes submissions; at the limit it refuses."""
    rule = Backpressure(max_backlog=10)
    assert rule.retry_after({LA: 9}, T0) is None
    assert rule.retry_after({LA: 10}, T0) is not None
    assert rule.retry_after({LA: 6, NURSES: 4}, T0) is not None


def test_zero_switches_it_off() -> None:
    """``max_backlog = 0`` never refuses, however long the queue."""
    assert Backpressure(max_backlog=0).retry_after({LA: 10**9}, T0) is None


def test_a_destination_that_is_down_does_not_block_the_others() -> None:
    """Items waiting for a node that is down are not counted, until it answers again.

    A referral to an LA that is up is taken while a school's node elsewhere is down.
    """
    rule = Backpressure(max_backlog=10)
    backlog = {SCHOOL: 500, LA: 3}
    assert rule.retry_after(backlog, T0) is not None  # not known to be down yet
    rule.attempted(SCHOOL, delivered=False, envelope=True, now=T0)
    assert rule.waiting(backlog) == 3
    assert rule.retry_after(backlog, T0) is None
    # The LA behind on its own is still refused.
    assert rule.retry_after({SCHOOL: 500, LA: 10}, T0) is not None
    # A receipt delivered to the school says it answers again: its backlog counts again.
    rule.attempted(SCHOOL, delivered=True, envelope=False, now=T0 + 1)
    assert rule.waiting(backlog) == 503
    assert rule.retry_after(backlog, T0 + 1) is not None


def test_retry_after_is_the_time_to_drain_the_excess_at_the_observed_rate() -> None:
    """At 20 deliveries a second, 60 items over the limit take about 3 seconds."""
    rule = Backpressure(max_backlog=100)
    for second in range(RATE_WINDOW):
        _delivered(rule, 20, at=T0 + second)
    now = T0 + RATE_WINDOW - 0.5
    assert rule.rate(now) == 20
    assert rule.retry_after({LA: 159}, now) == 3
    # Receipts delivered say the destination answers but do not make the rate.
    rule.attempted(LA, delivered=True, envelope=False, now=now)
    assert rule.rate(now) == 20


def test_retry_after_is_bounded() -> None:
    """Never less than a second nor more than a minute; no recent delivery gives the default."""
    rule = Backpressure(max_backlog=10)
    assert rule.retry_after({LA: 10}, T0) == UNKNOWN_RATE_RETRY_AFTER
    _delivered(rule, 1000, at=T0)
    assert rule.retry_after({LA: 10}, T0 + 0.5) == MIN_RETRY_AFTER
    slow = Backpressure(max_backlog=10)
    _delivered(slow, 1, at=T0)
    assert slow.retry_after({LA: 100_000}, T0 + 0.5) == MAX_RETRY_AFTER


def test_the_rate_forgets_deliveries_older_than_its_window() -> None:
    """Deliveries long past do not make an idle outbox look fast."""
    rule = Backpressure(max_backlog=10)
    _delivered(rule, 100, at=T0)
    assert rule.rate(T0 + 1) == 100 / RATE_WINDOW
    assert rule.rate(T0 + RATE_WINDOW + 1) == 0
    assert rule.retry_after({LA: 20}, T0 + RATE_WINDOW + 1) == UNKNOWN_RATE_RETRY_AFTER


def test_the_refusal_is_one_plain_sentence_with_its_wait() -> None:
    """503, the seconds to wait, and a sentence that says busy and that nothing was sent."""
    error = BusyError(7)
    assert error.status == 503
    assert error.retry_after == 7
    assert str(error) == (
        "the node is busy: its outbox has too much waiting for delivery, so "
        "nothing was sent; try again in 7 seconds"
    )
