"""Malformed HTTP leaves no token, child's detail or traceback in the node's log or answers.

Raw TLS sockets send what no HTTP client would: bad bytes in a header, a broken request line,
a bad chunked body, an oversized header, conflicting lengths. Each carries a real bearer token
and a sentinel child's name and UPN in the header, the request line and the body. The node's
answer must be a fixed sentence, without the request's bytes or a version in ``Server``; its
log (structlog's production JSON, and every record of the standard ``logging`` tree that
aiohttp and asyncio write to) must hold neither the secrets nor a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import ssl
from collections.abc import Iterator

import pytest
import structlog

from exchange import logs
from exchange.demo.loopback import Deployment
from exchange.http.server import NOT_HTTP, TOO_LONG

from .conftest import SCHOOL
from .helpers import auth, client

pytestmark = pytest.mark.network

NAME = "Tallulah Sentinel-Child"
UPN = "T356201412345"


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, and every standard logging record, as JSON to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


def _requests(token: str) -> list[bytes]:
    """Return malformed requests, each carrying the token and the sentinel child."""
    auth_line = f"Authorization: Bearer {token}\r\n".encode()
    child = f"{NAME} {UPN}".encode()
    body = f'{{"reason": "{NAME} {UPN}"}}'.encode()
    return [
        # A control byte in a header value.
        b"GET /api/v1/sent HTTP/1.1\r\nHost: a\r\n" + auth_line + b"X-Child: " + child
        + b"\x01\r\n\r\n",
        # A request line with spaces in its target and a bad version.
        b"GET /api/v1/sent?child=" + child + b" HTTP/1.1\r\nHost: a\r\n" + auth_line + b"\r\n",
        b"GET /" + child.replace(b" ", b"_") + b" HTTP/9.Z\r\nHost: a\r\n" + auth_line + b"\r\n",
        # A method that is not a token.
        b"G\x00T /" + UPN.encode() + b" HTTP/1.1\r\n" + auth_line + b"\r\n",
        # A header name with a space, holding the child.
        b"GET / HTTP/1.1\r\nHost: a\r\n" + auth_line + NAME.encode() + b": x\r\n\r\n",
        # A bad chunk size, then the child in the body.
        b"POST /api/v1/envelopes HTTP/1.1\r\nHost: a\r\n" + auth_line
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"
        + body + b"\r\n0\r\n\r\n",
        # A chunk longer than its size says.
        b"POST /api/v1/envelopes HTTP/1.1\r\nHost: a\r\n" + auth_line
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n"
        + body + b"\r\n0\r\n\r\n",
        # Both a length and chunking; and a length that is not a number.
        b"POST /api/v1/envelopes HTTP/1.1\r\nHost: a\r\n" + auth_line
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
        b"POST /api/v1/envelopes HTTP/1.1\r\nHost: a\r\n" + auth_line
        + b"Content-Length: " + child + b"\r\n\r\n" + body,
        # A header line longer than the parser takes, holding the child and the token.
        b"GET /api/v1/sent HTTP/1.1\r\nHost: a\r\nX-Child: " + child * 800 + b"\r\n"
        + auth_line + b"\r\n",
        # Not HTTP at all.
        child + b"\r\n" + auth_line + b"\r\n",
    ]  # fmt: skip


async def _exchange(world: Deployment, request: bytes) -> bytes:
    """Send ``request`` on a fresh TLS connection to the school node; return all it answers."""
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", world.nodes["school"].port, ssl=context
    )
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def test_malformed_requests_leak_nothing(
    world: Deployment, structured_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    token = world.tokens[(SCHOOL, "dsl")]
    caplog.set_level(logging.DEBUG)
    for request in _requests(token):
        answer = await _exchange(world, request)
        head, _, text = answer.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), (request[:40], head)
        assert b"\r\nServer: exchange\r\n" in head + b"\r\n", head
        assert text.decode() in (NOT_HTTP, TOO_LONG), (request[:40], text)
        for secret in (token, NAME, UPN, NAME.split(maxsplit=1)[0], UPN.lower()):
            assert secret.encode() not in answer, (request[:40], secret)
    # A well-formed request on the same node still works, and its log stays clean too.
    async with client(world) as http:
        url = world.url("school") + "/api/v1/sent"
        async with http.get(url, headers=auth(world, SCHOOL, "dsl")) as resp:
            assert resp.status == 200
    logged = structured_log.getvalue() + caplog.text
    for secret in (token, NAME, UPN, NAME.split(maxsplit=1)[0], UPN.lower()):
        assert secret not in logged, secret
    assert "Traceback" not in logged
    assert "Error handling request" not in logged
    assert '"event": "http.malformed"' in structured_log.getvalue()


async def test_405_carries_allow_and_no_answer_names_a_version(world: Deployment) -> None:
    """A wrong method gets 405 with Allow; Server is a fixed word on every answer."""
    async with client(world) as http:
        base = world.url("school")
        async with http.delete(base + "/api/v1/sent", headers=auth(world, SCHOOL, "dsl")) as resp:
            assert resp.status == 405
            assert set(resp.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
            assert resp.headers["Server"] == "exchange"
            assert (await resp.json())["error"]["status"] == 405
        async with http.options(base + "/", allow_redirects=False) as resp:
            assert (resp.status, resp.content_type) == (405, "text/html")
            assert set(resp.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
        for path in ("/healthz", "/api/v1/sent", "/sign-in", "/nope", "/peer/v1/nope"):
            async with http.get(base + path) as resp:
                assert resp.headers["Server"] == "exchange", path
