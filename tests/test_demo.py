"""``exchange demo`` runs the whole envelope story and prints no record content."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from exchange.demo import story as demo


@pytest.fixture(scope="module")
def out() -> str:
    """Run the whole demo once (it starts several nodes) and return what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert demo.run_demo() == 0
    return printed.getvalue()


def test_demo_succeeds_and_tells_each_step(out: str) -> None:
    """The demo exits 0 and reports sealing, both openings and both refusals."""
    assert out.count("identical to what was sent") == 2
    assert "tries to open it: refused (the envelope is not addressed to la:357)" in out
    assert "one byte is changed in transit: refused" in out
    assert out.count("nothing written") == 2


def test_demo_runs_two_nodes_and_verifies_receipts(out: str) -> None:
    """Part 2 delivers, opens and acknowledges, and the school verifies receipts and a proof."""
    assert "a front-door worker opened it: the record and 1 attachment (" in out
    assert "identical: True" in out
    assert "the policy allowed it (lawful basis art6.1.e+art9.2.g+dpa2018.sch1.para18)" in out
    for status in ("delivered", "opened", "acknowledged"):
        assert f"{status:<13} by la:356" in out
    assert "the signed checkpoint verifies offline" in out
    assert "both ready: /readyz and /metrics on their own listeners, http://127.0.0.1:" in out


def test_demo_output_holds_no_record_content(out: str) -> None:
    """No value of the synthetic referral's child appears in what the demo prints."""
    child = json.loads(demo.synthetic_referral())["child"]
    for value in child.values():
        assert str(value) not in out
    assert "Synthetic text" not in out


def test_demo_routes_part_runs(out: str) -> None:
    """Parts 3 and 4 run after 1 and 2 (their own checks: test_routes_demo, test_sharing_demo)."""
    assert "== Part 3: a relay mailbox, NHS MESH and a PII-free email ==" in out
    assert "== Part 4: policy, deadlines, recall, the register and subject access ==" in out
    assert "every envelope the school sent has its register row, and no other: True" in out
    assert "'delivered' came back to Hillside and verified (route: mailbox)" in out
    assert "demo finished" in out
