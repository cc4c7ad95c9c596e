"""The collector speaks only the connector port: memory fakes in, no sockets, no store.

It takes what a pull connector collected and acknowledges it, carries on past a connector
whose collect raises the port's ``CollectError``, puts back in the outbox what a
non-delivery report names, and counts what connectors leave unread, whatever the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from exchange.config import DeliveryConfig
from exchange.connectors.base import Collected, CollectError, NonDelivery
from exchange.connectors.memory import MemoryConnector, MemoryNetwork
from exchange.keys.ids import OrgId
from exchange.outbox.routing import Routes
from exchange.service.node_service import NodeService
from exchange.workers.collect import Collector

from .conformance import DESTINATION, message

ADDRESS = "relay.test"


@dataclass
class FakeStore:
    """Records the outbox items a report asked to reopen."""

    reopened: list[tuple[str, str, str]] = field(default_factory=list)

    async def reopen_handed_over(self, route: str, ref: str, *, now: float, error: str) -> None:
        """Record the request; no item matches, as for a report of a message already settled."""
        del now
        self.reopened.append((route, ref, error))


@dataclass
class FakeService:
    """The two use cases the collector calls, recording what they were given."""

    store: FakeStore = field(default_factory=FakeStore)
    envelopes: list[bytes] = field(default_factory=list)
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    #: The node's envelope limit: a collection round gets the time to download one this big.
    max_envelope_bytes: int = 64 * 1024 * 1024

    def clock(self) -> float:
        """Return a fixed time: the collector only passes it on."""
        return 1_700_000_000.0

    async def receive_collected(self, destination: OrgId, body: bytes, route: str) -> None:
        """Take a collected envelope."""
        del destination, route
        self.envelopes.append(body)

    async def receive_receipt(self, peer: OrgId | None, destination: OrgId, body: bytes) -> None:
        """Take a collected receipt (none in these tests)."""
        del peer, destination, body
        raise AssertionError("no receipt is sent in these tests")


class Unreachable(MemoryConnector):
    """A pull connector whose collect always fails as a transport that cannot be reached."""

    route_kind: str = "unreachable"

    async def collect(self, *, limit: int, timeout: float) -> Sequence[Collected]:
        """Fail as the port says a pull transport fails."""
        del limit, timeout
        raise CollectError("could not reach the relay (ClientConnectorError)", retry=True)


def collector(service: FakeService, *connectors: MemoryConnector) -> Collector:
    """Return a collector over ``connectors``, each under its own route kind."""
    shared = {f"pull-{i}": c for i, c in enumerate(connectors)}
    return Collector(cast(NodeService, service), Routes(shared), DeliveryConfig(timeout=5.0))


async def test_collected_messages_are_taken_then_acknowledged() -> None:
    """What waits is handed to the service and acknowledged after it was taken."""
    network = MemoryNetwork()
    await MemoryConnector(network).deliver(message(b"sealed"), ADDRESS, timeout=5)
    service = FakeService()
    taken = await collector(
        service, MemoryConnector(network, collects_for=[DESTINATION])
    ).collect_once()
    assert (taken, service.envelopes) == (1, [b"sealed"])
    assert network.waiting(DESTINATION) == []


async def test_a_collect_error_does_not_stop_the_other_connectors() -> None:
    """A connector raising CollectError is counted as a failed round; the next one collects."""
    network = MemoryNetwork()
    await MemoryConnector(network).deliver(message(b"still collected"), ADDRESS, timeout=5)
    service = FakeService()
    worker = collector(
        service, Unreachable(network), MemoryConnector(network, collects_for=[DESTINATION])
    )
    assert await worker.collect_once() == 1
    assert worker.stats.failed_rounds == 1
    assert service.envelopes == [b"still collected"]


async def test_a_non_delivery_report_reopens_and_is_acknowledged() -> None:
    """A report is handed to the store with its reason and route, then acknowledged."""
    network = MemoryNetwork()
    report = NonDelivery("report-1", "sent-1", None, "14", "TRANSFER", "undelivered (code 14)")
    network.report_undelivered(DESTINATION, report)
    pull = MemoryConnector(network, collects_for=[DESTINATION])
    service = FakeService()
    await collector(service, pull).collect_once()
    assert service.store.reopened == [("memory", "sent-1", "undelivered (code 14)")]
    assert list(pull.non_delivery_reports()) == []


async def test_unread_messages_are_counted_across_connectors() -> None:
    """What any pull connector leaves unread is counted for the operator."""
    network = MemoryNetwork()
    network.leave_unread(DESTINATION, "odd-1", "a workflow this node does not serve")
    worker = collector(FakeService(), MemoryConnector(network, collects_for=[DESTINATION]))
    await worker.collect_once()
    assert worker.stats.mesh_unread == 1
