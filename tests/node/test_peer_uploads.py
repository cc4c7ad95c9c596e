"""Peer uploads cost nothing before they are authenticated, and are limited in number.

The LA node is sent requests by hand over TLS: heads that declare 64 MiB bodies and send
none, so an answer proves the node did not wait for (or read) the body; and uploads held
open half-sent, to fill the limits on uploads in flight.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from exchange.config import ServerConfig, load_config
from exchange.demo.loopback import Deployment
from exchange.http.listener import LINGER
from exchange.http.peer import UPLOADS
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair
from exchange.node.runtime import Node
from exchange.peerauth import UploadLimits, signed_post_headers

from . import raw
from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import auth, client, get_json, org_pair, seal_for, until

pytestmark = pytest.mark.network

ENVELOPE_TYPE = "application/vnd.exchange.envelope"
DECLARED = 64 * 1024 * 1024
PATH = f"/peer/v1/orgs/{LA}/envelopes"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Yield the school and LA nodes; the LA node takes 2 uploads per peer and 3 in all."""
    users = {SCHOOL: ["dsl"], LA: ["staff"], NURSES: ["staff"]}
    async with deployed(tmp_path / "world", users) as deployment:
        la = deployment.nodes["la"]
        await la.stop()
        server = ServerConfig(peer_uploads=2, total_uploads=3)
        config = replace(load_config(deployment.folder / "node-la.toml"), server=server)
        deployment.nodes["la"] = Node(config)
        await deployment.nodes["la"].start()
        yield deployment


def _url(world: Deployment) -> str:
    return world.url("la") + PATH


def _signed(
    world: Deployment, body: bytes, pair: OrgKeyPair, *, now: int | None = None
) -> dict[str, str]:
    return signed_post_headers(
        url=_url(world),
        body=body,
        content_type=ENVELOPE_TYPE,
        pair=pair,
        now=int(time.time()) if now is None else now,
    )


def _flip_signature(headers: dict[str, str]) -> dict[str, str]:
    label, _, value = headers["Signature"].partition("=")
    raw_signature = bytearray(base64.b64decode(value.strip(":")))
    raw_signature[0] ^= 1
    return {**headers, "Signature": f"{label}=:{base64.b64encode(raw_signature).decode()}:"}


def _limits(world: Deployment) -> UploadLimits:
    return world.nodes["la"].app[UPLOADS]


async def _inbox(world: Deployment) -> list[object]:
    async with client(world) as http:
        doc = await get_json(http, world.url("la") + "/api/v1/inbox", auth(world, LA, "staff"))
    return list(doc["items"])


async def _deliver(world: Deployment, body: bytes, headers: dict[str, str]) -> raw.Answer:
    reader, writer = await raw.connect(world)
    try:
        port = world.nodes["la"].port
        head = {**headers, "Content-Length": str(len(body))}
        writer.write(raw.request_head(PATH, port, head) + body)
        await writer.drain()
        return await raw.read_answer(reader)
    finally:
        await raw.close(writer)


async def _headers_for(world: Deployment, case: str) -> dict[str, str]:
    school = org_pair(world, SCHOOL)
    if case == "unsigned":
        return {"Content-Type": ENVELOPE_TYPE}
    if case == "altered signature":
        return _flip_signature(_signed(world, b"x", school))
    if case == "key not in the directory":
        return _signed(world, b"x", OrgKeyPair.generate(SCHOOL))
    if case == "stale":
        return _signed(world, b"x", school, now=int(time.time()) - 3600)
    assert case == "replayed"
    body = seal_for(world, b'{"synthetic": "replayed"}', [LA], SCHOOL)
    headers = _signed(world, body, school)
    assert (await _deliver(world, body, headers)).status == 200
    return headers


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        ("unsigned", "signature-input.missing"),
        ("altered signature", "signature.invalid"),
        ("key not in the directory", "keyid.unknown-key"),
        ("stale", "created.too-old"),
        ("replayed", "nonce.replayed"),
    ],
)
async def test_refused_from_its_headers_before_the_body_is_read(
    world: Deployment, case: str, rule: str
) -> None:
    """A 64 MiB upload that is unsigned or wrongly signed is answered 401 with no body sent.

    The answer comes while the body is still owed, so the node did not wait for it, and the
    node then closes the connection without having read any of it.
    """
    headers = await _headers_for(world, case)
    before = await _inbox(world)
    reader, writer = await raw.connect(world)
    try:
        head = {**headers, "Content-Type": ENVELOPE_TYPE, "Content-Length": str(DECLARED)}
        writer.write(raw.request_head(PATH, world.nodes["la"].port, head))
        await writer.drain()
        answer = await raw.read_answer(reader, timeout=5.0)
        assert answer.status == 401, answer
        assert json.loads(answer.body)["error"] == rule
        assert answer.headers["www-authenticate"] == 'Signature label="exch"'
        assert await raw.seconds_until_closed(reader, limit=LINGER + 3.0) <= LINGER + 1.0
    finally:
        await raw.close(writer)
    assert _limits(world).in_flight == 0
    assert await _inbox(world) == before


async def test_body_that_does_not_match_the_signed_digest_is_refused(world: Deployment) -> None:
    """A body streamed after good headers but not the one signed: 401 once it has arrived."""
    body = seal_for(world, b'{"synthetic": "signed"}', [LA], SCHOOL)
    headers = _signed(world, body, org_pair(world, SCHOOL))
    other = body[:-1] + bytes([body[-1] ^ 1])
    answer = await _deliver(world, other, headers)
    assert answer.status == 401, answer
    assert json.loads(answer.body)["error"] == "content-digest.mismatch"
    assert await _inbox(world) == []
    # The spool had no name on disk, so nothing is left in the data folder.
    data = world.folder / "data-la"
    assert not [p for p in data.iterdir() if p.name.startswith("tmp")]


async def _hold(
    world: Deployment, sender: OrgId, note: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Start a signed upload from ``sender``, send half its body, and leave it open."""
    body = seal_for(world, b'{"synthetic": "%s"}' % note, [LA], sender)
    headers = {**_signed(world, body, org_pair(world, sender)), "Content-Length": str(len(body))}
    reader, writer = await raw.connect(world)
    writer.write(raw.request_head(PATH, world.nodes["la"].port, headers) + body[: len(body) // 2])
    await writer.drain()
    return reader, writer, body[len(body) // 2 :]


async def test_uploads_over_the_limits_are_refused_503_with_retry_after(
    world: Deployment,
) -> None:
    """Two uploads per peer and three in all: the next is 503 with Retry-After, at once."""
    limits = _limits(world)
    first = await _hold(world, SCHOOL, b"one")
    second = await _hold(world, SCHOOL, b"two")

    async def two_from_school() -> bool:
        return limits.from_peer(SCHOOL) == 2

    await until(two_from_school, timeout=10.0, what="two uploads from the school in flight")
    body = seal_for(world, b'{"synthetic": "three"}', [LA], SCHOOL)
    answer = await _deliver(world, body, _signed(world, body, org_pair(world, SCHOOL)))
    assert answer.status == 503, answer
    assert json.loads(answer.body)["error"] == "uploads.busy-peer"
    assert answer.headers["retry-after"] == str(limits.retry_after)

    third = await _hold(world, NURSES, b"nurses")

    async def three_in_all() -> bool:
        return limits.in_flight == 3

    await until(three_in_all, timeout=10.0, what="three uploads in flight")
    # The total is taken before the headers are looked at: even an unsigned request is 503.
    answer = await _deliver(world, b"x", {"Content-Type": ENVELOPE_TYPE})
    assert answer.status == 503, answer
    assert json.loads(answer.body)["error"] == "uploads.busy-total"
    assert "retry-after" in answer.headers

    # A held upload that finishes is delivered, and its place is free again.
    reader, writer, rest = first
    writer.write(rest)
    assert (await raw.read_answer(reader)).status == 200
    await raw.close(writer)
    answer = await _deliver(world, body, _signed(world, body, org_pair(world, SCHOOL)))
    assert answer.status == 200, answer
    for _, held, _ in (second, third):
        await raw.close(held)

    async def none_in_flight() -> bool:
        return limits.in_flight == 0

    await until(none_in_flight, timeout=10.0, what="the held uploads to end")
    assert limits.from_peer(SCHOOL) == 0
