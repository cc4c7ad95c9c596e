"""An in-memory transport for fast tests: mailboxes in a shared :class:`MemoryNetwork`.

:class:`MemoryConnector` (route kind ``memory``) is a
:class:`~exchange.connectors.base.PullConnector`, :class:`~exchange.connectors.base.Recallable`
and :class:`~exchange.connectors.base.Trackable` that behaves like a relay mailbox without
sockets: ``deliver`` puts a message in the destination organisation's mailbox, ``collect``
returns what waits in the mailboxes of the organisations the connector collects for,
``acknowledge`` removes it, and the sender may ``recall`` a message nobody collected yet or
ask its ``status``. Several connectors share one network, as several nodes share one relay.
It passes the same conformance suite as the real transports
(tests/connectors/conformance.py).

Faithful where tests rely on it:

- idempotent by message id: a redelivery of a message id a destination already holds (or
  held and acknowledged) stores nothing and answers the first delivery's ``transport_ref``;
- at least once: a collected message stays until acknowledged and is collected again;
- failures injected per address with :meth:`MemoryNetwork.set_mode`: ``down`` answers
  :class:`~exchange.connectors.base.RetryLater`, ``refuse``
  :class:`~exchange.connectors.base.Refused`, and ``slow`` holds the delivery for
  :attr:`MemoryNetwork.slow_seconds`, so a deadline shorter than that ends it in
  :class:`~exchange.connectors.base.RetryLater` through ``asyncio.timeout``; recall and
  status raise :class:`~exchange.connectors.base.RecallError` on a ``down`` or ``refuse``
  endpoint;
- what a pull transport reports beside messages is injected too:
  :meth:`MemoryNetwork.leave_unread` and :meth:`MemoryNetwork.report_undelivered`.

The address of a memory route names an endpoint of the network (like a relay's URL); the
mailbox is chosen by the message's destination, whatever the address.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from exchange.connectors.base import (
    Collected,
    ConnectorError,
    Delivered,
    ItemStatus,
    Message,
    NonDelivery,
    Outcome,
    RecallError,
    RecallOutcome,
    RecallRequest,
    Refused,
    RetryLater,
    SentItem,
    check_timeout,
)
from exchange.connectors.bodies import read_small
from exchange.keys.ids import OrgId

Mode = Literal["up", "down", "refuse", "slow"]
MODES: Final = frozenset({"up", "down", "refuse", "slow"})

#: How long a ``slow`` endpoint holds a delivery by default: far beyond any test deadline.
DEFAULT_SLOW_SECONDS: Final = 3600.0

#: Largest body the fake holds (it keeps bodies in memory; tests send small ones).
MAX_HELD: Final = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Held:
    transport_ref: str
    message: Message


class MemoryNetwork:
    """Mailboxes per destination organisation and a failure mode per address.

    Shared by every :class:`MemoryConnector` of a test. ``slow_seconds`` is how long a
    ``slow`` endpoint holds a delivery before taking it.
    """

    def __init__(self, *, slow_seconds: float = DEFAULT_SLOW_SECONDS) -> None:
        self.slow_seconds = slow_seconds
        self._modes: dict[str, Mode] = {}
        # Waiting messages per destination, in arrival order, by transport_ref.
        self._mailboxes: dict[OrgId, dict[str, _Held]] = {}
        # Every (destination, message id) ever stored, for idempotent redelivery.
        self._refs: dict[tuple[OrgId, bytes], str] = {}
        self._log: dict[OrgId, list[Message]] = {}
        self._counter = itertools.count(1)
        # Refs collected at least once (the owner may hold them) and refs recalled.
        self._taken: set[str] = set()
        self._recalled: set[str] = set()
        self._messages: dict[str, Message] = {}
        # What each destination's transport reports beside messages.
        self._unread: dict[OrgId, dict[str, str]] = {}
        self._reports: dict[OrgId, dict[str, NonDelivery]] = {}

    def set_mode(self, address: str, mode: Mode) -> None:
        """Make the endpoint at ``address`` behave as ``mode`` from the next attempt on."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(sorted(MODES))}")
        self._modes[address] = mode

    def mode(self, address: str) -> Mode:
        """Return the mode of the endpoint at ``address`` (``up`` unless set)."""
        return self._modes.get(address, "up")

    def delivered(self, destination: OrgId) -> list[Message]:
        """Return every message stored for ``destination``, once each, in arrival order."""
        return list(self._log.get(destination, ()))

    def waiting(self, destination: OrgId) -> list[Message]:
        """Return the messages in ``destination``'s mailbox not yet acknowledged."""
        return [held.message for held in self._mailboxes.get(destination, {}).values()]

    def leave_unread(self, destination: OrgId, ref: str, reason: str) -> None:
        """Make ``destination``'s transport list ``ref`` as left unread, for ``reason``."""
        self._unread.setdefault(destination, {})[ref] = reason

    def report_undelivered(self, destination: OrgId, report: NonDelivery) -> None:
        """Make ``destination``'s transport report ``report`` until it is acknowledged."""
        self._reports.setdefault(destination, {})[report.transport_ref] = report

    def _store(self, message: Message) -> str:
        key = (message.destination, message.message_id)
        ref = self._refs.get(key)
        if ref is None:
            ref = f"memory-{next(self._counter):08d}"
            self._refs[key] = ref
            self._messages[ref] = message
            self._mailboxes.setdefault(message.destination, {})[ref] = _Held(ref, message)
            self._log.setdefault(message.destination, []).append(message)
        return ref

    def _sent(self, item: SentItem) -> str | None:
        """Return the ref of ``item`` if it was stored and ``item.origin`` sent it."""
        ref = self._refs.get((item.destination, item.message_id))
        if ref is None or self._messages[ref].origin != item.origin:
            return None  # another sender learns nothing of what is held
        return ref

    def _recall(self, item: SentItem) -> RecallOutcome:
        ref = self._sent(item)
        if ref is None:
            return RecallOutcome("unknown")
        if ref in self._recalled:
            return RecallOutcome("recalled")
        if ref in self._taken:
            return RecallOutcome("too-late")
        self._mailboxes.get(item.destination, {}).pop(ref, None)
        self._recalled.add(ref)
        return RecallOutcome("recalled")

    def _status(self, item: SentItem) -> ItemStatus:
        ref = self._sent(item)
        if ref is None:
            return ItemStatus("unknown")
        if ref in self._recalled:
            return ItemStatus("recalled")
        return ItemStatus("collected" if ref in self._taken else "waiting")

    def _unread_of(self, orgs: frozenset[OrgId]) -> dict[str, str]:
        return {ref: why for org in sorted(orgs) for ref, why in self._unread.get(org, {}).items()}

    def _reports_of(self, orgs: frozenset[OrgId]) -> list[NonDelivery]:
        return [r for org in sorted(orgs) for r in self._reports.get(org, {}).values()]

    def _take(self, orgs: frozenset[OrgId], limit: int) -> list[Collected]:
        found: list[Collected] = []
        for org in sorted(orgs):
            for held in self._mailboxes.get(org, {}).values():
                if len(found) >= limit:
                    return found
                m = held.message
                assert isinstance(m.body, bytes)  # stored as bytes (deliver reads a file)
                found.append(Collected(held.transport_ref, m.kind, m.origin, m.destination, m.body))
                self._taken.add(held.transport_ref)
        return found

    def _remove(self, orgs: frozenset[OrgId], transport_ref: str) -> None:
        # Only the mailbox owner may acknowledge; an unknown or foreign ref is a no-op, so
        # acknowledging twice is harmless (the node may crash between store and ack).
        for org in orgs:
            self._mailboxes.get(org, {}).pop(transport_ref, None)
            self._reports.get(org, {}).pop(transport_ref, None)


class MemoryConnector:
    """A pull connector over a :class:`MemoryNetwork` (route kind ``memory``).

    ``collects_for`` are the organisations whose mailboxes :meth:`collect` reads: the
    organisations the node using this connector serves.
    """

    route_kind: str = "memory"

    def __init__(self, network: MemoryNetwork, *, collects_for: Iterable[OrgId] = ()) -> None:
        self.network = network
        self._orgs = frozenset(collects_for)
        self._closed = False

    async def deliver(self, message: Message, address: str, *, timeout: float) -> Outcome:
        """Put ``message`` in its destination's mailbox through the endpoint at ``address``."""
        self._check_open()
        check_timeout(timeout)
        mode = self.network.mode(address)
        try:
            async with asyncio.timeout(timeout):
                # A real transport always yields to the loop; so does this one, so that
                # concurrent deliveries interleave in tests as they would on a network.
                await asyncio.sleep(0)
                if mode == "down":
                    return RetryLater(f"the memory endpoint {address!r} is down")
                if mode == "refuse":
                    return Refused(f"the memory endpoint {address!r} refuses the message")
                if mode == "slow":
                    await asyncio.sleep(self.network.slow_seconds)
                # The fake keeps bytes: a body file is read now, as a transport would send it.
                body = await read_small(message.body, MAX_HELD)
                ref = self.network._store(replace(message, body=body))
        except TimeoutError:
            return RetryLater(f"the memory endpoint {address!r} did not answer before the deadline")
        return Delivered(transport_ref=ref)

    async def collect(self, *, limit: int, timeout: float) -> Sequence[Collected]:
        """Return up to ``limit`` unacknowledged messages of the organisations collected for."""
        self._check_open()
        check_timeout(timeout)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        async with asyncio.timeout(timeout):
            await asyncio.sleep(0)
            return self.network._take(self._orgs, limit)

    async def acknowledge(self, transport_ref: str, *, timeout: float) -> None:
        """Remove a collected message; acknowledging an unknown or removed one does nothing."""
        self._check_open()
        check_timeout(timeout)
        async with asyncio.timeout(timeout):
            await asyncio.sleep(0)
            self.network._remove(self._orgs, transport_ref)

    def unread(self) -> Mapping[str, str]:
        """Return what the network was told to leave unread for the organisations collected for."""
        return self.network._unread_of(self._orgs)

    def non_delivery_reports(self) -> Sequence[NonDelivery]:
        """Return the reports injected for the organisations collected for, not yet acknowledged."""
        return self.network._reports_of(self._orgs)

    async def recall(
        self, request: RecallRequest, address: str, *, timeout: float
    ) -> RecallOutcome:
        """Withdraw the sender's message if nobody collected it yet (as a relay does)."""
        await self._ask(address, timeout)
        return self.network._recall(request.item)

    async def status(self, item: SentItem, address: str, *, timeout: float) -> ItemStatus:
        """Return where the sender's message stands: waiting, collected, recalled or unknown."""
        await self._ask(address, timeout)
        return self.network._status(item)

    async def close(self) -> None:
        """Refuse further use (closing twice is fine)."""
        self._closed = True

    async def _ask(self, address: str, timeout: float) -> None:
        """Reach the endpoint at ``address`` for a recall or status, or raise as it fails."""
        self._check_open()
        check_timeout(timeout)
        mode = self.network.mode(address)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.sleep(0)
                if mode == "slow":
                    await asyncio.sleep(self.network.slow_seconds)
        except TimeoutError:
            raise RecallError(
                f"the memory endpoint {address!r} did not answer before the deadline", retry=True
            ) from None
        if mode == "down":
            raise RecallError(f"the memory endpoint {address!r} is down", retry=True)
        if mode == "refuse":
            raise RecallError(f"the memory endpoint {address!r} refuses the request", retry=False)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectorError("the memory connector is closed")
