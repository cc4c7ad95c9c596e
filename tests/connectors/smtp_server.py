"""A real SMTP server on 127.0.0.1 for the SMTP connector's tests (aiosmtpd).

The server runs aiosmtpd's ``SMTP`` protocol on the test's own event loop, listening on
port 0 (aiosmtpd's threaded ``Controller`` cannot: it connects to its configured port to
wake the server, and port 0 is not a port one can connect to). One loop and no thread
means nothing to synchronise and nothing left running when a test ends. The server offers
STARTTLS with a certificate from a throwaway CA (or speaks implicit TLS), requires TLS
before anything but EHLO/STARTTLS, requires AUTH, accepts exactly one user, and records
every message it accepts with whether the connection was encrypted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from exchange.demo.loopback import certificate_authority, server_certificate

USERNAME = "exchange-node"
PASSWORD = "correct horse battery staple 7Q!"  # noqa: S105 - the test server's one user


@dataclass(frozen=True)
class ThrowawayCa:
    """A throwaway CA file and a server certificate for 127.0.0.1, signed by it."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """Return a server-side TLS context with the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_test_ca(folder: Path) -> ThrowawayCa:
    """Create a CA and a server certificate whose SAN is IP 127.0.0.1 (loopback.py's)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca = certificate_authority(folder)
    tls = server_certificate(folder, "server", ca_key, ca)
    assert tls.ca is not None
    return ThrowawayCa(tls.ca, tls.cert, tls.key)


@dataclass(frozen=True)
class Received:
    """A message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    encrypted: bool
    login: bytes | None


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that stores messages, or answers ``reply``, or stalls."""

    received: list[Received] = field(default_factory=list)
    reply: str | None = None
    stall: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)
    logins: list[tuple[bytes, bool]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        """Accept (recording it), refuse or stall the message, as configured."""
        if self.stall:
            await self.released.wait()
        if self.reply is not None:
            return self.reply
        transport = server.transport
        encrypted = transport is not None and transport.get_extra_info("ssl_object") is not None
        login = session.auth_data if session.authenticated else None
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""),
                encrypted=encrypted,
                login=login if isinstance(login, bytes) else None,
            )
        )
        return "250 2.0.0 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """Accept only :data:`USERNAME` with :data:`PASSWORD`; note whether TLS was on."""
        del session, envelope, mechanism
        transport = server.transport
        encrypted = transport is not None and transport.get_extra_info("ssl_object") is not None
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USERNAME.encode()
            and auth_data.password == PASSWORD.encode()
        )
        login = auth_data.login if isinstance(auth_data, LoginPassword) else b""
        self.logins.append((login, encrypted))
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)


@dataclass
class SmtpServer:
    """A running server: its port, handler, and the protocol instances to close."""

    server: asyncio.Server
    port: int
    handler: RecordingHandler
    sessions: list[SMTP]

    async def stop(self) -> None:
        """Release stalled handlers, close every connection and the listener."""
        self.handler.released.set()
        self.server.close()
        for session in self.sessions:
            if session.transport is not None:
                session.transport.abort()
            original = getattr(session, "_original_transport", None)
            if original is not None:
                original.abort()
        await self.server.wait_closed()
        # Let connection_lost callbacks and the cancelled handler tasks run.
        for _ in range(5):
            await asyncio.sleep(0)


async def start_smtp_server(
    ca: ThrowawayCa,
    *,
    implicit_tls: bool = False,
    data_size_limit: int = 10 * 1024 * 1024,
) -> SmtpServer:
    """Start an aiosmtpd server on 127.0.0.1, port 0, requiring TLS and AUTH."""
    loop = asyncio.get_running_loop()
    handler = RecordingHandler()
    context = ca.server_context()
    sessions: list[SMTP] = []

    def factory() -> SMTP:
        with warnings.catch_warnings():
            # With implicit TLS the whole connection is encrypted, but aiosmtpd only counts
            # STARTTLS as TLS for AUTH, so auth_require_tls is off there and it warns.
            warnings.simplefilter("ignore", UserWarning)
            session = SMTP(
                handler,
                hostname="smtp.test",
                tls_context=None if implicit_tls else context,
                require_starttls=not implicit_tls,
                auth_required=True,
                auth_require_tls=not implicit_tls,
                authenticator=handler.authenticate,
                data_size_limit=data_size_limit,
                timeout=30,
                loop=loop,
            )
        sessions.append(session)
        return session

    server = await loop.create_server(
        factory, "127.0.0.1", 0, ssl=context if implicit_tls else None
    )
    port = server.sockets[0].getsockname()[1]
    return SmtpServer(server=server, port=port, handler=handler, sessions=sessions)


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """Yield a port that refuses connections: bound (so nothing else takes it), not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
