"""Chasing overdue items: a PII-free mail to the sender's staff when a deadline passes.

Every ``delivery.chase_interval`` seconds, for each organisation of the node that has staff
mailboxes (``notify``) and a mail server, the deadlines past due without the receipt that
meets them (``NodeService.overdue_items``: a CP file not delivered within 5 school days, a
referral not acknowledged within one working day, ...) are each queued once as an outbox
``chase`` row, from the sender organisation (``origin``, whose staff are mailed) about its
envelope to the late recipient (``destination``). The worker mails it with the
organisation names, the envelope id, the due date and the receipt awaited, nothing else;
an item that was met meanwhile is dropped without a mail. The outbox's uniqueness makes
each (envelope, late recipient) chased once, across restarts.
"""

from __future__ import annotations

import asyncio
import hashlib

from exchange.keys.ids import OrgId
from exchange.logs import get_logger
from exchange.model import NewOutbox
from exchange.service.node_service import NodeService
from exchange.workers.jobs import JobTurn
from exchange.workers.supervisor import TaskHealth, periodically

log = get_logger("exchange.chase")


def chase_ref(digest: bytes, recipient: OrgId) -> bytes:
    """Return the outbox reference of the chase of ``recipient``'s deadline for ``digest``."""
    return hashlib.sha256(
        b"exchange/v1/overdue-chase\x00" + digest + recipient.encode("ascii")
    ).digest()


class Chaser:
    """Queues one chase notice per overdue (envelope, recipient) of the node's organisations."""

    def __init__(self, service: NodeService, interval: float) -> None:
        self.service = service
        self.interval = interval

    async def run(
        self, stop: asyncio.Event, health: TaskHealth | None = None, turn: JobTurn | None = None
    ) -> None:
        """Chase every ``interval`` seconds until ``stop`` is set; a failed round is retried.

        With ``turn``, only the process of the group holding the job's lease chases.
        """
        health = health or TaskHealth("chase", "the chase of overdue items")
        await periodically(health, stop, self.interval, self.chase_once, stage="chase", turn=turn)

    async def chase_once(self) -> int:
        """Queue the chases due now; return how many were new."""
        queued = 0
        for org in sorted(self.service.notified):
            for item in await self.service.overdue_items(org):
                queued += await self.service.store.add_outbox(
                    item.digest,
                    [
                        NewOutbox(
                            "chase", chase_ref(item.digest, item.recipient), org, item.recipient
                        )
                    ],
                    now=self.service.clock(),
                )  # fmt: skip
        if queued:
            log.info("chase.queued", count=queued)
            self.service.outbox_wakeup.set()
        return queued
