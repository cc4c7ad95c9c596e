"""The real NHS MESH sandbox (PyPI ``mesh-sandbox``), run for the MESH integration tests.

The sandbox pins its own FastAPI, so it lives in a separate virtual environment under
``.cache/mesh-sandbox-venv`` in the project (created once, reused while its marker file
names the same requirements), together with NHS England's ``mesh-client`` for the interop
test. :func:`sandbox_session` starts ``uvicorn mesh_sandbox.api:app`` on 127.0.0.1 with
``AUTH_MODE=full STORE_MODE=memory`` and an explicit ``SHARED_KEY``, waits for
``/health``, and stops it afterwards. When the environment cannot be built (no network to
the package index, no ``venv`` module), the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange.demo.services import mesh_sandbox

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "mesh-sandbox-venv"
REQUIREMENTS = ("mesh-sandbox==1.0.137", "uvicorn", "mesh-client==5.0.2")
MARKER = VENV / "requirements.txt"
SHARED_KEY = "ExchangeTestKey"
PASSWORD = "password"  # noqa: S105 (the sandbox's published test password)
SENDER, RECIPIENT, OTHER = "X26ABC1", "X26ABC2", "X26ABC3"
INSTALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox: its base URL, and the Python of its virtual environment."""

    url: str
    python: Path
    log: Path

    def reset(self) -> None:
        """Clear every mailbox (``DELETE /admin/reset``)."""
        _call(f"{self.url}/admin/reset", method="DELETE")

    def create_report(self, **fields: str) -> str:
        """Put an error report into a mailbox (``POST /messageexchange/admin/report``)."""
        answer = _call(
            f"{self.url}/messageexchange/admin/report",
            method="POST",
            body=json.dumps(fields).encode(),
        )
        return str(json.loads(answer)["message_id"])


def _call(url: str, *, method: str = "GET", body: bytes | None = None) -> bytes:
    request = urllib.request.Request(  # noqa: S310 (a loopback http URL we built)
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return bytes(resp.read())


def venv_python() -> Path:
    """Return the sandbox environment's Python, building it first if needed.

    Skips the calling test (with the reason) when the environment cannot be built.
    """
    python = VENV / "bin" / "python"
    wanted = "\n".join(REQUIREMENTS)
    if python.exists() and MARKER.exists() and MARKER.read_text() == wanted:
        return python
    started = time.monotonic()
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(VENV)],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT,
        )
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *REQUIREMENTS,
            ],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        last = detail.decode(errors="replace").strip().splitlines()[-1:] or [type(exc).__name__]
        pytest.skip(f"the MESH sandbox environment could not be built: {last[0]}")
    MARKER.write_text(wanted)
    print(f"mesh-sandbox venv built in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox_session(tmp_dir: Path) -> Iterator[Sandbox]:
    """Start the sandbox, yield it, and stop it (a session fixture's body).

    The process is run by :func:`exchange.demo.services.mesh_sandbox`, as the demo runs it.
    """
    python = venv_python()
    log = tmp_dir / "mesh-sandbox.log"
    with mesh_sandbox(python, log, SHARED_KEY) as url:
        yield Sandbox(url, python, log)
