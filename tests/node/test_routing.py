"""Routing with fallback: the directory's routes in order, the next on refusal or failures.

Every fallback is an event in the ledger, and nothing is lost on the way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from exchange.demo.loopback import Deployment
from exchange.ledger.events import EventType, decode_event

from .conftest import FAST_DELIVERY, LA, SCHOOL, deployed
from .helpers import client, publish_route, sent, stand_in_peer, submit, until

pytestmark = pytest.mark.network


async def refuse(request: web.Request) -> web.StreamResponse:
    """Answer every push with 403, a final refusal."""
    del request
    return web.json_response({"error": "403", "message": "refused"}, status=403)


async def unavailable(request: web.Request) -> web.StreamResponse:
    """Answer every push with 503, a failure that may pass."""
    del request
    return web.json_response({"error": "503", "message": "down"}, status=503)


@pytest.fixture
async def routed(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the nodes with fallback after two failures on a route."""
    delivery = dataclasses.replace(FAST_DELIVERY, fallback_after=2)
    users = {SCHOOL: ["dsl"], LA: ["staff"]}
    async with deployed(tmp_path / "world", users, delivery=delivery) as world:
        yield world


async def _deliver_via(
    world: Deployment, first: str, options: dict[str, str] | None = None
) -> tuple[str, list[tuple[EventType, str | None]]]:
    """Submit one referral to the LA and wait until it is delivered; return the ledger kinds."""
    publish_route(world, LA, first, world.url("la"), options=options)
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic", [LA]))["digest"]

        async def delivered() -> bool:
            item = await sent(http, world, digest)
            return bool(item["recipients"][0]["delivery_state"] == "delivered")

        await until(delivered, timeout=20.0)
    store = world.nodes["school"].service.store
    events = [decode_event(e) for _, e in await store.ledger_events_for(bytes.fromhex(digest))]
    return digest, [(e.type, e.reason) for e in events]


async def test_refusing_route_falls_back_at_once(routed: Deployment) -> None:
    """A route answering 403 is left after one attempt; the next route delivers."""
    async with stand_in_peer(routed, refuse) as address:
        _, kinds = await _deliver_via(routed, address)
    assert kinds == [
        (EventType.SUBMITTED, None),
        (EventType.ATTEMPTED, "refused:https"),
        (EventType.FALLBACK, "https"),
        (EventType.DELIVERED, None),
    ]
    inbox = await routed.nodes["la"].service.store.inbox(LA, limit=10)
    assert len(inbox) == 1


async def test_failing_route_falls_back_after_the_configured_failures(routed: Deployment) -> None:
    """A route answering 503 is retried twice (fallback_after=2), then the next route delivers."""
    async with stand_in_peer(routed, unavailable) as address:
        digest, kinds = await _deliver_via(routed, address)
    # Every attempt is an event: two failures on the first route, the fallback, delivery.
    assert kinds == [
        (EventType.SUBMITTED, None),
        (EventType.ATTEMPTED, "retry:https"),
        (EventType.ATTEMPTED, "retry:https"),
        (EventType.FALLBACK, "https"),
        (EventType.DELIVERED, None),
    ]
    [item] = (
        await routed.nodes["school"].service.store.sent_item(SCHOOL, bytes.fromhex(digest))
    ).deliveries  # type: ignore[union-attr]
    assert item.attempts == 3
    assert item.route_index == 1
    # The sent item's status timeline shows the same events, for the DSL.
    async with client(routed) as http:
        shown = await sent(http, routed, digest)
    assert [(e["type"], e["reason"]) for e in shown["events"]] == [(k.value, r) for k, r in kinds]


async def test_a_route_may_set_its_own_fallback_after(routed: Deployment) -> None:
    """A route's directory option fallback_after=1 overrides delivery.fallback_after (2)."""
    async with stand_in_peer(routed, unavailable) as address:
        _, kinds = await _deliver_via(routed, address, {"fallback_after": "1"})
    assert kinds == [
        (EventType.SUBMITTED, None),
        (EventType.ATTEMPTED, "retry:https"),
        (EventType.FALLBACK, "https"),
        (EventType.DELIVERED, None),
    ]
