"""The conformance suite every connector passes (docs/connectors.md §4).

A connector joins by subclassing :class:`ConnectorConformance` (push only) or
:class:`PullConnectorConformance` (push, collect and acknowledge), and
:class:`RecallConformance` and :class:`TrackConformance` too if it has those capabilities,
in a ``test_*.py`` module, under a name starting with ``Test``, and providing a ``harness``
fixture that yields an object with the :class:`Harness` shape: the connector under test,
the address of a destination it can reach, a switch that makes that destination accept, go
down, refuse or answer slowly, and a view of what the destination stored. The suite's
classes do not start with ``Test``, so pytest collects them only through a subclass.

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
  acknowledging removes it, and acknowledging twice is harmless; what is left unread and
  the non-delivery reports are listed through the port (empty in a healthy exchange);
- recallable connectors: the sender withdraws a message nobody took yet (``recalled``, and
  again ``recalled``), anyone else or an unknown id learns ``unknown``, a message already
  collected is ``too-late``, an unreachable far side raises
  :class:`~exchange.connectors.base.RecallError` that may pass later;
- trackable connectors: status follows a message from ``waiting`` through ``collected``
  or ``recalled``, and is ``unknown`` to anyone but the sender.

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
    HeldBody,
    Message,
    MessageKind,
    PullConnector,
    Recallable,
    RecallError,
    RecallRequest,
    Refused,
    RetryLater,
    SentItem,
    Trackable,
)
from exchange.keys.ids import OrgId

Mode = Literal["accept", "down", "refuse", "slow"]

ORIGIN = OrgId("urn:100001")
DESTINATION = OrgId("la:999")
#: Neither sender nor destination: an outsider to every suite message.
OUTSIDER = OrgId("ods:X26ABC")

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


def held(body: bytes | HeldBody) -> bytes:
    """Return a collected body's bytes, reading (and closing) its spool if it has one."""
    if isinstance(body, bytes):
        return body
    try:
        return body.read(body.length)
    finally:
        body.close()


def item_of(msg: Message, sender: OrgId = ORIGIN) -> SentItem:
    """Return ``msg`` as ``sender`` names it to ask about it."""
    return SentItem(msg.message_id, sender, msg.destination, msg.kind)


def recall_of(msg: Message, sender: OrgId = ORIGIN) -> RecallRequest:
    """Return ``sender``'s recall of ``msg``, with a notice's envelope id, reason and time."""
    return RecallRequest(item_of(msg, sender), bytes(16), "sent-in-error", 1_700_000_000)


def recaller(harness: Harness) -> Recallable:
    """Return the harness's connector as the recallable it must be."""
    connector = harness.connector
    assert isinstance(connector, Recallable)
    return connector


def tracker(harness: Harness) -> Trackable:
    """Return the harness's connector as the trackable it must be."""
    connector = harness.connector
    assert isinstance(connector, Trackable)
    return connector


def pull_collector(harness: Harness) -> PullConnector:
    """Return the harness's collector, or skip a test that needs one for a push-only harness."""
    collector = getattr(harness, "collector", None)
    if not isinstance(collector, PullConnector):
        pytest.skip("the far side of this transport is not collected from")
    return collector


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
        assert sorted((c.kind, held(c.body)) for c in found) == [
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
        assert {held(c.body) for c in [*first, *rest]} == {b"one", b"two", b"three"}

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
        assert held(again.body) == held(first.body) == b"at least once"

    async def test_acknowledge_twice_is_fine(self, harness: PullHarness) -> None:
        """Acknowledging the same message twice does nothing the second time."""
        await deliver(harness, message(b"acked twice"), self.timeout)
        (item,) = await harness.collector.collect(limit=10, timeout=self.timeout)
        await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)
        await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)
        assert not await harness.collector.collect(limit=10, timeout=self.timeout)

    async def test_unread_and_reports_are_listed(self, harness: PullHarness) -> None:
        """A healthy exchange leaves nothing unread and reports nothing undelivered."""
        await deliver(harness, message(b"readable"), self.timeout)
        (item,) = await harness.collector.collect(limit=10, timeout=self.timeout)
        await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)
        assert dict(harness.collector.unread()) == {}
        assert list(harness.collector.non_delivery_reports()) == []

    async def test_closed_collector_raises(self, harness: PullHarness) -> None:
        """After close, collect and acknowledge raise ConnectorError."""
        await deliver(harness, message(b"waiting"), self.timeout)
        (item,) = await harness.collector.collect(limit=10, timeout=self.timeout)
        await harness.collector.close()
        with pytest.raises(ConnectorError):
            await harness.collector.collect(limit=10, timeout=self.timeout)
        with pytest.raises(ConnectorError):
            await harness.collector.acknowledge(item.transport_ref, timeout=self.timeout)


class RecallConformance:
    """The suite for recallable connectors; mix it into a connector's test class."""

    timeout: ClassVar[float] = 5.0

    async def test_is_recallable(self, harness: Harness) -> None:
        """The connector satisfies the recall protocol."""
        assert isinstance(harness.connector, Recallable)

    async def test_recall_withdraws_a_message_nobody_took(self, harness: Harness) -> None:
        """The sender's recall of a message not yet taken is recalled, and stays recalled."""
        msg = message(b"sent by mistake")
        assert isinstance(await deliver(harness, msg, self.timeout), Delivered)
        outcome = await recaller(harness).recall(
            recall_of(msg), harness.address, timeout=self.timeout
        )
        assert outcome.outcome == "recalled"
        again = await recaller(harness).recall(
            recall_of(msg), harness.address, timeout=self.timeout
        )
        assert again.outcome == "recalled"

    async def test_a_recalled_message_is_not_collected(self, harness: Harness) -> None:
        """A message recalled before collection never reaches the destination's node."""
        collector = pull_collector(harness)
        msg = message(b"withdrawn in time")
        await deliver(harness, msg, self.timeout)
        await recaller(harness).recall(recall_of(msg), harness.address, timeout=self.timeout)
        assert await collector.collect(limit=10, timeout=self.timeout) == []

    async def test_recall_after_collection_is_too_late(self, harness: Harness) -> None:
        """Once the destination's node collected a message, a recall is too late."""
        collector = pull_collector(harness)
        msg = message(b"already collected")
        await deliver(harness, msg, self.timeout)
        assert len(await collector.collect(limit=10, timeout=self.timeout)) == 1
        outcome = await recaller(harness).recall(
            recall_of(msg), harness.address, timeout=self.timeout
        )
        assert outcome.outcome == "too-late"

    async def test_recall_of_an_unknown_message_is_unknown(self, harness: Harness) -> None:
        """A message never delivered is unknown to the far side."""
        outcome = await recaller(harness).recall(
            recall_of(message(b"never sent")), harness.address, timeout=self.timeout
        )
        assert outcome.outcome == "unknown"

    async def test_only_the_sender_may_recall(self, harness: Harness) -> None:
        """Anyone but the sender learns unknown and withdraws nothing."""
        msg = message(b"not yours")
        await deliver(harness, msg, self.timeout)
        stranger = await recaller(harness).recall(
            recall_of(msg, OUTSIDER), harness.address, timeout=self.timeout
        )
        assert stranger.outcome == "unknown"
        owner = await recaller(harness).recall(
            recall_of(msg), harness.address, timeout=self.timeout
        )
        assert owner.outcome == "recalled"

    async def test_unreachable_far_side_raises_a_retry(self, harness: Harness) -> None:
        """A far side that cannot be reached raises RecallError that may pass later."""
        msg = message(b"ask later")
        await deliver(harness, msg, self.timeout)
        await harness.set_mode("down")
        with pytest.raises(RecallError) as caught:
            await recaller(harness).recall(recall_of(msg), harness.address, timeout=self.timeout)
        assert caught.value.retry
        assert caught.value.kind == "retry"
        assert caught.value.reason

    async def test_recall_after_close_raises(self, harness: Harness) -> None:
        """After close, recall raises ConnectorError."""
        await harness.connector.close()
        with pytest.raises(ConnectorError):
            await recaller(harness).recall(
                recall_of(message(b"x")), harness.address, timeout=self.timeout
            )

    async def test_recall_timeout_must_be_positive(self, harness: Harness) -> None:
        """A recall deadline of zero or less is the caller's mistake, named as such."""
        with pytest.raises(ValueError, match="timeout"):
            await recaller(harness).recall(recall_of(message(b"x")), harness.address, timeout=0)


class TrackConformance:
    """The suite for trackable connectors; mix it into a connector's test class."""

    timeout: ClassVar[float] = 5.0

    async def test_is_trackable(self, harness: Harness) -> None:
        """The connector satisfies the status protocol."""
        assert isinstance(harness.connector, Trackable)

    async def test_status_follows_a_collected_message(self, harness: Harness) -> None:
        """A delivered message is waiting, and collected once acknowledged."""
        collector = pull_collector(harness)
        msg = message(b"tracked")
        await deliver(harness, msg, self.timeout)
        waiting = await tracker(harness).status(item_of(msg), harness.address, timeout=self.timeout)
        assert waiting.state == "waiting"
        (item,) = await collector.collect(limit=10, timeout=self.timeout)
        await collector.acknowledge(item.transport_ref, timeout=self.timeout)
        done = await tracker(harness).status(item_of(msg), harness.address, timeout=self.timeout)
        assert done.state == "collected"

    async def test_status_of_a_recalled_message(self, harness: Harness) -> None:
        """A recalled message's status says recalled."""
        msg = message(b"recalled then asked")
        await deliver(harness, msg, self.timeout)
        await recaller(harness).recall(recall_of(msg), harness.address, timeout=self.timeout)
        status = await tracker(harness).status(item_of(msg), harness.address, timeout=self.timeout)
        assert status.state == "recalled"

    async def test_status_is_unknown_to_anyone_but_the_sender(self, harness: Harness) -> None:
        """An outsider, or an id never delivered, learns unknown."""
        msg = message(b"private")
        await deliver(harness, msg, self.timeout)
        stranger = await tracker(harness).status(
            item_of(msg, OUTSIDER), harness.address, timeout=self.timeout
        )
        assert stranger.state == "unknown"
        never = await tracker(harness).status(
            item_of(message(b"never sent")), harness.address, timeout=self.timeout
        )
        assert never.state == "unknown"

    async def test_unreachable_far_side_raises_a_retry(self, harness: Harness) -> None:
        """A far side that cannot be reached raises RecallError that may pass later."""
        await harness.set_mode("down")
        with pytest.raises(RecallError) as caught:
            await tracker(harness).status(
                item_of(message(b"x")), harness.address, timeout=self.timeout
            )
        assert caught.value.retry
