"""The peerauth core is sans-I/O: only aiohttp_glue may import aiohttp (STYLE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_core_is_pure import _violations

PACKAGE = Path(__file__).resolve().parents[2] / "exchange" / "peerauth"
CORE = sorted(p for p in PACKAGE.glob("*.py") if p.name != "aiohttp_glue.py")


def test_core_files_exist() -> None:
    """The walk finds the core modules (so an empty walk cannot pass)."""
    assert {"signatures.py", "digest.py", "replay.py"} <= {p.name for p in CORE}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    """A core module of peerauth imports no network, process or path module."""
    assert _violations(path.read_text(encoding="utf-8")) == []
