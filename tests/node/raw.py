"""Raw HTTP/1.1 over TLS to a node: for requests no client library would send (slow, partial)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from exchange.demo.loopback import Deployment


@dataclass
class Answer:
    """A parsed answer: status, headers by lower-case name, body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


async def connect(
    world: Deployment, node: str = "la"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TLS connection to ``node``, trusting the deployment's CA."""
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    return await asyncio.open_connection(
        "127.0.0.1", world.nodes[node].port, ssl=context, server_hostname="127.0.0.1"
    )


def request_head(
    path: str, port: int, headers: Mapping[str, str], *, method: str = "POST"
) -> bytes:
    """Return a request line and header block (``Host`` added) ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_answer(reader: asyncio.StreamReader, timeout: float = 10.0) -> Answer:
    """Read one answer with a Content-Length body."""
    status_line = await asyncio.wait_for(reader.readline(), timeout=timeout)
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    answer = Answer(int(status_line.split()[1]))
    while (line := await asyncio.wait_for(reader.readline(), timeout=timeout)) not in {
        b"\r\n",
        b"",
    }:
        name, _, value = line.decode("latin-1").partition(":")
        answer.headers[name.strip().lower()] = value.strip()
    length = int(answer.headers.get("content-length", "0"))
    answer.body = await asyncio.wait_for(reader.readexactly(length), timeout=timeout)
    return answer


async def seconds_until_closed(reader: asyncio.StreamReader, limit: float) -> float:
    """Read and drop whatever comes until the node closes; return how long that took.

    Fails if the connection is still open after ``limit`` seconds.
    """
    start = time.monotonic()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while await asyncio.wait_for(reader.read(65536), timeout=limit):
            pass
    return time.monotonic() - start


async def close(writer: asyncio.StreamWriter) -> None:
    """Close our side, ignoring a connection the node already closed."""
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


async def head_only(world: Deployment, node: str, path: str, headers: Mapping[str, str]) -> Answer:
    """Send a request's headers alone (its body never follows) and return the answer."""
    reader, writer = await connect(world, node)
    writer.write(request_head(path, world.nodes[node].port, headers))
    await writer.drain()
    try:
        return await read_answer(reader)
    finally:
        await close(writer)
