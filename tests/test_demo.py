"""``exchange demo`` runs the whole envelope story and prints no record content."""

from __future__ import annotations

import json

import pytest

from exchange import demo


def test_demo_succeeds_and_tells_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo exits 0 and reports sealing, both openings and both refusals."""
    assert demo.run_demo() == 0
    out = capsys.readouterr().out
    assert out.count("identical to what was sent") == 2
    assert "tries to open it: refused (the envelope is not addressed to la:357)" in out
    assert "one byte is changed in transit: refused" in out
    assert out.count("nothing written") == 2


def test_demo_runs_two_nodes_and_verifies_receipts(capsys: pytest.CaptureFixture[str]) -> None:
    """Part 2 delivers, opens and acknowledges, and the school verifies receipts and a proof."""
    assert demo.run_demo() == 0
    out = capsys.readouterr().out
    assert "a front-door worker opened it (382 bytes, identical: True)" in out
    for status in ("delivered", "opened", "acknowledged"):
        assert f"{status:<13} by la:356" in out
    assert "the signed checkpoint verifies offline" in out


def test_demo_output_holds_no_record_content(capsys: pytest.CaptureFixture[str]) -> None:
    """No value of the synthetic referral's child appears in what the demo prints."""
    assert demo.run_demo() == 0
    out = capsys.readouterr().out
    child = json.loads(demo.synthetic_referral())["child"]
    for value in child.values():
        assert str(value) not in out
    assert "Synthetic text" not in out
