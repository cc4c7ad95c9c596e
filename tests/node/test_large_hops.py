"""Large envelopes on every hop between nodes, in pieces, never whole in memory.

A sealed envelope of several MiB (many 1 MiB pieces, several MESH chunks) is sent from a
file by the connectors a sending node uses: HTTPS push to the LA node, a deposit at the
LA node's relay collected by the receiving school's node, and NHS MESH (the real sandbox)
collected by the LA node for the school nurses. Each arrives intact, is stored as the
recipient's body file and opens with the recipient's key. Python's own allocations are
traced while it travels, both nodes being in this process: the peak stays at a small
fraction of the body, which fails if any hop reads it whole (the earlier code did, on
every one of them). A damaged, truncated or oversized stream is refused with its sentence
and leaves no file behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from exchange.config import MeshTenantConfig, RelayConfig
from exchange.connectors.base import Delivered, Message, Refused, StoredBody
from exchange.connectors.bodies import file_body
from exchange.connectors.https import HttpsPushConnector, Signer, request_signer
from exchange.connectors.mesh import MeshConfig, MeshConnector
from exchange.connectors.relay_mailbox import RelayMailboxConnector
from exchange.demo.loopback import Deployment, OrgSpec
from exchange.envelope import Recipient
from exchange.files import open_to_file, seal_file
from exchange.keys.ids import OrgId
from exchange.peerauth import signed_post_headers
from exchange.store.opening import NodeStore
from tests.connectors.mesh_sandbox import PASSWORD, RECIPIENT, SENDER, SHARED_KEY, Sandbox
from tests.stored_bodies import copy_out, stored_names

from . import raw
from .conftest import FAST_DELIVERY, LA, NURSES, SCHOOL, deployed
from .helpers import client, org_pair, until

pytestmark = pytest.mark.network

RECEIVING = OrgId("urn:106124")
ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
    OrgSpec(NURSES, "School nursing team", "nhs", "la"),
    OrgSpec(RECEIVING, "Moorside Primary School", "school", "receiving"),
)
DELIVERY = dataclasses.replace(FAST_DELIVERY, collect_interval=0.1, timeout=60.0)
#: The content sealed: 16 MiB, so 16 envelope chunks, many pieces on every hop, and 5 MESH
#: chunks of 4 MiB.
SIZE = 16 * 1024 * 1024
MESH_CHUNK = 4 * 1024 * 1024
#: Every node's envelope limit in these tests.
LIMIT = 20 * 1024 * 1024
#: The most Python may allocate at once while the envelope travels, both ends included: a
#: few pieces in flight (about 4.5 MiB measured). Half the body: a hop that holds it whole
#: passes this alone.
PEAK = SIZE // 2
#: The same on PostgreSQL, where the receiving store also holds the 1 MiB chunk it is writing
#: and the driver's copy of it: still far below the whole body.
PEAK_POSTGRES = PEAK + 2 * 1024 * 1024
TIMEOUT = 60.0
ENVELOPE_TYPE = "application/vnd.exchange.envelope"


@dataclasses.dataclass(frozen=True)
class Sealed:
    """A sealed envelope in a file, and what it must open to."""

    path: Path
    digest: bytes
    length: int
    content_sha256: bytes

    def message(self, destination: OrgId) -> Message:
        """Return it as the school's message to ``destination``, its body the file."""
        return Message(
            "envelope",
            self.digest,
            SCHOOL,
            destination,
            StoredBody(file_body(self.path).read_at, self.length),
        )


def _content(folder: Path) -> Path:
    path = folder / "content.bin"
    rng = random.Random(14)
    with path.open("wb") as out:
        for _ in range(SIZE // (1024 * 1024)):
            out.write(rng.randbytes(1024 * 1024))
    return path


def _sha256(path: Path) -> bytes:
    running = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1024 * 1024):
            running.update(piece)
    return running.digest()


def _seal(world: Deployment, to: tuple[OrgId, ...], folder: Path) -> Sealed:
    """Seal 16 MiB of content from the school to ``to``, file to file."""
    assert world.directory is not None
    now = int(time.time())
    recipients = [Recipient(org, world.directory.current_keys(org, now).encryption) for org in to]
    content = _content(folder)
    out = folder / "envelope.bin"
    with content.open("rb") as stream:
        sealed = seal_file(
            stream, out, org_pair(world, SCHOOL), recipients, record_kind="cp-file", created=now
        )
    return Sealed(out, sealed.digest, out.stat().st_size, _sha256(content))


async def _opens(
    world: Deployment, store: NodeStore, org: OrgId, sealed: Sealed, folder: Path
) -> None:
    """Check the stored body is the envelope sent and opens with ``org``'s key to the content."""
    path = await copy_out(store, sealed.digest, folder / f"stored-{org.replace(':', '-')}.bin")
    assert _sha256(path) == _sha256(sealed.path)
    assert world.directory is not None
    out = folder / f"opened-{org.replace(':', '-')}.bin"
    with path.open("rb") as stream:
        open_to_file(stream, out, world.directory, [org_pair(world, org)], int(time.time()))
    assert _sha256(out) == sealed.content_sha256


@contextmanager
def traced() -> Iterator[list[int]]:
    """Trace Python's allocations in the block; the list gets the peak in bytes."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def _peak(world: Deployment) -> int:
    """Return the most Python may allocate at once in a test of ``world`` (by its engine)."""
    on_postgres = any(node.config.database.url for node in world.nodes.values())
    return PEAK_POSTGRES if on_postgres else PEAK


async def _bodies(world: Deployment, node: str) -> set[str]:
    """Every body a node stores and every temporary file it holds."""
    return await stored_names(world.nodes[node].service.store)


def _relay_bodies(world: Deployment) -> set[str]:
    relay = world.nodes["la"].relay
    assert relay is not None
    return {str(p.relative_to(relay.store.bodies)) for p in relay.store.bodies.rglob("*")}


def _signer(world: Deployment) -> Signer:
    pair = org_pair(world, SCHOOL)
    return request_signer(lambda _org: pair, lambda: int(time.time()))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployed(
        tmp_path / "world",
        {},
        orgs=ORGS,
        delivery=DELIVERY,
        routes={RECEIVING: (("mailbox", "la"),)},
        relays={"la": RelayConfig()},
        max_envelope_bytes=LIMIT,
    ) as deployment:
        yield deployment


@pytest.fixture
async def http(world: Deployment) -> AsyncIterator[aiohttp.ClientSession]:
    async with client(world) as session:
        yield session


# --- HTTPS push -----------------------------------------------------------------------------


async def test_https_push_of_a_large_envelope_streams_both_ends(
    world: Deployment, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sealed = _seal(world, (LA,), tmp_path)
    connector = HttpsPushConnector(http, _signer(world))
    with traced() as peak:
        outcome = await connector.deliver(sealed.message(LA), world.url("la"), timeout=TIMEOUT)
    assert isinstance(outcome, Delivered), outcome
    assert outcome.receipt  # the LA node's signed "delivered"
    store = world.nodes["la"].service.store
    assert await store.inbox_item(LA, sealed.digest) is not None
    await _opens(world, store, LA, sealed, tmp_path)
    assert peak[0] < _peak(world), f"{peak[0]:,} bytes allocated at the peak"
    # Sent again (a retry after a lost answer): the same receipt, one body.
    again = await connector.deliver(sealed.message(LA), world.url("la"), timeout=TIMEOUT)
    assert isinstance(again, Delivered)
    assert again.receipt == outcome.receipt
    assert (await _bodies(world, "la")) == {sealed.digest.hex()}


def _damaged(sealed: Sealed, folder: Path, *, cut: bool = False) -> Path:
    """Return a copy of the envelope with one ciphertext byte flipped, or its first half."""
    data = bytearray(sealed.path.read_bytes())
    if cut:
        del data[len(data) // 2 :]
    else:
        data[len(data) // 2] ^= 1
    path = folder / ("cut.bin" if cut else "damaged.bin")
    path.write_bytes(data)
    return path


async def _post_raw(world: Deployment, data: bytes) -> raw.Answer:
    """POST ``data`` signed as the school to the LA node's envelope endpoint; the answer."""
    path = f"/peer/v1/orgs/{LA}/envelopes"
    headers = signed_post_headers(
        url=world.url("la") + path,
        body=data,
        content_type=ENVELOPE_TYPE,
        pair=org_pair(world, SCHOOL),
        now=int(time.time()),
    )
    reader, writer = await raw.connect(world)
    try:
        head = {**headers, "Content-Length": str(len(data))}
        writer.write(raw.request_head(path, world.nodes["la"].port, head) + data)
        await writer.drain()
        return await raw.read_answer(reader, timeout=TIMEOUT)
    finally:
        await raw.close(writer)


@pytest.mark.parametrize(
    ("cut", "words"),
    [(False, "it is not authentic or it was altered"), (True, "envelope.truncated")],
    ids=["damaged", "truncated"],
)
async def test_https_push_of_a_damaged_or_truncated_envelope_is_refused(
    world: Deployment, http: aiohttp.ClientSession, tmp_path: Path, cut: bool, words: str
) -> None:
    """The transport check passes (the digest is of what was sent); the envelope does not."""
    sealed = _seal(world, (LA,), tmp_path)
    path = _damaged(sealed, tmp_path, cut=cut)
    before = await _bodies(world, "la")
    answer = await _post_raw(world, path.read_bytes())
    assert answer.status == 422
    message = json.loads(answer.body)["message"]
    assert message.startswith("the envelope was refused")
    assert words in message
    # The connector reads it as a refusal on this route (the outbox falls back).
    body = StoredBody(file_body(path).read_at, path.stat().st_size)
    outcome = await HttpsPushConnector(http, _signer(world)).deliver(
        dataclasses.replace(sealed.message(LA), body=body), world.url("la"), timeout=TIMEOUT
    )
    assert isinstance(outcome, Refused)
    assert "422" in outcome.reason
    assert (await _bodies(world, "la")) == before
    assert await world.nodes["la"].service.store.inbox_item(LA, sealed.digest) is None


async def test_a_push_cut_short_leaves_nothing(world: Deployment, tmp_path: Path) -> None:
    """The sender goes away half-way through a large body: no file, no row, node fine."""
    sealed = _seal(world, (LA,), tmp_path)
    data = sealed.path.read_bytes()
    before = await _bodies(world, "la")
    headers = signed_post_headers(
        url=world.url("la") + f"/peer/v1/orgs/{LA}/envelopes",
        body=data,
        content_type=ENVELOPE_TYPE,
        pair=org_pair(world, SCHOOL),
        now=int(time.time()),
    )
    reader, writer = await raw.connect(world)
    head = {**headers, "Content-Length": str(len(data))}
    writer.write(raw.request_head(f"/peer/v1/orgs/{LA}/envelopes", world.nodes["la"].port, head))
    writer.write(data[: len(data) // 2])
    await writer.drain()
    await raw.close(writer)
    del reader
    await asyncio.sleep(0.5)
    assert (await _bodies(world, "la")) == before
    assert await world.nodes["la"].service.store.inbox_item(LA, sealed.digest) is None


async def test_an_oversized_push_is_refused_before_it_is_read(
    world: Deployment, tmp_path: Path
) -> None:
    """A body declared over the node's limit is answered 413 while it is still owed."""
    headers = signed_post_headers(
        url=world.url("la") + f"/peer/v1/orgs/{LA}/envelopes",
        body=b"x",
        content_type=ENVELOPE_TYPE,
        pair=org_pair(world, SCHOOL),
        now=int(time.time()),
    )
    before = await _bodies(world, "la")
    reader, writer = await raw.connect(world)
    try:
        head = {**headers, "Content-Length": str(LIMIT + 1)}
        writer.write(
            raw.request_head(f"/peer/v1/orgs/{LA}/envelopes", world.nodes["la"].port, head)
        )
        await writer.drain()
        answer = await raw.read_answer(reader)
    finally:
        await raw.close(writer)
    assert answer.status == 413
    assert f"longer than {LIMIT} bytes" in answer.body.decode()
    assert (await _bodies(world, "la")) == before
    del tmp_path


# --- relay deposit and collection -----------------------------------------------------------


async def test_relay_deposit_and_collection_of_a_large_envelope(
    world: Deployment, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sealed = _seal(world, (RECEIVING,), tmp_path)
    connector = RelayMailboxConnector(http, _signer(world))
    receiving = world.nodes["receiving"].service.store
    with traced() as peak:
        outcome = await connector.deliver(
            sealed.message(RECEIVING), world.url("la"), timeout=TIMEOUT
        )
        assert isinstance(outcome, Delivered), outcome

        async def stored() -> bool:
            return await receiving.inbox_item(RECEIVING, sealed.digest) is not None

        await until(stored, timeout=TIMEOUT, what="the receiving node to collect it")
    await _opens(world, receiving, RECEIVING, sealed, tmp_path)
    assert peak[0] < _peak(world), f"{peak[0]:,} bytes allocated at the peak"
    assert (await _bodies(world, "receiving")) >= {sealed.digest.hex()}
    assert not [n for n in (await _bodies(world, "receiving")) if n.startswith(".")]

    # Collected, acknowledged: the relay keeps no body, and no temporary either.
    async def released() -> bool:
        return not [n for n in _relay_bodies(world) if "/" in n or n.startswith(".")]

    await until(released, timeout=TIMEOUT, what="the relay to release the body")


async def test_a_relay_refuses_a_deposit_over_its_limit_before_reading_it(
    world: Deployment, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "too-large.bin"
    with path.open("wb") as out:
        out.truncate(LIMIT + 1)  # sparse: nothing is written, nothing held
    message = Message(
        "envelope", bytes(32), SCHOOL, RECEIVING, StoredBody(file_body(path).read_at, LIMIT + 1)
    )
    before = _relay_bodies(world)
    outcome = await RelayMailboxConnector(http, _signer(world)).deliver(
        message, world.url("la"), timeout=TIMEOUT
    )
    assert isinstance(outcome, Refused)
    assert outcome.reason == "the relay refused the envelope with 413"
    assert _relay_bodies(world) == before


async def test_a_relay_refuses_a_damaged_deposit_and_keeps_nothing(
    world: Deployment, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sealed = _seal(world, (RECEIVING,), tmp_path)
    path = _damaged(sealed, tmp_path)
    message = dataclasses.replace(
        sealed.message(RECEIVING), body=StoredBody(file_body(path).read_at, path.stat().st_size)
    )
    before = _relay_bodies(world)
    outcome = await RelayMailboxConnector(http, _signer(world)).deliver(
        message, world.url("la"), timeout=TIMEOUT
    )
    assert isinstance(outcome, Refused)
    assert "422" in outcome.reason
    assert _relay_bodies(world) == before


# --- NHS MESH ---------------------------------------------------------------------------------


@pytest.fixture
def sandbox(mesh_sandbox_server: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv("TEST_MESH_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_MESH_KEY", SHARED_KEY)
    mesh_sandbox_server.reset()
    return mesh_sandbox_server


@pytest.fixture
async def mesh_world(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Deployment]:
    mesh = MeshTenantConfig(
        url=sandbox.url,
        mailbox=RECIPIENT,
        password_env="TEST_MESH_PASSWORD",  # noqa: S106 - a variable name
        shared_key_env="TEST_MESH_KEY",
        workflow="EXCHANGE_TEST",
        chunk_size=MESH_CHUNK,
        allow_http=True,
    )
    async with deployed(
        tmp_path / "world",
        {},
        orgs=ORGS,
        delivery=DELIVERY,
        routes={NURSES: (("mesh", RECIPIENT),)},
        mesh={NURSES: mesh},
        max_envelope_bytes=LIMIT,
    ) as deployment:
        yield deployment


def _sender(sandbox: Sandbox) -> MeshConnector:
    return MeshConnector(
        MeshConfig(
            base_url=sandbox.url,
            mailbox=SENDER,
            password=PASSWORD,
            shared_key=SHARED_KEY.encode(),
            organisation=SCHOOL,
            envelope_workflow="EXCHANGE_TEST",
            chunk_size=MESH_CHUNK,
            allow_http=True,
        )
    )


async def test_mesh_chunked_send_and_collection_of_a_large_envelope(
    mesh_world: Deployment, sandbox: Sandbox, tmp_path: Path
) -> None:
    world = mesh_world
    sealed = _seal(world, (NURSES,), tmp_path)
    la = world.nodes["la"].service.store
    sender = _sender(sandbox)
    try:
        with traced() as peak:
            outcome = await sender.deliver(sealed.message(NURSES), RECIPIENT, timeout=TIMEOUT)
            assert isinstance(outcome, Delivered), outcome

            async def stored() -> bool:
                return await la.inbox_item(NURSES, sealed.digest) is not None

            await until(stored, timeout=TIMEOUT, what="the LA node to collect it from MESH")
    finally:
        await sender.close()
    await _opens(world, la, NURSES, sealed, tmp_path)
    assert peak[0] < _peak(world), f"{peak[0]:,} bytes allocated at the peak"
    assert not [n for n in (await _bodies(world, "la")) if n.startswith(".")]


async def test_mesh_collection_refuses_a_damaged_envelope_and_keeps_nothing(
    mesh_world: Deployment, sandbox: Sandbox, tmp_path: Path
) -> None:
    world = mesh_world
    sealed = _seal(world, (NURSES,), tmp_path)
    path = _damaged(sealed, tmp_path)
    message = dataclasses.replace(
        sealed.message(NURSES), body=StoredBody(file_body(path).read_at, path.stat().st_size)
    )
    before = await _bodies(world, "la")
    collector = world.nodes["la"].collector
    assert collector is not None
    refused = collector.stats.refused
    sender = _sender(sandbox)
    try:
        outcome = await sender.deliver(message, RECIPIENT, timeout=TIMEOUT)
        assert isinstance(outcome, Delivered), outcome

        async def counted() -> bool:
            return collector.stats.refused > refused

        await until(counted, timeout=TIMEOUT, what="the LA node to refuse it")
    finally:
        await sender.close()
    assert (await _bodies(world, "la")) == before
    assert await world.nodes["la"].service.store.inbox_item(NURSES, sealed.digest) is None
