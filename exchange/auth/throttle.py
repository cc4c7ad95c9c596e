"""Slowing down guessing: after a few failed sign-ins, each further attempt waits longer.

The first :attr:`ThrottlePolicy.free_failures` failures cost nothing (people mistype). Each
failure after that refuses every attempt for a delay that doubles from
:attr:`ThrottlePolicy.first_delay` up to :attr:`ThrottlePolicy.max_delay`, so a guesser gets
a few hundred tries a day at most while the owner, told to wait, is never locked out for
good (NIST SP 800-63B §5.2.2 asks for a limit of 100 failures without lockout; this is
stricter). A success clears the count. The same rule applies to a password and to a second
factor, and to an email address with no account, so the slowing says nothing about whether
an account exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class ThrottlePolicy:
    """Failures allowed before slowing, the first delay and the longest, in seconds."""

    free_failures: int = 5
    first_delay: int = 30
    max_delay: int = 15 * 60

    def slowed_until(self, failures: int, now: float) -> float | None:
        """Return until when attempts are refused after the ``failures``-th failure in a row."""
        if failures < self.free_failures:
            return None
        doublings = min(failures - self.free_failures, 20)
        return now + min(self.first_delay * (1 << doublings), self.max_delay)


DEFAULT_THROTTLE: Final = ThrottlePolicy()


def wait_message(until: float, now: float) -> str:
    """Return the plain sentence telling someone how long to wait before trying again."""
    minutes = max(1, math.ceil((until - now) / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"You have tried to sign in too many times. Wait {minutes} {unit}, then try again."
