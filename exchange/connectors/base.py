"""The connector port: how a node hands a sealed message to a transport, and what else it asks.

A connector moves opaque, already-sealed bytes (an envelope or a signed receipt) to one
destination organisation over one route, and, for pull transports (NHS MESH, relay
mailboxes), collects what is waiting for the node's organisations and acknowledges it once
it is safely stored. Connectors never see plaintext: sealing and verifying happen in the
node, before and after. Beyond delivery the port is a set of small protocols, each a
capability a transport has or lacks: :class:`PullConnector` (collect, acknowledge, what was
left unread, non-delivery reports), :class:`Recallable` (ask the far side to withdraw a
message: a relay mailbox, a peer node over HTTPS) and :class:`Trackable` (ask where a
message stands: a relay mailbox). Callers test for a capability with these protocols, never
with a concrete connector class, which only the composition root names.

Every outcome of :meth:`Connector.deliver` is one of three values, never an exception for
an expected failure:

- :class:`Delivered`: the destination took the message; ``receipt`` holds the bytes it
  answered with (a signed ``delivered`` receipt on HTTPS push; empty where the transport
  answers later), ``transport_ref`` the transport's own id (MESH message id, SMTP
  Message-ID, HTTP request id);
- :class:`RetryLater`: it may work later (network down, timeout, 5xx, 429, a full
  mailbox, a far side whose clock disagrees with ours); ``after`` optionally says when;
- :class:`Refused`: it will never work on this route (4xx other than 408/425/429, unknown
  mailbox, message too large); the outbox falls back to the next route at once.

The calls that have no outcome value (collect, acknowledge, recall, status) raise one of
the port's failures instead, each with a plain ``reason`` and a ``kind`` that says whether
it may pass later. Library exceptions (aiohttp, aiosmtplib, ...) are translated at one edge
(:mod:`exchange.connectors.edge` for aiohttp), chained with ``from``; a connector that
raises anything else has a bug, and the outbox treats the raise as :class:`RetryLater`.

Exceptions this module defines::

    Exception
     ├── ConnectorError        misuse of a connector (closed, wrong route kind)
     └── TransportError        a call without an outcome value failed; kind retry | refused
          ├── CollectError     collect or acknowledge
          └── RecallError      recall or status
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from exchange.keys.ids import OrgId

if TYPE_CHECKING:  # only named in a protocol; the port itself touches no file
    from pathlib import Path

MessageKind = Literal["envelope", "receipt"]

#: Whether a failed call may pass later (``retry``) or never will as things stand (``refused``).
FailureKind = Literal["retry", "refused"]

#: What a recall achieved at the far side (docs/relay.md, docs/protocol.md §8).
RecallResult = Literal["recalled", "too-late", "expired", "unknown"]

#: Where a message stands at a relay mailbox (``unknown``: not held for this sender).
ItemState = Literal["waiting", "collected", "recalled", "expired", "unknown"]

#: The roles a recipient's node may name as the one that opened a message first.
OPENER_ROLES = frozenset({"dsl", "staff", "dpo", "admin"})


class ConnectorError(Exception):
    """A connector was used wrongly (after close, or for a route it does not serve)."""


class TransportError(Exception):
    """A collect, acknowledge, recall or status call could not complete.

    ``reason`` is a plain sentence naming a status or an exception class, never message
    content; ``kind`` is ``retry`` when it may pass later and ``refused`` when it will not.
    """

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind: FailureKind = "retry" if retry else "refused"

    @property
    def retry(self) -> bool:
        """Whether the call may pass if made again later."""
        return self.kind == "retry"


class CollectError(TransportError):
    """``collect`` reached nothing it could read, or ``acknowledge`` failed."""


class RecallError(TransportError):
    """``recall`` or ``status`` could not ask the far side, or its answer was not valid."""


def check_timeout(timeout: float) -> None:
    """Refuse a deadline that is not a positive number of seconds (``ValueError``)."""
    if not timeout > 0:  # also refuses NaN
        raise ValueError("timeout must be a positive number of seconds")


#: Returns up to ``count`` bytes of a stored body from ``offset`` (fewer only at its end).
ReadAt = Callable[[int, int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class StoredBody:
    """A message body the node keeps (a file or database rows), read in pieces as it is sent.

    ``read_at`` reads one span of it, ``length`` is its size in bytes and ``sha256`` its
    SHA-256 if already known (the HTTPS connector's Content-Digest), so that nobody reads a
    large body whole, and nobody reads it twice to hash it.
    """

    read_at: ReadAt
    length: int
    sha256: bytes | None = None

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError("length must not be negative")
        if self.sha256 is not None and len(self.sha256) != 32:
            raise ValueError("sha256 must be 32 bytes")


@runtime_checkable
class HeldBody(Protocol):
    """A body that arrived from a transport and is held, whole, outside the caller's memory.

    What a pull connector collects (and a peer endpoint receives) when the body is large:
    :class:`exchange.spool.Spool` is the one implementation. The node reads it in pieces,
    gives it its final name once it is checked, and closes it in every case.
    """

    @property
    def length(self) -> int:
        """Its size in bytes."""
        ...

    @property
    def in_memory(self) -> bool:
        """Whether it is small enough to be held in memory (no file behind it)."""
        ...

    def pieces(self, size: int = ...) -> Iterator[bytes]:
        """Yield it from the start in pieces of at most ``size`` bytes (blocking reads)."""
        ...

    def read(self, limit: int) -> bytes:
        """Return it whole; ``ValueError`` if it is longer than ``limit`` bytes."""
        ...

    def publish(self, target: Path) -> None:
        """Give it the name ``target``, durably; ``FileExistsError`` if that exists."""
        ...

    def close(self) -> None:
        """Drop it (idempotent)."""
        ...


#: A message body as a connector is given it: bytes (receipts, small bodies) or a file.
Body = bytes | StoredBody


def body_length(body: Body | HeldBody) -> int:
    """Return the size of ``body`` in bytes."""
    return len(body) if isinstance(body, bytes) else body.length


@dataclass(frozen=True, slots=True)
class Message:
    """One sealed message for one destination organisation.

    ``message_id`` is stable across retries (the envelope digest for an envelope, the
    receipt digest for a receipt), so a transport can de-duplicate a redelivery. ``body``
    is bytes or a :class:`StoredBody` (every stored envelope: connectors read it in pieces,
    :mod:`exchange.connectors.bodies`).
    """

    kind: MessageKind
    message_id: bytes
    origin: OrgId
    destination: OrgId
    body: Body

    @property
    def length(self) -> int:
        """The size of the body in bytes."""
        return body_length(self.body)


@dataclass(frozen=True, slots=True)
class Delivered:
    """The destination (or its mailbox) took the message.

    ``far_time`` is the far side's clock when it answered (unix seconds, from its ``Date``),
    if the transport tells: the outbox compares it with its own to see clocks drift apart.
    It is an observation, not part of the outcome's value (not compared).
    """

    transport_ref: str = ""
    receipt: bytes = b""
    far_time: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The attempt failed in a way that may pass; ``reason`` is a plain sentence.

    ``far_time`` is the far side's clock when it answered, if it did and said; ``clock`` is
    true when the far side refused the request's signature time (docs/protocol.md §6,
    ``signature.time``): one of the two clocks is off, and the attempt passes once they
    agree again.
    """

    reason: str
    after: float | None = None
    far_time: float | None = field(default=None, compare=False)
    clock: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    """The route will never take this message; ``reason`` is a plain sentence."""

    reason: str


Outcome = Delivered | RetryLater | Refused


@dataclass(frozen=True, slots=True)
class Collected:
    """A message waiting in a pull transport for one of the node's organisations.

    ``body`` is bytes or, when the connector downloaded it into a spool, a
    :class:`HeldBody` that the caller closes once it has stored the message (or given up).
    """

    transport_ref: str
    kind: MessageKind
    origin: OrgId | None
    destination: OrgId
    body: bytes | HeldBody

    def close(self) -> None:
        """Release the body's spool, if it has one (idempotent)."""
        if not isinstance(self.body, bytes):
            self.body.close()


@dataclass(frozen=True, slots=True)
class NonDelivery:
    """A transport's report that a message it took was not delivered.

    ``transport_ref`` is the report's own id (acknowledge it once handled);
    ``linked_message_id`` the transport's id of the undelivered message (its
    ``Delivered.transport_ref``); ``message_id`` the id of our message, if the report names
    one; ``status_code`` and ``status_event`` the transport's own codes; ``reason`` a plain
    sentence for the outbox's error column.
    """

    transport_ref: str
    linked_message_id: str
    message_id: bytes | None
    status_code: str
    status_event: str
    reason: str


@dataclass(frozen=True, slots=True)
class SentItem:
    """A message this node sent, named as the far side knows it (no body, no content)."""

    message_id: bytes
    origin: OrgId
    destination: OrgId
    kind: MessageKind = "envelope"

    def __post_init__(self) -> None:
        if len(self.message_id) != 32:
            raise ValueError("message_id must be 32 bytes")


@dataclass(frozen=True, slots=True)
class RecallRequest:
    """A sender's request to withdraw ``item``.

    ``envelope_id`` (16 bytes), ``reason_code`` and ``time`` (unix seconds) are what a
    recipient's node is told in a recall notice (docs/protocol.md §8); a relay needs only
    ``item``.
    """

    item: SentItem
    envelope_id: bytes
    reason_code: str
    time: int


@dataclass(frozen=True, slots=True)
class RecallOutcome:
    """What a recall achieved. ``at`` is when (recalled, collected, opened or expired), if known.

    ``too-late``: the far side already handed the message on (a relay: the owner fetched or
    collected it; a node: someone opened it, ``opened_by_role`` says who, if it said);
    ``unknown``: the far side holds no such message from the sender.
    """

    outcome: RecallResult
    at: int | None = None
    opened_by_role: str | None = None


@dataclass(frozen=True, slots=True)
class ItemStatus:
    """Where a message the sender deposited stands (``unknown``: not held for this sender)."""

    state: ItemState
    stored_at: int | None = None
    fetched_at: int | None = None
    collected_at: int | None = None
    ended_at: int | None = None


@runtime_checkable
class Connector(Protocol):
    """A transport to one kind of route. Every method has a deadline of ``timeout`` s."""

    route_kind: str

    async def deliver(self, message: Message, address: str, *, timeout: float) -> Outcome:
        """Hand ``message`` to the destination reached at ``address``."""
        ...

    async def close(self) -> None:
        """Release connections; further use raises :class:`ConnectorError`."""
        ...


@runtime_checkable
class PullConnector(Connector, Protocol):
    """A transport the node also collects from (NHS MESH, relay mailboxes)."""

    async def collect(self, *, limit: int, timeout: float) -> Sequence[Collected]:
        """Return up to ``limit`` waiting messages; they stay until acknowledged.

        Raises :class:`CollectError` when nothing could be read.
        """
        ...

    async def acknowledge(self, transport_ref: str, *, timeout: float) -> None:
        """Remove a collected message once the node has stored it (idempotent).

        Raises :class:`CollectError` when the transport cannot be told.
        """
        ...

    def unread(self) -> Mapping[str, str]:
        """Return the messages left waiting because they cannot be read, each with a reason.

        They stay in the transport for an operator to look at; ``collect`` skips them.
        """
        ...

    def non_delivery_reports(self) -> Sequence[NonDelivery]:
        """Return the reports seen by ``collect`` and not yet acknowledged."""
        ...


@runtime_checkable
class Recallable(Protocol):
    """A transport whose far side can be asked to withdraw a message it took."""

    route_kind: str

    async def recall(
        self, request: RecallRequest, address: str, *, timeout: float
    ) -> RecallOutcome:
        """Ask the far side at ``address`` to withdraw ``request.item``.

        Raises :class:`RecallError` if it cannot be asked or answers nonsense.
        """
        ...


@runtime_checkable
class Trackable(Protocol):
    """A transport whose far side can say where a message it took stands."""

    route_kind: str

    async def status(self, item: SentItem, address: str, *, timeout: float) -> ItemStatus:
        """Return where ``item`` stands at ``address``; :class:`RecallError` if it cannot say."""
        ...
