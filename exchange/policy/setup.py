"""The three rule sets a node applies to every submission, held together.

A value type only: the node reads and validates the files at start
(:func:`exchange.shipped.load_records_setup`) and hands this to the sharing rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange.policy.calendar import SchoolCalendar
from exchange.policy.policy import Policy
from exchange.policy.retention import RetentionPolicy


@dataclass(frozen=True)
class RecordsSetup:
    """The validated policy, calendar and retention rules a node applies to submissions."""

    policy: Policy
    calendar: SchoolCalendar
    retention: RetentionPolicy
