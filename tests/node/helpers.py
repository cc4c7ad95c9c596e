"""Helpers for the node integration tests: HTTP clients, polling, keys and stand-in peers."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from exchange.demo.loopback import PASSPHRASE_ENV, Deployment
from exchange.envelope import Recipient, seal
from exchange.keys.directory import (
    Directory,
    Organisation,
    Route,
    merge_directory,
    sign_directory,
)
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import decode_key_file
from exchange.keys.keypairs import OrgKeyPair
from exchange.peerauth import signed_post_headers

from .conftest import SCHOOL
from .records import lac_submission


def client(world: Deployment) -> aiohttp.ClientSession:
    """Return an HTTPS client that trusts the deployment's test CA."""
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


#: ``exchange serve``'s line saying where its operations listener is.
OPS_LINE_RE = re.compile(r"/healthz, /readyz and /metrics on (\S+):(\d+)$", re.MULTILINE)


def served_ops_url(log: Path) -> str | None:
    """Return the operations URL an ``exchange serve`` wrote to ``log``, once it has."""
    found = OPS_LINE_RE.search(log.read_text("utf-8", errors="replace"))
    return None if found is None else f"http://{found[1]}:{found[2]}"


def auth(world: Deployment, org: OrgId, role: str) -> dict[str, str]:
    """Return the Authorization header of the deployment's user of ``org`` with ``role``."""
    return {"Authorization": f"Bearer {world.tokens[(org, role)]}"}


def submission(content: bytes, to: Sequence[str]) -> dict[str, Any]:
    """Return the JSON body of a submission: a LAC record carrying ``content`` as a note.

    The LAC health purpose allows both the LA and the nurses (an NHS team) as recipients;
    :func:`tests.node.records.opened_note` reads the note back from the opened container.
    """
    return lac_submission(content.decode("utf-8"), list(to))


async def submit(
    http: aiohttp.ClientSession,
    world: Deployment,
    content: bytes,
    to: Sequence[str],
    *,
    base: str | None = None,
) -> dict[str, Any]:
    """Submit ``content`` as the school's DSL and return the 202 answer."""
    async with http.post(
        (base or world.url("school")) + "/api/v1/envelopes",
        json=submission(content, to),
        headers=auth(world, SCHOOL, "dsl"),
    ) as resp:
        assert resp.status == 202, await resp.text()
        return dict(await resp.json())


async def get_json(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], status: int = 200
) -> dict[str, Any]:
    """GET ``url`` and return its JSON body, checking the status."""
    async with http.get(url, headers=headers) as resp:
        assert resp.status == status, await resp.text()
        return dict(await resp.json())


async def sent(
    http: aiohttp.ClientSession, world: Deployment, digest: str, *, base: str | None = None
) -> dict[str, Any]:
    """Return the school's sent item ``digest``."""
    url = (base or world.url("school")) + f"/api/v1/sent/{digest}"
    return await get_json(http, url, auth(world, SCHOOL, "dsl"))


async def until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def org_pair(world: Deployment, org: OrgId) -> OrgKeyPair:
    """Decrypt ``org``'s key file from the deployment folder."""
    (path,) = world.folder.glob(f"{org.replace(':', '-')}-*.key")
    return decode_key_file(path.read_bytes(), os.environ[PASSPHRASE_ENV].encode())


def seal_for(world: Deployment, content: bytes, to: Sequence[OrgId], sender: OrgId) -> bytes:
    """Seal ``content`` from ``sender`` to ``to`` with the deployment's keys; return the bytes."""
    assert world.directory is not None
    now = int(time.time())
    recipients = [Recipient(org, world.directory.current_keys(org, now).encryption) for org in to]
    data, _ = seal(
        content, org_pair(world, sender), recipients, record_kind="referral", created=now
    )
    return data


def signed_headers(
    url: str, body: bytes, pair: OrgKeyPair, content_type: str = "application/vnd.exchange.envelope"
) -> dict[str, str]:
    """Return the headers of a peer request to ``url`` signed with ``pair``."""
    return signed_post_headers(
        url=url, body=body, content_type=content_type, pair=pair, now=int(time.time())
    )


def publish_route(
    world: Deployment, org: OrgId, *addresses: str, options: Mapping[str, str] | None = None
) -> None:
    """Sign a newer directory giving ``org`` the https routes ``addresses``, in order.

    ``options`` go on the first route. Every node adopts it at once.
    """
    routes = tuple(
        Route("https", a, (options or {}) if i == 0 else {}) for i, a in enumerate(addresses)
    )
    adopt_everywhere(world, *next_directory(world, {org: routes}))


def next_directory(
    world: Deployment, routes: Mapping[OrgId, tuple[Route, ...]] | None = None
) -> tuple[Directory, bytes]:
    """Sign the next directory version; return it and its note (no node has it yet).

    It is the version in use, with ``routes`` replacing some organisations' routes.
    """
    assert world.authority is not None
    assert world.directory is not None
    listed = {org_id: e.routes for org_id, e in world.directory.organisations.items()}
    listed.update(routes or {})
    entries = [Organisation(e.id, e.name, e.kind, e.keys, listed[e.id]) for e in world.entries]
    directory = merge_directory(
        None,
        entries,
        version=world.directory.version + 1,
        issued=int(time.time()),
        authority=world.authority.verifier.name,
    )
    return directory, sign_directory(directory, world.authority)


def adopt_everywhere(world: Deployment, directory: Directory, note: bytes) -> None:
    """Put the directory ``note`` in use on every node that does not use it yet."""
    for node in world.nodes.values():
        if node.service.directory.version < directory.version:
            node.reload_directory(note)
    world.directory = directory


Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def garbage(request: web.Request) -> web.StreamResponse:
    """Answer 200 with bytes that are not a receipt."""
    await request.read()
    return web.Response(body=b"this is not a signed receipt\x00\xff", status=200)


def slow(seconds: float) -> Behaviour:
    """Return a handler that answers only after ``seconds``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        await asyncio.sleep(seconds)
        return web.Response(body=b"too late")

    return handler


async def huge(request: web.Request) -> web.StreamResponse:
    """Stream a 256 MiB answer (the client is expected to stop reading long before)."""
    await request.read()
    response = web.StreamResponse(status=200)
    response.content_length = 256 * 1024 * 1024
    await response.prepare(request)
    piece = b"x" * 65536
    try:
        for _ in range(4096):
            await response.write(piece)
    except (ConnectionError, aiohttp.ClientConnectionResetError):
        pass
    return response


@asynccontextmanager
async def stand_in_peer(world: Deployment, behaviour: Behaviour) -> AsyncIterator[str]:
    """Run a misbehaving HTTPS peer on 127.0.0.1 port 0; yield its base URL.

    It uses the LA node's certificate (issued by the test CA for 127.0.0.1), so the TLS
    handshake succeeds and only the HTTP answer is wrong.
    """
    app = web.Application()
    app.router.add_post("/peer/v1/orgs/{org}/{what}", behaviour)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(world.folder / "la.crt"), str(world.folder / "la.key.pem"))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
