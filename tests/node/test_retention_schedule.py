"""Review dates from the retention rules and a record: pure, no node needed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from exchange.keys.ids import OrgId
from exchange.model import RetentionSchedule
from exchange.policy import RetentionPolicy, load_retention
from exchange.service.retention import schedule_item
from exchange.shipped import shipped_text

from .records import cp_file, referral

ORG = OrgId("urn:106123")
DIGEST = b"\x01" * 32
CREATED = int(datetime(2026, 7, 1, 23, 30, tzinfo=UTC).timestamp())  # 2 July in London
SHIPPED = load_retention(shipped_text("retention.toml"))
EXTRA = """
[[rules]]
id = "school-pep-by-date"
holder_kind = "school"
record_kind = "lac-record"
purpose = "pep"
anchor = "created"
years = 6
action = "destroy"
source = "test: six years from creation for the PEP copy"
"""


def _schedule(
    rules: RetentionPolicy,
    holder: str,
    kind: str,
    data: dict[str, Any] | None,
    *,
    purpose: str | None = None,
) -> RetentionSchedule:
    return schedule_item(
        rules,
        org=ORG,
        digest=DIGEST,
        direction="sent" if purpose else "received",
        holder=holder,
        record_kind=kind,
        purpose=purpose,
        data=data,
        created=CREATED,
        now=1.0,
    )


def _referral(**child: str) -> dict[str, Any]:
    record = referral()
    record["child"] = {"name": record["child"]["name"], **child}
    return record


@pytest.mark.parametrize(
    ("holder", "kind", "data", "expected"),
    [
        pytest.param(
            "school",
            "cp-file-transfer",
            cp_file(),
            ("school-cp-file", "2040-03-14", None),
            id="cp-file",
        ),
        pytest.param(
            "la",
            "referral",
            _referral(expected_date_of_birth="2027-01-05"),
            ("la-referral", "2052-01-05", None),
            id="unborn",
        ),
        pytest.param(
            "la",
            "referral",
            _referral(date_of_birth="2016-02-29"),
            ("la-referral", "2041-03-01", None),
            id="leap-day",
        ),
        pytest.param(
            "la",
            "outcome",
            {"kind": "outcome"},
            ("la-outcome", None, "no-date-of-birth"),
            id="no-dob",
        ),
        pytest.param("nhs", "outcome", {"kind": "outcome"}, (None, None, "no-rule"), id="no-rule"),
        pytest.param(
            "school",
            "cp-file-transfer",
            None,
            ("school-cp-file", None, "not-a-record"),
            id="not-a-record",
        ),
        pytest.param(
            "la",
            "adoption-case-record",
            {},
            ("la-adoption", None, "no-adoption-order"),
            id="adoption",
        ),
        pytest.param(
            "la",
            "referral",
            _referral(date_of_birth="14/03/2015"),
            ("la-referral", None, "no-date-of-birth"),
            id="bad-date",
        ),
    ],
)
def test_review_dates_from_the_shipped_rules(
    holder: str,
    kind: str,
    data: dict[str, Any] | None,
    expected: tuple[str | None, str | None, str | None],
) -> None:
    """Each item gets its holder's rule and date, or the reason it has none."""
    schedule = _schedule(SHIPPED, holder, kind, data)
    assert (schedule.rule, schedule.review_date, schedule.unscheduled) == expected
    assert schedule.holder_kind == holder


def test_a_purpose_rule_applies_to_the_sender_only() -> None:
    """The sender knows the purpose; the receiver gets the rule without one."""
    rules = load_retention(shipped_text("retention.toml") + EXTRA)
    sent = _schedule(rules, "school", "lac-record", {}, purpose="pep")
    assert (sent.rule, sent.review_date, sent.action) == (
        "school-pep-by-date",
        "2032-07-02",
        "destroy",
    )
    received = _schedule(rules, "school", "lac-record", {"child": {"date_of_birth": "2015-03-14"}})
    assert (received.rule, received.review_date) == ("school-lac-record-copy", "2040-03-14")
