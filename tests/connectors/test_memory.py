"""The in-memory connector: the conformance suite, plus what fast tests rely on."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.connectors.base import Collected, Delivered, Message, MessageKind, Refused, RetryLater
from exchange.connectors.memory import MemoryConnector, MemoryNetwork
from exchange.connectors.memory import Mode as EndpointMode
from exchange.keys.ids import OrgId

from .conformance import (
    DESTINATION,
    ORIGIN,
    Mode,
    PullConnectorConformance,
    RecallConformance,
    TrackConformance,
    message,
)

ADDRESS = "relay.test"
_MODES: dict[Mode, EndpointMode] = {
    "accept": "up",
    "down": "down",
    "refuse": "refuse",
    "slow": "slow",
}


@dataclass
class MemoryHarness:
    """A sender's connector and the destination node's collector on one network."""

    network: MemoryNetwork
    connector: MemoryConnector
    collector: MemoryConnector
    address: str = ADDRESS

    async def set_mode(self, mode: Mode) -> None:
        """Set the endpoint's failure mode."""
        self.network.set_mode(self.address, _MODES[mode])

    async def received(self, destination: OrgId) -> list[tuple[MessageKind, bytes]]:
        """Return every message stored for ``destination``."""
        return [(m.kind, m.body) for m in self.network.delivered(destination)]


class TestMemoryConformance(PullConnectorConformance, RecallConformance, TrackConformance):
    """MemoryConnector passes the suite every connector passes."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[MemoryHarness]:
        """Yield a fresh network with a sender and a collector for the destination."""
        network = MemoryNetwork()
        harness = MemoryHarness(
            network, MemoryConnector(network), MemoryConnector(network, collects_for=[DESTINATION])
        )
        yield harness
        await harness.connector.close()
        await harness.collector.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(st.binary(max_size=4096), min_size=1, max_size=5))
def test_bodies_arrive_unchanged(bodies: list[bytes]) -> None:
    """Whatever bytes are delivered are collected unchanged, each distinct body once."""

    async def scenario() -> list[bytes]:
        network = MemoryNetwork()
        sender = MemoryConnector(network)
        receiver = MemoryConnector(network, collects_for=[DESTINATION])
        for body in bodies:
            assert isinstance(await sender.deliver(message(body), ADDRESS, timeout=5), Delivered)
        found = await receiver.collect(limit=len(bodies), timeout=5)
        return [c.body for c in found]

    assert asyncio.run(scenario()) == list(dict.fromkeys(bodies))


async def test_network_is_shared_by_several_connectors() -> None:
    """Two senders' messages reach one collector; each collector sees only its own orgs."""
    network = MemoryNetwork()
    school, nurses = OrgId("urn:106123"), OrgId("ods:X26ABC")
    first, second = MemoryConnector(network), MemoryConnector(network)
    la_node = MemoryConnector(network, collects_for=[DESTINATION])
    nurse_node = MemoryConnector(network, collects_for=[nurses])
    await first.deliver(message(b"from the first"), ADDRESS, timeout=5)
    to_nurses = Message("envelope", b"n" * 32, school, nurses, b"for the nurses")
    await second.deliver(to_nurses, "another.relay", timeout=5)
    assert [c.body for c in await la_node.collect(limit=10, timeout=5)] == [b"from the first"]
    assert await nurse_node.collect(limit=10, timeout=5) == [
        Collected("memory-00000002", "envelope", school, nurses, b"for the nurses")
    ]


async def test_only_the_owner_can_acknowledge() -> None:
    """A connector acknowledging another organisation's message removes nothing."""
    network = MemoryNetwork()
    owner = MemoryConnector(network, collects_for=[DESTINATION])
    stranger = MemoryConnector(network, collects_for=[OrgId("urn:200002")])
    await owner.deliver(message(b"private"), ADDRESS, timeout=5)
    (item,) = await owner.collect(limit=10, timeout=5)
    await stranger.acknowledge(item.transport_ref, timeout=5)
    assert [c.body for c in await owner.collect(limit=10, timeout=5)] == [b"private"]


async def test_redelivery_after_acknowledgement_is_not_stored_again() -> None:
    """A late retry of an id already collected and acknowledged stores nothing new."""
    network = MemoryNetwork()
    node = MemoryConnector(network, collects_for=[DESTINATION])
    msg = message(b"late retry")
    first = await node.deliver(msg, ADDRESS, timeout=5)
    (item,) = await node.collect(limit=10, timeout=5)
    await node.acknowledge(item.transport_ref, timeout=5)
    again = await node.deliver(msg, ADDRESS, timeout=5)
    assert again == first == Delivered(transport_ref=item.transport_ref)
    assert not await node.collect(limit=10, timeout=5)
    assert network.delivered(DESTINATION) == [msg]


async def test_same_id_to_two_destinations_is_two_messages() -> None:
    """Idempotency is per destination: one envelope to two recipients is stored for each."""
    network = MemoryNetwork()
    sender = MemoryConnector(network)
    other = OrgId("ods:X26ABC")
    msg = message(b"to both")
    await sender.deliver(msg, ADDRESS, timeout=5)
    copy = Message("envelope", msg.message_id, ORIGIN, other, msg.body)
    await sender.deliver(copy, ADDRESS, timeout=5)
    assert len(network.delivered(DESTINATION)) == len(network.delivered(other)) == 1


async def test_failure_modes_are_per_address() -> None:
    """One endpoint down or refusing leaves another endpoint to the same mailbox working."""
    network = MemoryNetwork()
    sender = MemoryConnector(network)
    network.set_mode("down.relay", "down")
    network.set_mode("strict.relay", "refuse")
    assert isinstance(await sender.deliver(message(b"a"), "down.relay", timeout=5), RetryLater)
    assert isinstance(await sender.deliver(message(b"a"), "strict.relay", timeout=5), Refused)
    assert isinstance(await sender.deliver(message(b"a"), ADDRESS, timeout=5), Delivered)
    assert network.mode(ADDRESS) == "up"


async def test_slow_endpoint_within_the_deadline_delivers() -> None:
    """A slow endpoint that answers before the deadline delivers."""
    network = MemoryNetwork(slow_seconds=0.01)
    network.set_mode(ADDRESS, "slow")
    sender = MemoryConnector(network)
    assert isinstance(await sender.deliver(message(b"slowly"), ADDRESS, timeout=5), Delivered)
    assert [m.body for m in network.waiting(DESTINATION)] == [b"slowly"]


async def test_misuse_is_named() -> None:
    """An unknown mode and a limit below one are the caller's mistakes."""
    network = MemoryNetwork()
    with pytest.raises(ValueError, match="mode"):
        network.set_mode(ADDRESS, "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        await MemoryConnector(network).collect(limit=0, timeout=5)


def test_message_ids_are_digests() -> None:
    """The suite's messages carry their body's digest as id, as envelopes do."""
    assert message(b"x").message_id == hashlib.sha256(b"x").digest()
