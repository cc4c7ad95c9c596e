"""Recall on real nodes: from the outbox, from a recipient's node, from a relay mailbox.

Every path and outcome: cancelled before it left (also while an attempt is in flight),
withdrawn at the recipient's node before anyone opened it, too late once opened, deleted
from a relay mailbox before collection, too late once collected; a repeated recall and a
repeated notice change nothing; a notice signed by anyone but the sender is refused; and a
recall racing a first opening has exactly one winner.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web

from exchange.config import RelayConfig
from exchange.demo.loopback import Deployment, OrgSpec
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType, decode_event
from exchange.node.runtime import Node
from exchange.peerauth import signed_post_headers

from .conftest import FAST_DELIVERY, LA, NURSES, SCHOOL, deployed
from .helpers import (
    auth,
    client,
    get_json,
    org_pair,
    publish_route,
    sent,
    stand_in_peer,
    submit,
    until,
)

REASON = {"reason": "Sent to the wrong team by mistake."}


async def _restart(world: Deployment, name: str) -> None:
    node = Node(world.nodes[name].config)
    await node.start()
    world.nodes[name] = node


async def _recall(
    http: aiohttp.ClientSession,
    world: Deployment,
    digest: str,
    *,
    role: str = "dsl",
    body: dict[str, Any] | None = None,
    status: int = 200,
) -> dict[str, Any]:
    async with http.post(
        world.url("school") + f"/api/v1/sent/{digest}/recall",
        json=REASON if body is None else body,
        headers=auth(world, SCHOOL, role),
    ) as resp:
        assert resp.status == status, await resp.text()
        return dict(await resp.json())


def _outcomes(answer: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {r["organisation"]: (r["outcome"], r["route"]) for r in answer["recipients"]}


async def _delivered(http: aiohttp.ClientSession, world: Deployment, digest: str) -> None:
    async def done() -> bool:
        item = await sent(http, world, digest)
        return all(
            any(e["status"] == "delivered" for e in r["timeline"]) for r in item["recipients"]
        )

    await until(done, what="delivered receipts")


async def _events(world: Deployment, node: str, digest: str) -> list[tuple[EventType, str, str]]:
    store = world.nodes[node].service.store
    return [
        (e.type, e.org, e.reason or "")
        for e in (
            decode_event(raw) for _, raw in await store.ledger_events_for(bytes.fromhex(digest))
        )
    ]


async def _open(
    http: aiohttp.ClientSession, world: Deployment, org: OrgId, role: str, digest: str
) -> int:
    async with http.post(
        world.url("la") + f"/api/v1/inbox/{digest}/open", headers=auth(world, org, role)
    ) as resp:
        await resp.read()
        return resp.status


async def _notice(
    http: aiohttp.ClientSession,
    world: Deployment,
    signer: OrgId,
    owner: OrgId,
    body: dict[str, Any] | bytes,
    *,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """POST a recall notice to the LA node, signed with ``signer``'s key."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = world.url("la") + f"/peer/v1/orgs/{owner}/recalls"
    headers = signed_post_headers(
        url=url, body=data, content_type=content_type, pair=org_pair(world, signer),
        now=int(time.time()),
    )  # fmt: skip
    async with http.post(yarl.URL(url, encoded=True), data=data, headers=headers) as resp:
        return resp.status, await resp.json()


async def _notice_body(world: Deployment, digest: str) -> dict[str, Any]:
    envelope = await world.nodes["school"].service.store.envelope(bytes.fromhex(digest))
    assert envelope is not None
    return {
        "envelope_digest": digest,
        "envelope_id": envelope.envelope_id.hex(),
        "reason_code": "sent-in-error",
        "time": int(time.time()),
    }


# --- before it left: the outbox ---------------------------------------------------------------


async def test_recall_before_delivery_cancels_the_outbox_item(world: Deployment) -> None:
    await world.nodes["la"].stop()
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [LA]))["digest"]

        async def retrying() -> bool:
            item = await sent(http, world, digest)
            return bool(item["recipients"][0]["attempts"] >= 1)

        await until(retrying, what="a failed attempt")
        answer = await _recall(http, world, digest)
        [row] = answer["recipients"]
        assert (row["organisation"], row["outcome"], row["route"]) == (LA, "recalled", "outbox")
        assert row["reason_code"] == "sent-in-error"
        item = await sent(http, world, digest)
        [recipient] = item["recipients"]
        assert recipient["delivery_state"] == "recalled"
        assert recipient["recall"]["outcome"] == "recalled"
        attempts = recipient["attempts"]

        await _restart(world, "la")
        await asyncio.sleep(1.0)  # many poll intervals: the worker never sends it
        [recipient] = (await sent(http, world, digest))["recipients"]
        assert (recipient["delivery_state"], recipient["attempts"]) == ("recalled", attempts)
    assert await world.nodes["la"].service.store.inbox(LA, limit=10) == []
    assert (EventType.RECALLED, SCHOOL, "outbox:sent-in-error") in await _events(
        world, "school", digest
    )


def _forwarder(world: Deployment, delay: float, calls: list[str]) -> Any:
    """Return a stand-in for the LA node: it answers after ``delay``, forwarding to the real one.

    It re-signs each request as the school (the signature covers the URL), so the real node
    accepts it: an attempt in flight that succeeds.
    """
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        calls.append(request.path)
        await asyncio.sleep(delay)
        url = world.url("la") + request.path
        headers = signed_post_headers(
            url=url, body=body, content_type=request.content_type,
            pair=org_pair(world, SCHOOL), now=int(time.time()),
        )  # fmt: skip
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
            http.post(yarl.URL(url, encoded=True), data=body, headers=headers) as resp,
        ):
            return web.Response(
                body=await resp.read(), status=resp.status, content_type=resp.content_type
            )

    return handler


async def test_recall_while_a_failing_attempt_is_in_flight(world: Deployment) -> None:
    calls: list[str] = []

    async def slow_refusal(request: web.Request) -> web.StreamResponse:
        await request.read()
        calls.append(request.path)
        await asyncio.sleep(1.0)
        return web.Response(status=503)

    async with stand_in_peer(world, slow_refusal) as peer, client(world) as http:
        publish_route(world, LA, peer)
        digest = (await submit(http, world, b"synthetic target", [LA]))["digest"]
        store = world.nodes["school"].service.store

        async def attempting() -> bool:
            return (await store.outbox_states(SCHOOL, bytes.fromhex(digest)))[LA] == "attempting"

        await until(attempting, what="an attempt in flight")
        answer = await _recall(http, world, digest)
        assert _outcomes(answer) == {LA: ("recalled", "outbox")}
        seen = len(calls)
        await asyncio.sleep(0.8)  # the backoff is at most 0.2 s: it would have been retried
        assert len(calls) == seen
        assert (await store.outbox_states(SCHOOL, bytes.fromhex(digest)))[LA] == "recalled"


async def test_recall_while_a_succeeding_attempt_is_in_flight(world: Deployment) -> None:
    calls: list[str] = []
    async with stand_in_peer(world, _forwarder(world, 1.0, calls)) as peer, client(world) as http:
        publish_route(world, LA, peer)
        digest = (await submit(http, world, b"synthetic target", [LA]))["digest"]
        store = world.nodes["school"].service.store

        async def attempting() -> bool:
            return (await store.outbox_states(SCHOOL, bytes.fromhex(digest)))[LA] == "attempting"

        await until(attempting, what="an attempt in flight")
        answer = await _recall(http, world, digest)
        # The attempt delivered it meanwhile; the recall then reached the LA's node.
        assert _outcomes(answer) == {LA: ("recalled", "https")}
        assert calls[-1].endswith("/recalls")
    [item] = await world.nodes["la"].service.store.inbox(LA, limit=10)
    assert item.state == "recalled"


# --- at the recipient's node ----------------------------------------------------------------


async def test_recall_from_nodes_before_and_after_opening(world: Deployment) -> None:
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [LA, NURSES]))["digest"]
        await _delivered(http, world, digest)
        assert await _open(http, world, NURSES, "staff", digest) == 200

        answer = await _recall(http, world, digest)
        assert _outcomes(answer) == {LA: ("recalled", "https"), NURSES: ("too-late", "https")}
        by_org = {r["organisation"]: r for r in answer["recipients"]}
        assert by_org[NURSES]["opened_by_role"] == "staff"
        assert by_org[NURSES]["at"] is not None
        assert by_org[LA]["at"] is not None

        # At the LA: the item is withdrawn, listed as recalled, and can no longer be used.
        la, la_dsl = world.url("la"), auth(world, LA, "dsl")
        inbox = await get_json(http, la + "/api/v1/inbox", la_dsl)
        [entry] = [i for i in inbox["items"] if i["digest"] == digest]
        assert entry["state"] == "recalled"
        assert entry["recalled_at"] is not None
        assert await _open(http, world, LA, "dsl", digest) == 410
        async with http.post(
            la + f"/api/v1/inbox/{digest}/acknowledge", json={}, headers=la_dsl
        ) as resp:
            assert resp.status == 410
        # The nurses opened it on the same node: the body stays for them.
        assert world.nodes["la"].service.store.blobs.path(bytes.fromhex(digest)).exists()
        assert await _open(http, world, NURSES, "staff", digest) == 200

        # The sent view shows each recipient's outcome.
        item = await sent(http, world, digest)
        recall = {r["organisation"]: r["recall"]["outcome"] for r in item["recipients"]}
        assert recall == {LA: "recalled", NURSES: "too-late"}

        # Asking again repeats nothing: the same outcomes, no new events on either side.
        again = await _recall(http, world, digest)
        assert _outcomes(again) == _outcomes(answer)
        status, repeated = await _notice(http, world, SCHOOL, LA, await _notice_body(world, digest))
        assert (status, repeated["outcome"]) == (200, "recalled")
        assert repeated["recalled_at"] == by_org[LA]["at"]
    school_events = [e for e in await _events(world, "school", digest) if e[0] == "recalled"]
    assert school_events == [(EventType.RECALLED, SCHOOL, "https:sent-in-error")]
    la_events = [e for e in await _events(world, "la", digest) if e[0] == "recalled"]
    assert la_events == [(EventType.RECALLED, LA, "sent-in-error")]


async def test_recall_deletes_the_body_nobody_else_holds(world: Deployment) -> None:
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [LA]))["digest"]
        await _delivered(http, world, digest)
        body = world.nodes["la"].service.store.blobs.path(bytes.fromhex(digest))
        assert body.exists()
        answer = await _recall(http, world, digest, role="dpo")  # the DPO may recall too
        assert _outcomes(answer) == {LA: ("recalled", "https")}
        assert not body.exists()
        assert world.nodes["school"].service.store.blobs.path(bytes.fromhex(digest)).exists()


async def test_recall_versus_open_has_one_winner(world: Deployment) -> None:
    async with client(world) as http:
        # Opened first: too late. Recalled first: gone.
        first = (await submit(http, world, b"synthetic target", [LA]))["digest"]
        second = (await submit(http, world, b"synthetic target", [LA]))["digest"]
        for digest in (first, second):
            await _delivered(http, world, digest)
        assert await _open(http, world, LA, "dsl", first) == 200
        assert _outcomes(await _recall(http, world, first)) == {LA: ("too-late", "https")}
        assert _outcomes(await _recall(http, world, second)) == {LA: ("recalled", "https")}
        assert await _open(http, world, LA, "dsl", second) == 410

        # Both at once, several times: exactly one wins each time.
        digests = [
            (await submit(http, world, f"synthetic {i}".encode(), [LA]))["digest"] for i in range(6)
        ]
        for digest in digests:
            await _delivered(http, world, digest)
        for digest in digests:
            opened, answer = await asyncio.gather(
                _open(http, world, LA, "dsl", digest), _recall(http, world, digest)
            )
            [row] = answer["recipients"]
            if opened == 200:
                assert row["outcome"] == "too-late"
            else:
                assert (opened, row["outcome"]) == (410, "recalled")
            item = await world.nodes["la"].service.store.inbox_item(LA, bytes.fromhex(digest))
            assert item is not None
            assert item.state == ("opened" if opened == 200 else "recalled")


async def test_forged_and_malformed_recall_notices_are_refused(world: Deployment) -> None:
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [LA]))["digest"]
        await _delivered(http, world, digest)
        body = await _notice_body(world, digest)
        # Signed by an organisation that is not the sender: as if the item did not exist.
        for signer in (LA, NURSES):
            status, error = await _notice(http, world, signer, LA, body)
            assert (status, error["error"]) == (404, "404")
        # Unsigned: refused before the body is read.
        url = world.url("la") + f"/peer/v1/orgs/{LA}/recalls"
        async with http.post(url, json=body) as resp:
            assert resp.status == 401
        # Signed by the sender, but wrong: the envelope id, the fields, the media type.
        status, _ = await _notice(http, world, SCHOOL, LA, {**body, "envelope_id": "0" * 32})
        assert status == 422
        status, _ = await _notice(http, world, SCHOOL, LA, {**body, "reason_code": "Not A Code"})
        assert status == 400
        status, _ = await _notice(http, world, SCHOOL, LA, {**body, "extra": 1})
        assert status == 400
        status, _ = await _notice(http, world, SCHOOL, LA, body, content_type="text/plain")
        assert status == 415
        status, _ = await _notice(http, world, SCHOOL, LA, b"x" * 2048)
        assert status == 413
        # Still there, and still openable.
        assert await _open(http, world, LA, "dsl", digest) == 200

        # Staff API refusals: roles, items of other organisations, reasons.
        la_staff = auth(world, LA, "staff")
        async with http.post(
            world.url("la") + f"/api/v1/sent/{digest}/recall", json=REASON, headers=la_staff
        ) as resp:
            assert resp.status == 403
        async with http.post(
            world.url("la") + f"/api/v1/sent/{digest}/recall",
            json=REASON,
            headers=auth(world, LA, "dsl"),
        ) as resp:
            assert resp.status == 404
        await _recall(http, world, digest, body={"reason": "UPN W356200124001"}, status=422)
        await _recall(http, world, digest, body={**REASON, "reason_code": "BAD"}, status=400)
        await _recall(http, world, "0" * 64, status=404)


# --- through a relay mailbox -----------------------------------------------------------------

RECEIVING = OrgId("urn:106124")
RELAY_ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
    OrgSpec(RECEIVING, "Moorside Primary School", "school", "receiving"),
)


@pytest.fixture
async def relay_world(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployed(
        tmp_path / "relay-world",
        {SCHOOL: ["dsl"], RECEIVING: ["dsl"]},
        orgs=RELAY_ORGS,
        delivery=dataclasses.replace(FAST_DELIVERY, collect_interval=0.1),
        routes={RECEIVING: (("mailbox", "la"),)},
        relays={"la": RelayConfig()},
    ) as deployment:
        yield deployment


@pytest.mark.network
async def test_recall_from_a_relay_before_collection(relay_world: Deployment) -> None:
    world = relay_world
    await world.nodes["receiving"].stop()
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [RECEIVING]))["digest"]

        async def handed_over() -> bool:
            [recipient] = (await sent(http, world, digest))["recipients"]
            return bool(recipient["delivery_state"] == "delivered")

        await until(handed_over, what="the deposit at the relay")
        answer = await _recall(http, world, digest)
        [row] = answer["recipients"]
        assert (row["outcome"], row["route"]) == ("recalled", "mailbox")
        assert row["at"] is not None

        await _restart(world, "receiving")
        await world.nodes["receiving"].collector.collect_once()
        assert await world.nodes["receiving"].service.store.inbox(RECEIVING, limit=10) == []
    relay = world.nodes["la"].relay
    assert relay is not None
    assert (await relay.store.counts()).get("recalled") == 1
    assert (EventType.RECALLED, SCHOOL, "mailbox:sent-in-error") in await _events(
        world, "school", digest
    )


@pytest.mark.network
async def test_recall_from_a_relay_after_collection_is_too_late(relay_world: Deployment) -> None:
    world = relay_world
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [RECEIVING]))["digest"]
        await _delivered(http, world, digest)  # collected, and "delivered" came back
        answer = await _recall(http, world, digest)
        [row] = answer["recipients"]
        assert (row["outcome"], row["route"]) == ("too-late", "mailbox")
        relay = world.nodes["la"].relay
        assert relay is not None
        status = await relay.store.item(RECEIVING, "envelope", bytes.fromhex(digest))
        assert status is not None
        assert status.fetched_at is not None
        assert row["at"] == int(status.fetched_at)
        [item] = await world.nodes["receiving"].service.store.inbox(RECEIVING, limit=10)
        assert item.state == "delivered"
    events = await _events(world, "school", digest)
    assert EventType.RECALLED not in [e[0] for e in events]


@pytest.mark.network
async def test_a_failed_recall_is_tried_again(relay_world: Deployment) -> None:
    world = relay_world
    await world.nodes["receiving"].stop()
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [RECEIVING]))["digest"]

        async def handed_over() -> bool:
            [recipient] = (await sent(http, world, digest))["recipients"]
            return bool(recipient["delivery_state"] == "delivered")

        await until(handed_over, what="the deposit at the relay")
        await world.nodes["la"].stop()  # the relay is down: it cannot be asked
        [row] = (await _recall(http, world, digest))["recipients"]
        assert (row["outcome"], row["route"]) == ("failed", "mailbox")
        assert "ask again" in row["detail"]
        await _restart(world, "la")
        [row] = (await _recall(http, world, digest))["recipients"]
        assert (row["outcome"], row["route"]) == ("recalled", "mailbox")
        [recipient] = (await sent(http, world, digest))["recipients"]
        assert recipient["recall"]["outcome"] == "recalled"
