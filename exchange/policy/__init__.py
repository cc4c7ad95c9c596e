"""Accountable sharing rules: purposes and lawful bases, deadlines, and retention.

Pure code only: the loaders take TOML *text* (the node reads ``config/policy.toml``,
``config/calendar.toml`` and ``config/retention.toml`` and passes their contents), and every
function takes dates, datetimes and values and returns decisions. :mod:`~exchange.policy.policy`
decides whether a submission is within its purpose (:func:`decide`) and
:mod:`~exchange.policy.decisions` records a decision not to share;
:mod:`~exchange.policy.lawful` models UK GDPR and DPA 2018 bases with their citations;
:mod:`~exchange.policy.calendar` counts school, working and calendar days;
:mod:`~exchange.policy.deadlines` applies the deadline rules; :mod:`~exchange.policy.retention`
computes review dates and decides destruction under inquiry holds. docs/policy.md describes
the rules and the configuration.
"""

from __future__ import annotations

from exchange.policy.calendar import (
    LONDON,
    BankHolidays,
    SchoolCalendar,
    Term,
    add_calendar_days,
    add_school_days,
    add_working_days,
    calendar_from_dict,
    load_calendar,
    local_date,
)
from exchange.policy.deadlines import (
    ClockStart,
    DayUnit,
    Deadline,
    DeadlineFacts,
    DeadlineRule,
    DeadlineStatus,
    deadline_for,
    deadline_status,
    overdue,
)
from exchange.policy.decisions import (
    Decision,
    NotSharingReason,
    Outcome,
    SharingDecision,
    record_decision_not_to_share,
)
from exchange.policy.errors import (
    CalendarCoverageError,
    PolicyConfigError,
    PolicyError,
    RefusedError,
)
from exchange.policy.lawful import (
    Article6,
    Article9,
    LawfulBasis,
    Schedule1Condition,
    parse_lawful_basis,
)
from exchange.policy.policy import (
    DEFAULT_RECORD_KINDS,
    RECIPIENT_KINDS,
    SPECIAL_CATEGORIES,
    DataCategory,
    Policy,
    Purpose,
    decide,
    load_policy,
    policy_from_dict,
)
from exchange.policy.retention import (
    Anchor,
    DestructionDecision,
    Hold,
    RetentionAction,
    RetentionFacts,
    RetentionItem,
    RetentionPolicy,
    RetentionRule,
    RetentionState,
    load_retention,
    may_destroy,
    retention_from_dict,
    retention_state,
    review_date,
)
from exchange.policy.setup import RecordsSetup

__all__ = [
    "DEFAULT_RECORD_KINDS",
    "LONDON",
    "RECIPIENT_KINDS",
    "SPECIAL_CATEGORIES",
    "Anchor",
    "Article6",
    "Article9",
    "BankHolidays",
    "CalendarCoverageError",
    "ClockStart",
    "DataCategory",
    "DayUnit",
    "Deadline",
    "DeadlineFacts",
    "DeadlineRule",
    "DeadlineStatus",
    "Decision",
    "DestructionDecision",
    "Hold",
    "LawfulBasis",
    "NotSharingReason",
    "Outcome",
    "Policy",
    "PolicyConfigError",
    "PolicyError",
    "Purpose",
    "RecordsSetup",
    "RefusedError",
    "RetentionAction",
    "RetentionFacts",
    "RetentionItem",
    "RetentionPolicy",
    "RetentionRule",
    "RetentionState",
    "Schedule1Condition",
    "SchoolCalendar",
    "SharingDecision",
    "Term",
    "add_calendar_days",
    "add_school_days",
    "add_working_days",
    "calendar_from_dict",
    "deadline_for",
    "deadline_status",
    "decide",
    "load_calendar",
    "load_policy",
    "load_retention",
    "local_date",
    "may_destroy",
    "overdue",
    "parse_lawful_basis",
    "policy_from_dict",
    "record_decision_not_to_share",
    "retention_from_dict",
    "retention_state",
    "review_date",
]
