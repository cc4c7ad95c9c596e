"""A bad or hostile MESH server: garbage, silence, floods and lies (docs/mesh.md §4, §5).

A stand-in aiohttp server on 127.0.0.1, port 0 (not the sandbox), answers each MESH step
(handshake, send, send chunk, inbox list, download, download chunk, acknowledge) the way a
test scripts it: a status, garbage JSON, a hang longer than the deadline, a body that drips
one byte at a time, an endless or oversized body, a gzip bomb, a chunk range that lies. A
few cases need a peer that does not speak HTTP at all; a raw TCP server plays it.

Every case asserts the classification docs/mesh.md §5 gives it (``deliver``: ``RetryLater``
or ``Refused``; ``collect`` and ``acknowledge``: ``CollectError`` with ``retry``, or the
message left in the inbox and listed by ``unread()``), a key word of the reason, that the
call ended within its deadline plus :data:`SLACK` on the event loop's clock, and, for the
floods, that the memory the call allocated stayed bounded (tracemalloc).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import ssl
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from exchange.connectors.base import CollectError, Delivered, Message, Refused, RetryLater
from exchange.connectors.mesh import MeshConfig, MeshConnector
from exchange.connectors.mesh.client import MAX_PAGES
from exchange.keys.ids import OrgId

from .conformance import SLACK

pytestmark = pytest.mark.network

SENDER, RECIPIENT = "X26ABC1", "X26ABC2"
WORKFLOW, ACK_WORKFLOW = "TEST_WORKFLOW", "TEST_WORKFLOW_ACK"
ORG = OrgId("la:999")
#: Deadline for calls the server answers at once (generous: they must not come near it).
QUICK = 5.0
#: Deadline for calls the server stalls; the test checks they end close to it.
STALL = 0.5
#: Limit on a collected message in these tests.
MAX_MESSAGE = 64 * 1024
#: Most a flood may make a call allocate: a few times the read limit, far below the flood.
MEMORY_BOUND = 4 * 1024 * 1024
#: How long a stalled handler waits at most (the fixture releases it sooner).
HANG = 60.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STEPS = ("handshake", "send", "send_chunk", "inbox", "download", "download_chunk", "ack")


# -- the stand-in server ------------------------------------------------------------------


@dataclass
class FakeMesh:
    """A MESH look-alike whose every step answers as the test sets it."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None
    url: str = ""

    def __post_init__(self) -> None:
        self.handlers.update(
            handshake=answer(200, {"mailboxId": SENDER}),
            send=answer(202, {"message_id": "MSG1"}),
            send_chunk=answer(202, {"message_id": "MSG1"}),
            inbox=answer(200, {"messages": [], "links": {}}),
            download=message(b"body"),
            download_chunk=message(b"more"),
            ack=answer(200, {"messageId": "MSG1"}),
        )

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        """Listen on 127.0.0.1, port 0 (over TLS with ``ssl_context``); return the base URL."""
        app = web.Application()
        base = "/messageexchange/{mailbox}"
        for method, path, step in (
            ("POST", base, "handshake"),
            ("POST", base + "/outbox", "send"),
            ("POST", base + "/outbox/{id}/{n}", "send_chunk"),
            ("GET", base + "/inbox", "inbox"),
            ("GET", base + "/inbox/{id}", "download"),
            ("GET", base + "/inbox/{id}/{n}", "download_chunk"),
            ("PUT", base + "/inbox/{id}/status/acknowledged", "ack"),
        ):
            app.router.add_route(method, path, self._dispatch(step))
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = self.runner.addresses[0][1]
        scheme = "http" if ssl_context is None else "https"
        self.url = f"{scheme}://127.0.0.1:{port}"
        return self.url

    def _dispatch(self, step: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.seen.append(step)
            return await self.handlers[step](request)

        return handle

    async def stop(self) -> None:
        """Release stalled handlers and stop listening."""
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()

    def set(self, step: str, handler: Handler) -> None:
        """Make ``step`` answer with ``handler``."""
        assert step in STEPS
        self.handlers[step] = handler

    # Behaviours that need the server's release event.

    def hang(self) -> Handler:
        """Never answer (until the test ends)."""

        async def handle(_request: web.Request) -> web.StreamResponse:
            await asyncio.wait_for(self.release.wait(), HANG)
            return web.Response(status=500)

        return handle

    def drip(self, headers: dict[str, str] | None = None) -> Handler:
        """Answer 200 at once, then one byte of a 1,000-byte body every 50 ms."""

        async def handle(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(status=200, headers=headers or {})
            resp.content_length = 1000
            await resp.prepare(request)
            while not self.release.is_set():
                try:
                    await resp.write(b"{")
                except ConnectionError:
                    break
                await asyncio.sleep(0.05)
            return resp

        return handle

    def endless(self, headers: dict[str, str] | None = None, *, declared: bool = False) -> Handler:
        """Answer 200 with a body that never ends (chunked, or a false Content-Length)."""

        async def handle(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(status=200, headers=headers or {})
            if declared:
                resp.content_length = 10**12
            else:
                resp.enable_chunked_encoding()
            await resp.prepare(request)
            block = b"\x00" * 65536
            while not self.release.is_set():
                try:
                    await resp.write(block)
                except ConnectionError:
                    break
            return resp

        return handle


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> Handler:
    """Answer ``status`` with ``body`` (JSON unless bytes)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def handle(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=data, headers=headers or {})

    return handle


def message(
    body: bytes,
    *,
    chunk_range: str = "1:1",
    workflow: str = WORKFLOW,
    encoding: str | None = "gzip",
    extra: dict[str, str] | None = None,
) -> Handler:
    """Answer a download with ``body`` (gzipped unless ``encoding`` says otherwise)."""
    headers = {"mex-workflowid": workflow, "mex-chunk-range": chunk_range, **(extra or {})}
    data = body
    if encoding == "gzip":
        data = gzip.compress(body)
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    return answer(200, data, headers)


def gzip_bomb(size: int) -> bytes:
    """Return a gzip member of ``size`` zero bytes, built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\x00" * (1024 * 1024)
    out = [packer.compress(block) for _ in range(size // len(block))]
    out.append(packer.flush())
    return b"".join(out)


def inbox(*ids: object, next_link: str | None = None) -> Handler:
    """Answer an inbox list page."""
    links = {"next": next_link} if next_link is not None else {}
    return answer(200, {"messages": list(ids), "links": links})


@pytest.fixture
async def mesh() -> AsyncIterator[FakeMesh]:
    """Yield a running stand-in server; stop it afterwards."""
    server = FakeMesh()
    await server.start()
    yield server
    await server.stop()


def config(url: str, mailbox: str = SENDER, **overrides: object) -> MeshConfig:
    values: dict[str, object] = {
        "base_url": url,
        "mailbox": mailbox,
        "password": "password",
        "shared_key": b"TestKey",
        "organisation": ORG,
        "envelope_workflow": WORKFLOW,
        "receipt_workflow": ACK_WORKFLOW,
        "chunk_size": 1024,
        "max_message_size": MAX_MESSAGE,
        "allow_http": True,
    }
    values.update(overrides)
    return MeshConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def connector(mesh: FakeMesh) -> AsyncIterator[MeshConnector]:
    """Yield a connector to the stand-in server; close it afterwards."""
    made = MeshConnector(config(mesh.url))
    yield made
    await made.close()


def envelope(body: bytes = b"sealed bytes") -> Message:
    return Message("envelope", hashlib.sha256(body).digest(), ORG, ORG, body)


class Clock:
    """Elapsed time on the event loop's clock."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()

    @property
    def elapsed(self) -> float:
        """Return seconds since the clock was made."""
        return self._loop.time() - self._start


@contextmanager
def allocations() -> Iterator[list[int]]:
    """Trace allocations in the block; the list gets the peak in bytes."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


async def collect_error(connector: MeshConnector, timeout: float = QUICK) -> CollectError:
    with pytest.raises(CollectError) as caught:
        await connector.collect(limit=10, timeout=timeout)
    return caught.value


# -- deliver ------------------------------------------------------------------------------

REFUSED_OR_RETRY = [
    ("handshake", answer(500), RetryLater, ["500", "handshake"]),
    ("handshake", answer(401), RetryLater, ["401", "handshake"]),
    ("handshake", answer(403), RetryLater, ["403", "handshake"]),
    ("handshake", answer(400), Refused, ["400", "handshake"]),
    ("send", answer(500), RetryLater, ["500", "sending"]),
    ("send", answer(503, b"<html>down</html>"), RetryLater, ["503", "sending"]),
    ("send", answer(429), RetryLater, ["429", "sending"]),
    ("send", answer(401), RetryLater, ["401", "sending"]),
    ("send", answer(417, {"errorCode": "EPL-151"}), Refused, ["417", "sending"]),
    ("send", answer(400), Refused, ["400", "sending"]),
    ("send", answer(200, b"\x00\xff{not json"), RetryLater, ["not valid"]),
    ("send", answer(202, ["a", "list"]), RetryLater, ["not valid"]),
    ("send", answer(202, {"message": "no id"}), RetryLater, ["no valid message id"]),
    ("send", answer(202, {"message_id": "../../inbox"}), RetryLater, ["no valid message id"]),
    ("send", answer(202, {"message_id": 12345}), RetryLater, ["no valid message id"]),
    ("send_chunk", answer(500), RetryLater, ["500", "chunk 2"]),
    ("send_chunk", answer(417), Refused, ["417", "chunk 2"]),
]


@pytest.mark.parametrize(
    ("step", "handler", "expected", "words"),
    REFUSED_OR_RETRY,
    ids=[f"{s}-{i}" for i, (s, *_) in enumerate(REFUSED_OR_RETRY)],
)
async def test_deliver_classifies_bad_answers(
    mesh: FakeMesh,
    connector: MeshConnector,
    step: str,
    handler: Handler,
    expected: type,
    words: list[str],
) -> None:
    mesh.set(step, handler)
    clock = Clock()
    outcome = await connector.deliver(envelope(b"x" * 3000), RECIPIENT, timeout=QUICK)
    assert isinstance(outcome, expected), outcome
    assert isinstance(outcome, RetryLater | Refused)
    for word in words:
        assert word in outcome.reason
    assert clock.elapsed < 2.0


async def test_a_redirect_is_not_followed(mesh: FakeMesh, connector: MeshConnector) -> None:
    """A 3xx is RetryLater and the client never goes where it points."""
    other = FakeMesh()
    await other.start()
    try:
        mesh.set("send", answer(307, headers={"Location": f"{other.url}/messageexchange/X/outbox"}))
        outcome = await connector.deliver(envelope(), RECIPIENT, timeout=QUICK)
        assert isinstance(outcome, RetryLater)
        assert "307" in outcome.reason
        assert other.seen == []
    finally:
        await other.stop()


@pytest.mark.parametrize("step", ["handshake", "send", "send_chunk"])
@pytest.mark.parametrize("how", ["hang", "drip"])
async def test_deliver_to_a_stalling_server_retries_in_time(
    mesh: FakeMesh, connector: MeshConnector, step: str, how: str
) -> None:
    mesh.set(step, mesh.hang() if how == "hang" else mesh.drip())
    clock = Clock()
    outcome = await connector.deliver(envelope(b"y" * 3000), RECIPIENT, timeout=STALL)
    assert isinstance(outcome, RetryLater)
    assert "deadline" in outcome.reason
    assert STALL * 0.9 <= clock.elapsed <= STALL + SLACK
    assert step in mesh.seen


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
@pytest.mark.parametrize("step", ["handshake", "send"])
async def test_deliver_stops_reading_an_endless_answer(
    mesh: FakeMesh, connector: MeshConnector, step: str, declared: bool
) -> None:
    mesh.set(step, mesh.endless(declared=declared))
    clock = Clock()
    with allocations() as peak:
        outcome = await connector.deliver(envelope(), RECIPIENT, timeout=QUICK)
    assert isinstance(outcome, RetryLater)
    assert "larger than" in outcome.reason
    assert clock.elapsed < 2.0
    assert peak[0] < MEMORY_BOUND


async def test_deliver_a_truncated_answer_retries(mesh: FakeMesh, connector: MeshConnector) -> None:
    """A body shorter than its Content-Length, then the connection closes."""

    async def short(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=202)
        resp.content_length = 500
        await resp.prepare(request)
        await resp.write(b'{"message_id": "MS')
        assert request.transport is not None
        request.transport.close()
        return resp

    mesh.set("send", short)
    outcome = await connector.deliver(envelope(), RECIPIENT, timeout=QUICK)
    assert isinstance(outcome, RetryLater)
    assert "could not reach MESH" in outcome.reason


# -- a peer that does not speak HTTP --------------------------------------------------------


@dataclass
class RawPeer:
    """A TCP server on 127.0.0.1 that does not speak HTTP properly.

    It answers every connection with ``reply``, then repeats ``flood`` until the client
    goes away (if ``flood`` is not empty).
    """

    reply: bytes
    flood: bytes = b""
    server: asyncio.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    stopping: bool = False

    async def start(self) -> str:
        """Listen on port 0; return the base URL."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.append(writer)
        try:
            await reader.read(65536)
            writer.write(self.reply)
            await writer.drain()
            block = self.flood * (65536 // max(len(self.flood), 1))
            while block and not self.stopping:
                writer.write(block)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        """Close every connection and the listener; wait for the handlers to end."""
        self.stopping = True
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 5)


@pytest.mark.parametrize(
    ("reply", "flood"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", b""),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", b""),
        (b"HTTP/1.1 200 OK\r\nX-Flood: ", b"a"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 4096, b""),
        (b"HTTP/1.1 200 OK\r\n", b"X-A: b\r\n"),
        (b"\x16\x03\x01\x00\xff", b"A"),
    ],
    ids=["not-http", "truncated", "endless-header", "header-flood", "endless-headers", "binary"],
)
async def test_a_peer_that_does_not_speak_http(reply: bytes, flood: bytes) -> None:
    peer = RawPeer(reply, flood)
    url = await peer.start()
    connector = MeshConnector(config(url))
    try:
        clock = Clock()
        with allocations() as peak:
            outcome = await connector.deliver(envelope(), RECIPIENT, timeout=QUICK)
            error = await collect_error(connector)
        assert isinstance(outcome, RetryLater)
        assert "could not reach MESH" in outcome.reason
        assert "deadline" not in outcome.reason  # a limit stopped it, not the deadline
        assert error.retry
        assert "could not reach MESH" in error.reason
        assert clock.elapsed < 2.0
        assert peak[0] < MEMORY_BOUND
    finally:
        await connector.close()
        await peer.stop()


async def test_endless_blank_space_in_a_header_ends_at_the_deadline() -> None:
    """A header value of blank space that never ends is cut off by the deadline.

    aiohttp's parser does not count that space against its line limit, so here the deadline
    is what ends the call; memory stays flat.
    """
    peer = RawPeer(b"HTTP/1.1 200 OK\r\nX-Flood: ", b" ")
    url = await peer.start()
    connector = MeshConnector(config(url))
    try:
        clock = Clock()
        with allocations() as peak:
            outcome = await connector.deliver(envelope(), RECIPIENT, timeout=STALL)
        assert isinstance(outcome, RetryLater)
        assert "deadline" in outcome.reason
        assert STALL * 0.9 <= clock.elapsed <= STALL + SLACK
        assert peak[0] < MEMORY_BOUND
    finally:
        await connector.close()
        await peer.stop()


# -- collect: the inbox list ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "retry", "words"),
    [
        (answer(200, b"<html>not json</html>"), True, ["inbox list", "not valid"]),
        (answer(200, {"messages": "X1"}), True, ["inbox list", "not valid"]),
        (answer(200, {"links": {}}), True, ["inbox list", "not valid"]),
        (answer(200, [1, 2, 3]), True, ["inbox list", "not valid"]),
        (answer(200, {"messages": [], "links": "next"}), True, ["inbox list", "not valid"]),
        (answer(500), True, ["500", "listing the inbox"]),
        (answer(502, b"Bad Gateway"), True, ["502", "listing the inbox"]),
        (answer(401), True, ["401", "listing the inbox"]),
        (answer(403), True, ["403", "listing the inbox"]),
        (answer(400), False, ["400", "listing the inbox"]),
        (answer(404), False, ["404", "listing the inbox"]),
    ],
)
async def test_collect_classifies_bad_inbox_lists(
    mesh: FakeMesh, connector: MeshConnector, handler: Handler, retry: bool, words: list[str]
) -> None:
    mesh.set("inbox", handler)
    clock = Clock()
    error = await collect_error(connector)
    assert error.retry is retry
    for word in words:
        assert word in error.reason
    assert clock.elapsed < 2.0


async def test_collect_from_a_handshake_that_fails(
    mesh: FakeMesh, connector: MeshConnector
) -> None:
    mesh.set("handshake", answer(503))
    error = await collect_error(connector)
    assert error.retry
    assert "503" in error.reason
    assert "inbox" not in mesh.seen


@pytest.mark.parametrize("step", ["handshake", "inbox", "download", "download_chunk"])
@pytest.mark.parametrize("how", ["hang", "drip"])
async def test_collect_from_a_stalling_server_ends_in_time(
    mesh: FakeMesh, connector: MeshConnector, step: str, how: str
) -> None:
    mesh.set("inbox", inbox("MSG1"))
    mesh.set("download", message(b"first half", chunk_range="1:2"))
    # A first chunk's headers are judged before its body is read: they must be valid for
    # the dripping body to be read at all (identity encoding: a dripped "{" is not gzip).
    drip = {"mex-workflowid": WORKFLOW, "mex-chunk-range": "1:2"} if step == "download" else None
    mesh.set(step, mesh.hang() if how == "hang" else mesh.drip(drip))
    clock = Clock()
    error = await collect_error(connector, STALL)
    assert error.retry
    assert "deadline" in error.reason
    assert STALL * 0.9 <= clock.elapsed <= STALL + SLACK
    assert step in mesh.seen


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
async def test_collect_stops_reading_an_endless_inbox_list(
    mesh: FakeMesh, connector: MeshConnector, declared: bool
) -> None:
    mesh.set("inbox", mesh.endless(declared=declared))
    clock = Clock()
    with allocations() as peak:
        error = await collect_error(connector)
    assert error.retry
    assert "larger than" in error.reason
    assert clock.elapsed < 2.0
    assert peak[0] < MEMORY_BOUND


async def test_hostile_message_ids_are_never_requested(
    mesh: FakeMesh, connector: MeshConnector
) -> None:
    mesh.set("inbox", inbox("../outbox", "X1/../../X26ABC3", "", 5, None, "A" * 101, "ok?x=1"))
    assert await connector.collect(limit=10, timeout=QUICK) == []
    assert mesh.seen == ["handshake", "inbox"]


@pytest.mark.parametrize(
    "link",
    [
        "http://evil.example/messageexchange/X26ABC1/inbox?continue_from=1",
        "//evil.example/messageexchange/X26ABC1/inbox?x=1",
        "/messageexchange/X26ABC3/inbox?continue_from=1",
        "/messageexchange/X26ABC1/outbox?continue_from=1",
    ],
)
async def test_a_next_link_elsewhere_is_not_followed(
    mesh: FakeMesh, connector: MeshConnector, link: str
) -> None:
    mesh.set("inbox", inbox("MSG1", next_link=link))
    found = await connector.collect(limit=10, timeout=QUICK)
    assert [c.body for c in found] == [b"body"]
    assert mesh.seen.count("inbox") == 1


async def test_endless_paging_stops_after_the_page_cap(
    mesh: FakeMesh, connector: MeshConnector
) -> None:
    """A server whose every page links to another page is followed MAX_PAGES times."""
    mesh.set(
        "inbox", inbox("MSG1", next_link=f"/messageexchange/{SENDER}/inbox?continue_from=MSG1")
    )
    clock = Clock()
    found = await connector.collect(limit=10, timeout=STALL)
    assert [c.body for c in found] == [b"body"]
    assert clock.elapsed <= STALL + SLACK
    assert mesh.seen.count("inbox") == MAX_PAGES
    assert mesh.seen.count("download") == 1  # the repeated id is downloaded once


# -- collect: downloads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "retry", "words"),
    [
        (answer(500), True, ["500", "downloading"]),
        (answer(401), True, ["401", "downloading"]),
        (answer(429), True, ["429", "downloading"]),
        (answer(400), False, ["400", "downloading"]),
        (answer(403), True, ["403", "downloading"]),
    ],
)
async def test_collect_classifies_bad_downloads(
    mesh: FakeMesh, connector: MeshConnector, handler: Handler, retry: bool, words: list[str]
) -> None:
    mesh.set("inbox", inbox("MSG1"))
    mesh.set("download", handler)
    error = await collect_error(connector)
    assert error.retry is retry
    for word in words:
        assert word in error.reason
    assert connector.unread() == {}


@pytest.mark.parametrize("status", [404, 410])
async def test_a_message_gone_since_the_list_is_skipped(
    mesh: FakeMesh, connector: MeshConnector, status: int
) -> None:
    mesh.set("inbox", inbox("MSG1"))
    mesh.set("download", answer(status))
    assert await connector.collect(limit=10, timeout=QUICK) == []
    assert connector.unread() == {}


UNUSABLE = [
    (message(b"x", chunk_range="1:0"), "malformed mex-chunk-range"),
    (message(b"x", chunk_range="2:2"), "malformed mex-chunk-range"),
    (message(b"x", chunk_range="1:two"), "malformed mex-chunk-range"),
    (message(b"x", chunk_range="1:1000000"), "malformed mex-chunk-range"),
    (message(b"x", chunk_range="-1:1"), "malformed mex-chunk-range"),
    (message(b"not gzip at all", encoding=None, extra={"Content-Encoding": "gzip"}), "gzip"),
    (
        message(gzip.compress(b"x" * 100)[:-12], encoding=None, extra={"Content-Encoding": "gzip"}),
        "truncated",
    ),
    (message(b"x", encoding="br"), "Content-Encoding"),
    (message(b"x", workflow="OTHER_WORKFLOW"), "workflow"),
    (message(b"x" * (MAX_MESSAGE + 1), encoding=None), "larger than"),
    (message(b"x" * (MAX_MESSAGE + 1), encoding="gzip"), "more than"),
]


@pytest.mark.parametrize(
    ("handler", "words"), UNUSABLE, ids=[f"unusable-{i}" for i in range(len(UNUSABLE))]
)
async def test_an_unusable_message_is_left_and_listed(
    mesh: FakeMesh, connector: MeshConnector, handler: Handler, words: str
) -> None:
    mesh.set("inbox", inbox("BAD1"))
    mesh.set("download", handler)
    assert await connector.collect(limit=10, timeout=QUICK) == []
    (reason,) = connector.unread().values()
    assert words in reason
    assert list(connector.unread()) == ["BAD1"]
    # ... and is never downloaded again, so it cannot block the next collect.
    assert await connector.collect(limit=10, timeout=QUICK) == []
    assert mesh.seen.count("download") == 1


async def test_a_poisoned_message_does_not_block_the_good_ones(
    mesh: FakeMesh, connector: MeshConnector
) -> None:
    good = message(b"good envelope")
    bomb = message(gzip_bomb(32 * 1024 * 1024), encoding=None, extra={"Content-Encoding": "gzip"})

    async def download(request: web.Request) -> web.StreamResponse:
        return await (bomb if request.match_info["id"] == "BOMB" else good)(request)

    mesh.set("inbox", inbox("BOMB", "GOOD"))
    mesh.set("download", download)
    found = await connector.collect(limit=10, timeout=QUICK)
    assert [(c.transport_ref, c.body) for c in found] == [("GOOD", b"good envelope")]
    assert list(connector.unread()) == ["BOMB"]


@pytest.mark.parametrize(
    "flood",
    ["gzip-bomb", "endless-chunked", "endless-declared", "declared-too-large"],
)
async def test_a_flooding_download_is_cut_off_with_bounded_memory(
    mesh: FakeMesh, connector: MeshConnector, flood: str
) -> None:
    gzipped = {"mex-workflowid": WORKFLOW, "Content-Encoding": "gzip"}
    plain = {"mex-workflowid": WORKFLOW}
    if flood == "gzip-bomb":  # 32 MiB of zeros in about 32 KB, under the limit
        handler = answer(200, gzip_bomb(32 * 1024 * 1024), gzipped)
    elif flood == "endless-chunked":
        handler = mesh.endless(plain)
    elif flood == "endless-declared":
        handler = mesh.endless(plain, declared=True)
    else:
        handler = answer(200, b"x" * (2 * MAX_MESSAGE), plain)
    mesh.set("inbox", inbox("FLOOD"))
    mesh.set("download", handler)
    clock = Clock()
    with allocations() as peak:
        found = await connector.collect(limit=10, timeout=QUICK)
    assert found == []
    (reason,) = connector.unread().values()
    assert "than" in reason
    assert str(MAX_MESSAGE) in reason
    assert clock.elapsed < 2.0
    assert peak[0] < MEMORY_BOUND


async def test_chunks_over_the_limit_together_are_left(
    mesh: FakeMesh, connector: MeshConnector
) -> None:
    """Each chunk is under the limit, all of them are not: the message is left."""
    half = b"h" * (MAX_MESSAGE // 2 + 1)
    mesh.set("inbox", inbox("BIG"))
    mesh.set("download", message(half, chunk_range="1:2"))
    mesh.set("download_chunk", message(half, chunk_range="2:2"))
    assert await connector.collect(limit=10, timeout=QUICK) == []
    (reason,) = connector.unread().values()
    assert "chunk 2" in reason
    assert "more than" in reason


async def test_a_chunk_that_is_refused_leaves_the_message(
    mesh: FakeMesh, connector: MeshConnector
) -> None:
    """The first chunk claims three; MESH answers 404 for the second: left, not blocking."""
    mesh.set("inbox", inbox("LIAR", "GOOD"))
    mesh.set("download", message(b"part one", chunk_range="1:3"))
    mesh.set("download_chunk", answer(404))
    found = await connector.collect(limit=10, timeout=QUICK)
    assert found == []  # GOOD's download also claims three chunks here
    assert connector.unread() == {
        "LIAR": "chunk 2 was refused with 404",
        "GOOD": "chunk 2 was refused with 404",
    }


@pytest.mark.parametrize(
    ("handler", "retry", "words"),
    [
        (answer(500), True, ["500", "chunk 2"]),
        (answer(401), True, ["401", "chunk 2"]),
    ],
    ids=["chunk-500", "chunk-401"],
)
async def test_a_chunk_range_that_lies(
    mesh: FakeMesh, connector: MeshConnector, handler: Handler, retry: bool, words: list[str]
) -> None:
    """The first chunk claims three chunks; the server cannot produce the second."""
    mesh.set("inbox", inbox("LIAR"))
    mesh.set("download", message(b"part one", chunk_range="1:3"))
    mesh.set("download_chunk", handler)
    error = await collect_error(connector)
    assert error.retry is retry
    for word in words:
        assert word in error.reason
    assert mesh.seen.count("download_chunk") == 1


async def test_a_huge_chunk_count_is_left_unread(mesh: FakeMesh, connector: MeshConnector) -> None:
    """A claim of 999,999 chunks (over MAX_CHUNKS) is malformed: left without a request."""
    mesh.set("inbox", inbox("MANY"))
    mesh.set("download", message(b"", chunk_range="1:999999"))
    mesh.set("download_chunk", message(b""))
    assert await connector.collect(limit=10, timeout=QUICK) == []
    assert connector.unread() == {"MANY": "a malformed mex-chunk-range"}
    assert mesh.seen.count("download_chunk") == 0


async def test_a_report_with_hostile_headers_is_kept_safely(
    mesh: FakeMesh, connector: MeshConnector
) -> None:
    mesh.set("inbox", inbox("REP1"))
    mesh.set(
        "download",
        answer(
            200,
            b"",
            {
                "mex-messagetype": "REPORT",
                "mex-localid": "not hex at all",
                "mex-linkedmsgid": "../../outbox",
                "mex-statuscode": "9" * 1000,
                "mex-statusevent": "E" * 1000,
            },
        ),
    )
    assert await connector.collect(limit=10, timeout=QUICK) == []
    (report,) = connector.non_delivery_reports()
    assert report.transport_ref == "REP1"
    assert report.message_id is None
    assert report.linked_message_id == ""
    assert report.status_code == "9" * 8
    assert report.status_event == "E" * 32


# -- acknowledge ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "retry", "words"),
    [
        (answer(500), True, ["500", "acknowledging"]),
        (answer(401), True, ["401", "acknowledging"]),
        (answer(429), True, ["429", "acknowledging"]),
        (answer(400), False, ["400", "acknowledging"]),
        (answer(417), False, ["417", "acknowledging"]),
    ],
)
async def test_acknowledge_classifies_bad_answers(
    mesh: FakeMesh, connector: MeshConnector, handler: Handler, retry: bool, words: list[str]
) -> None:
    mesh.set("ack", handler)
    with pytest.raises(CollectError) as caught:
        await connector.acknowledge("MSG1", timeout=QUICK)
    assert caught.value.retry is retry
    for word in words:
        assert word in caught.value.reason


@pytest.mark.parametrize("status", [404, 410])
async def test_acknowledging_a_gone_message_is_done(
    mesh: FakeMesh, connector: MeshConnector, status: int
) -> None:
    mesh.set("ack", answer(status))
    await connector.acknowledge("MSG1", timeout=QUICK)
    assert mesh.seen == ["handshake", "ack"]


async def test_acknowledge_ignores_a_garbage_body(mesh: FakeMesh, connector: MeshConnector) -> None:
    """Acknowledge judges the status only; a garbage 200 body is not an error."""
    mesh.set("ack", answer(200, b"\x00\xffgarbage"))
    await connector.acknowledge("MSG1", timeout=QUICK)
    assert mesh.seen == ["handshake", "ack"]


@pytest.mark.parametrize("how", ["hang", "drip"])
async def test_acknowledge_to_a_stalling_server_ends_in_time(
    mesh: FakeMesh, connector: MeshConnector, how: str
) -> None:
    mesh.set("ack", mesh.hang() if how == "hang" else mesh.drip())
    clock = Clock()
    with pytest.raises(CollectError) as caught:
        await connector.acknowledge("MSG1", timeout=STALL)
    assert caught.value.retry
    assert "deadline" in caught.value.reason
    assert STALL * 0.9 <= clock.elapsed <= STALL + SLACK


@pytest.mark.parametrize("ref", ["../inbox", "MSG1/status", "", "A" * 101])
async def test_acknowledge_refuses_a_malformed_id_before_any_request(
    mesh: FakeMesh, connector: MeshConnector, ref: str
) -> None:
    with pytest.raises(ValueError, match="MESH message id"):
        await connector.acknowledge(ref, timeout=QUICK)
    assert mesh.seen == []


# -- the stand-in itself --------------------------------------------------------------------


async def test_the_stand_in_serves_a_clean_round_trip(
    mesh: FakeMesh, connector: MeshConnector
) -> None:
    """With its default answers the stand-in is a working MESH: the cases above are real."""
    outcome = await connector.deliver(envelope(b"z" * 3000), RECIPIENT, timeout=QUICK)
    assert outcome == Delivered(transport_ref="MSG1")
    assert mesh.seen == ["handshake", "send", "send_chunk", "send_chunk"]
    mesh.set("inbox", inbox("MSG1"))
    mesh.set("download", message(b"body", chunk_range="1:2"))
    (item,) = await connector.collect(limit=10, timeout=QUICK)
    assert (item.transport_ref, item.kind, item.body) == ("MSG1", "envelope", b"bodymore")
    await connector.acknowledge("MSG1", timeout=QUICK)
    assert connector.unread() == {}
