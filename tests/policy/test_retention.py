"""Retention: review dates per holder, holds that block destruction, and no silent deletion."""

from __future__ import annotations

import re

import pytest

from exchange.policy import (
    Hold,
    Outcome,
    PolicyConfigError,
    RetentionFacts,
    RetentionItem,
    RetentionState,
    load_retention,
    may_destroy,
    retention_state,
    review_date,
)
from tests.policy.helpers import config_text, d, london, policy, retention

DOB = d("2010-05-17")


def item(
    holder: str = "school",
    kind: str = "cp-file-transfer",
    purpose: str = "cp-file-transfer",
    *,
    approved: str | None = None,
    facts: RetentionFacts | None = None,
) -> RetentionItem:
    rule = retention().rule_for(holder_kind=holder, record_kind=kind, purpose=purpose)
    return RetentionItem(
        item_id="env-0001",
        rule=rule,
        holder_kind=holder,
        facts=facts or RetentionFacts(date_of_birth=DOB, created=d("2025-10-01")),
        destruction_approved_on=None if approved is None else d(approved),
    )


INQUIRY = Hold("inquiry-2030", "statutory inquiry into historical abuse", d("2030-01-01"))


@pytest.mark.parametrize(
    ("holder", "kind", "purpose", "rule_id", "review"),
    [
        ("school", "cp-file-transfer", "cp-file-transfer", "school-cp-file", "2035-05-17"),
        ("school", "referral", "safeguarding-referral", "school-referral-copy", "2035-05-17"),
        ("la", "referral", "safeguarding-referral", "la-referral", "2035-05-17"),
        ("la", "lac-record", "lac-health", "la-looked-after-child", "2085-05-17"),
        ("school", "lac-record", "pep", "school-lac-record-copy", "2035-05-17"),
        ("nhs", "lac-record", "lac-health", "nhs-lac-health", "2085-05-17"),
    ],
)
def test_review_dates_from_the_shipped_rules(
    holder: str, kind: str, purpose: str, rule_id: str, review: str
) -> None:
    """Each holder's rule gives the statutory period from the date of birth."""
    rule = retention().rule_for(holder_kind=holder, record_kind=kind, purpose=purpose)
    assert rule.rule_id == rule_id
    assert review_date(rule, RetentionFacts(date_of_birth=DOB), holder) == d(review)


def test_adoption_record_kept_100_years_from_the_order() -> None:
    """The LA's adoption case record is reviewed 100 years after the adoption order."""
    rule = retention().rule_for(
        holder_kind="la", record_kind="adoption-case-record", purpose="lac-health"
    )
    facts = RetentionFacts(date_of_birth=DOB, adoption_order=d("2014-03-03"))
    assert review_date(rule, facts, "la") == d("2114-03-03")


def test_leap_day_birthday_falls_on_first_of_march() -> None:
    """A child born on 29 February reaches the anniversary on 1 March in a common year."""
    rule = retention().rule_for(holder_kind="la", record_kind="lac-record", purpose="lac-health")
    leapling = RetentionFacts(date_of_birth=d("2008-02-29"))
    assert review_date(rule, leapling, "la") == d("2083-03-01")


def test_school_rule_never_governs_an_la_record() -> None:
    """A school's 25-year rule applied to an LA-held LAC record is refused."""
    school_rule = retention().rule_for(
        holder_kind="school", record_kind="lac-record", purpose="pep"
    )
    with pytest.raises(
        ValueError, match="is for items held by a school; this item is held by a la"
    ):
        review_date(school_rule, RetentionFacts(date_of_birth=DOB), "la")


def test_la_rule_is_found_by_holder_kind() -> None:
    """The same record kind gets the LA's longer period when the LA holds it."""
    school = retention().rule_for(holder_kind="school", record_kind="lac-record", purpose="pep")
    la = retention().rule_for(holder_kind="la", record_kind="lac-record", purpose="pep")
    assert (school.years, la.years) == (25, 75)


def test_missing_rule_is_a_config_error() -> None:
    """No rule for the holder and kind raises instead of keeping or deleting by guesswork."""
    with pytest.raises(PolicyConfigError, match="has no rule for a outcome held by a nhs"):
        retention().rule_for(holder_kind="nhs", record_kind="outcome", purpose="outcome-feedback")


def test_purpose_specific_rule_wins() -> None:
    """A rule naming the purpose is chosen over the any-purpose rule for the same kind."""
    text = config_text("retention.toml") + (
        '\n[[rules]]\nid = "school-pep-copy"\nholder_kind = "school"\nrecord_kind = "lac-record"'
        '\npurpose = "pep"\nanchor = "created"\nyears = 6\naction = "review"\nsource = "local"\n'
    )
    rules = load_retention(text)
    assert rules.rule_for(holder_kind="school", record_kind="lac-record", purpose="pep").years == 6
    other = rules.rule_for(holder_kind="school", record_kind="lac-record", purpose="lac-health")
    assert other.rule_id == "school-lac-record-copy"


def test_missing_anchor_fact_is_named() -> None:
    """A rule that runs from the date of birth needs one."""
    rule = retention().rule_for(
        holder_kind="school", record_kind="cp-file-transfer", purpose="cp-file-transfer"
    )
    with pytest.raises(
        ValueError,
        match=re.escape("facts.date_of_birth is required by rule retention.school-cp-file"),
    ):
        review_date(rule, RetentionFacts(created=d("2025-01-01")), "school")


# --- may_destroy -------------------------------------------------------------------------


def test_before_review_date_the_rule_keeps_the_item() -> None:
    """Before the review date, destruction is refused by the retention rule."""
    decision = may_destroy(item(), [], london("2030-06-01T12:00"))
    assert decision.outcome is Outcome.REFUSED
    assert decision.rule == "retention.school-cp-file"
    assert "keeps this item until 2035-05-17" in decision.explanation
    assert "(rule retention.school-cp-file)" in decision.explanation


def test_after_review_date_a_review_is_still_needed() -> None:
    """A review rule never deletes silently: without an approval, destruction is refused."""
    decision = may_destroy(item(), [], london("2036-01-01T12:00"))
    assert decision.rule == "retention.school-cp-file.review"
    assert "nothing is deleted silently" in decision.explanation
    assert retention_state(item(), [], london("2036-01-01T12:00")) is RetentionState.REVIEW_DUE


def test_approved_destruction_is_allowed() -> None:
    """After the review date and an approval on or after it, destruction is allowed."""
    approved = item(approved="2035-06-01")
    decision = may_destroy(approved, [], london("2036-01-01T12:00"))
    assert decision.allowed
    assert decision.rule == "retention.school-cp-file"
    assert decision.review_date == d("2035-05-17")
    assert retention_state(approved, [], london("2036-01-01T12:00")) is (
        RetentionState.DESTROY_APPROVED
    )


def test_approval_before_review_date_does_not_count() -> None:
    """An approval dated before the review date is refused; the item must be reviewed again."""
    decision = may_destroy(item(approved="2034-01-01"), [], london("2036-01-01T12:00"))
    assert decision.rule == "retention.school-cp-file.review"
    assert "before the review date 2035-05-17" in decision.explanation


def test_inquiry_hold_blocks_destruction_and_is_named() -> None:
    """A hold in force blocks even an approved destruction, and the decision names it."""
    decision = may_destroy(item(approved="2035-06-01"), [INQUIRY], london("2036-01-01T12:00"))
    assert decision.outcome is Outcome.REFUSED
    assert decision.rule == "holds.inquiry-2030"
    assert decision.holds == ("inquiry-2030",)
    assert "'inquiry-2030'" in decision.explanation
    assert "(rule holds.inquiry-2030)" in decision.explanation
    assert retention_state(item(), [INQUIRY], london("2036-01-01T12:00")) is RetentionState.HELD


def test_every_blocking_hold_is_listed() -> None:
    """Two holds in force are both named, in id order."""
    other = Hold("audit-2035", "records audit", d("2035-01-01"))
    approved = item(approved="2035-06-01")
    decision = may_destroy(approved, [INQUIRY, other], london("2036-01-01"))
    assert decision.holds == ("audit-2035", "inquiry-2030")
    assert "inquiry holds" in decision.explanation


def test_lifted_or_future_hold_does_not_block() -> None:
    """A hold lifted before now, or placed after now, does not apply."""
    lifted = Hold("inquiry-2030", "inquiry", d("2030-01-01"), lifted_on=d("2035-12-31"))
    later = Hold("inquiry-2040", "inquiry", d("2040-01-01"))
    decision = may_destroy(item(approved="2035-06-01"), [lifted, later], london("2036-01-01"))
    assert decision.allowed


def test_hold_scoped_to_other_kinds_or_items_does_not_block() -> None:
    """A hold limited to LAC records, or to other items, leaves this CP file alone."""
    lac_only = Hold(
        "lac-inquiry", "inquiry", d("2030-01-01"), record_kinds=frozenset({"lac-record"})
    )
    others = Hold("case-hold", "litigation", d("2030-01-01"), item_ids=frozenset({"env-0002"}))
    mine = Hold("case-hold-2", "litigation", d("2030-01-01"), item_ids=frozenset({"env-0001"}))
    now = london("2036-01-01")
    assert may_destroy(item(approved="2035-06-01"), [lac_only, others], now).allowed
    assert may_destroy(item(approved="2035-06-01"), [mine], now).rule == "holds.case-hold-2"


def test_hold_blocks_before_the_review_date_too() -> None:
    """A hold is reported first, whatever the retention period says."""
    decision = may_destroy(item(), [INQUIRY], london("2031-01-01"))
    assert decision.rule == "holds.inquiry-2030"


def test_destroy_action_needs_no_approval() -> None:
    """A rule whose action is destroy allows destruction once the period has ended."""
    text = config_text("retention.toml").replace(
        'id = "la-outcome"\nholder_kind = "la"\nrecord_kind = "outcome"\nanchor = "date-of-birth"'
        '\nyears = 25\naction = "review"',
        'id = "la-outcome"\nholder_kind = "la"\nrecord_kind = "outcome"\nanchor = "created"'
        '\nyears = 7\naction = "destroy"',
    )
    rule = load_retention(text).rule_for(
        holder_kind="la", record_kind="outcome", purpose="outcome-feedback"
    )
    held = RetentionItem("env-9", rule, "la", RetentionFacts(created=d("2025-10-01")))
    assert not may_destroy(held, [], london("2032-09-30")).allowed
    assert may_destroy(held, [], london("2032-10-01")).allowed


# --- the retention file ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('holder_kind = "school"', 'holder_kind = "relay"', "rules[0].holder_kind is not an "),
        ("years = 25", "years = 2500", "rules[0].years must be between 1 and 150"),
        ('anchor = "date-of-birth"', 'anchor = "birthday"', "rules[0].anchor is not an anchor"),
        ('action = "review"', 'action = "shred"', "rules[0].action is not a retention action"),
        ('id = "school-referral-copy"', 'id = "school-cp-file"', "rules[1].id repeats"),
        (
            'record_kind = "referral"',
            'record_kind = "cp-file-transfer"',
            "rules[1] repeats the holder_kind, record_kind and purpose",
        ),
        ('record_kind = "cp-file-transfer"', 'record_kind = "pupil-file"', "rules[0].record_kind"),
        ("years = 25\n", "", "rules[0].years is required"),
        ('id = "school-cp-file"', 'id = "school-cp-file"\npurpose = "gossip"', "rules[0].purpose"),
    ],
)
def test_retention_validation_names_the_setting(old: str, new: str, message: str) -> None:
    """Each broken retention setting is refused at load, naming its path."""
    text = config_text("retention.toml")
    assert old in text
    with pytest.raises(PolicyConfigError, match=re.escape(message)):
        load_retention(text.replace(old, new, 1), purposes=policy().purposes)
