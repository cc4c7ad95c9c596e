"""Stand-in services the demo, the tests and the bench run on loopback: MESH and SMTP.

- :func:`mesh_sandbox` starts NHS England's MESH sandbox (PyPI ``mesh-sandbox``) with
  uvicorn on 127.0.0.1, in its own virtual environment because it pins its own FastAPI.
  :func:`build_sandbox_env` builds that environment: ``make demo`` (through
  ``exchange demo --mesh-sandbox``) and ``make test`` build the same one, under
  ``.cache/mesh-sandbox-venv`` in the project folder. :func:`running_sandbox` runs the
  sandbox as the MESH tests and the MESH benchmark use it. Without ``--mesh-sandbox`` the
  demo uses the environment under the current folder (or the Python named by
  ``EXCHANGE_MESH_SANDBOX_PYTHON``) if there is one, and otherwise says it skipped the MESH
  leg.
- :class:`SmtpSink` is an aiosmtpd server on 127.0.0.1 that requires STARTTLS and AUTH,
  as a real submission server does, and keeps what it accepted, so the demo can show the
  mail a DSL would receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

MESH_SHARED_KEY: Final = "ExchangeDemoKey"
#: The sandbox's published test password, the same for every mailbox.
MESH_PASSWORD: Final = "password"  # noqa: S105
SMTP_USER: Final = "exchange-demo"
_START_TIMEOUT: Final = 30.0


#: NHS England's sandbox, the server that runs it, and NHS England's own client (which the
#: interoperability test and the MESH benchmark drive), pinned so every run tests the same.
SANDBOX_REQUIREMENTS: Final = ("mesh-sandbox==1.0.137", "uvicorn", "mesh-client==5.0.2")
#: Where the sandbox's environment lives, relative to the project folder.
SANDBOX_VENV: Final = Path(".cache") / "mesh-sandbox-venv"
#: A cold install from a package index mirror takes about 11 s; this allows a slow one.
_INSTALL_TIMEOUT: Final = 600.0
#: An index that cannot be reached is reported within about a minute, not pip's default
#: five retries of a long timeout each (the demo then runs its other legs).
_PIP_PATIENCE: Final = ("--retries", "1", "--timeout", "20")


class SandboxUnavailableError(Exception):
    """The MESH sandbox's environment cannot be built (no package index, no venv module)."""


def sandbox_folder_problem(venv: Path) -> str | None:
    """Return why ``venv`` may not hold the sandbox's environment, or ``None`` if it may.

    Building clears the folder, so it must be missing, empty, or a virtual environment
    already (one built before, perhaps for other requirements): never a folder of files.
    """
    if not venv.exists():
        return None
    if not venv.is_dir():
        return "it exists and is not a folder"
    if (venv / "pyvenv.cfg").is_file() or not any(venv.iterdir()):
        return None
    return "the folder holds files and is not a virtual environment; name a new folder"


def sandbox_env_ready(venv: Path) -> bool:
    """Return whether ``venv`` holds the sandbox's environment for today's requirements."""
    marker = venv / "requirements.txt"
    return (
        (venv / "bin" / "python").exists()
        and marker.is_file()
        and marker.read_text("utf-8") == "\n".join(SANDBOX_REQUIREMENTS)
    )


def sandbox_python(root: Path | None = None) -> Path | None:
    """Return the Python of an installed MESH sandbox environment, or ``None``.

    The environment is ``EXCHANGE_MESH_SANDBOX_PYTHON`` when set, otherwise the one under
    ``root`` (default: the current folder, the project folder when run by ``make demo``).
    """
    named = os.environ.get("EXCHANGE_MESH_SANDBOX_PYTHON")
    if named:
        return Path(named) if Path(named).exists() else None
    python = (root or Path.cwd()) / SANDBOX_VENV / "bin" / "python"
    return python if python.exists() else None


def build_sandbox_env(venv: Path) -> Path:
    """Return the Python of the sandbox environment at ``venv``, building it first if needed.

    An environment whose marker file names the same requirements is reused as it is; raise
    :class:`SandboxUnavailableError` with the installer's last line when it cannot be built
    (or with :func:`sandbox_folder_problem`'s reason, touching nothing).
    """
    python = venv / "bin" / "python"
    if sandbox_env_ready(venv):
        return python
    problem = sandbox_folder_problem(venv)
    if problem is not None:
        raise SandboxUnavailableError(f"{venv}: {problem}")
    try:
        subprocess.run(  # noqa: S603 - this interpreter's venv module, our own arguments
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            check=True, capture_output=True, timeout=_INSTALL_TIMEOUT,
        )  # fmt: skip
        subprocess.run(  # noqa: S603 - the new environment's pip, pinned requirements
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             *_PIP_PATIENCE, *SANDBOX_REQUIREMENTS],
            check=True, capture_output=True, timeout=_INSTALL_TIMEOUT,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        last = detail.decode(errors="replace").strip().splitlines()[-1:] or [type(exc).__name__]
        raise SandboxUnavailableError(
            "the MESH sandbox environment could not be built; is the package index "
            f"reachable? The installer said: {last[0]}"
        ) from None
    (venv / "requirements.txt").write_text("\n".join(SANDBOX_REQUIREMENTS), "utf-8")
    return python


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox: its base URL, the Python of its environment, and its log file."""

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
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL we built
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - as above
        return bytes(resp.read())


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310 - loopback
                return True
        except (OSError, urllib.error.URLError):
            time.sleep(0.05)
    return False


@contextlib.contextmanager
def mesh_sandbox(python: Path, log: Path, shared_key: str = MESH_SHARED_KEY) -> Iterator[str]:
    """Run the sandbox (full authentication, memory store) and yield its base URL."""
    env = {**os.environ, "AUTH_MODE": "full", "STORE_MODE": "memory", "SHARED_KEY": shared_key}
    for _attempt in range(3):  # a probed free port can be taken before the bind
        url = f"http://127.0.0.1:{free_port()}"
        port = url.rsplit(":", 1)[1]
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own fixed command line
                [str(python), "-m", "uvicorn", "mesh_sandbox.api:app", "--host", "127.0.0.1",
                 "--port", port, "--log-level", "warning"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            if _healthy(url, proc):
                yield url
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    raise RuntimeError(f"the MESH sandbox did not start; see {log}")


@contextlib.contextmanager
def running_sandbox(python: Path, folder: Path, shared_key: str) -> Iterator[Sandbox]:
    """Run the sandbox of the environment ``python`` belongs to; log to ``folder``."""
    log = folder / "mesh-sandbox.log"
    with mesh_sandbox(python, log, shared_key) as url:
        yield Sandbox(url, python, log)


@dataclass
class SmtpSink:
    """An SMTP server on loopback requiring STARTTLS and AUTH; it keeps every message."""

    cert: Path
    key: Path
    password: str
    messages: list[tuple[tuple[str, ...], bytes]] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port)."""
        # aiosmtpd warns about its own deprecated attributes on every login.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
                del server, session
                sink.messages.append((tuple(envelope.rcpt_tos), bytes(envelope.original_content)))
                return "250 2.0.0 Message accepted"

        def authenticate(*args: Any) -> AuthResult:
            data = args[-1]
            ok = (
                isinstance(data, LoginPassword)
                and data.login == SMTP_USER.encode()
                and data.password == self.password.encode()
            )
            return AuthResult(success=ok, handled=False)

        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return SMTP(
                    Handler(), hostname="smtp.demo.invalid", tls_context=context,
                    require_starttls=True, auth_required=True, auth_require_tls=True,
                    authenticator=authenticate, loop=loop,
                )  # fmt: skip

        self._server = await loop.create_server(factory, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            self._server = None
