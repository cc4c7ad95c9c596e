"""The conformance suite every connector passes (docs/exchange.connectors.md §4).

A connector joins by subclassing :class:`ConnectorConformance` (push only) or
:class:`PullConnectorConformance` (push, collect and acknowledge) in a ``test_*.py`` module,
under a name starting with ``Test``, and providing a ``harness`` fixture that yields an
object with the :class:`Harness` shape: the connector under test, the address of a
destination it can reach, a switch that makes that destination accept, go down, refuse or
answer slowly, and a view of what the destination stored. The suite's classes do not start
with ``Test``, so pytest collects them only through a subclass.

What the suite pins:

- success is :class:`Delivered` and the destination holds the body, byte for byte;
- a redelivery of the same message id (a retry after a lost answer, or two racing
  attempts) is :class:`Delivered` again and the destination holds one copy;
- a refusing destination gives :class:`Refused`, a transport failure :class:`RetryLater`,
  and a destination that comes back takes the message (nothing lost);
- a slow destination gives :class:`RetryLater` within ``timeout`` plus :data:`SLACK`,
  measured with the event loop's clock; no attempt hangs;
- a closed connector raises :class:`ConnectorError`;
- pull connectors: collect returns what was delivered and keeps it until acknowledged,
  acknowledging removes it, and acknowledging twice is harmless.

Every message's id is the SHA-256 of its body, as an envelope's id is its digest, so a
destination that de-duplicates by id and one that de-duplicates by content agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import ClassVar, Literal, Protocol

import pytest

from exchange.connectors.base import (
    Connector,
    ConnectorError,
    Delivered,
    Message,
    MessageKind,
    PullConnector,
    Refused,
    RetryLater,
)
from exchange.keys.ids import OrgId

Mode = Literal["accept", "down", "refuse", "slow"]

ORIGIN = OrgId("urn:100001")
DESTINATION = OrgId("la:999")

#: Scheduling slack allowed past a deadline: generous for a loaded 2-core CI machine, and
#: still far below what a hang (or a forgotten deadline) would take.
SLACK = 1.5

#: A guard on every call in the suite, so a connector that hangs fails instead of stalling.
GUARD = 30.0


class Harness(Protocol):
    """What a connector's test module provides to the suite."""

    @property
    def connector(self) -> Connector:
        """The connector under test."""
        ...

    @property
    def address(self) -> str:
        """The route address of a destination that serves :data:`DESTINATION`."""
        ...

    async def set_mode(self, mode: Mode) -> None:
        """Make the destination accept, go down, refuse, or hold requests past any deadline."""
        ...

    async def received(self, destination: OrgId) -> list[tuple[MessageKind, bytes]]:
        """Return what the destination stored for ``destination``, once each, in order."""
        ...


class PullHarness(Harness, Protocol):
    """A harness whose destination can be collected from."""

    @property
    def collector(self) -> PullConnector:
        """A connector of the destination's node, collecting for :data:`DESTINATION`."""
        ...


def message(body: bytes, kind: MessageKind = "envelope") -> Message:
    """Return a message from :data:`ORIGIN` to :data:`DESTINATION` whose id is its digest."""
    return Message(kind, hashlib.sha256(body).digest(), ORIGIN, DESTINATION, body)


async def deliver(harness: Harness, msg: Message, timeout: float) -> object:
    """Deliver ``msg`` under the suite's guard and return the outcome."""
    async with asyncio.timeout(timeout + GUARD):
        return await harness.connector.deliver(msg, harness.address, timeout=timeout)


BODIES = {
    "empty": b"",
    "every-byte-value": bytes(range(256)) * 4,
    "one-mebibyte": random.Random(20240501).randbytes(1024 * 1024),
}


class ConnectorConformance:
    """The suite for every connector; subclass it and provide a ``harness`` fixture."""

    #: Deadline used for each attempt, in seconds.
    timeout: ClassVar[float] = 5.0
    #: Deadline used against a slow destination; short, so the suite stays fast.
    slow_timeout: ClassVar[float] = 0.4
    #: Whether a redelivery answers the first delivery's transport_ref (false for a
    #: transport that mints a new id per request and de-duplicates only at the receiver).
    stable_transport_ref: ClassVar[bool] = True

    async def test_is_a_connector(self, harness: Harness) -> None:
        """The connector satisfies the protocol and names its route kind."""
        assert isinstance(harness.connector, Connector)
        assert isinstance(harness.connector.route_kind, str)
        assert harness.connector.route_kind

    async def test_success_is_delivered(self, harness: Harness) -> None:
        """A destination that accepts gives Delivered and holds the message once."""
        outcome = await deliver(harness, message(b"sealed bytes"), self.timeout)
        assert isinstance(outcome, Delivered)
        assert await harness.received(DESTINATION) == [("envelope", b"sealed bytes")]

    async def test_receipt_is_delivered_as_a_receipt(self, harness: Harness) -> None:
        """A receipt travels as a receipt, not as an envelope."""
        outcome = await deliver(harness, message(b"signed receipt", "receipt"), self.timeout)
        assert isinstance(outcome, Delivered)
        assert await harness.received(DESTINATION) == [("receipt", b"signed receipt")]

    @pytest.mark.parametrize("name", sorted(BODIES))
    async def test_body_arrives_unchanged(self, harness: Harness, name: str) -> None:
        """The destination holds exactly the bytes sent, whatever they are."""
        body = BODIES[name]
        outcome = await deliver(harness, message(body), self.timeout)
        assert isinstance(outcome, Delivered)
        assert await harness.received(DESTINATION) == [("envelope", body)]

    async def test_redelivery_is_stored_once(self, harness: Harness) -> None:
        """Delivering the same message id twice is Delivered twice and stored once."""
        msg = message(b"the same envelope")
        first = await deliver(harness, msg, self.timeout)
        second = await deliver(harness, msg, self.timeout)
        assert isinstance(first, Delivered)
        assert isinstance(second, Delivered)
        assert second.receipt == first.receipt
        if self.stable_transport_ref:
            assert second.transport_ref == first.transport_ref
        assert await harness.received(DESTINATION) == [("envelope", b"the same envelope")]

    async def test_racing_redeliveries_are_stored_once(self, harness: Harness) -> None:
        """Concurrent attempts of one message id all succeed and leave one copy."""
        msg = message(b"raced envelope")
        outcomes = await asyncio.gather(*(deliver(harness, msg, self.timeout) for _ in range(5)))
        assert all(isinstance(o, Delivered) for o in outcomes)
        assert await harness.received(DESTINATION) == [("envelope", b"raced envelope")]

    async def test_distinct_messages_are_all_stored(self, harness: Harness) -> None:
        """Different message ids are different messages, each stored."""
        for body in (b"first", b"second", b"third"):
            assert isinstance(await deliver(harness, message(body), self.timeout), Delivered)
        received = await harness.received(DESTINATION)
        assert sorted(body for _, body in received) == [b"first", b"second", b"third"]

    async def test_refusal_is_refused(self, harness: Harness) -> None:
        """A destination that refuses gives Refused and stores nothing."""
        await harness.set_mode("refuse")
        outcome = await deliver(harness, message(b"unwanted"), self.timeout)
        assert isinstance(outcome, Refused)
        assert outcome.reason
        assert await harness.received(DESTINATION) == []

    async def test_transport_failure_retries(self, harness: Harness) -> None:
        """A destination that cannot be reached gives RetryLater and stores nothing."""
        await harness.set_mode("down")
        outcome = await deliver(harness, message(b"not yet"), self.timeout)
        assert isinstance(outcome, RetryLater)
        assert outcome.reason
        assert await harness.received(DESTINATION) == []

    async def test_destination_back_up_takes_the_message(self, harness: Harness) -> None:
        """A retry after the destination comes back delivers the message, once."""
        msg = message(b"eventually")
        await harness.set_mode("down")
        assert isinstance(await deliver(harness, msg, self.timeout), RetryLater)
        await harness.set_mode("accept")
        assert isinstance(await deliver(harness, msg, self.timeout), Delivered)
        assert await harness.received(DESTINATION) == [("envelope", b"eventually")]

    async def test_slow_destination_meets_the_deadline(self, harness: Harness) -> None:
        """A destination slower than the deadline gives RetryLater within timeout + slack."""
        await harness.set_mode("slow")
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await deliver(harness, message(b"too slow"), self.slow_timeout)
        elapsed = loop.time() - started
        assert isinstance(outcome, RetryLater)
        assert elapsed <= self.slow_timeout + SLACK, f"took {elapsed:.2f}s"

    async def test_closed_connector_raises(self, harness: Harness) -> None:
        """After close, deliver raises ConnectorError; closing twice is fine."""
        await harness.connector.close()
        await harness.connector.close()
        with pytest.raises(ConnectorError):
            await deliver(harness, message(b"after close"), self.timeout)

    async def test_timeout_must_be_positive(self, harness: Harness) -> None:
        """A deadline of zero or less is the caller's mistake, named as such."""
        with pytest.raises(ValueError, match="timeout"):
            await harness.connector.deliver(message(b"x"), harness.address, timeout=0)


class PullConnectorConformance(ConnectorConformance):
    """The suite for pull connectors: the push tests plus collect and acknowledge."""

    async def test_is_a_pull_connector(self, harness: PullHarness) -> None:
        """The collector satisfies the pull protocol."""
        assert isinstance(harness.collector, PullConnector)

    async def test_collect_returns_delivered_messages(self, harness: PullHarness) -> None:
        """What was delivered is collected with its kind, parties and bytes."""
        await deliver(harness, message(b"an envelope"), self.timeout)
        await deliver(harness, message(b"a receipt", "receipt"), self.timeout)
        found = await harness.collector.collect(limit=10, timeout=self.timeout)
        assert sorted((c.kind, c.body) for c in found) == [
            ("envelope", b"an envelope"),
            ("receipt", b"a receipt"),
        ]
        assert all(c.destination == DESTINATION for c in found)
        assert all(c.origin in {ORIGIN, None} for c in found)
        assert len({c.transport_ref for c in found}) == 2

    async def test_collect_honours_the_limit(self, harness: PullHarness) -> None:
        """Collect returns at most ``limit`` messages; the rest wait."""
        for body in (b"one", b"two", b"three"):
            await deliver(harness, message(body), self.timeout)
        first = await harness.collector.collect(limit=2, timeout=self.timeout)
        assert len(first) == 2
        for item in first:
            await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)
        rest = await harness.collector.collect(limit=2, timeout=self.timeout)
        assert len(rest) == 1
        assert {c.body for c in [*first, *rest]} == {b"one", b"two", b"three"}

    async def test_acknowledge_removes(self, harness: PullHarness) -> None:
        """An acknowledged message is not collected again."""
        await deliver(harness, message(b"stored safely"), self.timeout)
        (item,) = await harness.collector.collect(limit=10, timeout=self.timeout)
        await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)
        assert not await harness.collector.collect(limit=10, timeout=self.timeout)

    async def test_unacknowledged_is_collected_again(self, harness: PullHarness) -> None:
        """A message collected but not acknowledged (a crash before storing) comes back."""
        await deliver(harness, message(b"at least once"), self.timeout)
        (first,) = await harness.collector.collect(limit=10, timeout=self.timeout)
        (again,) = await harness.collector.collect(limit=10, timeout=self.timeout)
        assert again.transport_ref == first.transport_ref
        assert again.body == first.body == b"at least once"

    async def test_acknowledge_twice_is_fine(self, harness: PullHarness) -> None:
        """Acknowledging the same message twice does nothing the second time."""
        await deliver(harness, message(b"acked twice"), self.timeout)
        (item,) = await harness.collector.collect(limit=10, timeout=self.timeout)
        await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)
        await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)
        assert not await harness.collector.collect(limit=10, timeout=self.timeout)

    async def test_closed_collector_raises(self, harness: PullHarness) -> None:
        """After close, collect and acknowledge raise ConnectorError."""
        await deliver(harness, message(b"waiting"), self.timeout)
        (item,) = await harness.collector.collect(limit=10, timeout=self.timeout)
        await harness.collector.close()
        with pytest.raises(ConnectorError):
            await harness.collector.collect(limit=10, timeout=self.timeout)
        with pytest.raises(ConnectorError):
            await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)
