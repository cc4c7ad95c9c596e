"""School calendars, bank holidays and day arithmetic: school days, working days, calendar days.

KCSIE gives CP-file transfers "5 days for an in-year transfer or within the first 5 days of the
start of a new term", and Working Together gives referrals one working day. Which
days count is local knowledge, so it comes from config (``config/calendar.toml``): term dates
per academic year, INSET and other closure days, and the England and Wales bank holidays that
LAs maintain themselves (no holiday library: a substitute day or a one-off holiday is a config
change, not a release). A *school day* is a weekday inside a term that is neither a bank
holiday nor a closure day; a *working day* is a weekday that is not a bank holiday.

Counting convention (the same for both kinds of day): adding ``n`` days returns the ``n``-th
qualifying day *after* ``start``; the start day itself never counts, whatever it is. So a
count that starts in a holiday begins at the next term, which is KCSIE's "within the first 5
days of the start of a new term". Adding 0 days returns the first qualifying day on or after
``start`` (``start`` itself when it qualifies), so adding 0 and adding 1 agree exactly when
``start`` does not qualify. A date outside the calendar's coverage raises
:class:`CalendarCoverageError` rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo

from exchange.policy import _config as cfg
from exchange.policy.errors import CalendarCoverageError, PolicyConfigError

CALENDAR_VERSION: Final = 1

#: Local dates are English dates: a deadline day starts and ends at midnight in London.
LONDON: Final = ZoneInfo("Europe/London")

#: Longest count any rule may ask for. KCSIE and Working Together speak of 1 and 5 days; 100
#: leaves room for local rules (the 20-working-day initial health assessment) and bounds loops.
MAX_DAY_COUNT: Final = 100

_YEAR_RE: Final = re.compile(r"(\d{4})-(\d{2})")
_SATURDAY: Final = 5


def _check_date(value: object, argument: str) -> date:
    # datetime is a subclass of date; a datetime here would silently drop its time zone.
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{argument} must be a date (use local_date() for a datetime)")
    return value


def _check_count(value: object, argument: str = "n") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an integer")
    if not 0 <= value <= MAX_DAY_COUNT:
        raise ValueError(f"{argument} must be between 0 and {MAX_DAY_COUNT}")
    return value


def local_date(moment: datetime, *, argument: str = "moment") -> date:
    """Return the Europe/London calendar date of an aware datetime (any zone, usually UTC)."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{argument} must be a datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{argument} must be time-zone aware (UTC from the injected clock)")
    return moment.astimezone(LONDON).date()


def is_weekend(day: date) -> bool:
    """Return True on Saturday and Sunday."""
    return day.weekday() >= _SATURDAY


@dataclass(frozen=True)
class BankHolidays:
    """Bank holidays of one division for the calendar years ``first_year..last_year``.

    Asking about a day outside those years raises, because a missing holiday would move a
    deadline silently.
    """

    dates: Mapping[date, str]
    first_year: int
    last_year: int

    @classmethod
    def of(cls, dates: Mapping[date, str], first_year: int, last_year: int) -> BankHolidays:
        """Build from a mapping of date to holiday name, checking every date is covered."""
        if first_year > last_year:
            raise ValueError("first_year must not be after last_year")
        for day in dates:
            _check_date(day, "bank holiday")
            if not first_year <= day.year <= last_year:
                raise ValueError(f"bank holiday {day} is outside {first_year}-{last_year}")
        return cls(MappingProxyType(dict(dates)), first_year, last_year)

    def covers(self, day: date) -> bool:
        """Return True when ``day`` is in a year whose bank holidays are listed."""
        return self.first_year <= day.year <= self.last_year

    def is_bank_holiday(self, day: date) -> bool:
        """Return True on a listed bank holiday; raise outside the covered years."""
        if not self.covers(day):
            raise CalendarCoverageError(
                f"bank holidays are listed for {self.first_year} to {self.last_year} only, "
                f"not for {day.isoformat()}"
            )
        return day in self.dates

    def is_working_day(self, day: date) -> bool:
        """Return True on a weekday that is not a bank holiday."""
        return not is_weekend(day) and not self.is_bank_holiday(day)


@dataclass(frozen=True)
class Term:
    """A run of term time (a half-term), first and last day inclusive."""

    academic_year: str
    name: str
    start: date
    end: date


@dataclass(frozen=True)
class SchoolCalendar:
    """Terms, closure days and bank holidays; covers ``first_day..last_day`` (1 Sep..31 Aug)."""

    name: str
    terms: tuple[Term, ...]
    closures: Mapping[date, str]
    bank_holidays: BankHolidays
    first_day: date
    last_day: date

    def covers(self, day: date) -> bool:
        """Return True when ``day`` is within the academic years the calendar lists."""
        return self.first_day <= day <= self.last_day

    def in_term(self, day: date) -> bool:
        """Return True when ``day`` falls inside a term (weekends and holidays included)."""
        return any(term.start <= day <= term.end for term in self.terms)

    def is_school_day(self, day: date) -> bool:
        """Return True on a weekday in term that is not a bank holiday or a closure day."""
        _check_date(day, "day")
        if not self.covers(day):
            raise CalendarCoverageError(
                f"the school calendar covers {self.first_day.isoformat()} to "
                f"{self.last_day.isoformat()}, not {day.isoformat()}"
            )
        return (
            not is_weekend(day)
            and self.in_term(day)
            and day not in self.closures
            and not self.bank_holidays.is_bank_holiday(day)
        )


def add_calendar_days(start: date, n: int) -> date:
    """Return ``start`` plus ``n`` calendar days."""
    return _check_date(start, "start") + timedelta(days=_check_count(n))


def add_working_days(start: date, n: int, bank_holidays: BankHolidays) -> date:
    """Return the ``n``-th working day after ``start`` (0: first working day on or after it)."""
    _check_date(start, "start")
    return _count(start, _check_count(n), bank_holidays.is_working_day)


def add_school_days(start: date, n: int, calendar: SchoolCalendar) -> date:
    """Return the ``n``-th school day after ``start`` (0: first school day on or after it).

    A start in a holiday counts from the first day of the next term.
    """
    _check_date(start, "start")
    if not calendar.covers(start):
        calendar.is_school_day(start)  # raises CalendarCoverageError naming the coverage
    return _count(start, _check_count(n), calendar.is_school_day)


def _count(start: date, n: int, qualifies: Callable[[date], bool]) -> date:
    day = start
    if n == 0:
        while not qualifies(day):
            day += timedelta(days=1)
        return day
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if qualifies(day):
            counted += 1
    return day


_CALENDAR_KEYS: Final = frozenset({"version", "name", "bank_holidays", "academic_years"})
_BANK_KEYS: Final = frozenset({"division", "first_year", "last_year", "dates", "note"})
_YEAR_KEYS: Final = frozenset({"year", "terms", "closures"})


def load_calendar(text: str) -> SchoolCalendar:
    """Parse and validate calendar TOML ``text``; errors name the setting at fault."""
    return calendar_from_dict(cfg.parse_toml(text, "the calendar file"))


def calendar_from_dict(data: Mapping[str, Any]) -> SchoolCalendar:
    """Validate an already-parsed calendar document (see :func:`load_calendar`)."""
    data = cfg.table(data, "calendar")
    cfg.no_unknown_keys(data, _CALENDAR_KEYS, "")
    cfg.version(data, CALENDAR_VERSION)
    name = cfg.text(cfg.required(data, "name", ""), "name", max_len=200)
    holidays = _bank_holidays(cfg.table(cfg.required(data, "bank_holidays", ""), "bank_holidays"))
    years = cfg.array(cfg.required(data, "academic_years", ""), "academic_years", non_empty=True)
    terms: list[Term] = []
    closures: dict[date, str] = {}
    first_day: date | None = None
    last_day: date | None = None
    for i, raw_year in enumerate(years):
        path = f"academic_years[{i}]"
        year_start, year_end, year_terms, year_closures = _academic_year(raw_year, path)
        if last_day is not None and year_start != last_day + timedelta(days=1):
            raise PolicyConfigError(
                f"{path}.year", "must follow the previous academic year with no gap"
            )
        for label, boundary in (("first", year_start), ("last", year_end)):
            if not holidays.covers(boundary):
                raise PolicyConfigError(
                    "bank_holidays",
                    f"must cover every calendar year the terms touch; {path} needs {label} "
                    f"year {boundary.year}",
                )
        first_day = first_day or year_start
        last_day = year_end
        terms += year_terms
        closures.update(year_closures)
    # academic_years is non-empty, so the loop ran at least once.
    assert first_day is not None
    assert last_day is not None
    return SchoolCalendar(
        name=name,
        terms=tuple(terms),
        closures=MappingProxyType(closures),
        bank_holidays=holidays,
        first_day=first_day,
        last_day=last_day,
    )


def _bank_holidays(raw: Mapping[str, Any]) -> BankHolidays:
    cfg.no_unknown_keys(raw, _BANK_KEYS, "bank_holidays")
    cfg.text(cfg.required(raw, "division", "bank_holidays"), "bank_holidays.division")
    first = cfg.integer(
        cfg.required(raw, "first_year", "bank_holidays"),
        "bank_holidays.first_year",
        low=2000,
        high=2200,
    )
    last = cfg.integer(
        cfg.required(raw, "last_year", "bank_holidays"),
        "bank_holidays.last_year",
        low=first,
        high=2200,
    )
    dates: dict[date, str] = {}
    entries = cfg.array(cfg.required(raw, "dates", "bank_holidays"), "bank_holidays.dates")
    for i, entry in enumerate(entries):
        path = f"bank_holidays.dates[{i}]"
        item = cfg.table(entry, path)
        cfg.no_unknown_keys(item, frozenset({"date", "name"}), path)
        day = cfg.a_date(cfg.required(item, "date", path), f"{path}.date")
        label = cfg.text(cfg.required(item, "name", path), f"{path}.name", max_len=100)
        if not first <= day.year <= last:
            raise PolicyConfigError(
                f"{path}.date", f"is outside first_year..last_year ({first}-{last})"
            )
        if day in dates:
            raise PolicyConfigError(f"{path}.date", f"repeats {day.isoformat()}")
        if is_weekend(day):
            raise PolicyConfigError(
                f"{path}.date", "falls on a weekend; list the substitute weekday instead"
            )
        dates[day] = label
    for year in range(first, last + 1):
        if not any(day.year == year for day in dates):
            raise PolicyConfigError(
                "bank_holidays.dates",
                f"lists no bank holiday in {year}, which first_year..last_year covers",
            )
    return BankHolidays.of(dates, first, last)


def _academic_year(raw: Any, path: str) -> tuple[date, date, list[Term], dict[date, str]]:
    item = cfg.table(raw, path)
    cfg.no_unknown_keys(item, _YEAR_KEYS, path)
    label = cfg.text(cfg.required(item, "year", path), f"{path}.year", max_len=7)
    match = _YEAR_RE.fullmatch(label)
    if match is None or (int(match[1]) + 1) % 100 != int(match[2]):
        raise PolicyConfigError(f"{path}.year", "must look like 2025-26 (two consecutive years)")
    year_start = date(int(match[1]), 9, 1)
    year_end = date(int(match[1]) + 1, 8, 31)
    terms: list[Term] = []
    for i, raw_term in enumerate(
        cfg.array(cfg.required(item, "terms", path), f"{path}.terms", non_empty=True)
    ):
        where = f"{path}.terms[{i}]"
        term = cfg.table(raw_term, where)
        cfg.no_unknown_keys(term, frozenset({"name", "start", "end"}), where)
        name = cfg.text(cfg.required(term, "name", where), f"{where}.name", max_len=40)
        start = cfg.a_date(cfg.required(term, "start", where), f"{where}.start")
        end = cfg.a_date(cfg.required(term, "end", where), f"{where}.end")
        if end < start:
            raise PolicyConfigError(f"{where}.end", "is before its start")
        if start < year_start or end > year_end:
            raise PolicyConfigError(
                where, f"is outside academic year {label} (1 September to 31 August)"
            )
        if terms and start <= terms[-1].end:
            raise PolicyConfigError(f"{where}.start", "must be after the end of the previous term")
        terms.append(Term(label, name, start, end))
    closures: dict[date, str] = {}
    for i, raw_closure in enumerate(cfg.array(item.get("closures", []), f"{path}.closures")):
        where = f"{path}.closures[{i}]"
        closure = cfg.table(raw_closure, where)
        cfg.no_unknown_keys(closure, frozenset({"date", "reason"}), where)
        day = cfg.a_date(cfg.required(closure, "date", where), f"{where}.date")
        reason = cfg.text(cfg.required(closure, "reason", where), f"{where}.reason", max_len=100)
        if not any(t.start <= day <= t.end for t in terms):
            raise PolicyConfigError(f"{where}.date", "is not in a term of this academic year")
        if day in closures:
            raise PolicyConfigError(f"{where}.date", f"repeats {day.isoformat()}")
        closures[day] = reason
    return year_start, year_end, terms, closures
