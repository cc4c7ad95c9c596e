"""A real OpenID provider for the single sign-on tests: npm ``oidc-provider`` on loopback.

:func:`running_provider` starts ``tests/oidc/provider.mjs`` with Node.js; it listens on
127.0.0.1 on a free port, which it prints. The node under test is then started with the
provider's issuer, and :meth:`Provider.configure` gives the provider its clients (with the
node's redirect address, known only once the node has started) and its users. Closing its
standard input stops it. ``make test`` installs the provider's packages (``npm ci`` in
this folder); without Node.js or them, a test fails saying what to install: never a skip.

:func:`sign_in_at_provider` plays the person at the provider without a browser: it follows
the provider's redirects, fills its sign-in form with a username and returns the address
the provider sends the browser back to (the node's callback, with ``code`` and ``state``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest

FOLDER = Path(__file__).parent
SCRIPT = FOLDER / "provider.mjs"
#: How long the provider may take to start and to take its configuration, in seconds.
START_TIMEOUT = 30.0
#: Most redirects followed at the provider before giving up.
MAX_HOPS = 10


@dataclass(frozen=True)
class Client:
    """A client registered at the provider; ``id_token`` holds the tests' switches."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: Sequence[str]
    id_token: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the client as the provider's configuration names it."""
        doc: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
        }
        if self.id_token is not None:
            doc["id_token"] = dict(self.id_token)
        return doc


@dataclass(frozen=True)
class Person:
    """Someone the provider signs in: their claims and the methods it asserts (amr)."""

    email: str
    groups: Sequence[str] = ()
    amr: Sequence[str] = ("pwd",)
    email_verified: bool = True
    name: str = "Test person"

    def as_json(self) -> dict[str, Any]:
        """Return the person as the provider's configuration names them."""
        return {
            "email": self.email,
            "groups": list(self.groups),
            "amr": list(self.amr),
            "email_verified": self.email_verified,
            "name": self.name,
        }


def node_or_fail() -> str:
    """Return the path of ``node``, or fail the test saying what to install."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "the single sign-on tests need Node.js: install the Debian packages nodejs and npm",
            pytrace=False,
        )
    if not (FOLDER / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            "the single sign-on tests need the test provider's packages: run `make test`, or "
            "`npm ci` in tests/oidc",
            pytrace=False,
        )
    return node


@dataclass
class Provider:
    """The running provider process."""

    process: asyncio.subprocess.Process
    port: int
    issuer: str = ""

    async def _line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT)
        if not line:
            raise RuntimeError("the test provider stopped (see its log)")
        doc: dict[str, Any] = json.loads(line)
        return doc

    async def configure(self, clients: Sequence[Client], users: Mapping[str, Person]) -> None:
        """Give the provider its clients and users; return once it serves them."""
        assert self.process.stdin is not None
        doc = {
            "clients": [c.as_json() for c in clients],
            "users": {login: p.as_json() for login, p in users.items()},
        }
        self.process.stdin.write(json.dumps(doc).encode() + b"\n")
        await self.process.stdin.drain()
        self.issuer = (await self._line())["issuer"]


@asynccontextmanager
async def running_provider(log: Path) -> AsyncIterator[Provider]:
    """Start the provider (its output goes to ``log``); stop it when the block ends."""
    node = node_or_fail()
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            node, str(SCRIPT), cwd=FOLDER,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errors,
        )  # fmt: skip
        try:
            provider = Provider(process, 0)
            provider.port = (await provider._line())["port"]
            provider.issuer = f"http://127.0.0.1:{provider.port}"
            yield provider
        finally:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def sign_in_at_provider(
    http: aiohttp.ClientSession,
    authorization_url: str,
    login: str,
    *,
    callback_prefix: str,
    amr: Sequence[str] = (),
) -> str:
    """Sign ``login`` in at the provider; return the address it sends the browser back to.

    ``amr``: the methods the provider asserts this time, if not the person's own.
    """
    url = authorization_url
    for _ in range(MAX_HOPS):
        if url.startswith(callback_prefix):
            return url
        async with http.get(url, allow_redirects=False) as response:
            location = response.headers.get("Location")
            if response.status == 200 and "/interaction/" in url:
                action = url.split("?")[0] + "/login"
                async with http.post(
                    action, data={"login": login, "amr": ",".join(amr)}, allow_redirects=False
                ) as posted:
                    location = posted.headers.get("Location")
            assert location is not None, f"the provider answered {response.status} at a step"
            url = urljoin(url, location)
    raise AssertionError("the provider never sent the browser back")
