"""The real NHS MESH sandbox (PyPI ``mesh-sandbox``), run for the MESH integration tests.

The sandbox pins its own FastAPI, so it lives in a separate virtual environment under
``.cache/mesh-sandbox-venv`` in the project (created once, reused while its marker file
names the same requirements), together with NHS England's ``mesh-client`` for the interop
test. :func:`sandbox_session` starts ``uvicorn mesh_sandbox.api:app`` on 127.0.0.1 with
``AUTH_MODE=full STORE_MODE=memory`` and an explicit ``SHARED_KEY``, waits for
``/health``, and stops it afterwards. When the environment cannot be built (no network to
the package index, no ``venv`` module), the tests that need it are skipped with the reason,
except in CI, where they fail with it: CI must run them.
The environment and the process are :mod:`exchange.demo.services`' own, which the demo and
the MESH benchmark share.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.demo.services import (
    SANDBOX_REQUIREMENTS,
    SANDBOX_VENV,
    Sandbox,
    SandboxUnavailableError,
    build_sandbox_env,
    free_port,
    running_sandbox,
)
from tests.ci import in_ci

__all__ = [
    "OTHER", "PASSWORD", "RECIPIENT", "REQUIREMENTS", "SENDER", "SHARED_KEY", "VENV",
    "Sandbox", "free_port", "sandbox_session", "venv_python",
]  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / SANDBOX_VENV
REQUIREMENTS = SANDBOX_REQUIREMENTS
SHARED_KEY = "ExchangeTestKey"
PASSWORD = "password"  # noqa: S105 (the sandbox's published test password)
SENDER, RECIPIENT, OTHER = "X26ABC1", "X26ABC2", "X26ABC3"


def venv_python() -> Path:
    """Return the sandbox environment's Python, building it first if needed.

    Skips the calling test (with the reason) when the environment cannot be built; in CI
    it fails instead.
    """
    started = time.monotonic()
    try:
        python = build_sandbox_env(VENV)
    except SandboxUnavailableError as exc:
        if in_ci():
            pytest.fail(f"CI must run the MESH tests, but {exc}", pytrace=False)
        pytest.skip(str(exc))
    if time.monotonic() - started > 1.0:
        print(f"mesh-sandbox venv built in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return python


def sandbox_session(tmp_dir: Path) -> Iterator[Sandbox]:
    """Start the sandbox, yield it, and stop it (a session fixture's body)."""
    with running_sandbox(venv_python(), tmp_dir, SHARED_KEY) as sandbox:
        yield sandbox
