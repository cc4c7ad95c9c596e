"""Back-pressure on real nodes: the staff API says busy while the outbox is behind.

The school node's ``[delivery] max_backlog`` is 2. Its outbox is held (no attempts:
:func:`tests.held_outbox.outbox_held`), so envelopes for the front door wait as they would
behind a busy outbox; a destination whose node does not answer (the nurses, routed to a
stand-in that answers garbage) is not counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exchange.demo.loopback import Deployment
from exchange.service.busy import MAX_RETRY_AFTER, MIN_RETRY_AFTER
from tests.held_outbox import outbox_held
from tests.node.conftest import FAST_DELIVERY, LA, NURSES, SCHOOL, deployed
from tests.node.helpers import (
    auth,
    client,
    garbage,
    publish_route,
    stand_in_peer,
    submission,
    until,
)

pytestmark = pytest.mark.network

LIMIT = 2


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the school and LA nodes, the school's outbox limited to ``LIMIT`` waiting."""
    delivery = replace(FAST_DELIVERY, max_backlog=LIMIT)
    async with deployed(tmp_path / "world", {SCHOOL: ["dsl"]}, delivery=delivery) as deployment:
        yield deployment


async def _post(
    http: aiohttp.ClientSession, world: Deployment, to: str, n: int
) -> tuple[int, dict[str, str], Any]:
    """Submit a synthetic record to ``to``; return the status, headers and JSON answer."""
    body = submission(f'{{"synthetic": "busy {n}"}}'.encode(), [to])
    async with http.post(
        world.url("school") + "/api/v1/envelopes", json=body, headers=auth(world, SCHOOL, "dsl")
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def _sent_count(world: Deployment) -> int:
    return len(await world.nodes["school"].service.store.list_sent(SCHOOL, limit=100))


async def test_a_node_behind_answers_503_with_retry_after_then_accepts_once_drained(
    world: Deployment,
) -> None:
    """At the limit: 503, Retry-After, one sentence, nothing sealed; drained: 202 again."""
    store = world.nodes["school"].service.store
    async with client(world) as http:
        with outbox_held(world.nodes["school"]):
            for n in range(LIMIT):
                status, _, _ = await _post(http, world, LA, n)
                assert status == 202
            assert store.outbox_backlog == {LA: LIMIT}
            status, headers, answer = await _post(http, world, LA, 99)
            assert status == 503
            assert MIN_RETRY_AFTER <= int(headers["Retry-After"]) <= MAX_RETRY_AFTER
            assert answer == {
                "error": {
                    "status": 503,
                    "message": "the node is busy: its outbox has too much waiting for "
                    f"delivery, so nothing was sent; try again in {headers['Retry-After']} "
                    "seconds",
                }
            }
            assert await _sent_count(world) == LIMIT
            # A correction is a new envelope too: refused the same way, before its body.
            [item] = await store.list_sent(SCHOOL, limit=1)
            async with http.post(
                world.url("school") + f"/api/v1/sent/{item.envelope.digest.hex()}/rectify",
                json={"record": {}, "reason": "A corrected date of birth."},
                headers=auth(world, SCHOOL, "dsl"),
            ) as resp:
                assert resp.status == 503
                assert "Retry-After" in resp.headers
                assert (await resp.json())["error"]["message"].startswith("the node is busy")
            assert await _sent_count(world) == LIMIT

        async def drained() -> bool:
            return not store.outbox_backlog

        await until(drained, what="the outbox to deliver its backlog")
        status, _, _ = await _post(http, world, LA, 100)
        assert status == 202
        assert await _sent_count(world) == LIMIT + 1


async def test_a_destination_that_does_not_answer_does_not_make_the_node_busy(
    world: Deployment,
) -> None:
    """Items waiting for a node that is down are not counted; the front door's still are."""
    service = world.nodes["school"].service
    async with stand_in_peer(world, garbage) as address, client(world) as http:
        publish_route(world, NURSES, address)
        for n in range(LIMIT):
            status, _, _ = await _post(http, world, NURSES, n)
            assert status == 202

        async def nurses_down() -> bool:
            return NURSES in service.backpressure.down

        await until(nurses_down, what="a failed attempt to the nurses")
        # Beyond the limit for the nurses, who do not answer: still taken, for them and the LA.
        for n in range(LIMIT, 2 * LIMIT):
            status, _, _ = await _post(http, world, NURSES, n)
            assert status == 202
        assert service.store.outbox_backlog[NURSES] == 2 * LIMIT
        with outbox_held(world.nodes["school"]):
            for n in range(LIMIT):
                status, _, _ = await _post(http, world, LA, 100 + n)
                assert status == 202
            # The front door answers (it was never tried and failed): its backlog counts.
            status, headers, _ = await _post(http, world, LA, 200)
            assert status == 503
            assert "Retry-After" in headers
