"""The node's listener: an aiohttp site whose connections are closed when a client is slow.

aiohttp's server has a keep-alive timeout and nothing else: no limit on how long a request's
head may take to arrive, nor its body. A client that trickles its headers a byte at a time,
or a body a byte every few seconds, holds a connection (and a file descriptor, and buffers)
for as long as it likes; a few hundred such clients exhaust the node. This module adds three
deadlines to every connection of the node's one listener (the staff API, the web pages, the
peer protocol and, when the node is a relay, the relay's endpoints all share it):

- **idle**: a connection with no byte of a new request for ``idle`` seconds (after it opened,
  or after the previous answer) is closed;
- **header**: a request's head must be complete within ``header`` seconds of its first byte,
  or the connection is answered 408 and closed;
- **body**: while a request's body is arriving, at least ``min_body_rate * body`` bytes must
  arrive in every ``body`` seconds, or the connection is closed (the handler reading it sees
  the connection end). A window in which the node itself stopped reading (aiohttp pauses
  the socket when its buffer is full and the handler is not yet reading) does not count.
  TLS handshakes are bounded by ``header`` too.

A request refused before its body was read (an unsigned peer upload, a 503 over the upload
limits) is answered at once; aiohttp then discards what the client still sends for at most
:data:`LINGER` seconds, so the client sees the answer rather than a reset, and closes.

How it is built, and why: aiohttp creates one :class:`aiohttp.web.RequestHandler` (an asyncio
protocol) per connection. :class:`GuardedRequestHandler` subclasses it and overrides only
the public protocol callbacks (``connection_made``, ``data_received``, ``connection_lost``)
to see bytes arrive and to run one timer per connection; the moment a request's head is
complete and the moment its handler returns are reported by :func:`guard_middleware`, the
outermost middleware, through ``request.protocol``. :class:`GuardedSite` is a
:class:`aiohttp.web.BaseSite` like ``TCPSite`` whose ``start`` gives
``loop.create_server`` a factory of these handlers instead of the runner's ``Server``
(which would make plain ``RequestHandler`` objects); the runner's ``Server`` is still
their manager, so graceful shutdown, connection tracking and the application are
unchanged. The alternatives were worse: a transport-level watchdog would have to read
aiohttp's private parser state to know whether a head was complete, and a reverse proxy in
front is not something every school runs. aiohttp's own keep-alive timer is left on as a
backstop, set to ``idle + header``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from yarl import URL

from exchange.http.server import QuietRequestHandler
from exchange.logs import get_logger

log = get_logger("exchange.listener")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Seconds aiohttp goes on reading, and discarding, a body its handler refused without
#: reading (an unsigned upload answered 401, say), before it closes the connection. Closing
#: at once would reset the connection while the client is still sending, and the client
#: would lose the answer; discarding costs no memory. aiohttp's default is 10 seconds.
LINGER: Final = 5.0

#: Handler options: no access log (the node logs what it does itself), and the linger.
_HANDLER_OPTIONS: Final[dict[str, Any]] = {"access_log": None, "lingering_time": LINGER}


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The deadlines of every connection, in seconds, and the slowest body accepted."""

    header: float = 30.0
    body: float = 30.0
    idle: float = 30.0
    #: Bytes per second a body must keep up, measured over each ``body`` window.
    min_body_rate: int = 16 * 1024

    def __post_init__(self) -> None:
        for name in ("header", "body", "idle", "min_body_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number")


class Phase(enum.Enum):
    """Where a connection is: what the client owes the node next, and by when."""

    IDLE = "idle"  # between requests: the next byte is owed within `idle`
    HEAD = "head"  # a request's head has started: the rest is owed within `header`
    BODY = "body"  # the handler runs and the body is arriving: `min_body_rate` is owed
    BUSY = "busy"  # the handler runs with the whole request: the node owes the answer
    CLOSED = "closed"


def _timeout_answer(seconds: float) -> bytes:
    body = json.dumps(
        {
            "error": "408",
            "message": f"the request's headers did not arrive within {seconds:g} seconds",
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nServer: exchange\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedRequestHandler(QuietRequestHandler):
    """aiohttp's per-connection protocol with idle, header and body deadlines.

    It is a :class:`~exchange.http.server.QuietRequestHandler`: a request the parser cannot
    read is answered with a fixed sentence and logged by its class only.

    ``closed`` counts the connections this listener closed, by :class:`Phase` value.
    """

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        timeouts: Timeouts,
        closed: Counter[str],
        accepted: Counter[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **options)
        self._timeouts = timeouts
        self._closed_by_phase = closed
        self._accepted = accepted if accepted is not None else Counter()
        self._phase = Phase.IDLE
        self._timer: asyncio.TimerHandle | None = None
        self._body: Any = None
        self._window_bytes = 0

    @property
    def phase(self) -> Phase:
        """Where this connection is now."""
        return self._phase

    # --- the protocol callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start serving the connection, and its idle deadline."""
        self._accepted["connections"] += 1
        super().connection_made(transport)
        self._enter(Phase.IDLE, self._timeouts.idle)

    def data_received(self, data: bytes) -> None:
        """Note the bytes (a head starting, or a body's progress), then parse them."""
        if data:
            if self._phase is Phase.IDLE:
                self._enter(Phase.HEAD, self._timeouts.header)
            elif self._phase is Phase.BODY:
                self._window_bytes += len(data)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Stop the timer; the connection is gone."""
        self._cancel()
        self._phase = Phase.CLOSED
        self._body = None
        super().connection_lost(exc)

    # --- reported by guard_middleware -------------------------------------------------------

    def request_started(self, request: web.BaseRequest) -> None:
        """Note that the head of ``request`` is complete and its handler starts."""
        if self._phase is Phase.CLOSED:
            return
        if request.content.is_eof():
            self._enter(Phase.BUSY, None)
            return
        self._body = request.content
        self._window_bytes = 0
        self._enter(Phase.BODY, self._timeouts.body)

    def request_finished(self) -> None:
        """Note that the handler returned: the connection waits for the next request."""
        self._body = None
        if self._phase is not Phase.CLOSED:
            self._enter(Phase.IDLE, self._timeouts.idle)

    # --- the timer --------------------------------------------------------------------------

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _enter(self, phase: Phase, seconds: float | None) -> None:
        self._cancel()
        self._phase = phase
        if seconds is not None:
            self._timer = self._loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._timer = None
        phase = self._phase
        if phase is Phase.BODY:
            if self._body is None or self._body.is_eof():
                self._enter(Phase.BUSY, None)
                return
            transport = self.transport
            held_by_us = transport is not None and not transport.is_reading()
            owed = self._timeouts.min_body_rate * self._timeouts.body
            if held_by_us or self._window_bytes >= owed:
                self._window_bytes = 0
                self._enter(Phase.BODY, self._timeouts.body)
                return
        elif phase not in {Phase.IDLE, Phase.HEAD}:
            return
        self._closed_by_phase[phase.value] += 1
        if phase is not Phase.IDLE:
            # The phase is in the event's name: only allow-listed fields keep their values.
            log.warning(f"listener.{phase.value}-timeout")
        if phase is Phase.HEAD and self.transport is not None:
            self.transport.write(_timeout_answer(self._timeouts.header))
        self._phase = Phase.CLOSED
        self.force_close()


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection's guard when a request's handler starts and when it returns."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedRequestHandler):
        return await handler(request)
    protocol.request_started(request)
    try:
        return await handler(request)
    finally:
        protocol.request_finished()


class GuardedSite(web.BaseSite):
    """A TCP site (like :class:`aiohttp.web.TCPSite`) whose connections have deadlines."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        timeouts: Timeouts,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self.timeouts = timeouts
        #: Connections closed by a deadline, by phase (``idle``, ``head``, ``body``).
        self.closed: Counter[str] = Counter()
        #: Connections served (their TLS handshake done; one that does not finish within
        #: the header deadline is closed by asyncio and never served).
        self.served: Counter[str] = Counter()

    @property
    def port(self) -> int:
        """The bound port once started (the one asked for, 0 included, before)."""
        if self._server is not None:
            sockets = getattr(self._server, "sockets", None)
            if sockets:
                return int(sockets[0].getsockname()[1])
        return self._port

    @property
    def name(self) -> str:
        """The site's URL, as aiohttp's sites name themselves."""
        scheme = "https" if self._ssl_context else "http"
        return str(URL.build(scheme=scheme, host=self._host, port=self.port))

    async def start(self) -> None:
        """Listen, making a :class:`GuardedRequestHandler` for each connection."""
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None  # BaseSite refuses a runner that was not set up
        timeouts = self.timeouts
        # aiohttp's own keep-alive timer is only a backstop: the deadlines above close every
        # connection first (and count it), so it is set well beyond them.
        backstop = 10 * (timeouts.idle + timeouts.header + timeouts.body)
        options = dict(_HANDLER_OPTIONS, keepalive_timeout=backstop)

        def factory() -> GuardedRequestHandler:
            return GuardedRequestHandler(
                manager, loop=loop, timeouts=timeouts, closed=self.closed,
                accepted=self.served, **options,
            )  # fmt: skip

        self._server = await loop.create_server(
            factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=timeouts.header if self._ssl_context is not None else None,
        )


async def start_listener(
    app: web.Application,
    host: str,
    port: int,
    *,
    timeouts: Timeouts,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, GuardedSite]:
    """Serve ``app`` on ``host:port`` with deadlines on every connection.

    Adds :func:`guard_middleware` as the application's outermost middleware, so call it
    before the application starts. Returns the runner (``cleanup()`` stops everything) and
    the site (its bound ``port``, its ``closed`` counts). When the address cannot be bound,
    the runner is cleaned up and the ``OSError`` propagates.
    """
    app.middlewares.insert(0, guard_middleware)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = GuardedSite(runner, host, port, timeouts=timeouts, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        # An address that cannot be bound leaves nothing running behind it.
        await runner.cleanup()
        raise
    return runner, site
