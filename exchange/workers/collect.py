"""The collector: takes what waits for the node's organisations on pull routes.

Every ``collect_interval`` seconds, each pull connector (an NHS MESH mailbox per
organisation, the relay mailboxes) is asked for what waits. Each message is stored through
:class:`~exchange.service.node_service.NodeService` (an envelope: verified, stored once, its
``delivered`` receipt queued back to the sender; a receipt: verified against the digest
this node sent) and acknowledged on the transport only after that commit, so a crash
between the two collects the message again and the digest de-duplicates it: exactly once.

A message the node refuses for good (a forged or damaged envelope, one not addressed to the
organisation, a receipt for something never sent) is acknowledged too, so it does not block
the mailbox, and logged with the reason; a failure that may pass (the store) leaves it for
the next round. Non-delivery reports (MESH error reports) put the envelope they name back
in the outbox on its next route.

The collector knows connectors only through the port
(:class:`~exchange.connectors.base.PullConnector`): a transport that cannot be read raises
:class:`~exchange.connectors.base.CollectError`, and what a transport leaves unread or
reports undelivered it lists through the port's methods, whatever the transport.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from exchange.config import DeliveryConfig
from exchange.connectors.base import Collected, CollectError, PullConnector
from exchange.logs import get_logger
from exchange.outbox.routing import Routes
from exchange.receipts.format import MAX_SIGNED_LEN as MAX_RECEIPT
from exchange.service.errors import ServiceError
from exchange.service.node_service import NodeService
from exchange.workers.delivery import attempt_timeout
from exchange.workers.jobs import JobTurn
from exchange.workers.supervisor import TaskHealth, periodically

log = get_logger("exchange.collect")


@dataclass
class CollectStats:
    """Counters for /metrics."""

    rounds: int = 0
    collected: int = 0
    refused: int = 0
    failed_rounds: int = 0
    reports: int = 0
    #: Messages the pull connectors leave unread (on MESH: a workflow not ours, a malformed
    #: or oversized message): an operator must look at them. Only MESH leaves any today,
    #: hence the name /metrics shows.
    mesh_unread: int = 0


class Collector:
    """Collects from every pull connector of one node."""

    def __init__(self, service: NodeService, routes: Routes, config: DeliveryConfig) -> None:
        self.service = service
        self.routes = routes
        self.config = config
        self.stats = CollectStats()
        #: The collector's health (a supervisor's, when run under one).
        self.health = TaskHealth("collect", "collection from pull routes")

    async def run(
        self, stop: asyncio.Event, health: TaskHealth | None = None, turn: JobTurn | None = None
    ) -> None:
        """Collect every ``collect_interval`` seconds until ``stop`` is set.

        A round that fails (the store cannot write) is retried after the back-off, and a
        message that could not be stored is reported to ``health`` (logged once per cause),
        not logged again at every round. With ``turn``, only the process of the group
        holding the job's lease collects (exchange.workers.jobs).
        """
        if health is not None:
            self.health = health
        await periodically(
            self.health, stop, self.config.collect_interval, self.collect_once,
            stage="collect", turn=turn,
        )  # fmt: skip

    async def collect_once(self) -> int:
        """Run one round over every pull connector; return how many messages were taken."""
        taken = 0
        self.stats.rounds += 1
        for connector in self.routes.pull():
            taken += await self._collect_from(connector)
        self._count_unread()
        return taken

    async def _collect_from(self, connector: PullConnector) -> int:
        try:
            # Time for the largest message a round may have to download, at the slowest rate.
            timeout = attempt_timeout(self.config.timeout, self.service.max_envelope_bytes)
            waiting = await connector.collect(limit=self.config.batch, timeout=timeout)
        except CollectError as exc:  # one unreachable route must not stop the others
            self.stats.failed_rounds += 1
            log.warning(
                "collect.failed", route=connector.route_kind, error_class=type(exc).__name__,
                retry=exc.retry,
            )  # fmt: skip
            return 0
        taken = 0
        try:
            for message in waiting:
                if await self._take(connector, message):
                    taken += 1
        finally:
            # A body held in a spool is dropped once stored (it was linked into place) or
            # left for the next round; nothing is left behind either way.
            for message in waiting:
                message.close()
        await self._reports(connector)
        return taken

    def _count_unread(self) -> None:
        total = sum(len(c.unread()) for c in self.routes.pull())
        if total != self.stats.mesh_unread:
            log.warning("collect.mesh-unread", route="mesh", count=total)
        self.stats.mesh_unread = total

    async def _take(self, connector: PullConnector, message: Collected) -> bool:
        """Store one collected message, then acknowledge it; return whether it was stored."""
        route = connector.route_kind
        try:
            if message.kind == "envelope":
                await self.service.receive_collected(message.destination, message.body, route)
            else:
                await self.service.receive_receipt(None, message.destination, _receipt(message))
        except ServiceError as exc:
            if exc.status >= 500:
                self.health.failed(exc, f"storing from {route}")
                return False
            # Refused for good: acknowledged so it does not block the mailbox.
            self.stats.refused += 1
            log.warning(
                "collect.refused", route=route, status=exc.status, error=str(exc),
                recipient=message.destination,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - left for the next round, never lost
            # Logged once per cause by the health, with the class name only.
            self.health.failed(exc, f"storing from {route}")
            return False
        else:
            self.stats.collected += 1
        await self._acknowledge(connector, message.transport_ref)
        return True

    async def _acknowledge(self, connector: PullConnector, transport_ref: str) -> None:
        """Acknowledge a message or report; a failure only means it is seen again next round.

        A message seen again is de-duplicated by digest, and reopening an item for a report
        seen again changes nothing, so the failure is logged and left.
        """
        try:
            await connector.acknowledge(transport_ref, timeout=self.config.timeout)
        except CollectError as exc:
            log.warning(
                "collect.ack-failed", route=connector.route_kind,
                error_class=type(exc).__name__, retry=exc.retry,
            )  # fmt: skip

    async def _reports(self, connector: PullConnector) -> None:
        """Act on non-delivery reports: the envelope goes back in the outbox."""
        route = connector.route_kind
        for report in connector.non_delivery_reports():
            item = await self.service.store.reopen_handed_over(
                route,
                report.linked_message_id,
                now=self.service.clock(),
                error=report.reason,
            )
            if item is not None:
                self.stats.reports += 1
                log.warning(
                    "delivery.undelivered", digest=item.envelope_digest.hex(),
                    recipient=item.destination, route=route,
                )  # fmt: skip
                self.service.outbox_wakeup.set()
            await self._acknowledge(connector, report.transport_ref)


def _receipt(message: Collected) -> bytes:
    """Return a collected receipt's bytes; one too long to be a receipt is refused (422)."""
    if isinstance(message.body, bytes):
        return message.body
    try:
        return message.body.read(MAX_RECEIPT)
    except ValueError:
        raise ServiceError(
            f"the receipt was refused: it is longer than {MAX_RECEIPT} bytes", status=422
        ) from None
