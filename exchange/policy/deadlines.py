"""Deadline rules: when a CP-file transfer, a referral acknowledgement or a reply is due.

The rules live in the policy file (``[deadlines.<record kind>]``) because LAs differ on them
(KCSIE): the default CP-file transfer is due 5 school days after the date the new
school was confirmed, and an LA may choose calendar days, another count, or the date the
pupil left as the start. A referral's acknowledgement is due 1 working day after submission;
an information request carries its own due date. :func:`deadline_for` turns a rule and the
record's facts into a :class:`Deadline`; :func:`overdue` and :func:`deadline_status` compare
it with when (if ever) it was met.

End-of-day convention: ``Deadline.due`` is a Europe/London calendar date and the deadline is
met by anything done on or before that local date; it passes at the following local midnight
(:attr:`Deadline.passes_at`). Instants (submission, receipt, now) are aware datetimes, usually
UTC from the injected clock, converted to London dates, so British Summer Time never moves a
deadline by a day.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from exchange.policy import _config as cfg
from exchange.policy.calendar import (
    LONDON,
    MAX_DAY_COUNT,
    SchoolCalendar,
    add_calendar_days,
    add_school_days,
    add_working_days,
    local_date,
)
from exchange.policy.errors import PolicyConfigError

if TYPE_CHECKING:
    from exchange.policy.policy import Policy


class DayUnit(StrEnum):
    """What a deadline counts."""

    SCHOOL_DAYS = "school-days"
    WORKING_DAYS = "working-days"
    CALENDAR_DAYS = "calendar-days"
    AS_GIVEN = "as-given"


class ClockStart(StrEnum):
    """Which fact of the record starts the clock."""

    NEW_SCHOOL_CONFIRMED = "new-school-confirmed"
    DATE_LEFT = "date-left"
    SUBMITTED = "submitted"
    RECORD_DUE_DATE = "record-due-date"


_START_WORDS: Final[dict[ClockStart, str]] = {
    ClockStart.NEW_SCHOOL_CONFIRMED: "the date the new school was confirmed",
    ClockStart.DATE_LEFT: "the date the pupil left",
    ClockStart.SUBMITTED: "the local date of submission",
    ClockStart.RECORD_DUE_DATE: "the due date given in the record",
}
_UNIT_WORDS: Final[dict[DayUnit, str]] = {
    DayUnit.SCHOOL_DAYS: "school day",
    DayUnit.WORKING_DAYS: "working day",
    DayUnit.CALENDAR_DAYS: "calendar day",
    DayUnit.AS_GIVEN: "",
}


@dataclass(frozen=True)
class DeadlineRule:
    """A validated ``[deadlines.<record kind>]`` setting."""

    record_kind: str
    title: str
    start: ClockStart
    unit: DayUnit
    count: int | None
    basis: str

    @property
    def rule(self) -> str:
        """The rule id, which is also the setting's path."""
        return f"deadlines.{self.record_kind}"


@dataclass(frozen=True)
class DeadlineFacts:
    """The facts of a record a deadline may start from; only the rule's own one is needed."""

    new_school_confirmed: date | None = None
    date_left: date | None = None
    submitted_at: datetime | None = None
    due: date | None = None


@dataclass(frozen=True)
class Deadline:
    """A due date (Europe/London), the rule that set it, its source and a plain explanation."""

    due: date
    rule: str
    basis: str
    explanation: str = ""

    @property
    def passes_at(self) -> datetime:
        """The instant the deadline passes: local midnight at the end of ``due``, as UTC."""
        # Midnight always exists in London (the clocks change at 01:00 and 02:00 local).
        midnight = datetime.combine(self.due + timedelta(days=1), time(0), tzinfo=LONDON)
        return midnight.astimezone(UTC)


class DeadlineStatus(StrEnum):
    """Where a deadline stands at a moment."""

    PENDING = "pending"
    MET = "met"
    MET_LATE = "met-late"
    OVERDUE = "overdue"


_RULE_KEYS: Final = frozenset({"title", "start", "unit", "count", "basis"})
#: The clock starts each record kind's facts can supply.
_STARTS_BY_KIND: Final[dict[str, frozenset[ClockStart]]] = {
    "cp-file-transfer": frozenset({ClockStart.NEW_SCHOOL_CONFIRMED, ClockStart.DATE_LEFT}),
    "information-request": frozenset({ClockStart.RECORD_DUE_DATE, ClockStart.SUBMITTED}),
}


def parse_deadline_rules(
    value: Any, setting: str, record_kinds: Collection[str]
) -> Mapping[str, DeadlineRule]:
    """Validate the policy's ``deadlines`` table; errors name the setting."""
    raw = cfg.table(value, setting)
    rules: dict[str, DeadlineRule] = {}
    for kind, raw_rule in raw.items():
        path = f"{setting}.{kind}"
        cfg.choice(kind, path, frozenset(record_kinds), "a record kind")
        item = cfg.table(raw_rule, path)
        cfg.no_unknown_keys(item, _RULE_KEYS, path)
        title = cfg.text(cfg.required(item, "title", path), f"{path}.title", max_len=200)
        start = ClockStart(
            cfg.choice(
                cfg.required(item, "start", path),
                f"{path}.start",
                frozenset(ClockStart),
                "a clock start",
            )
        )
        allowed = _STARTS_BY_KIND.get(kind, frozenset({ClockStart.SUBMITTED}))
        if start not in allowed:
            raise PolicyConfigError(
                f"{path}.start",
                f"cannot be '{start.value}' for a {kind} (expected one of: "
                f"{', '.join(sorted(allowed))})",
            )
        unit = DayUnit(
            cfg.choice(
                cfg.required(item, "unit", path), f"{path}.unit", frozenset(DayUnit), "a day unit"
            )
        )
        if (unit is DayUnit.AS_GIVEN) != (start is ClockStart.RECORD_DUE_DATE):
            raise PolicyConfigError(
                f"{path}.unit",
                "must be 'as-given' exactly when start is 'record-due-date'",
            )
        count: int | None = None
        if unit is DayUnit.AS_GIVEN:
            if "count" in item:
                raise PolicyConfigError(f"{path}.count", "must not be set when unit is 'as-given'")
        else:
            count = cfg.integer(
                cfg.required(item, "count", path), f"{path}.count", low=0, high=MAX_DAY_COUNT
            )
        basis = cfg.text(cfg.required(item, "basis", path), f"{path}.basis")
        rules[kind] = DeadlineRule(kind, title, start, unit, count, basis)
    return rules


def _start_fact(rule: DeadlineRule, facts: DeadlineFacts) -> date:
    value: date | datetime | None
    if rule.start is ClockStart.NEW_SCHOOL_CONFIRMED:
        name, value = "new_school_confirmed", facts.new_school_confirmed
    elif rule.start is ClockStart.DATE_LEFT:
        name, value = "date_left", facts.date_left
    elif rule.start is ClockStart.SUBMITTED:
        name, value = "submitted_at", facts.submitted_at
    else:
        name, value = "due", facts.due
    if value is None:
        raise ValueError(f"facts.{name} is required by rule {rule.rule}")
    if isinstance(value, datetime):
        return local_date(value, argument=f"facts.{name}")
    return value


def deadline_for(
    record_kind: str, facts: DeadlineFacts, policy: Policy, calendar: SchoolCalendar
) -> Deadline | None:
    """Return the deadline the policy sets for a record of ``record_kind``, or None if none.

    ``facts`` must hold the fact the rule starts from (``ValueError`` names it otherwise).
    """
    rule = policy.deadlines.get(record_kind)
    if rule is None:
        return None
    start = _start_fact(rule, facts)
    if rule.unit is DayUnit.AS_GIVEN or rule.count is None:
        return Deadline(
            due=start,
            rule=rule.rule,
            basis=rule.basis,
            explanation=f"{rule.title}: due on the date given in the record (rule {rule.rule})",
        )
    if rule.unit is DayUnit.SCHOOL_DAYS:
        due = add_school_days(start, rule.count, calendar)
    elif rule.unit is DayUnit.WORKING_DAYS:
        due = add_working_days(start, rule.count, calendar.bank_holidays)
    else:
        due = add_calendar_days(start, rule.count)
    plural = "" if rule.count == 1 else "s"
    return Deadline(
        due=due,
        rule=rule.rule,
        basis=rule.basis,
        explanation=(
            f"{rule.title}: due by the end of {due.isoformat()}, {rule.count} "
            f"{_UNIT_WORDS[rule.unit]}{plural} after {_START_WORDS[rule.start]} "
            f"({start.isoformat()}) (rule {rule.rule})"
        ),
    )


def deadline_status(deadline: Deadline, met_at: datetime | None, now: datetime) -> DeadlineStatus:
    """Return whether ``deadline`` is pending, met, met late or overdue at ``now``."""
    today = local_date(now, argument="now")
    if met_at is None:
        return DeadlineStatus.OVERDUE if today > deadline.due else DeadlineStatus.PENDING
    if met_at > now:
        raise ValueError("met_at must not be after now")
    met_on = local_date(met_at, argument="met_at")
    return DeadlineStatus.MET_LATE if met_on > deadline.due else DeadlineStatus.MET


def overdue(deadline: Deadline, met_at: datetime | None, now: datetime) -> bool:
    """Return True when the deadline was missed: not met by the end of its due day.

    An item met late stays overdue (``MET_LATE``) so the register shows the lateness; the
    chase list wants :func:`deadline_status` ``== OVERDUE`` (still outstanding).
    """
    return deadline_status(deadline, met_at, now) in {
        DeadlineStatus.OVERDUE,
        DeadlineStatus.MET_LATE,
    }
