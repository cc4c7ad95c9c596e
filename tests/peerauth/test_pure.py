"""The peerauth core is sans-I/O: only aiohttp_glue may reach aiohttp."""

from __future__ import annotations

import pytest

from tests.test_core_is_pure import CHECKER, PURE

CORE = [module for module in PURE if module.startswith("exchange.peerauth")]


def test_core_modules_exist() -> None:
    """The walk finds the core modules and leaves out only the aiohttp glue."""
    names = {module.rpartition(".")[2] for module in CORE}
    assert {"signatures", "digest", "replay", "structured", "errors"} <= names
    assert "aiohttp_glue" not in names


@pytest.mark.parametrize("module", CORE)
def test_core_module_is_pure(module: str) -> None:
    """A core module of peerauth reaches no I/O layer, I/O library, clock or file."""
    assert CHECKER.violations(module) == []
