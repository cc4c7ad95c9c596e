"""The MESH tests skip without a package index on a developer's machine, and fail in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.demo.services import SandboxUnavailableError
from tests.connectors import mesh_sandbox

REASON = "the MESH sandbox environment could not be built: no index"


def _unbuildable(_venv: Path) -> Path:
    raise SandboxUnavailableError(REASON)


def test_unbuildable_sandbox_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mesh_sandbox, "build_sandbox_env", _unbuildable)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=REASON):
        mesh_sandbox.venv_python()


def test_unbuildable_sandbox_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mesh_sandbox, "build_sandbox_env", _unbuildable)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"CI must run the MESH tests, but {REASON}"):
        mesh_sandbox.venv_python()
