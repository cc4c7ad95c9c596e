"""School-day, working-day and calendar-day arithmetic over the shipped example calendar."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.policy import (
    BankHolidays,
    CalendarCoverageError,
    PolicyConfigError,
    add_calendar_days,
    add_school_days,
    add_working_days,
    load_calendar,
    local_date,
)
from tests.policy.helpers import calendar, config_text, d, utc

# (id, start, n, due): the n-th school day after start in the shipped calendar.
SCHOOL_DAYS = [
    ("weekend", "2025-10-02", 5, "2025-10-09"),
    ("start-on-friday", "2025-10-03", 1, "2025-10-06"),
    ("october-half-term-and-inset", "2025-10-22", 5, "2025-11-06"),
    ("christmas-break-and-inset", "2025-12-17", 5, "2026-01-08"),
    ("february-half-term", "2026-02-12", 3, "2026-02-24"),
    ("easter-break-2026", "2026-03-25", 5, "2026-04-15"),
    ("early-may-bank-holiday-in-term", "2026-04-29", 5, "2026-05-07"),
    ("good-friday-in-term-then-easter-2027", "2027-03-22", 5, "2027-04-13"),
    ("late-may-half-term-and-inset", "2026-05-21", 3, "2026-06-03"),
    ("summer-break-and-first-day-inset", "2026-07-21", 5, "2026-09-07"),
    ("christmas-2026-substitute-days-in-holiday", "2026-12-17", 3, "2027-01-06"),
]

# Starting in a holiday: counting begins with the first school day of the next term (KCSIE:
# "within the first 5 days of the start of a new term").
START_IN_HOLIDAY = [
    ("easter-monday", "2026-04-06", 5, "2026-04-17"),
    ("summer-holiday", "2026-08-10", 5, "2026-09-08"),
    ("christmas-day", "2025-12-25", 1, "2026-01-06"),
    ("half-term-saturday", "2025-10-25", 5, "2025-11-10"),
]

# (id, start, n, due): the n-th working day after start (England and Wales bank holidays).
WORKING_DAYS = [
    ("friday-to-monday", "2025-10-03", 1, "2025-10-06"),
    ("good-friday-and-easter-monday", "2026-04-02", 1, "2026-04-07"),
    ("spring-bank-holiday", "2026-05-22", 1, "2026-05-26"),
    ("summer-bank-holiday", "2026-08-28", 1, "2026-09-01"),
    ("christmas-2025-thursday-friday", "2025-12-24", 1, "2025-12-29"),
    ("boxing-day-2026-saturday-substitute", "2026-12-24", 1, "2026-12-29"),
    ("christmas-2027-both-on-weekend", "2027-12-24", 1, "2027-12-29"),
    ("new-year-2027-friday", "2026-12-31", 1, "2027-01-04"),
    ("twenty-working-days-over-easter", "2025-04-01", 20, "2025-05-01"),
    ("saturday-start", "2025-10-04", 1, "2025-10-06"),
]


@pytest.mark.parametrize(
    ("start", "n", "due"), [c[1:] for c in SCHOOL_DAYS], ids=[c[0] for c in SCHOOL_DAYS]
)
def test_add_school_days(start: str, n: int, due: str) -> None:
    """School days skip weekends, holidays between terms, bank holidays and closure days."""
    assert add_school_days(d(start), n, calendar()) == d(due)


@pytest.mark.parametrize(
    ("start", "n", "due"),
    [c[1:] for c in START_IN_HOLIDAY],
    ids=[c[0] for c in START_IN_HOLIDAY],
)
def test_start_in_holiday_counts_from_next_term(start: str, n: int, due: str) -> None:
    """A start in a holiday counts the first n school days of the next term."""
    assert not calendar().is_school_day(d(start))
    assert add_school_days(d(start), n, calendar()) == d(due)


@pytest.mark.parametrize(
    ("start", "n", "due"), [c[1:] for c in WORKING_DAYS], ids=[c[0] for c in WORKING_DAYS]
)
def test_add_working_days(start: str, n: int, due: str) -> None:
    """Working days skip weekends and bank holidays, including substitute days."""
    assert add_working_days(d(start), n, calendar().bank_holidays) == d(due)


def test_inset_and_bank_holidays_are_not_school_days() -> None:
    """An INSET day, a bank holiday in term and a half-term weekday are not school days."""
    cal = calendar()
    assert not cal.is_school_day(d("2025-11-03"))  # INSET
    assert not cal.is_school_day(d("2026-05-04"))  # early May bank holiday, in term
    assert not cal.is_school_day(d("2025-10-29"))  # half term
    assert cal.is_school_day(d("2025-11-04"))


def test_adding_zero_days() -> None:
    """Adding 0 days gives the start when it qualifies, else the next qualifying day."""
    cal = calendar()
    assert add_school_days(d("2025-11-04"), 0, cal) == d("2025-11-04")
    assert add_school_days(d("2025-10-25"), 0, cal) == d("2025-11-04")
    assert add_working_days(d("2026-04-03"), 0, cal.bank_holidays) == d("2026-04-07")
    assert add_calendar_days(d("2026-04-03"), 0) == d("2026-04-03")


def test_add_calendar_days_crosses_months_and_years() -> None:
    """Calendar days are plain date arithmetic."""
    assert add_calendar_days(d("2025-12-29"), 5) == d("2026-01-03")


def test_counting_past_the_calendar_raises() -> None:
    """A count that runs past the last academic year raises instead of guessing."""
    with pytest.raises(CalendarCoverageError, match="covers 2025-09-01 to 2027-08-31"):
        add_school_days(d("2027-07-20"), 5, calendar())
    with pytest.raises(CalendarCoverageError, match="not 2025-08-01"):
        add_school_days(d("2025-08-01"), 1, calendar())


def test_working_days_past_the_bank_holiday_list_raise() -> None:
    """Bank holidays are unknown after the last listed year, so counting into it raises."""
    with pytest.raises(CalendarCoverageError, match="2025 to 2027 only"):
        add_working_days(d("2027-12-30"), 3, calendar().bank_holidays)


def test_misuse_is_a_caller_error() -> None:
    """A datetime start, a negative or huge count, or a naive datetime is refused."""
    with pytest.raises(TypeError, match="start must be a date"):
        add_school_days(datetime(2025, 10, 1, 9, 0), 1, calendar())  # noqa: DTZ001 - the point
    with pytest.raises(ValueError, match="n must be between 0 and 100"):
        add_calendar_days(d("2025-10-01"), -1)
    with pytest.raises(ValueError, match="n must be between 0 and 100"):
        add_working_days(d("2025-10-01"), 101, calendar().bank_holidays)
    with pytest.raises(ValueError, match="must be time-zone aware"):
        local_date(datetime(2025, 10, 1, 9, 0))  # noqa: DTZ001 - the point


def test_bank_holidays_value_checks_its_years() -> None:
    """BankHolidays.of refuses a date outside its years and answers only inside them."""
    with pytest.raises(ValueError, match="outside 2025-2025"):
        BankHolidays.of({d("2026-01-01"): "New Year's Day"}, 2025, 2025)
    holidays = BankHolidays.of({d("2025-01-01"): "New Year's Day"}, 2025, 2025)
    assert holidays.is_bank_holiday(d("2025-01-01"))
    assert holidays.is_working_day(d("2025-01-02"))
    with pytest.raises(CalendarCoverageError):
        holidays.is_working_day(d("2026-01-02"))


def test_local_date_uses_london_time() -> None:
    """23:30 UTC in summer is the next day in London; in winter it is the same day."""
    assert local_date(utc("2025-07-01T23:30")) == d("2025-07-02")
    assert local_date(utc("2025-12-01T23:30")) == d("2025-12-01")


# --- properties --------------------------------------------------------------------------

#: Start dates well inside the shipped calendar, so 30 school days never run past its end.
STARTS = st.dates(min_value=date(2025, 9, 1), max_value=date(2027, 5, 31))
COUNTS = st.integers(min_value=0, max_value=30)


@given(start=STARTS, n=COUNTS)
def test_result_is_a_school_day(start: date, n: int) -> None:
    """add_school_days always lands on a school day."""
    assert calendar().is_school_day(add_school_days(start, n, calendar()))


@given(start=STARTS, n=st.integers(min_value=1, max_value=30))
def test_result_is_after_start(start: date, n: int) -> None:
    """Adding one or more school days moves strictly forward; adding 0 never moves back."""
    assert add_school_days(start, n, calendar()) > start
    assert add_school_days(start, 0, calendar()) >= start


@given(start=STARTS, n=st.integers(min_value=1, max_value=29))
def test_strictly_monotonic_in_n(start: date, n: int) -> None:
    """For n >= 1, one more school day is a later date, and exactly the next school day."""
    cal = calendar()
    this, following = add_school_days(start, n, cal), add_school_days(start, n + 1, cal)
    assert following > this
    assert all(
        not cal.is_school_day(this + timedelta(days=k)) for k in range(1, (following - this).days)
    )


@given(start=STARTS)
def test_zero_and_one_day(start: date) -> None:
    """Adding 0 days equals adding 1 exactly when the start is not itself a school day."""
    cal = calendar()
    zero, one = add_school_days(start, 0, cal), add_school_days(start, 1, cal)
    assert zero <= one
    assert (zero == one) == (not cal.is_school_day(start))


@given(start=STARTS, n=st.integers(min_value=1, max_value=30))
def test_counts_exactly_n_school_days(start: date, n: int) -> None:
    """Exactly n school days lie in (start, result]."""
    cal = calendar()
    due = add_school_days(start, n, cal)
    days = [start + timedelta(days=k) for k in range(1, (due - start).days + 1)]
    assert sum(cal.is_school_day(day) for day in days) == n


@given(start=STARTS, n=COUNTS)
def test_working_days_never_fewer_than_school_days(start: date, n: int) -> None:
    """Every school day is a working day, so n working days never end after n school days."""
    cal = calendar()
    assert add_working_days(start, n, cal.bank_holidays) <= add_school_days(start, n, cal)


# --- the calendar file -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '{ date = 2026-12-28, name = "Boxing Day (substitute day)" }',
            '{ date = 2026-12-26, name = "Boxing Day" }',
            "bank_holidays.dates[15].date falls on a weekend; list the substitute weekday",
        ),
        (
            '{ date = 2025-04-18, name = "Good Friday" }',
            '{ date = "2025-04-18", name = "Good Friday" }',
            "bank_holidays.dates[1].date must be a date",
        ),
        (
            '{ date = 2025-04-21, name = "Easter Monday" }',
            '{ date = 2024-04-01, name = "Easter Monday" }',
            "bank_holidays.dates[2].date is outside first_year..last_year",
        ),
        ("last_year = 2027", "last_year = 2026", "bank_holidays.dates[16].date is outside"),
        (
            'year = "2026-27"',
            'year = "2026-28"',
            "academic_years[1].year must look like 2025-26",
        ),
        (
            '{ name = "autumn 2", start = 2025-11-03, end = 2025-12-19 }',
            '{ name = "autumn 2", start = 2025-10-20, end = 2025-12-19 }',
            "academic_years[0].terms[1].start must be after the end of the previous term",
        ),
        (
            '{ name = "spring 1", start = 2026-01-05, end = 2026-02-13 }',
            '{ name = "spring 1", start = 2026-01-05, end = 2026-01-02 }',
            "academic_years[0].terms[2].end is before its start",
        ),
        (
            '{ date = 2025-11-03, reason = "INSET day" }',
            '{ date = 2025-10-29, reason = "INSET day" }',
            "academic_years[0].closures[2].date is not in a term of this academic year",
        ),
        (
            '{ name = "summer 2", start = 2026-06-01, end = 2026-07-22 }',
            '{ name = "summer 2", start = 2026-06-01, end = 2026-09-02 }',
            "academic_years[0].terms[5] is outside academic year 2025-26",
        ),
        ("version = 1", "version = 2", "version must be 1"),
    ],
)
def test_calendar_validation_names_the_setting(old: str, new: str, message: str) -> None:
    """Each broken calendar setting is refused at load, naming its path."""
    text = config_text("calendar.toml")
    assert old in text
    with pytest.raises(PolicyConfigError, match=re.escape(message)):
        load_calendar(text.replace(old, new, 1))


def test_calendar_years_must_be_contiguous() -> None:
    """A gap between academic years is refused, since its days could not be counted."""
    text = config_text("calendar.toml")
    cut = text.index('[[academic_years]]\nyear = "2026-27"')
    later = text[cut:].replace("2026-", "2027-").replace("2027-27", "2027-28")
    later = later.replace("2027-", "2028-").replace('"2028-28"', '"2027-28"')
    with pytest.raises(PolicyConfigError, match=r"academic_years\[1\]"):
        load_calendar(text[:cut] + later)


def test_bank_holidays_must_cover_the_terms() -> None:
    """Terms in a year with no bank-holiday list are refused at load."""
    text = config_text("calendar.toml").replace("first_year = 2025", "first_year = 2026")
    text = "\n".join(line for line in text.splitlines() if "date = 2025-0" not in line)
    text = "\n".join(line for line in text.splitlines() if "date = 2025-12-2" not in line)
    with pytest.raises(PolicyConfigError, match="bank_holidays must cover every calendar year"):
        load_calendar(text)
