"""A bad or hostile SMTP server: garbage, silence, refusals, drops, broken STARTTLS.

A raw asyncio TCP server on 127.0.0.1, port 0, plays a scripted SMTP peer: a garbage or
endless banner, no banner at all, 4xx and 5xx replies at each stage of the dialogue, a
connection dropped in the middle of DATA, and STARTTLS offered but failing in several ways.
test_smtp.py covers a well-behaved aiosmtpd server (including 4xx/5xx replies to the whole
message and a stall after DATA); this module covers a peer that does not behave.

The reply-code cases run the connector in mode ``plain`` (tests only, no credentials), so
the scripted peer can read the dialogue in clear; the STARTTLS cases run mode ``starttls``.
Every case asserts the outcome docs/smtp.md §5 gives it, a key word of the reason, and that
the attempt ended within its deadline plus :data:`SLACK` on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exchange.connectors.base import Delivered, Message, Outcome, Refused, RetryLater
from exchange.connectors.smtp import QUIT_TIMEOUT, SmtpConfig, SmtpConnector
from exchange.envelope import Recipient, seal
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair

from .conformance import SLACK
from .smtp_server import ThrowawayCa, make_test_ca

pytestmark = pytest.mark.network

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
MAILBOX = "dsl@front-door.example"
#: Deadline for attempts the peer answers at once (they must end far sooner).
QUICK = 5.0
#: Deadline for attempts the peer stalls; the test checks they end close to it.
STALL = 0.5
#: How long a stalled script waits at most (the fixture releases it sooner).
HANG = 60.0

EHLO_PLAIN = ("250-smtp.test", "250-8BITMIME", "250 SIZE 10485760")
EHLO_STARTTLS = ("250-smtp.test", "250-8BITMIME", "250 STARTTLS")


class PeerClosedError(Exception):
    """The client closed the connection while the script was reading."""


@dataclass
class Peer:
    """One connection to the scripted server, as the script sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    commands: list[str]
    release: asyncio.Event

    async def say(self, *lines: str) -> None:
        """Send reply lines, each ended with CRLF."""
        self.writer.write("".join(f"{line}\r\n" for line in lines).encode())
        await self.writer.drain()

    async def raw(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.writer.write(data)
        await self.writer.drain()

    async def command(self) -> str:
        """Read one command line; record its verb (and argument, for MAIL and RCPT)."""
        line = await self.reader.readline()
        if not line:
            raise PeerClosedError
        text = line.decode(errors="replace").strip()
        self.commands.append(text)
        return text

    async def data(self) -> bytes:
        """Read a message body up to the lone dot."""
        body = bytearray()
        while (line := await self.reader.readline()) != b".\r\n":
            if not line:
                raise PeerClosedError
            body += line
        self.commands.append("<body>")
        return bytes(body)

    async def stall(self) -> None:
        """Say nothing more until the test ends."""
        await asyncio.wait_for(self.release.wait(), HANG)

    async def greet(self, ehlo: tuple[str, ...] = EHLO_PLAIN) -> None:
        """Send the banner and answer EHLO."""
        await self.say("220 smtp.test ESMTP")
        await self.command()
        await self.say(*ehlo)

    async def starttls(self, context: ssl.SSLContext) -> None:
        """Agree to STARTTLS and switch the connection to TLS."""
        assert (await self.command()).upper() == "STARTTLS"
        await self.say("220 2.0.0 Ready to start TLS")
        await self.writer.start_tls(context)

    async def transaction(self, *, final: str = "250 2.0.0 Queued as 1") -> None:
        """Accept MAIL, RCPT and DATA, read the body, answer ``final``, then QUIT."""
        await self.command()
        await self.say("250 2.1.0 Ok")
        await self.command()
        await self.say("250 2.1.5 Ok")
        await self.command()
        await self.say("354 End data with <CR><LF>.<CR><LF>")
        await self.data()
        await self.say(final)
        await self.command()
        await self.say("221 2.0.0 Bye")


Script = Callable[[Peer], Awaitable[None]]


@dataclass
class ScriptedServer:
    """A TCP server on 127.0.0.1 that runs ``script`` on every connection."""

    script: Script
    commands: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    connections: int = 0

    async def start(self) -> int:
        """Listen on port 0; return the port."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.append(writer)
        self.connections += 1
        try:
            await self.script(Peer(reader, writer, self.commands, self.release))
        except (
            PeerClosedError,
            ConnectionError,
            ssl.SSLError,
            TimeoutError,
            asyncio.IncompleteReadError,
        ):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        """Release stalled scripts, close every connection and wait for the scripts."""
        self.release.set()
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 5)

    def verbs(self) -> list[str]:
        """Return the verbs the client sent, in order (upper case)."""
        return [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in self.commands]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCa:
    """Make a throwaway CA and a certificate for 127.0.0.1."""
    return make_test_ca(tmp_path_factory.mktemp("smtp-hostile-ca"))


@pytest.fixture(scope="module")
def sealed_message() -> Message:
    """Return a sealed envelope as the outbox hands it over (synthetic content)."""
    la = OrgKeyPair.generate(LA)
    envelope, info = seal(
        b"synthetic test record, no personal data",
        OrgKeyPair.generate(SCHOOL),
        [Recipient(LA, la.encryption.public)],
        record_kind="referral",
        created=1_767_600_000,
    )
    return Message("envelope", info.digest, SCHOOL, LA, envelope)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[ScriptedServer]]]:
    """Yield a function that starts a scripted server; stop them all afterwards."""
    started: list[ScriptedServer] = []

    async def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


def plain(port: int) -> SmtpConnector:
    """Return a connector in mode plain (no TLS, no credentials) to ``port``."""
    return SmtpConnector(
        SmtpConfig(
            host="127.0.0.1",
            port=port,
            from_address="exchange@hillside.example",
            message_id_domain="hillside.example",
            mode="plain",
            allow_plain=True,
            client_timeout=10.0,
        )
    )


def starttls(port: int, ca_file: Path) -> SmtpConnector:
    """Return a connector in mode starttls, trusting ``ca_file``, to ``port``."""
    return SmtpConnector(
        SmtpConfig(
            host="127.0.0.1",
            port=port,
            from_address="exchange@hillside.example",
            message_id_domain="hillside.example",
            mode="starttls",
            ca_file=ca_file,
            client_timeout=10.0,
        )
    )


async def attempt(
    connector: SmtpConnector, msg: Message, timeout: float = QUICK
) -> tuple[Outcome, float]:
    """Deliver ``msg``; return the outcome and the seconds it took (event loop clock)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        outcome = await connector.deliver(msg, MAILBOX, timeout=timeout)
    finally:
        await connector.close()
    return outcome, loop.time() - started


# -- the banner ---------------------------------------------------------------------------


async def garbage_banner(peer: Peer) -> None:
    await peer.raw(b"hello, this is not an SMTP server\r\n")
    await peer.stall()


async def binary_banner(peer: Peer) -> None:
    await peer.raw(b"\x00\xff\xfe garbage\r\n")
    await peer.stall()


async def endless_banner(peer: Peer) -> None:
    await peer.raw(b"220 ")
    while not peer.release.is_set():
        await peer.raw(b"x" * 65536)


async def endless_multiline_banner(peer: Peer) -> None:
    while not peer.release.is_set():
        await peer.raw(b"220-smtp.test still greeting\r\n" * 1000)


async def odd_code_banner(peer: Peer) -> None:
    await peer.say("999 smtp.test what is this")
    await peer.stall()


@pytest.mark.parametrize(
    ("script", "words"),
    [
        (garbage_banner, "unexpected code"),
        (binary_banner, "unexpected code"),
        (endless_banner, "unexpected code"),
        (endless_multiline_banner, "unexpected code"),
        (odd_code_banner, "unexpected code 999"),
    ],
    ids=["text", "binary", "endless-line", "endless-lines", "code-999"],
)
async def test_a_garbage_banner_retries_at_once(
    serve: Callable[[Script], Awaitable[ScriptedServer]],
    sealed_message: Message,
    script: Script,
    words: str,
) -> None:
    server = await serve(script)
    assert server.server is not None
    outcome, elapsed = await attempt(
        plain(server.server.sockets[0].getsockname()[1]), sealed_message
    )
    assert isinstance(outcome, RetryLater)
    assert words in outcome.reason
    assert elapsed < 2.0
    assert "MAIL" not in server.verbs()


async def silent(peer: Peer) -> None:
    await peer.stall()


async def silent_after_ehlo(peer: Peer) -> None:
    await peer.say("220 smtp.test ESMTP")
    await peer.command()
    await peer.stall()


async def silent_after_mail(peer: Peer) -> None:
    await peer.greet()
    await peer.command()
    await peer.stall()


async def slow_drip_banner(peer: Peer) -> None:
    await peer.raw(b"220-")
    while not peer.release.is_set():
        await peer.raw(b"x")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "script",
    [silent, silent_after_ehlo, silent_after_mail, slow_drip_banner],
    ids=["no-banner", "no-ehlo-reply", "no-mail-reply", "drip"],
)
async def test_a_silent_server_retries_within_the_deadline(
    serve: Callable[[Script], Awaitable[ScriptedServer]], sealed_message: Message, script: Script
) -> None:
    server = await serve(script)
    assert server.server is not None
    port = server.server.sockets[0].getsockname()[1]
    outcome, elapsed = await attempt(plain(port), sealed_message, STALL)
    assert isinstance(outcome, RetryLater)
    assert "did not answer in time" in outcome.reason
    assert STALL * 0.9 <= elapsed <= STALL + SLACK
    assert "<body>" not in server.commands


# -- replies at each stage ------------------------------------------------------------------


def refusing_at(stage: str, reply: str) -> Script:
    """Return a script that answers ``reply`` at ``stage`` and 250/354 before it."""

    async def script(peer: Peer) -> None:
        if stage == "banner":
            await peer.say(reply)
            await peer.command()  # QUIT, perhaps
            return
        await peer.greet()
        for step, ok in (
            ("MAIL", "250 2.1.0 Ok"),
            ("RCPT", "250 2.1.5 Ok"),
            ("DATA", "354 Go ahead"),
        ):
            await peer.command()
            if stage == step:
                await peer.say(reply)
                await peer.command()  # RSET or QUIT, perhaps
                return
            await peer.say(ok)
        await peer.data()
        await peer.say(reply)
        await peer.command()

    return script


STAGES = ["banner", "MAIL", "RCPT", "DATA", "end-of-data"]
REPLIES = [
    ("421 4.3.2 Service shutting down", RetryLater, "421"),
    ("451 4.3.0 Local error in processing", RetryLater, "451"),
    ("550 5.7.1 Relaying denied", Refused, "550"),
    ("554 5.7.1 Transaction failed", Refused, "554"),
]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(("reply", "expected", "code"), REPLIES, ids=[r[2] for r in REPLIES])
async def test_replies_at_each_stage_are_classified(
    serve: Callable[[Script], Awaitable[ScriptedServer]],
    sealed_message: Message,
    stage: str,
    reply: str,
    expected: type,
    code: str,
) -> None:
    server = await serve(refusing_at(stage, reply))
    assert server.server is not None
    port = server.server.sockets[0].getsockname()[1]
    outcome, elapsed = await attempt(plain(port), sealed_message)
    assert isinstance(outcome, expected), outcome
    assert isinstance(outcome, RetryLater | Refused)
    assert code in outcome.reason
    if expected is Refused:
        assert "refused the mail" in outcome.reason
    assert elapsed < 2.0
    reached = {"banner": 0, "MAIL": 1, "RCPT": 2, "DATA": 3, "end-of-data": 3}[stage]
    assert [v for v in server.verbs() if v in {"MAIL", "RCPT", "DATA"}] == ["MAIL", "RCPT", "DATA"][
        :reached
    ]


async def test_a_reply_text_is_cut_and_scrubbed(
    serve: Callable[[Script], Awaitable[ScriptedServer]], sealed_message: Message
) -> None:
    """A long, multi-line refusal ends up as one short line in the reason."""
    server = await serve(refusing_at("RCPT", "550-" + "x" * 900 + "\r\n550 5.1.1 no such user"))
    assert server.server is not None
    outcome, _ = await attempt(plain(server.server.sockets[0].getsockname()[1]), sealed_message)
    assert isinstance(outcome, Refused)
    assert "550" in outcome.reason
    assert "\n" not in outcome.reason
    assert len(outcome.reason) < 300


# -- the connection dropped -----------------------------------------------------------------


async def drop_mid_data(peer: Peer) -> None:
    await peer.greet()
    for ok in ("250 2.1.0 Ok", "250 2.1.5 Ok", "354 Go ahead"):
        await peer.command()
        await peer.say(ok)
    await peer.reader.readexactly(1000)  # part of the message, then gone
    peer.commands.append("<part of the body>")
    peer.writer.transport.abort()


async def drop_after_data(peer: Peer) -> None:
    await peer.greet()
    for ok in ("250 2.1.0 Ok", "250 2.1.5 Ok", "354 Go ahead"):
        await peer.command()
        await peer.say(ok)
    await peer.data()
    peer.writer.transport.abort()  # the whole message, and no answer


async def drop_after_banner(peer: Peer) -> None:
    await peer.say("220 smtp.test ESMTP")
    peer.writer.transport.abort()


@pytest.mark.parametrize(
    ("script", "marker"),
    [
        (drop_mid_data, "<part of the body>"),
        (drop_after_data, "<body>"),
        (drop_after_banner, None),
    ],
    ids=["mid-data", "after-data", "after-banner"],
)
async def test_a_dropped_connection_retries(
    serve: Callable[[Script], Awaitable[ScriptedServer]],
    sealed_message: Message,
    script: Script,
    marker: str | None,
) -> None:
    server = await serve(script)
    assert server.server is not None
    outcome, elapsed = await attempt(
        plain(server.server.sockets[0].getsockname()[1]), sealed_message
    )
    assert isinstance(outcome, RetryLater)
    assert "closed the connection" in outcome.reason
    assert elapsed < 2.0
    if marker is not None:
        assert marker in server.commands


async def hang_at_quit(peer: Peer) -> None:
    await peer.greet()
    for ok in ("250 2.1.0 Ok", "250 2.1.5 Ok", "354 Go ahead"):
        await peer.command()
        await peer.say(ok)
    await peer.data()
    await peer.say("250 2.0.0 Queued")
    await peer.command()  # QUIT
    await peer.stall()


async def test_a_server_that_hangs_at_quit_still_delivered(
    serve: Callable[[Script], Awaitable[ScriptedServer]], sealed_message: Message
) -> None:
    """The server took the message; a QUIT that never ends changes nothing."""
    server = await serve(hang_at_quit)
    assert server.server is not None
    outcome, elapsed = await attempt(
        plain(server.server.sockets[0].getsockname()[1]), sealed_message
    )
    assert isinstance(outcome, Delivered)
    assert outcome.transport_ref
    assert elapsed <= QUIT_TIMEOUT + SLACK
    assert server.verbs()[-1] == "QUIT"


# -- STARTTLS -------------------------------------------------------------------------------


def tls_script(failure: str, context: ssl.SSLContext) -> Script:
    """Return a script that offers STARTTLS (or not) and then fails as ``failure`` says."""

    async def script(peer: Peer) -> None:
        if failure == "not-offered":
            await peer.greet(EHLO_PLAIN)
            await peer.command()  # QUIT, or MAIL if the client went on in clear
            await peer.say("221 Bye")
            return
        await peer.greet(EHLO_STARTTLS)
        assert (await peer.command()).upper() == "STARTTLS"
        if failure == "454":
            await peer.say("454 4.7.0 TLS not available due to temporary reason")
        elif failure == "garbage":
            await peer.say("220 2.0.0 Ready to start TLS")
            await peer.reader.read(4096)  # the client's hello
            await peer.raw(b"this is not a TLS handshake\r\n" * 10)
        elif failure == "close":
            await peer.say("220 2.0.0 Ready to start TLS")
            peer.writer.transport.abort()
            return
        elif failure == "silent":
            await peer.say("220 2.0.0 Ready to start TLS")
        elif failure == "ok":
            await peer.say("220 2.0.0 Ready to start TLS")
            await peer.writer.start_tls(context)
            await peer.command()  # EHLO again, under TLS
            await peer.say("250-smtp.test", "250 8BITMIME")
            await peer.transaction()
            return
        await peer.command()
        await peer.stall()

    return script


@pytest.mark.parametrize(
    ("failure", "timeout", "words"),
    [
        ("not-offered", QUICK, "did not offer STARTTLS"),
        ("454", QUICK, "454"),
        ("garbage", QUICK, "TLS handshake"),
        ("close", QUICK, "closed the connection"),
        ("silent", STALL, "did not answer in time"),
    ],
)
async def test_a_failing_starttls_never_sends_in_clear(
    serve: Callable[[Script], Awaitable[ScriptedServer]],
    sealed_message: Message,
    ca: ThrowawayCa,
    failure: str,
    timeout: float,
    words: str,
) -> None:
    server = await serve(tls_script(failure, ca.server_context()))
    assert server.server is not None
    port = server.server.sockets[0].getsockname()[1]
    outcome, elapsed = await attempt(starttls(port, ca.ca_file), sealed_message, timeout)
    assert isinstance(outcome, RetryLater)
    assert words in outcome.reason
    assert elapsed <= timeout + SLACK
    assert not {"MAIL", "RCPT", "DATA", "AUTH"} & set(server.verbs())
    assert "<body>" not in server.commands


async def test_the_scripted_starttls_server_works(
    serve: Callable[[Script], Awaitable[ScriptedServer]],
    sealed_message: Message,
    ca: ThrowawayCa,
) -> None:
    """The same script, when STARTTLS succeeds, takes the mail: the failures above are real."""
    server = await serve(tls_script("ok", ca.server_context()))
    assert server.server is not None
    port = server.server.sockets[0].getsockname()[1]
    outcome, _ = await attempt(starttls(port, ca.ca_file), sealed_message)
    assert isinstance(outcome, Delivered)
    assert server.verbs()[:2] == ["EHLO", "STARTTLS"]
    assert "<body>" in server.commands


async def test_starttls_not_offered_is_named_in_the_reason(
    serve: Callable[[Script], Awaitable[ScriptedServer]],
    sealed_message: Message,
    ca: ThrowawayCa,
) -> None:
    server = await serve(tls_script("not-offered", ca.server_context()))
    assert server.server is not None
    port = server.server.sockets[0].getsockname()[1]
    outcome, _ = await attempt(starttls(port, ca.ca_file), sealed_message)
    assert isinstance(outcome, RetryLater)
    assert outcome.reason == "the SMTP server did not offer STARTTLS; nothing was sent in clear"
