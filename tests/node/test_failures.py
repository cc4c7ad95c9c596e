"""Delivery failures against real nodes: a receiver down, dead letters, misbehaving peers.

How long an item waits after a failure is the outbox machine's (tests/outbox); these tests
check the whole path, moving a node's clock rather than waiting out an age in real time.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exchange.cli.main import main
from exchange.config import DeliveryConfig, load_config
from exchange.demo.loopback import Deployment, start_deployment
from exchange.keys.keyfile import KdfParams
from exchange.node.runtime import Node
from exchange.receipts import verify_receipt

from .conftest import LA, NURSES, ORGS, SCHOOL
from .helpers import (
    Behaviour,
    auth,
    client,
    garbage,
    get_json,
    huge,
    publish_route,
    sent,
    slow,
    stand_in_peer,
    submit,
    until,
)

pytestmark = pytest.mark.network

#: Short timeouts so a hanging peer costs a second, not thirty.
IMPATIENT = DeliveryConfig(
    batch=32, concurrency=8, timeout=1.0, backoff_base=0.2, backoff_max=0.4, poll_interval=0.02
)


async def _deployment(folder: Path, delivery: DeliveryConfig) -> Deployment:
    return await start_deployment(
        folder,
        ORGS,
        users={SCHOOL: ["dsl"], LA: ["staff"], NURSES: ["staff"]},
        delivery=delivery,
        kdf=KdfParams.fast_for_tests(),
    )


@pytest.fixture
async def impatient(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a deployment whose outbox gives up on an attempt after one second."""
    deployment = await _deployment(tmp_path / "impatient", IMPATIENT)
    yield deployment
    await deployment.stop()


#: The dead-letter age of the ``mortal`` deployment; its tests move the school's clock past it.
DEAD_LETTER_AFTER = 3600.0


@pytest.fixture
async def mortal(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a deployment whose outbox dead-letters anything older than an hour."""
    delivery = DeliveryConfig(
        timeout=1.0, backoff_base=0.05, backoff_max=0.1, poll_interval=0.02,
        dead_letter_after=DEAD_LETTER_AFTER,
    )  # fmt: skip
    deployment = await _deployment(tmp_path / "mortal", delivery)
    yield deployment
    await deployment.stop()


async def _age_past_dead_letter(world: Deployment, http: Any, digest: str) -> None:
    """Once every delivery failed once, move the school's clock past the dead-letter age."""

    async def failed_once() -> bool:
        item = await sent(http, world, digest)
        return all(r["attempts"] >= 1 and r["last_error"] for r in item["recipients"])

    await until(failed_once, what="a first failed attempt")
    school = world.nodes["school"].service
    school.clock = lambda: time.time() + DEAD_LETTER_AFTER


#: Back-off of the ``patient`` deployment: after a first failure an item waits 30 to 60 s.
PATIENT_BACKOFF = 60.0


@pytest.fixture
async def patient(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a deployment whose outbox waits at least half a minute after a failure."""
    delivery = DeliveryConfig(
        timeout=1.0, backoff_base=PATIENT_BACKOFF, backoff_max=PATIENT_BACKOFF,
        poll_interval=0.02,
    )  # fmt: skip
    deployment = await _deployment(tmp_path / "patient", delivery)
    yield deployment
    await deployment.stop()


async def test_a_receiver_back_up_gets_its_backlog_at_once_not_on_timers(
    patient: Deployment,
) -> None:
    """Items waiting half a minute or more go as soon as one delivery to the LA succeeds."""
    world = patient
    await world.nodes["la"].stop()
    async with client(world) as http:
        waiting = [
            (await submit(http, world, b'{"synthetic": "backlog %d"}' % n, [LA]))["digest"]
            for n in range(6)
        ]

        async def all_failed_once() -> bool:
            for digest in waiting:
                (entry,) = (await sent(http, world, digest))["recipients"]
                if entry["delivery_state"] != "retry-wait" or entry["attempts"] < 1:
                    return False
            return True

        await until(all_failed_once, what="a first failed attempt of each")
        world.nodes["la"] = Node(load_config(world.folder / "node-la.toml"))
        await world.nodes["la"].start()
        back = time.monotonic()
        # A new item goes at once; its delivery shows the LA answers again.
        latest = (await submit(http, world, b'{"synthetic": "after"}', [LA]))["digest"]

        async def delivered() -> bool:
            for digest in [*waiting, latest]:
                (entry,) = (await sent(http, world, digest))["recipients"]
                if entry["delivery_state"] != "delivered":
                    return False
            return True

        await until(delivered, timeout=PATIENT_BACKOFF / 2 - 5, what="the backlog delivered")
        assert time.monotonic() - back < PATIENT_BACKOFF / 2


def _recipient(item: dict[str, Any], org: str) -> dict[str, Any]:
    return next(r for r in item["recipients"] if r["organisation"] == org)


async def test_receiver_down_then_up_is_delivered_once(world: Deployment) -> None:
    """While the LA node is down the item waits and retries; once it is back it arrives once."""
    await world.nodes["la"].stop()
    async with client(world) as http:
        submitted = await submit(http, world, b'{"synthetic": "down-then-up"}', [LA, NURSES])
        digest = submitted["digest"]

        seen: list[int] = []

        async def retrying() -> bool:
            item = await sent(http, world, digest)
            seen.append(min(r["attempts"] for r in item["recipients"]))
            return all(
                r["delivery_state"] == "retry-wait" and r["attempts"] >= 3
                for r in item["recipients"]
            )

        await until(retrying, what="waiting to retry after three failed attempts")
        assert seen == sorted(seen), "attempts never go down"
        item = await sent(http, world, digest)
        for org in (LA, NURSES):
            entry = _recipient(item, org)
            assert entry["delivery_state"] != "delivered"
            assert entry["last_error"]
            assert entry["timeline"] == []

        world.nodes["la"] = Node(load_config(world.folder / "node-la.toml"))
        await world.nodes["la"].start()

        async def delivered() -> bool:
            item = await sent(http, world, digest)
            return all(r["delivery_state"] == "delivered" for r in item["recipients"])

        await until(delivered, what="delivery after the restart")
        item = await sent(http, world, digest)
        for org in (LA, NURSES):
            assert [t["status"] for t in _recipient(item, org)["timeline"]] == ["delivered"]

        held = await get_json(
            http,
            world.url("school") + f"/api/v1/envelopes/{digest}/receipts",
            auth(world, SCHOOL, "dsl"),
        )
        assert world.directory is not None
        envelope_id = bytes.fromhex(item["envelope_id"])
        for receipt in held["receipts"]:
            verified = verify_receipt(
                base64.b64decode(receipt["receipt"]),
                expected_digest=bytes.fromhex(digest),
                expected_envelope_id=envelope_id,
                sender=SCHOOL,
                recipients=(LA, NURSES),
                directory=world.directory,
                now=int(time.time()),
            )
            assert verified.status.value == "delivered"
        assert sorted(r["organisation"] for r in held["receipts"]) == sorted([LA, NURSES])

        for org, role in ((LA, "staff"), (NURSES, "staff")):
            inbox = await get_json(http, world.url("la") + "/api/v1/inbox", auth(world, org, role))
            assert [i["digest"] for i in inbox["items"]] == [digest]


async def test_dead_letter_after_the_configured_age(mortal: Deployment) -> None:
    """An item that cannot be delivered within dead_letter_after becomes dead, seen in /metrics."""
    world = mortal
    await world.nodes["la"].stop()
    async with client(world) as http:
        digest = (await submit(http, world, b'{"synthetic": "dead"}', [LA, NURSES]))["digest"]
        await _age_past_dead_letter(world, http, digest)

        async def dead() -> bool:
            item = await sent(http, world, digest)
            return all(r["delivery_state"] == "dead" for r in item["recipients"])

        await until(dead, what="dead letters")
        item = await sent(http, world, digest)
        assert all(r["attempts"] >= 1 and r["last_error"] for r in item["recipients"])
        async with http.get(world.ops_url("school") + "/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        assert re.search(r'^exchange_outbox_items\{state="dead"\} 2$', text, re.MULTILINE), text
        assert re.search(r'^exchange_deliveries_total\{outcome="dead"\} 2$', text, re.MULTILINE)
        assert re.search(r'^exchange_outbox_items\{state="delivered"\} 0$', text, re.MULTILINE)


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        pytest.param(garbage, "receipt was refused", id="garbage"),
        pytest.param(slow(5.0), "could not reach the peer", id="slow"),
        pytest.param(huge, "larger than", id="oversized"),
    ],
)
async def test_misbehaving_peer_is_retried_never_delivered(
    impatient: Deployment, behaviour: Behaviour, error: str
) -> None:
    """A peer that answers garbage, too slowly or too much is retried and never delivered."""
    world = impatient
    async with stand_in_peer(world, behaviour) as address, client(world) as http:
        publish_route(world, NURSES, address)
        started = time.monotonic()
        digest = (await submit(http, world, b'{"synthetic": "bad peer"}', [NURSES]))["digest"]

        async def retried() -> bool:
            entry = _recipient(await sent(http, world, digest), NURSES)
            assert entry["delivery_state"] != "delivered"
            return entry["attempts"] >= 2 and entry["delivery_state"] == "retry-wait"

        await until(retried, timeout=20.0, what="waiting to retry after a second attempt")
        entry = _recipient(await sent(http, world, digest), NURSES)
        assert entry["delivery_state"] in {"retry-wait", "attempting"}
        assert error in entry["last_error"]
        assert entry["timeline"] == []
        # Two attempts bounded by the one-second timeout each, plus backoff and slack.
        assert time.monotonic() - started < 15.0
        inbox = await get_json(
            http, world.url("la") + "/api/v1/inbox", auth(world, NURSES, "staff")
        )
        assert inbox["items"] == []


async def test_dead_items_are_requeued_and_delivered_once_the_cause_is_fixed(
    mortal: Deployment,
) -> None:
    """`exchange outbox requeue` gives dead items a fresh start; they are then delivered."""
    world = mortal
    await world.nodes["la"].stop()
    async with client(world) as http:
        digest = (await submit(http, world, b'{"synthetic": "requeue"}', [LA, NURSES]))["digest"]
        await _age_past_dead_letter(world, http, digest)

        async def state_is(state: str) -> bool:
            item = await sent(http, world, digest)
            return all(r["delivery_state"] == state for r in item["recipients"])

        await until(lambda: state_is("dead"), what="dead letters")
        # Back to the real time: peers refuse requests signed an hour in the future.
        world.nodes["school"].service.clock = time.time
        world.nodes["la"] = Node(load_config(world.folder / "node-la.toml"))
        await world.nodes["la"].start()
        argv = ["outbox", "requeue", "--config", str(world.folder / "node-school.toml"), digest]
        assert await asyncio.to_thread(main, argv) == 0
        await until(lambda: state_is("delivered"), what="delivery after the requeue")
    inbox = await world.nodes["la"].service.store.inbox(LA, limit=10)
    assert [i.envelope.digest.hex() for i in inbox] == [digest]
