"""The node's HTTP server: aiohttp's, with fixed answers and one log line for broken requests.

aiohttp answers a request its parser cannot read (bad bytes in a header, a broken request
line, bad chunking, a line too long) before any middleware runs, with the parser's message,
which quotes the offending bytes, and logs a traceback holding the same bytes: a bearer token
or a child's name sent in a header would reach the answer and the log. Here such a request
gets a fixed sentence in plain text, and the log one ``http.malformed`` event naming only the
exception's class (:class:`QuietRequestHandler`).

Every answer names the server as plain ``exchange``, never a software version: the low-level
answers here, and the application's through :func:`server_header`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from exchange.logs import get_logger

log = get_logger("exchange.http")

#: What every answer says in ``Server``.
SERVER_NAME: Final = "exchange"

#: The fixed answers to requests the HTTP parser refused, by status; nothing of the request.
NOT_HTTP: Final = "The request is not valid HTTP, so the node cannot read it.\n"
TOO_LONG: Final = "The request line or a header is longer than the node accepts.\n"
FAILED: Final = "The node failed to handle the request; it has been logged.\n"
TIMED_OUT: Final = "The node took too long to handle the request.\n"


def _sentence(status: int, exc: BaseException | None) -> str:
    if isinstance(exc, LineTooLong):
        return TOO_LONG
    if status == 504:
        return TIMED_OUT
    return FAILED if status >= 500 else NOT_HTTP


class QuietRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering what it cannot parse without echo or trace."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,  # noqa: ARG002 - aiohttp's; it quotes the request
    ) -> web.StreamResponse:
        """Answer ``status`` with a fixed sentence; log the exception's class, nothing else.

        aiohttp's own version logs the exception with its traceback and answers with
        ``message``, both of which quote the request's bytes.
        """
        error_class = None if exc is None else type(exc).__name__
        if status >= 500:
            log.error("http.failed", status=status, error_class=error_class)
        else:
            log.warning("http.malformed", status=status, error_class=error_class)
        if request.writer.output_size > 0:
            # Part of an answer is on its way: the connection can only be closed.
            raise ConnectionError("the answer had started; the connection is closed")
        response = web.Response(
            status=status,
            text=_sentence(status, exc),
            content_type="text/plain",
            headers={hdrs.SERVER: SERVER_NAME},
        )
        response.force_close()
        return response


class NodeServer(web.Server):
    """aiohttp's low-level server, making a :class:`QuietRequestHandler` per connection."""

    def __call__(self) -> RequestHandler:
        """Return the handler of a new connection."""
        return QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class NodeRunner(web.AppRunner):
    """An :class:`~aiohttp.web.AppRunner` whose server is a :class:`NodeServer`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The application builds its server itself (with its request factory and the
        # runner's arguments); only the class that makes each connection's handler changes,
        # so the server keeps every attribute aiohttp gave it.
        server.__class__ = NodeServer
        return server


async def server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """Name the server plainly on every application answer (``on_response_prepare``)."""
    response.headers[hdrs.SERVER] = SERVER_NAME
