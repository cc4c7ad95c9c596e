"""Part 3 of ``exchange demo``: relay mailbox, NHS MESH and the mail sink.

The MESH leg runs against NHS England's sandbox in the environment the MESH tests use,
built by the same helper as ``make demo`` builds it (:mod:`tests.connectors.mesh_sandbox`);
without a package index the demo says in one line that it skipped the leg, and the other
legs still run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.demo.records import CHILD_NAME
from exchange.demo.routes_part import NO_SANDBOX, run_routes_demo
from tests.connectors import mesh_sandbox

pytestmark = [pytest.mark.network, pytest.mark.subprocess]


def _check_common_legs(out: str) -> None:
    assert "'delivered' came back to Hillside and verified (route: mailbox)" in out
    assert "(no personal data in it: True)" in out
    for value in CHILD_NAME.values():
        assert value not in out


def test_routes_demo_delivers_every_leg_with_verified_receipts() -> None:
    mesh_sandbox.venv_python()  # skips without a package index; fails so in CI
    lines: list[str] = []
    assert run_routes_demo(lines.append, mesh_sandbox.VENV)
    out = "\n".join(lines)
    _check_common_legs(out)
    assert "'delivered' came back to Hillside and verified (route: mesh)" in out
    assert "installing NHS England's MESH sandbox" not in out  # built already: reused
    assert "skipped" not in out
    assert out.count("Hillside verified: delivered, opened, acknowledged") == 2


def test_unreachable_index_skips_the_mesh_leg_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no package index the demo says why in one line, and the other legs run."""
    # pip with no index, no links and no configuration cannot find the sandbox anywhere.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("EXCHANGE_MESH_SANDBOX_PYTHON", raising=False)
    venv = tmp_path / "mesh-venv"
    lines: list[str] = []
    assert run_routes_demo(lines.append, venv)
    out = "\n".join(lines)
    _check_common_legs(out)
    assert lines[0].startswith(f"installing NHS England's MESH sandbox into {venv}")
    (skipped,) = [line for line in lines if "over NHS MESH" in line]
    assert skipped.startswith("LAC health record over NHS MESH: skipped (the MESH sandbox")
    assert "is the package index reachable?" in skipped
    assert "mesh-sandbox==" in skipped  # pip's own last line names what it could not find
    assert "route: mesh" not in out
    assert out.count("Hillside verified: delivered, opened, acknowledged") == 1
    assert not (venv / "requirements.txt").exists()  # not taken for a built environment


def test_without_an_environment_the_demo_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``--mesh-sandbox`` and none in the current folder: skipped, naming make demo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXCHANGE_MESH_SANDBOX_PYTHON", raising=False)
    lines: list[str] = []
    assert run_routes_demo(lines.append)
    assert f"LAC health record over NHS MESH: skipped ({NO_SANDBOX})" in lines
    assert "make demo" in NO_SANDBOX
