"""Stand-in services the demo runs on loopback: the NHS MESH sandbox and an SMTP sink.

- :func:`mesh_sandbox` starts NHS England's MESH sandbox (PyPI ``mesh-sandbox``) with
  uvicorn on 127.0.0.1, in its own virtual environment because it pins its own FastAPI.
  The environment is the one ``make test`` builds under ``.cache/mesh-sandbox-venv`` (or
  the Python named by ``EXCHANGE_MESH_SANDBOX_PYTHON``); when neither exists the demo says
  it skipped the MESH leg.
- :class:`SmtpSink` is an aiosmtpd server on 127.0.0.1 that requires STARTTLS and AUTH,
  as a real submission server does, and keeps what it accepted, so the demo can show the
  mail a DSL would receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import subprocess
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


def sandbox_python(root: Path | None = None) -> Path | None:
    """Return the Python of an installed MESH sandbox environment, or ``None``."""
    named = os.environ.get("EXCHANGE_MESH_SANDBOX_PYTHON")
    if named:
        return Path(named) if Path(named).exists() else None
    base = root or Path(__file__).resolve().parents[1]
    python = base / ".cache" / "mesh-sandbox-venv" / "bin" / "python"
    return python if python.exists() else None


def _free_port() -> int:
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
        url = f"http://127.0.0.1:{_free_port()}"
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
