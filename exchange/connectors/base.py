"""The connector protocol: how a node hands a sealed message to a transport.

A connector moves opaque, already-sealed bytes (an envelope or a signed receipt) to one
destination organisation over one route, and, for pull transports (NHS MESH, relay
mailboxes), collects what is waiting for the node's organisations and acknowledges it once
it is safely stored. Connectors never see plaintext: sealing and verifying happen in the
node, before and after.

Every outcome of :meth:`Connector.deliver` is one of three values, never an exception for
an expected failure:

- :class:`Delivered`: the destination took the message; ``receipt`` holds the bytes it
  answered with (a signed ``delivered`` receipt on HTTPS push; empty where the transport
  answers later), ``transport_ref`` the transport's own id (MESH message id, SMTP
  Message-ID, HTTP request id);
- :class:`RetryLater`: it may work later (network down, timeout, 5xx, 429, a full
  mailbox); ``after`` optionally says when;
- :class:`Refused`: it will never work on this route (4xx other than 408/425/429, unknown
  mailbox, message too large); the outbox falls back to the next route at once.

Library exceptions (aiohttp, aiosmtplib, ...) are translated into these in exactly one place
per connector, chained with ``from``; a connector that raises has a bug, and the outbox
treats the raise as :class:`RetryLater`.

Exceptions this module defines::

    ConnectorError            misuse of a connector (closed, wrong route kind)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from exchange.keys.ids import OrgId

MessageKind = Literal["envelope", "receipt"]


class ConnectorError(Exception):
    """A connector was used wrongly (after close, or for a route it does not serve)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One sealed message for one destination organisation.

    ``message_id`` is stable across retries (the envelope digest for an envelope, the
    receipt digest for a receipt), so a transport can de-duplicate a redelivery.
    """

    kind: MessageKind
    message_id: bytes
    origin: OrgId
    destination: OrgId
    body: bytes


@dataclass(frozen=True, slots=True)
class Delivered:
    """The destination (or its mailbox) took the message."""

    transport_ref: str = ""
    receipt: bytes = b""


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The attempt failed in a way that may pass; ``reason`` is a plain sentence."""

    reason: str
    after: float | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The route will never take this message; ``reason`` is a plain sentence."""

    reason: str


Outcome = Delivered | RetryLater | Refused


@dataclass(frozen=True, slots=True)
class Collected:
    """A message waiting in a pull transport for one of the node's organisations."""

    transport_ref: str
    kind: MessageKind
    origin: OrgId | None
    destination: OrgId
    body: bytes


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
        """Return up to ``limit`` waiting messages; they stay until acknowledged."""
        ...

    async def acknowledge(self, transport_ref: str, *, timeout: float) -> None:
        """Remove a collected message once the node has stored it (idempotent)."""
        ...
