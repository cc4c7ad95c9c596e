"""Part 3 of ``exchange demo``: relay mailbox, NHS MESH (when installed) and the mail sink."""

from __future__ import annotations

import pytest

from exchange.demo.records import CHILD_NAME
from exchange.demo.routes_part import run_routes_demo
from exchange.demo.services import sandbox_python

pytestmark = [pytest.mark.network, pytest.mark.subprocess]


def test_routes_demo_delivers_every_leg_with_verified_receipts() -> None:
    lines: list[str] = []
    assert run_routes_demo(lines.append)
    out = "\n".join(lines)
    assert "'delivered' came back to Hillside and verified (route: mailbox)" in out
    assert "(no personal data in it: True)" in out
    if sandbox_python() is None:
        assert "LAC health record over NHS MESH: skipped" in out
    else:
        assert "'delivered' came back to Hillside and verified (route: mesh)" in out
    assert out.count("Hillside verified: delivered, opened, acknowledged") == (
        1 if sandbox_python() is None else 2
    )
    for value in CHILD_NAME.values():
        assert value not in out
