"""Slowing down after failed attempts: free failures, then doubling delays with a ceiling."""

from __future__ import annotations

from exchange.auth.throttle import ThrottlePolicy, wait_message

POLICY = ThrottlePolicy()


def test_first_failures_are_free() -> None:
    """Up to four failures in a row slow nothing."""
    assert [POLICY.slowed_until(n, 1000) for n in range(1, 5)] == [None] * 4


def test_delays_double_from_the_fifth_failure_up_to_the_ceiling() -> None:
    """The fifth failure waits 30 s, then 60, 120 ... never more than 15 minutes."""
    delays = [POLICY.slowed_until(n, 1000) for n in range(5, 12)]
    assert [d - 1000 for d in delays if d is not None] == [30, 60, 120, 240, 480, 900, 900]


def test_wait_message_is_plain_and_rounds_up() -> None:
    """The message says how many whole minutes to wait, at least one."""
    assert wait_message(1030, 1000) == (
        "You have tried to sign in too many times. Wait 1 minute, then try again."
    )
    assert "Wait 3 minutes" in wait_message(1121, 1000)
