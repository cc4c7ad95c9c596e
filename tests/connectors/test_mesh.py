"""The MESH connector against the real MESH sandbox (tests/connectors/mesh_sandbox.py).

The sandbox accepts replayed and stale tokens and any chunk size; these tests hold our side
to the live rules instead: every request's token is checked for a fresh nonce, a valid HMAC
and a current timestamp, and every ``mex-*`` header value is checked against what may be
sent (ids and routing values only).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import random
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from exchange.connectors.base import (
    CollectError,
    Delivered,
    Message,
    MessageKind,
    Refused,
    RetryLater,
)
from exchange.connectors.edge import classify_status
from exchange.connectors.mesh import RETRY_STATUSES, MeshConfig, MeshConnector
from exchange.connectors.mesh.auth import parse_token
from exchange.connectors.mesh.stored_gzip import BLOCK, PIECE, stored_gzip, stored_length
from exchange.keys.ids import OrgId

from . import mesh_sandbox
from .conformance import DESTINATION, ORIGIN, Mode, PullConnectorConformance, held
from .mesh_sandbox import OTHER, PASSWORD, RECIPIENT, SENDER, SHARED_KEY, Sandbox

TIMEOUT = 10.0
WORKFLOW, ACK_WORKFLOW = "TEST_WORKFLOW", "TEST_WORKFLOW_ACK"
UNKNOWN_MAILBOX = "X26ZZZ9"


@pytest.fixture
def sandbox(mesh_sandbox_server: Sandbox) -> Sandbox:
    mesh_sandbox_server.reset()
    return mesh_sandbox_server


def config(
    url: str, mailbox: str, org: OrgId = DESTINATION, *, chunk_size: int = 256 * 1024, **kw: Any
) -> MeshConfig:
    return MeshConfig(
        base_url=url,
        mailbox=mailbox,
        password=PASSWORD,
        shared_key=SHARED_KEY.encode(),
        organisation=org,
        envelope_workflow=WORKFLOW,
        receipt_workflow=ACK_WORKFLOW,
        chunk_size=chunk_size,
        allow_http=True,
        **kw,
    )


@dataclass
class Captured:
    """Every request a connector made: method, URL and headers, in order."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def trace(self) -> aiohttp.TraceConfig:
        """Return a trace config that records each request."""
        trace = aiohttp.TraceConfig()

        async def on_start(
            _session: aiohttp.ClientSession,
            _ctx: SimpleNamespace,
            params: aiohttp.TraceRequestStartParams,
        ) -> None:
            headers = {k.lower(): v for k, v in params.headers.items()}
            self.requests.append((params.method, str(params.url), headers))

        trace.on_request_start.append(on_start)
        return trace


def assert_tokens_live_valid(captured: Captured, mailbox: str) -> None:
    """Every token is unique, nonce_count 0, a correct HMAC, and stamped with now."""
    tokens = [h["authorization"] for _, _, h in captured.requests]
    nonces = [parse_token(t)[1] for t in tokens]
    assert len(set(nonces)) == len(nonces), "a nonce was sent twice"
    now = datetime.now(UTC)
    for token in tokens:
        box, nonce, count, when, digest = parse_token(token)
        assert box == mailbox
        assert count == 0
        stamped = datetime.strptime(when, "%Y%m%d%H%M").replace(tzinfo=UTC)
        assert abs((now - stamped).total_seconds()) < 180
        signed = f"{box}:{nonce}:{count}:{PASSWORD}:{when}".encode()
        assert digest == hmac.new(SHARED_KEY.encode(), signed, hashlib.sha256).hexdigest()


class Proxy:
    """A TCP proxy in front of the sandbox that can forward, drop, or hold connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode: Mode = "accept"
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        """Listen on a free loopback port; return its URL."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def set_mode(self, mode: Mode) -> None:
        """Switch mode; drop open connections so pooled ones see it at once."""
        self.mode = mode
        for writer in list(self.writers):  # pooled connections see the new mode at once
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            if self.mode == "down":
                return
            if self.mode == "slow":
                await asyncio.sleep(3600)
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self.writers.add(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.close()
        if self.server is not None:
            await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@dataclass
class MeshHarness:
    """Sender X26ABC1 through a switchable proxy; collector X26ABC2 straight to the sandbox."""

    proxy: Proxy
    connector: MeshConnector
    collector: MeshConnector
    reader: MeshConnector
    refusing: bool = False

    @property
    def address(self) -> str:
        """Return the recipient mailbox, or an unknown one when refusing."""
        return UNKNOWN_MAILBOX if self.refusing else RECIPIENT

    async def set_mode(self, mode: Mode) -> None:
        """Refuse by addressing an unknown mailbox; go down or slow at the proxy."""
        self.refusing = mode == "refuse"
        await self.proxy.set_mode("accept" if mode == "refuse" else mode)

    async def received(self, destination: OrgId) -> list[tuple[MessageKind, bytes]]:
        """Return what waits in the recipient mailbox (without acknowledging)."""
        assert destination == DESTINATION
        found = await self.reader.collect(limit=100, timeout=TIMEOUT)
        return [(c.kind, held(c.body)) for c in found]


class TestMeshConformance(PullConnectorConformance):
    """MeshConnector passes the suite every connector passes, against the sandbox."""

    @pytest.fixture
    async def harness(self, sandbox: Sandbox) -> AsyncIterator[MeshHarness]:
        """Yield a sender behind a proxy and a collector, on a freshly reset sandbox."""
        port = int(sandbox.url.rsplit(":", 1)[1])
        proxy = Proxy(port)
        proxy_url = await proxy.start()
        harness = MeshHarness(
            proxy,
            MeshConnector(config(proxy_url, SENDER, ORIGIN)),
            MeshConnector(config(sandbox.url, RECIPIENT)),
            MeshConnector(config(sandbox.url, RECIPIENT)),
        )
        yield harness
        for conn in (harness.connector, harness.collector, harness.reader):
            await conn.close()
        await proxy.stop()


@pytest.fixture
async def pair(sandbox: Sandbox) -> AsyncIterator[tuple[MeshConnector, MeshConnector, Captured]]:
    """Yield a sender (X26ABC1) and a collector (X26ABC2), their requests captured."""
    captured = Captured()
    sender = MeshConnector(
        config(sandbox.url, SENDER, ORIGIN, chunk_size=1024), trace_configs=[captured.trace()]
    )
    collector = MeshConnector(config(sandbox.url, RECIPIENT), trace_configs=[captured.trace()])
    yield sender, collector, captured
    await sender.close()
    await collector.close()


def _msg(body: bytes, kind: MessageKind = "envelope") -> Message:
    return Message(kind, hashlib.sha256(body).digest(), ORIGIN, DESTINATION, body)


async def test_round_trip_acknowledge_and_gone(
    pair: tuple[MeshConnector, MeshConnector, Captured],
) -> None:
    sender, collector, _ = pair
    body = b"sealed envelope bytes \x00\xff"
    outcome = await sender.deliver(_msg(body), RECIPIENT, timeout=TIMEOUT)
    assert isinstance(outcome, Delivered)
    assert outcome.transport_ref
    (item,) = await collector.collect(limit=10, timeout=TIMEOUT)
    assert (item.transport_ref, item.kind, item.body) == (outcome.transport_ref, "envelope", body)
    assert item.origin is None
    assert item.destination == DESTINATION
    await collector.acknowledge(item.transport_ref, timeout=TIMEOUT)
    assert await collector.collect(limit=10, timeout=TIMEOUT) == []


async def test_multi_chunk_round_trip(
    pair: tuple[MeshConnector, MeshConnector, Captured],
) -> None:
    sender, collector, captured = pair
    body = random.Random(4).randbytes(5 * 1024 + 17)  # 6 chunks of at most 1 KiB
    outcome = await sender.deliver(_msg(body), RECIPIENT, timeout=TIMEOUT)
    assert isinstance(outcome, Delivered)
    posts = [(u, h) for m, u, h in captured.requests if m == "POST" and "/outbox" in u]
    assert [h["mex-chunk-range"] for _, h in posts] == [f"{n}:6" for n in range(1, 7)]
    assert posts[0][0].endswith(f"/messageexchange/{SENDER}/outbox")
    for number, (url, headers) in enumerate(posts[1:], start=2):
        assert url.endswith(f"/outbox/{outcome.transport_ref}/{number}")
        assert headers["content-encoding"] == "gzip"
    (item,) = await collector.collect(limit=10, timeout=TIMEOUT)
    assert held(item.body) == body


async def test_mex_headers_carry_only_ids(
    pair: tuple[MeshConnector, MeshConnector, Captured],
) -> None:
    sender, collector, captured = pair
    envelope = _msg(b"x" * 3000)
    receipt = _msg(b"a signed receipt", "receipt")
    for msg in (envelope, receipt):
        assert isinstance(await sender.deliver(msg, RECIPIENT, timeout=TIMEOUT), Delivered)
    found = await collector.collect(limit=10, timeout=TIMEOUT)
    assert sorted(c.kind for c in found) == ["envelope", "receipt"]
    ids = {envelope.message_id.hex(), receipt.message_id.hex()}
    allowed = {
        "mex-from": {SENDER},
        "mex-to": {RECIPIENT},
        "mex-workflowid": {WORKFLOW, ACK_WORKFLOW},
        "mex-localid": ids,
        "mex-subject": ids,
        "mex-filename": {f"{i}.exchange" for i in ids},
        "mex-chunk-range": {f"{n}:{t}" for t in range(1, 4) for n in range(1, t + 1)},
    }
    handshake = {"mex-clientversion", "mex-osarchitecture", "mex-osname", "mex-osversion"}
    for method, url, headers in captured.requests:
        for name, value in headers.items():
            if not name.startswith("mex-"):
                continue
            if name in handshake:
                assert method == "POST"
                assert url.endswith(("/messageexchange/" + SENDER, "/messageexchange/" + RECIPIENT))
                continue
            assert name in allowed, name
            assert value in allowed[name], (name, value)


async def test_every_request_has_a_fresh_valid_token(
    pair: tuple[MeshConnector, MeshConnector, Captured],
) -> None:
    sender, collector, captured = pair
    for n in range(3):
        body = random.Random(n).randbytes(2500)
        assert isinstance(await sender.deliver(_msg(body), RECIPIENT, timeout=TIMEOUT), Delivered)
    for item in await collector.collect(limit=10, timeout=TIMEOUT):
        await collector.acknowledge(item.transport_ref, timeout=TIMEOUT)
    assert len(captured.requests) > 15
    sent = [r for r in captured.requests if f"/messageexchange/{SENDER}" in r[1]]
    got = [r for r in captured.requests if f"/messageexchange/{RECIPIENT}" in r[1]]
    assert_tokens_live_valid(Captured(sent), SENDER)
    assert_tokens_live_valid(Captured(got), RECIPIENT)


async def test_unknown_recipient_is_refused(
    pair: tuple[MeshConnector, MeshConnector, Captured],
) -> None:
    sender, _, _ = pair
    outcome = await sender.deliver(_msg(b"nobody"), UNKNOWN_MAILBOX, timeout=TIMEOUT)
    assert isinstance(outcome, Refused)
    assert "417" in outcome.reason


async def test_malformed_address_is_refused(
    pair: tuple[MeshConnector, MeshConnector, Captured],
) -> None:
    sender, _, _ = pair
    outcome = await sender.deliver(_msg(b"x"), "x26abc2/../inbox", timeout=TIMEOUT)
    assert isinstance(outcome, Refused)


@pytest.mark.network
async def test_sandbox_down_is_retry_later() -> None:
    dead = config(f"http://127.0.0.1:{mesh_sandbox.free_port()}", SENDER)
    connector = MeshConnector(dead)
    try:
        outcome = await connector.deliver(_msg(b"later"), RECIPIENT, timeout=TIMEOUT)
        assert isinstance(outcome, RetryLater)
        with pytest.raises(CollectError) as caught:
            await connector.collect(limit=1, timeout=TIMEOUT)
        assert caught.value.retry
    finally:
        await connector.close()


async def test_wrong_password_is_retry_later(sandbox: Sandbox) -> None:
    wrong = MeshConfig(
        base_url=sandbox.url,
        mailbox=SENDER,
        password="not-the-password",  # noqa: S106
        shared_key=SHARED_KEY.encode(),
        organisation=ORIGIN,
        envelope_workflow=WORKFLOW,
        allow_http=True,
    )
    connector = MeshConnector(wrong)
    try:
        outcome = await connector.deliver(_msg(b"x"), RECIPIENT, timeout=TIMEOUT)
        assert isinstance(outcome, RetryLater)
        assert "403" in outcome.reason or "401" in outcome.reason
    finally:
        await connector.close()


async def test_error_report_is_surfaced_not_collected(
    sandbox: Sandbox, pair: tuple[MeshConnector, MeshConnector, Captured]
) -> None:
    sender, _, _ = pair
    msg = _msg(b"undeliverable")
    outcome = await sender.deliver(msg, RECIPIENT, timeout=TIMEOUT)
    assert isinstance(outcome, Delivered)
    report_id = sandbox.create_report(
        mailbox_id=SENDER,
        code="14",
        description="Undelivered message",
        workflow_id=WORKFLOW,
        local_id=msg.message_id.hex(),
        linked_message_id=outcome.transport_ref,
    )
    assert await sender.collect(limit=10, timeout=TIMEOUT) == []
    (report,) = sender.non_delivery_reports()
    assert report.transport_ref == report_id
    assert report.message_id == msg.message_id
    assert report.linked_message_id == outcome.transport_ref
    assert report.status_code == "14"
    await sender.acknowledge(report_id, timeout=TIMEOUT)
    assert sender.non_delivery_reports() == []
    assert await sender.collect(limit=10, timeout=TIMEOUT) == []
    assert sender.non_delivery_reports() == []
    # Reported undelivered, the message is really sent again, not answered from memory.
    again = await sender.deliver(msg, RECIPIENT, timeout=TIMEOUT)
    assert isinstance(again, Delivered)
    assert again.transport_ref != outcome.transport_ref


async def test_oversized_message_is_left_and_listed(sandbox: Sandbox) -> None:
    sender = MeshConnector(config(sandbox.url, SENDER, ORIGIN))
    small = MeshConnector(config(sandbox.url, RECIPIENT, max_message_size=1000))
    try:
        big = _msg(b"\x00" * 5000)  # compresses far below 1000 bytes: the limit is decoded size
        assert isinstance(await sender.deliver(big, RECIPIENT, timeout=TIMEOUT), Delivered)
        assert await small.collect(limit=10, timeout=TIMEOUT) == []
        assert len(small.unread()) == 1
    finally:
        await sender.close()
        await small.close()


async def test_paging_through_the_inbox(
    sandbox: Sandbox, pair: tuple[MeshConnector, MeshConnector, Captured]
) -> None:
    sender, _, _ = pair
    captured = Captured()
    collector = MeshConnector(
        config(sandbox.url, RECIPIENT, inbox_page=10), trace_configs=[captured.trace()]
    )
    try:
        bodies = {f"message {n}".encode() for n in range(13)}
        for body in bodies:
            outcome = await sender.deliver(_msg(body), RECIPIENT, timeout=TIMEOUT)
            assert isinstance(outcome, Delivered)
        first = await collector.collect(limit=2, timeout=TIMEOUT)
        assert len(first) == 2
        everything = await collector.collect(limit=50, timeout=TIMEOUT)
        assert {c.body for c in everything} == bodies
        lists = [u for m, u, _ in captured.requests if m == "GET" and "/inbox?" in u]
        assert any("continue_from=" in u for u in lists)
    finally:
        await collector.close()


def test_classification_table() -> None:
    assert classify_status(202, retry_statuses=RETRY_STATUSES) == "success"
    for status in (400, 404, 410, 417, 422):
        assert classify_status(status, retry_statuses=RETRY_STATUSES) == "refused"
    for status in (301, 401, 403, 408, 425, 429, 500, 502, 503):
        assert classify_status(status, retry_statuses=RETRY_STATUSES) == "retry"


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * PIECE + 17])
async def test_stored_gzip_is_gzip_of_the_length_announced(size: int) -> None:
    """The hand-written stored member decompresses to the data, at exactly its length."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, size, PIECE):
            yield data[start : start + PIECE]

    member = b"".join([part async for part in stored_gzip(pieces(), size)])
    assert len(member) == stored_length(size)
    assert gzip.decompress(member) == data


async def test_stored_gzip_refuses_pieces_it_cannot_count() -> None:
    """Pieces that are not whole blocks, or not of the length announced, are refused."""

    async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    with pytest.raises(ValueError, match="multiple"):
        _ = [p async for p in stored_gzip(pieces(b"a" * 10, b"b"), 11)]
    with pytest.raises(ValueError, match="length announced"):
        _ = [p async for p in stored_gzip(pieces(b"a" * 10), 11)]


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("mailbox", "x26abc1"),
        ("envelope_workflow", "bad workflow"),
        ("chunk_size", 0),
        ("base_url", "http://127.0.0.1:1"),
    ],
)
def test_config_is_checked(field_name: str, value: object) -> None:
    values: dict[str, Any] = {
        "base_url": "https://mesh.example",
        "mailbox": SENDER,
        "password": PASSWORD,
        "shared_key": b"k",
        "organisation": DESTINATION,
        "envelope_workflow": WORKFLOW,
    }
    values[field_name] = value
    with pytest.raises(ValueError, match=field_name):
        MeshConfig(**values)


def test_receipt_workflow_defaults_to_ack() -> None:
    cfg = MeshConfig(
        base_url="https://mesh.example",
        mailbox=SENDER,
        password=PASSWORD,
        shared_key=b"k",
        organisation=DESTINATION,
        envelope_workflow="SAFEGUARDING",
    )
    assert cfg.receipt_workflow == "SAFEGUARDING_ACK"
    assert PASSWORD not in repr(cfg)


# -- interop with NHS England's mesh-client -----------------------------------------------

_MESH_CLIENT_RECEIVE = """
import json, sys
from mesh_client import MeshClient
url, mailbox, password, key = sys.argv[1:5]
with MeshClient(url, mailbox, password, shared_key=key.encode(), verify=False) as client:
    client.handshake()
    out = []
    for message_id in client.list_messages():
        msg = client.retrieve_message(message_id)
        out.append({"id": message_id, "workflow": msg.workflow_id, "local_id": msg.local_id,
                    "body": msg.read().hex()})
        msg.acknowledge()
    print(json.dumps(out))
"""

_MESH_CLIENT_SEND = """
import sys
from mesh_client import MeshClient
url, mailbox, password, key, to, workflow, body_hex, chunk = sys.argv[1:9]
with MeshClient(url, mailbox, password, shared_key=key.encode(), verify=False,
                max_chunk_size=int(chunk)) as client:
    client.handshake()
    print(client.send_message(to, bytes.fromhex(body_hex), workflow_id=workflow,
                              local_id="interop", subject="interop"))
"""


def _mesh_client(sandbox: Sandbox, script: str, *args: str) -> str:
    done = subprocess.run(
        [str(sandbox.python), "-c", script, sandbox.url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


async def test_mesh_client_receives_what_we_sent(
    sandbox: Sandbox, pair: tuple[MeshConnector, MeshConnector, Captured]
) -> None:
    sender, _, _ = pair
    small = _msg(b"small envelope")
    large = _msg(random.Random(9).randbytes(4000))  # 4 chunks at 1 KiB
    for msg in (small, large):
        assert isinstance(await sender.deliver(msg, RECIPIENT, timeout=TIMEOUT), Delivered)
    answer = await asyncio.to_thread(
        _mesh_client, sandbox, _MESH_CLIENT_RECEIVE, RECIPIENT, PASSWORD, SHARED_KEY
    )
    got = {item["local_id"]: item for item in json.loads(answer)}
    for msg in (small, large):
        item = got[msg.message_id.hex()]
        assert bytes.fromhex(item["body"]) == msg.body
        assert item["workflow"] == WORKFLOW
    collector = MeshConnector(config(sandbox.url, RECIPIENT))
    try:  # mesh-client acknowledged both: nothing left for us
        assert await collector.collect(limit=10, timeout=TIMEOUT) == []
    finally:
        await collector.close()


@pytest.mark.parametrize("size", [100, 5000])
async def test_we_collect_what_mesh_client_sent(
    sandbox: Sandbox, pair: tuple[MeshConnector, MeshConnector, Captured], size: int
) -> None:
    _, collector, _ = pair
    body = random.Random(size).randbytes(size)
    mesh_id = await asyncio.to_thread(
        _mesh_client,
        sandbox,
        _MESH_CLIENT_SEND,
        SENDER,
        PASSWORD,
        SHARED_KEY,
        RECIPIENT,
        ACK_WORKFLOW,
        body.hex(),
        "2048",
    )
    (item,) = await collector.collect(limit=10, timeout=TIMEOUT)
    assert (item.transport_ref, item.kind, item.body) == (mesh_id, "receipt", body)
    await collector.acknowledge(item.transport_ref, timeout=TIMEOUT)
    assert await collector.collect(limit=10, timeout=TIMEOUT) == []


async def test_a_foreign_workflow_is_left_alone(
    sandbox: Sandbox, pair: tuple[MeshConnector, MeshConnector, Captured]
) -> None:
    _, collector, _ = pair
    await asyncio.to_thread(
        _mesh_client, sandbox, _MESH_CLIENT_SEND, OTHER, PASSWORD, SHARED_KEY,
        RECIPIENT, "TEST_WORKFLOW2", b"other".hex(), "2048",
    )  # fmt: skip
    assert await collector.collect(limit=10, timeout=TIMEOUT) == []
    assert list(collector.unread().values()) == ["a workflow this connector does not serve"]


def test_sandbox_venv_lives_under_the_project() -> None:
    assert mesh_sandbox.VENV.is_relative_to(Path(__file__).resolve().parents[2] / ".cache")
