"""Deadline rules: CP-file transfers, referral acknowledgements, information requests."""

from __future__ import annotations

import re

import pytest

from exchange.policy import (
    Deadline,
    DeadlineFacts,
    DeadlineStatus,
    deadline_for,
    deadline_status,
    load_policy,
    overdue,
)
from tests.policy.helpers import calendar, config_text, d, london, policy, utc


def cp_deadline(confirmed: str, text: str | None = None) -> Deadline:
    rules = policy() if text is None else load_policy(text)
    deadline = deadline_for(
        "cp-file-transfer",
        DeadlineFacts(new_school_confirmed=d(confirmed), date_left=d("2025-09-30")),
        rules,
        calendar(),
    )
    assert deadline is not None
    return deadline


def referral_deadline(submitted: str) -> Deadline:
    """Return the acknowledgement deadline of a referral submitted at a London wall-clock time."""
    deadline = deadline_for(
        "referral", DeadlineFacts(submitted_at=london(submitted)), policy(), calendar()
    )
    assert deadline is not None
    return deadline


def test_cp_file_transfer_default_is_five_school_days() -> None:
    """The default CP-file deadline is 5 school days after the new school was confirmed."""
    deadline = cp_deadline("2025-10-22")
    assert deadline.due == d("2025-11-06")
    assert deadline.rule == "deadlines.cp-file-transfer"
    assert "KCSIE" in deadline.basis
    assert "5 school days after the date the new school was confirmed" in deadline.explanation
    assert "(rule deadlines.cp-file-transfer)" in deadline.explanation


def test_cp_file_transfer_confirmed_in_holiday_counts_from_next_term() -> None:
    """Confirmed during the Easter holiday: due on the 5th school day of the summer term."""
    assert cp_deadline("2026-04-06").due == d("2026-04-17")


def test_cp_file_transfer_in_calendar_days_when_configured() -> None:
    """An LA that counts calendar days gets start + count, across the half-term."""
    text = config_text("policy.toml").replace(
        'unit = "school-days"\ncount = 5', 'unit = "calendar-days"\ncount = 5'
    )
    assert cp_deadline("2025-10-22", text).due == d("2025-10-27")


def test_cp_file_transfer_count_and_start_are_configurable() -> None:
    """The count and the clock start (the date the pupil left) come from the policy."""
    text = config_text("policy.toml").replace(
        'start = "new-school-confirmed"\nunit = "school-days"\ncount = 5',
        'start = "date-left"\nunit = "school-days"\ncount = 3',
    )
    deadline = cp_deadline("2025-10-22", text)
    assert deadline.due == d("2025-10-03")
    assert "the date the pupil left (2025-09-30)" in deadline.explanation


@pytest.mark.parametrize(
    ("submitted", "due"),
    [
        ("2025-10-03T16:00", "2025-10-06"),  # Friday afternoon -> end of Monday
        ("2026-05-22T16:00", "2026-05-26"),  # Friday before the spring bank holiday -> Tuesday
        ("2026-04-02T10:00", "2026-04-07"),  # before Good Friday and Easter Monday
        ("2026-08-28T16:00", "2026-09-01"),  # before the summer bank holiday
        ("2027-12-24T09:00", "2027-12-29"),  # Christmas 2027 on a weekend: two substitute days
        ("2025-10-06T00:01", "2025-10-07"),  # just after midnight Monday -> Tuesday
    ],
)
def test_referral_acknowledgement_one_working_day(submitted: str, due: str) -> None:
    """A referral is acknowledged by the end of the next working day after its London date."""
    deadline = referral_deadline(submitted)
    assert deadline.due == d(due)
    assert deadline.rule == "deadlines.referral"


def test_referral_day_is_the_london_date_in_summer_time() -> None:
    """23:30 UTC on a Thursday in BST is Friday 00:30 in London, so it is due Monday."""
    facts = DeadlineFacts(submitted_at=utc("2025-10-23T23:30"))
    deadline = deadline_for("referral", facts, policy(), calendar())
    assert deadline is not None
    assert deadline.due == d("2025-10-27")


def test_referral_across_the_spring_clock_change() -> None:
    """Sunday 23:30 UTC after the clocks go forward is Monday in London: due Tuesday."""
    facts = DeadlineFacts(submitted_at=utc("2026-03-29T23:30"))
    deadline = deadline_for("referral", facts, policy(), calendar())
    assert deadline is not None
    assert deadline.due == d("2026-03-31")


def test_referral_across_the_autumn_clock_change() -> None:
    """Sunday 23:30 UTC after the clocks go back is still Sunday in London: due Monday."""
    facts = DeadlineFacts(submitted_at=utc("2025-10-26T23:30"))
    deadline = deadline_for("referral", facts, policy(), calendar())
    assert deadline is not None
    assert deadline.due == d("2025-10-27")


def test_deadline_passes_at_local_midnight_in_both_seasons() -> None:
    """The instant a deadline passes is London midnight: 23:00 UTC in summer, 00:00 in winter."""
    assert Deadline(d("2026-03-30"), "r", "b").passes_at == utc("2026-03-30T23:00")
    assert Deadline(d("2026-03-27"), "r", "b").passes_at == utc("2026-03-28T00:00")
    assert Deadline(d("2025-10-27"), "r", "b").passes_at == utc("2025-10-28T00:00")


def test_information_request_due_date_is_as_given() -> None:
    """An information request is due on the date the record gives, even on a weekend."""
    facts = DeadlineFacts(due=d("2026-02-14"))
    deadline = deadline_for("information-request", facts, policy(), calendar())
    assert deadline is not None
    assert deadline.due == d("2026-02-14")
    assert "(rule deadlines.information-request)" in deadline.explanation


def test_kind_without_a_rule_has_no_deadline() -> None:
    """Record kinds the policy sets no deadline for return None."""
    assert deadline_for("outcome", DeadlineFacts(), policy(), calendar()) is None


def test_missing_fact_names_the_fact_and_rule() -> None:
    """A rule whose starting fact is missing raises ValueError naming both."""
    with pytest.raises(
        ValueError,
        match=re.escape(
            "facts.new_school_confirmed is required by rule deadlines.cp-file-transfer"
        ),
    ):
        deadline_for("cp-file-transfer", DeadlineFacts(), policy(), calendar())


def test_naive_submission_time_is_refused() -> None:
    """A naive datetime could be UTC or London time, so it is refused."""
    facts = DeadlineFacts(submitted_at=utc("2025-10-03T15:00").replace(tzinfo=None))
    with pytest.raises(ValueError, match=re.escape("facts.submitted_at must be time-zone aware")):
        deadline_for("referral", facts, policy(), calendar())


# --- overdue -----------------------------------------------------------------------------

DUE_MONDAY = Deadline(d("2025-10-06"), "deadlines.referral", "Working Together")


@pytest.mark.parametrize(
    ("met_at", "now", "status"),
    [
        (None, "2025-10-06T23:59", DeadlineStatus.PENDING),
        (None, "2025-10-07T00:00", DeadlineStatus.OVERDUE),
        ("2025-10-06T23:59", "2025-10-08T09:00", DeadlineStatus.MET),
        ("2025-10-07T00:01", "2025-10-08T09:00", DeadlineStatus.MET_LATE),
        ("2025-10-03T16:05", "2025-10-03T16:10", DeadlineStatus.MET),
    ],
)
def test_deadline_status_end_of_day(met_at: str | None, now: str, status: DeadlineStatus) -> None:
    """A deadline is met by anything up to the end of its due day, London time."""
    met = None if met_at is None else london(met_at)
    assert deadline_status(DUE_MONDAY, met, london(now)) is status
    expected = status in {DeadlineStatus.OVERDUE, DeadlineStatus.MET_LATE}
    assert overdue(DUE_MONDAY, met, london(now)) is expected


def test_overdue_uses_london_date_in_summer_time() -> None:
    """At 23:30 UTC on the due day in BST it is already the next day in London: overdue."""
    deadline = Deadline(d("2026-03-30"), "deadlines.referral", "Working Together")
    assert overdue(deadline, None, utc("2026-03-30T22:59")) is False
    assert overdue(deadline, None, utc("2026-03-30T23:00")) is True


def test_overdue_misuse() -> None:
    """met_at after now, or a naive now, is a caller error."""
    with pytest.raises(ValueError, match="met_at must not be after now"):
        overdue(DUE_MONDAY, london("2025-10-06T10:00"), london("2025-10-06T09:00"))
    with pytest.raises(ValueError, match="now must be time-zone aware"):
        overdue(DUE_MONDAY, None, london("2025-10-06T10:00").replace(tzinfo=None))
