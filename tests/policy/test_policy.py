"""Sharing decisions as a table, lawful bases, decisions not to share, and policy validation."""

from __future__ import annotations

import re

import pytest

from exchange.keys.ids import OrgId
from exchange.policy import (
    Article6,
    Article9,
    LawfulBasis,
    NotSharingReason,
    Outcome,
    PolicyConfigError,
    RefusedError,
    Schedule1Condition,
    decide,
    load_policy,
    parse_lawful_basis,
    record_decision_not_to_share,
)
from tests.policy.helpers import config_text, policy

LA = {OrgId("la:356"): "la"}
SCHOOL = {OrgId("urn:106123"): "school"}
NHS = {OrgId("ods:X26ABC"): "nhs"}
SAFEGUARDING = "art9.2.g+dpa2018.sch1.para18"
HEALTH_CARE = "art9.2.h+dpa2018.sch1.para2"
REFERRAL_CATEGORIES = {"identity", "contact", "family", "safeguarding-concerns", "health"}

# (id, purpose, record kind, recipients, categories, lawful basis given, basis recorded)
ALLOWED = [
    (
        "referral-default-basis",
        "safeguarding-referral",
        "referral",
        LA,
        REFERRAL_CATEGORIES,
        None,
        f"art6.1.e+{SAFEGUARDING}",
    ),
    (
        "referral-legal-obligation-given",
        "safeguarding-referral",
        "referral",
        LA,
        REFERRAL_CATEGORIES,
        f"art6.1.c+{SAFEGUARDING}",
        f"art6.1.c+{SAFEGUARDING}",
    ),
    (
        "cp-file-to-school",
        "cp-file-transfer",
        "cp-file-transfer",
        SCHOOL,
        {"identity", "education", "safeguarding-concerns", "third-party"},
        None,
        f"art6.1.c+{SAFEGUARDING}",
    ),
    (
        "lac-health-to-nhs-and-la",
        "lac-health",
        "lac-record",
        NHS | LA,
        {"identity", "health"},
        None,
        f"art6.1.e+{HEALTH_CARE}",
    ),
    (
        "pep-to-virtual-school",
        "pep",
        "lac-record",
        LA,
        {"identity", "education"},
        None,
        "art6.1.e",
    ),
    (
        "info-request-no-special-data-takes-first-basis",
        "information-request",
        "information-request",
        SCHOOL | NHS,
        {"identity", "family"},
        None,
        "art6.1.e",
    ),
    (
        "outcome-with-art9-basis-given",
        "outcome-feedback",
        "outcome",
        SCHOOL,
        {"identity", "social-care"},
        f"art6.1.e+{SAFEGUARDING}",
        f"art6.1.e+{SAFEGUARDING}",
    ),
    (
        "reply-to-la",
        "information-request-reply",
        "information-request",
        LA,
        {"identity", "education", "health"},
        None,
        f"art6.1.e+{SAFEGUARDING}",
    ),
]

# (id, purpose, record kind, recipients, categories, lawful basis given, rule, words)
REFUSED = [
    ("unknown-purpose", "gossip", "referral", LA, {"identity"}, None, "purposes", "gossip"),
    (
        "wrong-record-kind",
        "safeguarding-referral",
        "lac-record",
        LA,
        {"identity"},
        None,
        "purposes.safeguarding-referral.record_kinds",
        "'lac-record'",
    ),
    (
        "cp-file-to-nhs",
        "cp-file-transfer",
        "cp-file-transfer",
        NHS,
        {"identity"},
        None,
        "purposes.cp-file-transfer.recipient_kinds",
        "does not allow sending to an organisation of kind 'nhs' (ods:X26ABC)",
    ),
    (
        "referral-to-school",
        "safeguarding-referral",
        "referral",
        LA | SCHOOL,
        {"identity"},
        None,
        "purposes.safeguarding-referral.recipient_kinds",
        "'school' (urn:106123)",
    ),
    (
        "referral-to-relay",
        "safeguarding-referral",
        "referral",
        {OrgId("relay:north"): "relay"},
        {"identity"},
        None,
        "purposes.safeguarding-referral.recipient_kinds",
        "'relay'",
    ),
    (
        "pep-with-health-data",
        "pep",
        "lac-record",
        LA,
        {"identity", "health"},
        None,
        "purposes.pep.categories",
        "'health'",
    ),
    (
        "outcome-with-third-party-data",
        "outcome-feedback",
        "outcome",
        SCHOOL,
        {"identity", "third-party"},
        None,
        "purposes.outcome-feedback.categories",
        "'third-party'",
    ),
    (
        "no-categories",
        "pep",
        "lac-record",
        LA,
        set(),
        None,
        "categories-declared",
        "declares no data categories",
    ),
    (
        "unknown-category",
        "pep",
        "lac-record",
        LA,
        {"shoe-size"},
        None,
        "categories-known",
        "'shoe-size'",
    ),
    (
        "basis-not-listed",
        "lac-health",
        "lac-record",
        NHS,
        {"identity", "health"},
        f"art6.1.e+{SAFEGUARDING}",
        "purposes.lac-health.lawful_bases",
        "does not list the lawful basis",
    ),
    (
        "reply-basis-without-art9-not-listed",
        "information-request-reply",
        "information-request",
        LA,
        {"identity", "health"},
        "art6.1.e",
        "purposes.information-request-reply.lawful_bases",
        "'art6.1.e'",
    ),
    (
        "outcome-basis-not-listed",
        "outcome-feedback",
        "outcome",
        NHS,
        {"identity", "social-care"},
        "art6.1.c",
        "purposes.outcome-feedback.lawful_bases",
        "art6.1.c",
    ),
]


@pytest.mark.parametrize(
    ("purpose", "kind", "recipients", "categories", "given", "recorded"),
    [case[1:] for case in ALLOWED],
    ids=[case[0] for case in ALLOWED],
)
def test_allowed_submissions(
    purpose: str,
    kind: str,
    recipients: dict[OrgId, str],
    categories: set[str],
    given: str | None,
    recorded: str,
) -> None:
    """Each submission within its purpose is allowed by the purpose's rule with the right basis."""
    basis = None if given is None else parse_lawful_basis(given)
    decision = decide(
        policy(),
        purpose=purpose,
        record_kind=kind,
        recipient_kinds=recipients,
        categories=categories,
        lawful_basis=basis,
    )
    assert decision.outcome is Outcome.ALLOWED
    assert decision.allowed
    assert decision.rule == f"purposes.{purpose}"
    assert f"(rule {decision.rule})" in decision.explanation
    assert decision.lawful_basis is not None
    assert decision.lawful_basis.code == recorded
    assert decision.recipient_kinds == recipients
    assert decision.require() is decision


@pytest.mark.parametrize(
    ("purpose", "kind", "recipients", "categories", "given", "rule", "words"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refused_submissions(
    purpose: str,
    kind: str,
    recipients: dict[OrgId, str],
    categories: set[str],
    given: str | None,
    rule: str,
    words: str,
) -> None:
    """Each submission outside policy is refused by the named rule, in plain words."""
    basis = None if given is None else parse_lawful_basis(given)
    decision = decide(
        policy(),
        purpose=purpose,
        record_kind=kind,
        recipient_kinds=recipients,
        categories=categories,
        lawful_basis=basis,
    )
    assert decision.outcome is Outcome.REFUSED
    assert not decision.allowed
    assert decision.rule == rule
    assert decision.explanation.endswith(f"(rule {rule})")
    assert words in decision.explanation


def test_special_category_rule_when_listed_basis_lacks_art9() -> None:
    """A listed Art 6-only basis with health data is refused by the special-category rule."""
    decision = decide(
        policy(),
        purpose="outcome-feedback",
        record_kind="outcome",
        recipient_kinds=SCHOOL,
        categories={"identity", "social-care"},
        lawful_basis=parse_lawful_basis("art6.1.e"),
    )
    assert decision.allowed
    text = config_text("policy.toml").replace(
        'categories = ["identity", "safeguarding-concerns", "social-care"]',
        'categories = ["identity", "safeguarding-concerns", "social-care", "health"]',
    )
    decision = decide(
        load_policy(text),
        purpose="outcome-feedback",
        record_kind="outcome",
        recipient_kinds=SCHOOL,
        categories={"identity", "health"},
        lawful_basis=parse_lawful_basis("art6.1.e"),
    )
    assert decision.rule == "special-category-condition"
    assert "special category data (health)" in decision.explanation
    assert "(rule special-category-condition)" in decision.explanation


def test_require_raises_with_the_decision() -> None:
    """require() on a refusal raises RefusedError carrying the decision and its explanation."""
    decision = decide(
        policy(),
        purpose="cp-file-transfer",
        record_kind="cp-file-transfer",
        recipient_kinds=NHS,
        categories={"identity"},
    )
    with pytest.raises(RefusedError, match=re.escape(decision.explanation)) as info:
        decision.require()
    assert info.value.decision is decision


def test_first_failing_check_decides() -> None:
    """A submission wrong on several counts is refused by the first check in order."""
    decision = decide(
        policy(),
        purpose="pep",
        record_kind="referral",
        recipient_kinds=NHS,
        categories={"shoe-size"},
    )
    assert decision.rule == "purposes.pep.record_kinds"


def test_decide_misuse_is_a_caller_error() -> None:
    """No recipients, or categories given as one string, is a ValueError/TypeError."""
    with pytest.raises(ValueError, match="recipient_kinds"):
        decide(policy(), purpose="pep", record_kind="lac-record", recipient_kinds={}, categories=[])
    with pytest.raises(TypeError, match="categories"):
        decide(
            policy(), purpose="pep", record_kind="lac-record", recipient_kinds=LA, categories="x"
        )


def test_decision_not_to_share_is_a_value() -> None:
    """A decision not to share records the purpose, the reason code and a rule named for it."""
    decision = record_decision_not_to_share(
        "information-request-reply",
        "prejudice-to-investigation",
        record_kind="information-request",
        recipient_kinds=LA,
    )
    assert decision.outcome is Outcome.NOT_SHARED
    assert decision.reason_code is NotSharingReason.PREJUDICE_TO_INVESTIGATION
    assert decision.rule == "not-to-share.prejudice-to-investigation"
    assert "(rule not-to-share.prejudice-to-investigation)" in decision.explanation
    assert decision.lawful_basis is None
    with pytest.raises(RefusedError):
        decision.require()


def test_decision_not_to_share_refuses_unknown_reason() -> None:
    """An unknown reason code is a ValueError naming the argument and the codes."""
    with pytest.raises(ValueError, match="reason_code must be one of not-necessary"):
        record_decision_not_to_share("pep", "because")


# --- lawful bases ------------------------------------------------------------------------


def test_lawful_basis_text_round_trip() -> None:
    """Every valid combination parses from, and prints to, the same code."""
    for code in (
        "art6.1.c",
        "art6.1.e",
        f"art6.1.e+{SAFEGUARDING}",
        f"art6.1.c+{HEALTH_CARE}",
    ):
        assert parse_lawful_basis(code).code == code
        assert str(parse_lawful_basis(code)) == code


def test_lawful_basis_citations_are_human_readable() -> None:
    """The citations name the article and the DPA 2018 Schedule 1 paragraph in words."""
    basis = LawfulBasis(
        Article6.PUBLIC_TASK,
        Article9.SUBSTANTIAL_PUBLIC_INTEREST,
        Schedule1Condition.SAFEGUARDING_CHILDREN_AND_INDIVIDUALS_AT_RISK,
    )
    assert basis.citations[0].startswith("UK GDPR Article 6(1)(e)")
    assert basis.citations[1].startswith("UK GDPR Article 9(2)(g)")
    assert "Schedule 1, Part 2, paragraph 18" in basis.citations[2]
    assert "safeguarding of children" in basis.citations[2]
    assert Schedule1Condition.HEALTH_OR_SOCIAL_CARE_PURPOSES.part == 1


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("art6.1.a", "must start with an Article 6 basis"),
        ("art6.1.e+art9.2.g", "joined by '+'"),
        ("art6.1.e+art9.2.a+dpa2018.sch1.para18", "unknown Article 9 condition"),
        ("art6.1.e+art9.2.g+dpa2018.sch1.para99", "unknown DPA 2018 Schedule 1 condition"),
        ("art6.1.e+art9.2.g+dpa2018.sch1.para2", "9(2)(g) needs a Schedule 1 Part 2"),
        ("art6.1.e+art9.2.h+dpa2018.sch1.para18", "cannot support art9.2.h"),
    ],
)
def test_lawful_basis_refuses_bad_combinations(code: str, message: str) -> None:
    """A malformed code, or an Art 9 condition paired with the wrong Schedule 1 one, is refused."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_lawful_basis(code)


def test_lawful_basis_art9_needs_schedule1() -> None:
    """An Article 9 condition without its Schedule 1 condition is refused (DPA 2018 s10)."""
    with pytest.raises(ValueError, match="go together"):
        LawfulBasis(Article6.PUBLIC_TASK, Article9.HEALTH_OR_SOCIAL_CARE)


# --- the policy file ---------------------------------------------------------------------


def test_default_policy_defines_the_everyday_purposes() -> None:
    """The shipped policy loads and defines the purposes the DSL's everyday jobs name."""
    names = set(policy().purposes)
    assert {
        "safeguarding-referral",
        "cp-file-transfer",
        "lac-health",
        "pep",
        "information-request-reply",
        "outcome-feedback",
    } <= names
    assert "Children Act 1989, section 83" in policy().notice_sources
    assert set(policy().deadlines) == {"cp-file-transfer", "referral", "information-request"}


MINIMAL = """
version = 1
[purposes.pep]
title = "PEP"
record_kinds = ["lac-record"]
recipient_kinds = ["la", "school"]
categories = ["identity", "education"]
lawful_bases = ["art6.1.e"]
"""


def test_minimal_policy_loads() -> None:
    """The minimal policy used by the validation table is itself valid."""
    assert set(load_policy(MINIMAL).purposes) == {"pep"}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('["la", "school"]', '["la", "relay"]', "purposes.pep.recipient_kinds[1] is not an "),
        ('["la", "school"]', '["la", "la"]', "purposes.pep.recipient_kinds[1] repeats 'la'"),
        ('["lac-record"]', '["pupil-file"]', "purposes.pep.record_kinds[0] is not a record kind"),
        ('["lac-record"]', "[]", "purposes.pep.record_kinds must list at least one entry"),
        ('"education"]', '"gossip"]', "purposes.pep.categories[1] is not a data category"),
        ('["art6.1.e"]', '["art6.1.f"]', "purposes.pep.lawful_bases[0] must start with an"),
        ('["art6.1.e"]', '["art6.1.e", "art6.1.e"]', "purposes.pep.lawful_bases[1] repeats"),
        ('"education"]', '"health"]', "purposes.pep.lawful_bases lists no Article 9 condition"),
        ('title = "PEP"\n', "", "purposes.pep.title is required"),
        ('title = "PEP"', 'title = "PEP"\ntittle = "x"', "purposes.pep.tittle is not a known"),
        ("[purposes.pep]", "[purposes.PEP]", "purposes.PEP must be a lower-case name"),
        ("version = 1", "version = 2", "version must be 1"),
        ("version = 1", "", "version is required"),
        ('["lac-record"]', '"lac-record"', "purposes.pep.record_kinds must be an array"),
        ("[purposes.pep]", "[purposes.pep", "the policy file is not valid TOML"),
    ],
)
def test_policy_validation_names_the_setting(old: str, new: str, message: str) -> None:
    """Each broken setting is refused at load with a message that starts with its path."""
    assert old in MINIMAL
    with pytest.raises(PolicyConfigError, match=re.escape(message)):
        load_policy(MINIMAL.replace(old, new, 1))


def test_policy_error_carries_the_setting() -> None:
    """The error's ``setting`` attribute is the path, for tools that point at the line."""
    with pytest.raises(PolicyConfigError) as info:
        load_policy(MINIMAL.replace('["la", "school"]', '["la", "relay"]'))
    assert info.value.setting == "purposes.pep.recipient_kinds[1]"


def test_policy_record_kinds_come_from_the_caller() -> None:
    """The records package can pass its own list of kinds; others are then refused."""
    with pytest.raises(PolicyConfigError, match=r"record_kinds\[0\] is not a record kind"):
        load_policy(MINIMAL, record_kinds={"referral"})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            (
                '[deadlines.referral]\ntitle = "t"\nstart = "submitted"\nunit = "fortnights"\n'
                'count = 1\nbasis = "b"'
            ),
            "deadlines.referral.unit is not a day unit",
        ),
        (
            (
                '[deadlines.referral]\ntitle = "t"\nstart = "new-school-confirmed"\n'
                'unit = "working-days"\ncount = 1\nbasis = "b"'
            ),
            "deadlines.referral.start cannot be 'new-school-confirmed' for a referral",
        ),
        (
            (
                '[deadlines.cp-file-transfer]\ntitle = "t"\nstart = "date-left"\n'
                'unit = "school-days"\ncount = 500\nbasis = "b"'
            ),
            "deadlines.cp-file-transfer.count must be between 0 and 100",
        ),
        (
            (
                '[deadlines.cp-file-transfer]\ntitle = "t"\nstart = "date-left"\n'
                'unit = "school-days"\nbasis = "b"'
            ),
            "deadlines.cp-file-transfer.count is required",
        ),
        (
            (
                '[deadlines.information-request]\ntitle = "t"\nstart = "record-due-date"\n'
                'unit = "working-days"\ncount = 3\nbasis = "b"'
            ),
            "deadlines.information-request.unit must be 'as-given' exactly when",
        ),
        (
            (
                '[deadlines.information-request]\ntitle = "t"\nstart = "record-due-date"\n'
                'unit = "as-given"\ncount = 3\nbasis = "b"'
            ),
            "deadlines.information-request.count must not be set",
        ),
        (
            (
                '[deadlines.homework]\ntitle = "t"\nstart = "submitted"\nunit = "as-given"\n'
                'basis = "b"'
            ),
            "deadlines.homework is not a record kind",
        ),
    ],
)
def test_deadline_rule_validation_names_the_setting(rule: str, message: str) -> None:
    """Deadline rules in the policy file are validated with the setting named."""
    with pytest.raises(PolicyConfigError, match=re.escape(message)):
        load_policy(MINIMAL + "\n" + rule + "\n")
