"""A receiving school with no public endpoint, reached through a relay mailbox.

The LA node keeps relay mailboxes. The school's node deposits the sealed envelope there;
the receiving school's node collects it, signs ``delivered`` and sends it back through the
relay, where the school's node collects it. The relay going down, and a receiving node
that does not collect (overdue), lose nothing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exchange.config import RelayConfig, TasksConfig
from exchange.demo.loopback import Deployment, OrgSpec
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType, decode_event
from exchange.node.config_check import check_config
from exchange.node.runtime import Node

from .conftest import FAST_DELIVERY, LA, SCHOOL, deployed
from .helpers import auth, client, sent, submit, until
from .records import opened_note

pytestmark = pytest.mark.network

RECEIVING = OrgId("urn:106124")
ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
    OrgSpec(RECEIVING, "Moorside Primary School", "school", "receiving"),
)
DELIVERY = dataclasses.replace(FAST_DELIVERY, collect_interval=0.1, overdue_after=1.0)
#: Collection backs off after each failed round, up to a minute by default: a relay down for
#: the test's half-minute would leave the next round up to a minute away after it is back.
TASKS = TasksConfig(backoff_base=0.05, backoff_max=0.5)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployed(
        tmp_path / "world",
        {SCHOOL: ["dsl"], RECEIVING: ["dsl"]},
        orgs=ORGS,
        delivery=DELIVERY,
        routes={RECEIVING: (("mailbox", "la"),)},
        relays={"la": RelayConfig()},
        tasks=TASKS,
    ) as deployment:
        yield deployment


def _statuses(item: dict[str, Any]) -> list[str]:
    return [entry["status"] for entry in item["recipients"][0]["timeline"]]


async def _restart(world: Deployment, name: str) -> None:
    node = Node(world.nodes[name].config)
    await node.start()
    world.nodes[name] = node


async def test_through_the_relay_and_receipts_back(world: Deployment) -> None:
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic PEP target", [RECEIVING]))["digest"]

        async def delivered() -> bool:
            return "delivered" in _statuses(await sent(http, world, digest))

        await until(delivered, timeout=30.0)
        [recipient] = (await sent(http, world, digest))["recipients"]
        assert (recipient["route"], recipient["overdue"]) == ("mailbox", False)

        receiving = world.url("receiving")
        async with http.post(
            f"{receiving}/api/v1/inbox/{digest}/open", headers=auth(world, RECEIVING, "dsl")
        ) as resp:
            assert resp.status == 200
            assert opened_note(await resp.read()) == "synthetic PEP target"
        async with http.post(
            f"{receiving}/api/v1/inbox/{digest}/acknowledge",
            json={"disposition": "accepted-for-assessment"},
            headers=auth(world, RECEIVING, "dsl"),
        ) as resp:
            assert resp.status == 200, await resp.text()

        async def complete() -> bool:
            return _statuses(await sent(http, world, digest)) == [
                "delivered",
                "opened",
                "acknowledged",
            ]

        await until(complete, timeout=30.0)

    school = world.nodes["school"].service.store
    events = [decode_event(e) for _, e in await school.ledger_events_for(bytes.fromhex(digest))]
    assert (EventType.ATTEMPTED, "handed-over:mailbox") in [(e.type, e.reason) for e in events]
    # The relay holds nothing any more: the envelope and the receipt were both collected.
    relay = world.nodes["la"].relay
    assert relay is not None
    counts = await relay.store.counts()
    assert counts.get("waiting", 0) == 0
    assert counts.get("collected", 0) == 2


async def test_relay_down_then_up_delivers_each_exactly_once(world: Deployment) -> None:
    await world.nodes["la"].stop()
    async with client(world) as http:
        digests = [
            (await submit(http, world, f"synthetic target {i}".encode(), [RECEIVING]))["digest"]
            for i in range(5)
        ]
        store = world.nodes["school"].service.store

        async def retrying() -> bool:
            items = [await store.sent_item(SCHOOL, bytes.fromhex(d)) for d in digests]
            return all(i is not None and i.deliveries[0].attempts >= 2 for i in items)

        await until(retrying, timeout=30.0)
        await _restart(world, "la")

        async def all_delivered() -> bool:
            for digest in digests:
                if "delivered" not in _statuses(await sent(http, world, digest)):
                    return False
            return True

        await until(all_delivered, timeout=60.0)
    inbox = await world.nodes["receiving"].service.store.inbox(RECEIVING, limit=100)
    assert Counter(i.envelope.digest.hex() for i in inbox) == Counter(dict.fromkeys(digests, 1))


async def test_not_collected_is_overdue_until_collected(world: Deployment) -> None:
    await world.nodes["receiving"].stop()
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [RECEIVING]))["digest"]

        async def overdue() -> bool:
            [recipient] = (await sent(http, world, digest))["recipients"]
            return bool(recipient["delivery_state"] == "delivered" and recipient["overdue"])

        # Handed to the relay, but nobody collects it: overdue after overdue_after (1 s).
        await until(overdue, timeout=30.0)
        await _restart(world, "receiving")

        async def collected() -> bool:
            [recipient] = (await sent(http, world, digest))["recipients"]
            return (
                "delivered" in _statuses(await sent(http, world, digest))
                and not recipient["overdue"]
            )

        await until(collected, timeout=30.0)


async def test_a_node_reached_only_through_a_relay_passes_the_check(world: Deployment) -> None:
    """Its public_url is in no route (it collects): nothing to compare, and it is said."""
    config = world.nodes["receiving"].config
    report = check_config(config)
    assert report.problems == []
    [note] = report.notes
    assert note.startswith("node.public_url is not compared: the directory lists no https route")
