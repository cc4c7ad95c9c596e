"""Servers for the browser to talk to, run on an event loop in a thread of their own.

Playwright's synchronous API, which the browser tests use, runs its own event loop on the
test's thread whenever it is called, so a server under test cannot share that thread. A
:class:`BackgroundLoop` runs an asyncio loop on another thread; :meth:`BackgroundLoop.run`
hands it a coroutine (start a server, call a service) and waits for the result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

T = TypeVar("T")

#: How long one call on the background loop may take before the test fails, in seconds.
CALL_TIMEOUT = 30.0


class BackgroundLoop:
    """An asyncio event loop running on its own thread until the ``with`` block ends."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="background-loop")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def _serve(self) -> None:
        """Run the loop until stopped, then close it on this same thread."""
        # The test's own thread cannot finish the loop: Playwright's loop counts as running
        # there for as long as the browser is open.
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], *, timeout: float = CALL_TIMEOUT) -> T:
        """Run the coroutine on the background loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)


@contextmanager
def serve_app(loop: BackgroundLoop, app: web.Application) -> Iterator[str]:
    """Serve the app on 127.0.0.1 on a free port; yield its base URL, without a final slash."""
    runner = web.AppRunner(app)
    loop.run(runner.setup())
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run(site.start())
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        loop.run(runner.cleanup())
