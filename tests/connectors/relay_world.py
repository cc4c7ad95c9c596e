"""A real relay on 127.0.0.1 port 0 for the mailbox tests: keys, a directory, a server.

The relay is ``exchange.relay.server`` as a node runs it: ``add_relay_routes`` on an aiohttp
application, a ``RelayStore`` in a temporary folder, a signed-directory ``Directory`` with
fresh keys, replay protection and the node's checks. A middleware in front of it stands in
for the network (``down`` drops the connection, ``slow`` holds the request), and
``refusing`` makes the relay keep no mailbox for anyone, as a relay that is not the
destination's refuses (404).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from exchange.connectors.base import MessageKind
from exchange.connectors.https import request_signer
from exchange.connectors.relay_mailbox import RelayMailboxConnector
from exchange.envelope import Recipient, seal
from exchange.keys.directory import Directory, KeyGeneration, Organisation, OrgKind, Route
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair
from exchange.peerauth import MemoryReplayCache, UploadLimits
from exchange.receipts import Receipt, ReceiptStatus, serialize_signed, sign_receipt
from exchange.relay.admission import Deposit, Inspection, Inspector, inspect_sealed
from exchange.relay.server import Relay, RelayLimits, add_relay_routes
from exchange.relay.store import RelayStore

from .conformance import DESTINATION, ORIGIN, OUTSIDER

#: The conformance suite's parties, plus a third organisation.
SCHOOL = ORIGIN  # urn:100001, sends envelopes; collects receipts from its mailbox
LA = DESTINATION  # la:999, collects envelopes from its mailbox
NURSE = OUTSIDER  # ods:X26ABC, neither sender nor owner: an outsider to most items
KINDS: dict[str, OrgKind] = {"urn": "school", "la": "la", "ods": "nhs"}

PAIRS = {org: OrgKeyPair.generate(org) for org in (SCHOOL, LA, NURSE)}
T0 = int(time.time()) - 86_400
YEAR = 365 * 86_400


def directory(relay_url: str, *, mailboxes: tuple[OrgId, ...] = (SCHOOL, LA)) -> Directory:
    """Return a directory of the three organisations; ``mailboxes`` collect at the relay."""
    orgs = {}
    for org, pair in PAIRS.items():
        gen = KeyGeneration(pair.signing.public, pair.encryption.public, T0, T0 + 10 * YEAR)
        routes = (Route("mailbox", relay_url),) if org in mailboxes else ()
        orgs[org] = Organisation(org, f"Test {org}", KINDS[org.split(":")[0]], (gen,), routes)
    return Directory(1, T0, "test-authority", orgs)


def now() -> int:
    """Return the time every signer uses, in unix seconds."""
    return int(time.time())


SIGN = request_signer(lambda org: PAIRS[org], now)


class _Opaque:
    """Takes any bytes, hashing them as they arrive."""

    def __init__(self) -> None:
        self._running = hashlib.sha256()

    def feed(self, piece: bytes) -> None:
        self._running.update(piece)

    def finish(self) -> Deposit:
        return Deposit(self._running.digest(), SCHOOL, frozenset({LA}))


def opaque(kind: MessageKind, directory: Directory, at: int) -> Inspection:
    """Take any bytes from SCHOOL to LA, named by their SHA-256 (the conformance suite's ids).

    The suite sends arbitrary bytes, not sealed envelopes; everything else about the relay
    (signatures, replay, owner checks, storage) is the real code.
    """
    del kind, directory, at
    return _Opaque()


def sealed(content: bytes, to: tuple[OrgId, ...] = (LA,), sender: OrgId = SCHOOL) -> bytes:
    """Return a real envelope of ``content`` from ``sender`` to ``to``."""
    recipients = [Recipient(org, PAIRS[org].encryption.public) for org in to]
    data, _ = seal(content, PAIRS[sender], recipients, record_kind="referral", created=now())
    return data


def receipt(envelope_digest: bytes, *, receipter: OrgId = LA, sender: OrgId = SCHOOL) -> bytes:
    """Return a real signed ``delivered`` receipt of ``receipter`` for ``sender``'s envelope."""
    r = Receipt(
        status=ReceiptStatus.DELIVERED,
        envelope_digest=envelope_digest,
        envelope_id=bytes(16),
        sender=sender,
        receipter=receipter,
        receipter_key=PAIRS[receipter].signing.public.key_id,
        time=now(),
    )
    return serialize_signed(sign_receipt(r, PAIRS[receipter].signing))


@dataclass
class RelayWorld:
    """A running relay and what the tests need to drive it."""

    relay: Relay
    store: RelayStore
    session: aiohttp.ClientSession
    url: str = ""
    mode: str = "accept"
    refusing: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)
    directory: Directory | None = None

    def connector(
        self, *, mailboxes: tuple[OrgId, ...] = (), **kwargs: object
    ) -> RelayMailboxConnector:
        """Return a connector signing as any test organisation, collecting for ``mailboxes``."""
        return RelayMailboxConnector(
            self.session,
            SIGN,
            mailboxes=[(self.url, org) for org in mailboxes],
            allow_http=True,
            **kwargs,  # type: ignore[arg-type]
        )

    def endpoint(self, owner: OrgId, action: str) -> str:
        """Return the URL of ``owner``'s mailbox endpoint ``action``."""
        return f"{self.url}/relay/v1/mailboxes/{owner}/{action}"


def _network(world: RelayWorld) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def network(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if world.mode == "down":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if world.mode == "slow":
            await world.released.wait()
            return web.Response(status=503)
        return await handler(request)

    return network


@asynccontextmanager
async def running_relay(
    folder: Path,
    *,
    inspect: Inspector = inspect_sealed,
    limits: RelayLimits | None = None,
    retention: float = 30 * 86_400,
    clock: Callable[[], float] = time.time,
    uploads: UploadLimits | None = None,
) -> AsyncIterator[RelayWorld]:
    """Run a relay with its store in ``folder``; yield it with a client session.

    ``uploads`` defaults to 8 per signer: the conformance suite races 5 attempts of one
    message from one sender, more than the node's default of 4 would take at once.
    """
    store = await RelayStore.open(folder / "relay")
    cache = MemoryReplayCache(600)

    async def replay(key: str, nonce: str, created: int, at: int) -> bool:
        return cache.seen_or_record(key, nonce, created, at)

    holder: dict[str, str] = {}

    def keeps(org: OrgId) -> bool:
        return not world.refusing and relay.listed_here(org)

    relay = Relay(
        store,
        directory=lambda: world.directory or directory(holder["url"]),
        public_url=lambda: holder["url"],
        replay=replay,
        clock=clock,
        limits=limits,
        retention=retention,
        keeps_mailbox=keeps,
        inspect=inspect,
        uploads=uploads or UploadLimits(per_peer=8),
    )
    async with aiohttp.ClientSession() as session:
        world = RelayWorld(relay, store, session)
        app = web.Application(middlewares=[_network(world)])
        add_relay_routes(app, relay)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        holder["url"] = world.url = f"http://127.0.0.1:{port}"
        world.directory = directory(world.url)
        try:
            yield world
        finally:
            world.released.set()
            await runner.cleanup()
            await store.close()
