"""Part 4 of ``exchange demo``: policy refusal, overdue, recall, register and subject access."""

from __future__ import annotations

import pytest

from exchange.demo.sharing_part import UPN, run_sharing_demo

pytestmark = pytest.mark.network


def test_sharing_demo_tells_every_step_and_prints_nothing_personal() -> None:
    lines: list[str] = []
    assert run_sharing_demo(lines.append)
    out = "\n".join(lines)
    rule = "purposes.safeguarding-referral.recipient_kinds"
    assert f"refused by the sharing policy, rule {rule}" in out
    assert "acknowledgement due by 2027-06-01" in out
    assert "the overdue list: referral to la:356, due 2027-06-01, waiting for acknowledged" in out
    assert "the overdue list is empty again" in out
    assert "recalled: {'ods:X26ABC': 'recalled'}" in out
    assert "(410 Gone): True" in out
    # Register completeness after the run: each sent envelope has its row, and no other.
    assert "every envelope the school sent has its register row, and no other: True" in out
    assert "finds 2 exchanges" in out
    for value in (UPN, "Demochild", "2015-03-14"):
        assert value not in out
