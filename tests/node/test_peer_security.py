"""The peer endpoint refuses what is unsigned, altered, replayed, oversized or misaddressed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import replace
from typing import Any

import aiohttp

from exchange.config import load_config
from exchange.demo.loopback import Deployment
from exchange.keys.ids import OrgId
from exchange.node.runtime import Node
from tests.stored_bodies import body_bytes, stored_names

from .conftest import LA, NURSES, SCHOOL
from .helpers import (
    auth,
    client,
    get_json,
    org_pair,
    seal_for,
    sent,
    signed_headers,
    submit,
    until,
)

ENVELOPE_TYPE = "application/vnd.exchange.envelope"


def _url(world: Deployment, owner: OrgId = LA) -> str:
    return world.url("la") + f"/peer/v1/orgs/{owner}/envelopes"


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    async with http.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.read()


async def _la_inbox(http: aiohttp.ClientSession, world: Deployment) -> list[dict[str, Any]]:
    doc = await get_json(http, world.url("la") + "/api/v1/inbox", auth(world, LA, "staff"))
    return list(doc["items"])


async def _ledger_events(http: aiohttp.ClientSession, world: Deployment) -> int:
    async with http.get(world.ops_url("la") + "/metrics") as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("exchange_ledger_events "))
    return int(line.split()[1])


async def _bodies(world: Deployment) -> set[str]:
    return await stored_names(world.nodes["la"].service.store)


async def test_unsigned_request_is_refused_401(world: Deployment) -> None:
    """A request without a signature is refused as unauthenticated and stores nothing."""
    body = seal_for(world, b'{"synthetic": 1}', [LA], SCHOOL)
    async with client(world) as http:
        status, answer = await _post(http, _url(world), body, {"Content-Type": ENVELOPE_TYPE})
        assert status == 401, answer
        assert await _la_inbox(http, world) == []


async def test_body_altered_after_signing_is_refused(world: Deployment) -> None:
    """Changing one byte of the body after signing makes the request fail authentication."""
    body = seal_for(world, b'{"synthetic": 2}', [LA], SCHOOL)
    headers = signed_headers(_url(world), body, org_pair(world, SCHOOL))
    altered = body[:-1] + bytes([body[-1] ^ 1])
    async with client(world) as http:
        status, answer = await _post(http, _url(world), altered, headers)
        assert 400 <= status < 500, answer
        assert status != 404
        assert await _la_inbox(http, world) == []


async def test_replayed_request_is_refused_even_after_success(world: Deployment) -> None:
    """The exact same signed request sent twice succeeds once, then is refused as a replay."""
    body = seal_for(world, b'{"synthetic": 3}', [LA], SCHOOL)
    headers = signed_headers(_url(world), body, org_pair(world, SCHOOL))
    async with client(world) as http:
        first, receipt = await _post(http, _url(world), body, headers)
        assert first == 200, receipt
        second, answer = await _post(http, _url(world), body, headers)
        assert second == 401, answer
        assert b"replay" in answer
        assert len(await _la_inbox(http, world)) == 1


async def test_signer_who_is_not_the_sender_is_refused_403(world: Deployment) -> None:
    """An envelope from the school, signed in transport by the nurses' key, is forbidden."""
    body = seal_for(world, b'{"synthetic": 4}', [LA], SCHOOL)
    headers = signed_headers(_url(world), body, org_pair(world, NURSES))
    async with client(world) as http:
        status, answer = await _post(http, _url(world), body, headers)
        assert status == 403, answer
        assert await _la_inbox(http, world) == []


async def test_envelope_not_addressed_to_the_path_org_is_refused_403(world: Deployment) -> None:
    """An envelope sealed only to the nurses, pushed to the LA's address, is forbidden."""
    body = seal_for(world, b'{"synthetic": 5}', [NURSES], SCHOOL)
    headers = signed_headers(_url(world), body, org_pair(world, SCHOOL))
    async with client(world) as http:
        status, answer = await _post(http, _url(world), body, headers)
        assert status == 403, answer
        assert await _la_inbox(http, world) == []
        nurses = await get_json(
            http, world.url("la") + "/api/v1/inbox", auth(world, NURSES, "staff")
        )
        assert nurses["items"] == []


async def test_signed_garbage_body_is_refused_422(world: Deployment) -> None:
    """A properly signed request whose body is not an envelope is unprocessable."""
    body = b"this is not an envelope at all" * 10
    headers = signed_headers(_url(world), body, org_pair(world, SCHOOL))
    async with client(world) as http:
        status, answer = await _post(http, _url(world), body, headers)
        assert status == 422, answer
        assert await _la_inbox(http, world) == []


async def test_unknown_path_org_is_not_found(world: Deployment) -> None:
    """A push to an organisation the node does not serve is 404."""
    url = _url(world, OrgId("la:999"))
    body = seal_for(world, b'{"synthetic": 6}', [LA], SCHOOL)
    async with client(world) as http:
        status, answer = await _post(
            http, url, body, signed_headers(url, body, org_pair(world, SCHOOL))
        )
        assert status == 404, answer


async def test_repeated_delivery_returns_the_same_receipt_and_stores_nothing(
    world: Deployment,
) -> None:
    """Pushing an already delivered envelope again returns the same receipt bytes, adds nothing."""
    async with client(world) as http:
        digest = (await submit(http, world, b'{"synthetic": 7}', [LA]))["digest"]

        async def delivered() -> bool:
            item = await sent(http, world, digest)
            return item["recipients"][0]["delivery_state"] == "delivered"

        await until(delivered, what="the first delivery")
        held = await get_json(
            http,
            world.url("school") + f"/api/v1/envelopes/{digest}/receipts",
            auth(world, SCHOOL, "dsl"),
        )
        (original,) = [base64.b64decode(r["receipt"]) for r in held["receipts"]]
        events, bodies = await _ledger_events(http, world), await _bodies(world)

        body = await body_bytes(world.nodes["school"].service.store, bytes.fromhex(digest))
        for _ in range(2):
            headers = signed_headers(_url(world), body, org_pair(world, SCHOOL))
            status, receipt = await _post(http, _url(world), body, headers)
            assert status == 200, receipt
            assert receipt == original

        assert [i["digest"] for i in await _la_inbox(http, world)] == [digest]
        assert await _ledger_events(http, world) == events
        assert await _bodies(world) == bodies
        la_receipts = await get_json(
            http,
            world.url("la") + f"/api/v1/envelopes/{digest}/receipts",
            auth(world, LA, "staff"),
        )
        assert [r["status"] for r in la_receipts["receipts"]] == ["delivered"]


async def _restart_la_with_limit(world: Deployment, limit: int) -> None:
    await world.nodes["la"].stop()
    config = replace(load_config(world.folder / "node-la.toml"), max_envelope_bytes=limit)
    world.nodes["la"] = Node(config)
    await world.nodes["la"].start()


async def _raw_connection(world: Deployment) -> tuple[asyncio.StreamReader, Any]:
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    return await asyncio.open_connection(
        "127.0.0.1", world.nodes["la"].port, ssl=context, server_hostname="127.0.0.1"
    )


async def _status_and_body(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await asyncio.wait_for(reader.readline(), timeout=10.0)
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), timeout=10.0)) not in {b"\r\n", b""}:
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), timeout=10.0)
    return int(status_line.split()[1]), body


async def test_oversized_declared_body_is_refused_413_before_reading_it(world: Deployment) -> None:
    """A Content-Length over max_envelope_bytes is answered 413 with the body still unsent."""
    limit = 16 * 1024
    await _restart_la_with_limit(world, limit)
    reader, writer = await _raw_connection(world)
    head = (
        f"POST /peer/v1/orgs/{LA}/envelopes HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{world.nodes['la'].port}\r\n"
        f"Content-Type: {ENVELOPE_TYPE}\r\n"
        f"Content-Length: {limit * 1000}\r\n\r\n"
    ).encode()
    writer.write(head + b"\x00" * 1024)
    await writer.drain()
    try:
        status, body = await _status_and_body(reader)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    assert status == 413, body
    assert str(limit).encode() in body


async def test_oversized_streamed_body_is_refused_413_early(world: Deployment) -> None:
    """A signed chunked body that grows past the limit is answered 413 long before it ends."""
    limit = 16 * 1024
    total = 64 * 1024 * 1024
    await _restart_la_with_limit(world, limit)
    reader, writer = await _raw_connection(world)
    # Signed, so the headers verify and the body is read (an unsigned one is refused unread).
    signed = signed_headers(_url(world), b"never sent", org_pair(world, SCHOOL))
    lines = "".join(f"{name}: {value}\r\n" for name, value in signed.items())
    writer.write(
        (
            f"POST /peer/v1/orgs/{LA}/envelopes HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{world.nodes['la'].port}\r\n"
            f"{lines}Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    piece = b"\x00" * 65536
    sent_bytes = 0

    async def stream() -> None:
        nonlocal sent_bytes
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while sent_bytes < total:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                sent_bytes += len(piece)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    streaming = asyncio.create_task(stream())
    try:
        status, body = await _status_and_body(reader)
    finally:
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    assert status == 413, body
    assert sent_bytes < total
