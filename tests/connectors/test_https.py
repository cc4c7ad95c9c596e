"""The HTTPS push connector against real aiohttp servers on 127.0.0.1, and a real LA node."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exchange.connectors.base import Delivered, Message, MessageKind, Refused, RetryLater
from exchange.connectors.edge import classify_status
from exchange.connectors.https import (
    CONTENT_TYPES,
    MAX_RESPONSE_LEN,
    HttpsPushConnector,
    peer_url,
    request_signer,
)
from exchange.connectors.peer_wire import NOTICE_MEDIA
from exchange.demo.loopback import (
    Deployment,
    certificate_authority,
    server_certificate,
    start_deployment,
)
from exchange.envelope import Recipient, seal
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.keys.keypairs import OrgKeyPair
from exchange.receipts import ReceiptStatus, verify_receipt
from tests.node.conftest import FAST_DELIVERY, LA, ORGS, SCHOOL
from tests.node.helpers import client, org_pair

from .conformance import DESTINATION, ConnectorConformance, Mode, RecallConformance, message

pytestmark = pytest.mark.network

_PATH_RE = re.compile(r"(?P<prefix>.*)/peer/v1/orgs/(?P<org>[^/]+)/(?P<what>envelopes|receipts)")
_RECALL_RE = re.compile(r"(?P<prefix>.*)/peer/v1/orgs/(?P<org>[^/]+)/recalls")


@dataclass
class Stored:
    """One message the stand-in peer stored."""

    org: str
    kind: MessageKind
    body: bytes
    request_id: str
    sender: str = ""


@dataclass
class Seen:
    """One request the stand-in peer received, as it arrived."""

    raw_path: str
    headers: dict[str, str]


@dataclass
class StandInPeer:
    """A tiny peer node: stores bodies by digest and answers fake receipts, or misbehaves.

    ``mode`` is one of ``accept``, ``drop`` (closes the connection without answering),
    ``status`` (answers ``status`` with an empty body), ``garbage``, ``slow`` (holds the
    request until the test ends), ``huge`` (streams far more than any limit), ``huge-declared``
    (declares a huge Content-Length) and ``redirect``.
    """

    mode: str = "accept"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None
    base: str = ""
    stored: dict[bytes, Stored] = field(default_factory=dict)
    recalled: dict[bytes, Stored] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one POST according to ``mode``."""
        body = await request.read()
        self.seen.append(Seen(request.raw_path, dict(request.headers)))
        if self.mode == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if self.mode == "slow":
            await self.released.wait()
            return web.Response(status=503)
        if self.mode == "status":
            return web.Response(status=self.status, headers=self.headers)
        if self.mode == "garbage":
            return web.Response(body=b"this is not a signed receipt\x00\xff")
        if self.mode in {"huge", "huge-declared"}:
            return await _stream(request, 64 * 1024 * 1024, declared=self.mode == "huge-declared")
        if self.mode == "redirect":
            raise web.HTTPTemporaryRedirect(location=f"{self.base}/elsewhere")
        return self._accept(request, body)

    def _accept(self, request: web.Request, body: bytes) -> web.Response:
        recall = _RECALL_RE.fullmatch(request.raw_path)
        if recall is not None:
            return self._recall(request, recall["org"], body)
        match = _PATH_RE.fullmatch(request.raw_path)
        if match is None:
            return web.Response(status=404)
        # The stand-in "signature": the URL the signer was given must be the URL that arrived.
        if request.headers.get("X-Signed-Url") != self.base + request.raw_path:
            return web.Response(status=401)
        kind: MessageKind = "envelope" if match["what"] == "envelopes" else "receipt"
        if request.headers.get("Content-Type") != CONTENT_TYPES[kind]:
            return web.Response(status=415)
        digest = hashlib.sha256(body).digest()
        if digest not in self.stored:
            sender = request.headers.get("X-Signed-As", "")
            self.stored[digest] = Stored(
                match["org"], kind, body, f"req-{len(self.stored) + 1}", sender
            )
        held = self.stored[digest]
        rid = held.request_id if self.request_id is None else self.request_id
        return web.Response(body=b"receipt:" + digest, headers={"X-Request-Id": rid})

    def _recall(self, request: web.Request, org: str, body: bytes) -> web.Response:
        """Withdraw a stored envelope for its sender (nobody opens anything here), else 404."""
        if request.headers.get("Content-Type") != NOTICE_MEDIA:
            return web.Response(status=415)
        digest = bytes.fromhex(json.loads(body)["envelope_digest"])
        signer = request.headers.get("X-Signed-As")
        held = self.stored.get(digest) or self.recalled.get(digest)
        if held is None or held.org != org or held.sender != signer:
            return web.Response(status=404)
        self.recalled[digest] = self.stored.pop(digest, held)
        return web.json_response({"outcome": "recalled", "recalled_at": 1_700_000_000})


async def _stream(request: web.Request, size: int, *, declared: bool) -> web.StreamResponse:
    """Stream ``size`` bytes in 1 KiB pieces (chunked unless ``declared``)."""
    response = web.StreamResponse(status=200)
    if declared:
        response.content_length = size
    await response.prepare(request)
    piece = b"x" * 1024
    try:
        for _ in range(size // len(piece)):
            await response.write(piece)
    except (ConnectionError, aiohttp.ClientConnectionResetError):
        pass
    return response


@asynccontextmanager
async def serve(peer: StandInPeer, context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Run ``peer`` on 127.0.0.1 port 0 and yield its base URL."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", peer.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    peer.base = f"{'https' if context else 'http'}://127.0.0.1:{port}"
    try:
        yield peer.base
    finally:
        peer.released.set()  # lets held requests end before the server stops
        await runner.cleanup()


def fake_signer(org: OrgId, url: str, body: bytes, content_type: str) -> dict[str, str]:
    """Stand in for the request signature: name the signer, the URL signed and the Content-Type."""
    del body
    return {"Content-Type": content_type, "X-Signed-Url": url, "X-Signed-As": org}


@pytest.fixture
async def peer() -> AsyncIterator[StandInPeer]:
    """Yield a running stand-in peer over plain HTTP."""
    stand_in = StandInPeer()
    async with serve(stand_in):
        yield stand_in


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Yield a client session, closed afterwards."""
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def connector(session: aiohttp.ClientSession) -> HttpsPushConnector:
    """Return a connector that may use plain HTTP (the stand-in peers have no TLS)."""
    return HttpsPushConnector(session, fake_signer, allow_http=True)


@dataclass
class HttpsHarness:
    """The connector and a stand-in peer for the conformance suite."""

    connector: HttpsPushConnector
    peer: StandInPeer

    @property
    def address(self) -> str:
        """The stand-in peer's base URL."""
        return self.peer.base

    async def set_mode(self, mode: Mode) -> None:
        """Make the stand-in peer accept, drop connections, answer 403, or hold requests."""
        self.peer.mode = {"accept": "accept", "down": "drop", "refuse": "status", "slow": "slow"}[
            mode
        ]
        self.peer.status = 403

    async def received(self, destination: OrgId) -> list[tuple[MessageKind, bytes]]:
        """Return what the peer stored for ``destination``."""
        return [(s.kind, s.body) for s in self.peer.stored.values() if s.org == destination]


class TestHttpsConformance(ConnectorConformance, RecallConformance):
    """HttpsPushConnector passes the suite every connector passes."""

    @pytest.fixture
    def harness(self, connector: HttpsPushConnector, peer: StandInPeer) -> HttpsHarness:
        """Return the connector aimed at a stand-in peer."""
        return HttpsHarness(connector, peer)


async def _deliver(connector: HttpsPushConnector, address: str, timeout: float = 5.0) -> object:
    return await connector.deliver(message(b"sealed"), address, timeout=timeout)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        *((s, Delivered) for s in (200, 201, 202, 204)),
        *((s, RetryLater) for s in (408, 425, 429, 500, 502, 503, 504, 307, 308)),
        *((s, Refused) for s in (400, 401, 403, 404, 409, 410, 413, 415, 422)),
    ],
)
async def test_status_is_classified(
    connector: HttpsPushConnector, peer: StandInPeer, status: int, expected: type
) -> None:
    """Each status a peer answers maps to the outcome of docs/connectors.md §3."""
    peer.mode, peer.status = "status", status
    assert isinstance(await _deliver(connector, peer.base), expected)


def test_classification_covers_every_status() -> None:
    """2xx delivered; 408, 425, 429 and 5xx retried; other 4xx refused; the rest retried."""
    for status in range(100, 600):
        if 200 <= status < 300:
            assert classify_status(status) == "success"
        elif 400 <= status < 500 and status not in {408, 425, 429}:
            assert classify_status(status) == "refused"
        else:
            assert classify_status(status) == "retry"


@pytest.mark.parametrize(
    ("header", "after"), [("30", 30.0), ("999999999", 86400.0), ("soon", None)]
)
async def test_retry_after_is_passed_on(
    connector: HttpsPushConnector, peer: StandInPeer, header: str, after: float | None
) -> None:
    """A Retry-After in seconds becomes RetryLater.after, capped at a day."""
    peer.mode, peer.status, peer.headers = "status", 429, {"Retry-After": header}
    outcome = await _deliver(connector, peer.base)
    assert outcome == RetryLater("the peer answered 429", after)


async def test_redirect_is_not_followed(connector: HttpsPushConnector, peer: StandInPeer) -> None:
    """A redirect is retried later, never followed with the signed body."""
    peer.mode = "redirect"
    assert isinstance(await _deliver(connector, peer.base), RetryLater)
    assert len(peer.seen) == 1


async def test_garbage_answer_is_handed_back(
    connector: HttpsPushConnector, peer: StandInPeer
) -> None:
    """A 2xx answer is returned as it came; judging it is the node's receipt check."""
    peer.mode = "garbage"
    outcome = await _deliver(connector, peer.base)
    assert outcome == Delivered("", b"this is not a signed receipt\x00\xff")


@pytest.mark.parametrize("mode", ["huge", "huge-declared"])
async def test_oversized_answer_retries(
    connector: HttpsPushConnector, peer: StandInPeer, mode: str
) -> None:
    """An answer over 16 KiB, streamed or declared, is cut off and retried, never buffered."""
    peer.mode = mode
    outcome = await _deliver(connector, peer.base)
    assert outcome == RetryLater(f"the peer's answer is larger than {MAX_RESPONSE_LEN} bytes")


async def test_answer_at_the_limit_is_read_whole(session: aiohttp.ClientSession) -> None:
    """An answer of exactly the limit, arriving in many pieces, is read to the end."""

    class Trickle(StandInPeer):
        async def handle(self, request: web.Request) -> web.StreamResponse:
            await request.read()
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            for _ in range(MAX_RESPONSE_LEN // 512):
                await response.write(b"r" * 512)
            return response

    stand_in = Trickle()
    async with serve(stand_in) as base:
        connector = HttpsPushConnector(session, fake_signer, allow_http=True)
        outcome = await _deliver(connector, base)
    assert outcome == Delivered("", b"r" * MAX_RESPONSE_LEN)


@pytest.mark.parametrize(
    ("header", "ref"),
    [("req-7f3a", "req-7f3a"), ("x" * 129, ""), ("has space", ""), ("", "")],
)
async def test_request_id_becomes_transport_ref(
    connector: HttpsPushConnector, peer: StandInPeer, header: str, ref: str
) -> None:
    """A short token in X-Request-Id is the transport_ref; anything else is dropped."""
    peer.request_id = header
    outcome = await _deliver(connector, peer.base)
    assert isinstance(outcome, Delivered)
    assert outcome.transport_ref == ref


@pytest.mark.parametrize("kind", ["envelope", "receipt"])
async def test_url_goes_out_exactly_as_signed(
    connector: HttpsPushConnector, peer: StandInPeer, kind: MessageKind
) -> None:
    """The signer is given the URL the peer sees, percent-encoding and all, and its headers."""
    outcome = await connector.deliver(
        message(b"body", kind), peer.base + "/pre%7Efix/", timeout=5.0
    )
    assert isinstance(outcome, Delivered)
    (seen,) = peer.seen
    what = "envelopes" if kind == "envelope" else "receipts"
    assert seen.raw_path == f"/pre%7Efix/peer/v1/orgs/{DESTINATION}/{what}"
    assert seen.headers["X-Signed-Url"] == peer.base + seen.raw_path
    assert seen.headers["Content-Type"] == CONTENT_TYPES[kind]


async def test_plain_http_is_refused_by_default(
    session: aiohttp.ClientSession, peer: StandInPeer
) -> None:
    """Without allow_http an http:// route is refused and nothing is sent."""
    outcome = await _deliver(HttpsPushConnector(session, fake_signer), peer.base)
    assert outcome == Refused("the https route's address is not https")
    assert peer.seen == []


@pytest.mark.parametrize(
    "address", ["ftp://127.0.0.1/", "not a url", "https://", "https://host/?q=1", "https://h/#f"]
)
async def test_unusable_address_is_refused(connector: HttpsPushConnector, address: str) -> None:
    """A route address that can never work is Refused, not retried forever."""
    outcome = await _deliver(connector, address)
    assert isinstance(outcome, Refused)
    assert outcome.reason.startswith("the https route cannot be used")


async def test_connection_refused_retries(connector: HttpsPushConnector) -> None:
    """Nothing listening on the port is a transport failure: RetryLater."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await _deliver(connector, f"http://127.0.0.1:{port}")
    assert isinstance(outcome, RetryLater)
    assert outcome.reason.startswith("could not reach the peer")


def test_peer_url() -> None:
    """peer_url joins the address, the destination and the kind's endpoint."""
    assert peer_url("https://la.example/", LA, "envelope") == (
        "https://la.example/peer/v1/orgs/la:356/envelopes"
    )
    assert peer_url("https://la.example/node", LA, "receipt") == (
        "https://la.example/node/peer/v1/orgs/la:356/receipts"
    )
    with pytest.raises(ValueError, match="destination"):
        peer_url("https://la.example", "la/../admin", "envelope")
    with pytest.raises(ValueError, match="kind"):
        peer_url("https://la.example", LA, "letter")  # type: ignore[arg-type]


def _throwaway_tls(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return (server, client) contexts: a private CA and a certificate for 127.0.0.1."""
    ca_key, ca = certificate_authority(folder)
    tls = server_certificate(folder, "peer", ca_key, ca)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tls.cert, tls.key)
    trusted = ssl.create_default_context(cafile=str(tls.ca))
    return server, trusted


async def test_tls_peer_with_a_private_ca(tmp_path: Path) -> None:
    """Over TLS a trusted peer is Delivered; a certificate the client cannot trust retries."""
    server, trusted = _throwaway_tls(tmp_path)
    stand_in = StandInPeer()
    async with (
        serve(stand_in, server) as base,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as good,
        aiohttp.ClientSession() as doubtful,
    ):
        assert base.startswith("https://")
        outcome = await _deliver(HttpsPushConnector(good, fake_signer), base)
        assert isinstance(outcome, Delivered)
        assert outcome.receipt == b"receipt:" + hashlib.sha256(b"sealed").digest()
        refused_tls = await _deliver(HttpsPushConnector(doubtful, fake_signer), base)
        assert isinstance(refused_tls, RetryLater)
    assert len(stand_in.stored) == 1


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the school and LA nodes over TLS (as tests/node/conftest.py does)."""
    deployment = await start_deployment(
        tmp_path / "world", ORGS, delivery=FAST_DELIVERY, kdf=KdfParams.fast_for_tests()
    )
    yield deployment
    await deployment.stop()


async def test_real_la_node_answers_a_verifiable_receipt(world: Deployment) -> None:
    """An envelope sealed by the school is Delivered to a real LA node with a genuine receipt."""
    assert world.directory is not None
    pairs: dict[OrgId, OrgKeyPair] = {}

    def pair_of(org: OrgId) -> OrgKeyPair:
        if org not in pairs:
            pairs[org] = org_pair(world, org)
        return pairs[org]

    now = int(time.time())
    keys = world.directory.current_keys(LA, now)
    data, sealed = seal(
        b"a referral", pair_of(SCHOOL), [Recipient(LA, keys.encryption)],
        record_kind="referral", created=now,
    )  # fmt: skip
    msg = Message("envelope", sealed.digest, SCHOOL, LA, data)
    signer = request_signer(pair_of, lambda: int(time.time()))
    async with client(world) as http:
        connector = HttpsPushConnector(http, signer)
        outcome = await connector.deliver(msg, world.url("la"), timeout=10.0)
        again = await connector.deliver(msg, world.url("la"), timeout=10.0)
        # Signed by the wrong organisation: the LA node refuses for good [peer.sender-signed].
        impostor = HttpsPushConnector(http, request_signer(lambda _: pair_of(LA), time_now))
        refused = await impostor.deliver(msg, world.url("la"), timeout=10.0)
        await connector.close()
    assert isinstance(outcome, Delivered)
    receipt = verify_receipt(
        outcome.receipt,
        expected_digest=sealed.digest,
        expected_envelope_id=sealed.envelope_id,
        sender=SCHOOL,
        recipients=(LA,),
        directory=world.directory,
        now=int(time.time()),
    )
    assert receipt.status is ReceiptStatus.DELIVERED
    assert isinstance(again, Delivered)
    assert again.receipt == outcome.receipt  # [peer.idempotent]
    assert isinstance(refused, Refused)
    assert refused.reason == "the peer refused with 403"


def time_now() -> int:
    """Return the clock in unix seconds."""
    return int(time.time())
