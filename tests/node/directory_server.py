"""A static HTTPS server on 127.0.0.1 that serves a directory note, as an authority would.

It runs aiohttp on its own thread and event loop, so both the node tests (in their own loop)
and the in-process CLI tests (which call ``asyncio.run``) can use it. Its certificate is
issued by a private test CA; ``delay`` makes it answer slowly (a timeout) and ``body``
is what it serves at ``/directory.note``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from exchange.demo.loopback import certificate_authority, server_certificate


@dataclass
class NoteServer:
    """What the server serves, and where."""

    ca: Path
    body: bytes = b""
    delay: float = 0.0
    port: int = 0
    requests: int = 0
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        """The address nodes fetch the note from."""
        return f"https://127.0.0.1:{self.port}/directory.note"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        del request
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self.body:
            return web.Response(status=404)
        return web.Response(body=self.body, content_type="text/plain")


@contextmanager
def serving_notes(folder: Path) -> Iterator[NoteServer]:
    """Run the HTTPS server until the block ends; yield it (set ``body`` to publish)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca = certificate_authority(folder)
    tls = server_certificate(folder, "directory-host", ca_key, ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    server = NoteServer(ca=folder / "ca.pem")
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/directory.note", server._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        server.port = runner.addresses[0][1]
        server._ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert server._ready.wait(10), "the directory server did not start"
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
