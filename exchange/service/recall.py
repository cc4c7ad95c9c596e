"""Recall: a sender pulls back an envelope sent in error, wherever it has got to.

``POST /api/v1/sent/{digest}/recall`` (a DSL or the DPO of the sending organisation) asks,
for every recipient, where the envelope stands and does what can still be done
(docs/node.md, "Recall"):

- **not yet handed over** (``queued``, ``retry-wait``, ``dead``): the outbox item is
  cancelled (``recalled``) in the same transaction that marks the rest, so the worker never
  sends it. An attempt in flight is waited for (``delivery.timeout`` at most): if it did not
  hand the item over, it ends ``recalled`` (:mod:`exchange.outbox.machine`);
- **in a relay mailbox**: the relay is asked to delete it (docs/relay.md, recall); it
  answers ``recalled``, or ``too-late`` once the receiving node fetched it;
- **at the recipient's node** (pushed over HTTPS): a signed recall notice goes to
  ``/peer/v1/orgs/{org}/recalls`` (docs/protocol.md §8); the node withdraws the item if
  nobody has opened it, or answers ``too-late`` with when and by which role it was opened;
- **over NHS MESH or by mail**: once handed over, the sender cannot pull it back
  (``not-recallable``), unless the recipient's node can be reached over HTTPS and still
  holds it unopened.

Every outcome is kept per recipient (``recalls``), each recipient recalled is a ``recalled``
event in the ledger, and the sent view shows it. Asking again repeats nothing settled: it
only tries the recipients whose outcome was ``pending`` or ``failed``.

The receiving side, :func:`receive_recall`, honours a notice only if the request was signed
by the envelope's sender and the item is still ``delivered``; it is idempotent.

The far sides are asked through the connector port: a connector that is
:class:`~exchange.connectors.base.Recallable` (the relay mailbox connector, the HTTPS
connector that sends the signed notice) is found by route kind in the node's
:class:`~exchange.outbox.routing.Routes`. Parsing HTTP bodies is the HTTP layer's
(:mod:`exchange.http.recall`): this module takes and returns values.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any, Final

from exchange.connectors.base import (
    Recallable,
    RecallError,
    RecallOutcome,
    RecallRequest,
    SentItem,
)
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import OutboxItem, RecallRow, User
from exchange.outbox.routing import Routes
from exchange.service.errors import (
    ForbiddenError,
    NotFoundError,
    ServiceError,
    UnprocessableError,
)
from exchange.service.ledger import ledger_event
from exchange.service.node_service import NodeService
from exchange.sharing.prepare import SubmissionError, check_reason
from exchange.store import Store
from exchange.store.recall import FINAL_OUTCOMES

log = get_logger("exchange.recall")

#: The roles that may recall what their organisation sent.
RECALL_ROLES: Final = frozenset({"dsl", "dpo"})
#: The reason code a recall carries when the staff member gives none.
DEFAULT_REASON_CODE: Final = "sent-in-error"
#: The reason codes a recall may carry (docs/protocol.md §8), a closed list: the code goes
#: into both nodes' ledgers and the register, so it is never a token someone typed (a
#: lower-case UPN is a well-formed token).
RECALL_REASON_CODES: Final = (
    DEFAULT_REASON_CODE,
    "wrong-recipient",
    "wrong-child",
    "incorrect-content",
    "duplicate",
)
#: What a recipient's node records for a code not on the list (a newer sender's).
UNLISTED_REASON_CODE: Final = "other"
#: Seconds waited beyond ``delivery.timeout`` for an attempt in flight to finish.
_SETTLE_SLACK: Final = 2.0

_NOT_RECALLABLE: Final = {
    "mesh": (
        "it was handed to NHS MESH, which delivers it to the recipient's mailbox; once "
        "handed over, the sender cannot pull it back. Ask the recipient to delete it"
    ),
    "smtp": (
        "it was sent by email; once a mail server has taken it, the sender cannot pull it "
        "back. Ask the recipient to delete it"
    ),
}


@dataclass(frozen=True)
class RecallNotice:
    """A recall notice as the recipient's node received it, already parsed and checked.

    ``digest`` (32 bytes) and ``envelope_id`` (16 bytes) name the envelope; ``reason_code``
    is a short lower-case token; ``time`` is when the sender sent it, in unix seconds.
    """

    digest: bytes
    envelope_id: bytes
    reason_code: str
    time: int


@dataclass(frozen=True)
class _Notice:
    """What a recipient's node answered to a recall notice."""

    outcome: str  # recalled, too-late, unknown, failed
    at: int | None = None
    opened_by_role: str | None = None
    detail: str = ""


class Recaller:
    """Recalls sent envelopes for one node, through the recallable connectors of its routes."""

    def __init__(self, service: NodeService, *, routes: Routes, timeout: float) -> None:
        self.service = service
        self.routes = routes
        self.timeout = timeout

    def _recallable(self, kind: str) -> Recallable | None:
        """Return the node's connector for ``kind`` routes if it can recall, else None."""
        connector = self.routes.shared.get(kind)
        return connector if isinstance(connector, Recallable) else None

    @property
    def store(self) -> Store:
        """The node's store."""
        return self.service.store

    async def check(self, user: User, digest: bytes) -> None:
        """Refuse unless ``user`` may recall the sent item ``digest`` (role, then the item)."""
        if user.role not in RECALL_ROLES:
            raise ForbiddenError(f"the role {user.role} may not recall records")
        self.service.tenant(user.org)
        if await self.store.sent_item(user.org, digest) is None:
            raise NotFoundError("no such item among this organisation's sent items")

    async def recall(
        self, user: User, digest: bytes, *, reason: str, reason_code: str
    ) -> list[RecallRow]:
        """Recall a sent envelope from every recipient; return each recipient's outcome."""
        await self.check(user, digest)
        if reason_code not in RECALL_REASON_CODES:
            raise UnprocessableError(
                f"reason_code must be one of: {', '.join(RECALL_REASON_CODES)}",
                rule="reason_code",
            )
        try:
            text = check_reason(reason)
        except SubmissionError as exc:
            raise UnprocessableError(str(exc), rule=exc.rule) from None
        earlier = (await self.store.recalls_for(user.org, [digest])).get(digest, [])
        settled = {r.recipient: r for r in earlier if r.outcome in FINAL_OUTCOMES}
        requested_at = self.service.clock()
        states = await self.store.request_recall(user.org, digest, requested_at)
        if "attempting" in states.values():
            states = await self._settle(user.org, digest)
        sent = await self.store.sent_item(user.org, digest)
        assert sent is not None  # a sent item is never removed by a recall
        base = RecallRow(
            org=user.org, digest=sent.envelope.digest, recipient=user.org, requested_by=user.id,
            requested_at=requested_at, reason=text, reason_code=reason_code,
            outcome="pending", route=None, detail="",
        )  # fmt: skip
        rows: list[RecallRow] = []
        fresh: list[RecallRow] = []
        events: list[bytes] = []
        for delivery in sent.deliveries:
            if delivery.kind != "envelope":
                continue
            earlier_row = settled.get(delivery.destination)
            if earlier_row is not None:
                rows.append(earlier_row)
                continue
            state = states.get(delivery.destination, delivery.state)
            row = await self._one(replace(base, recipient=delivery.destination), delivery, state)
            row = replace(row, updated_at=self.service.clock())
            rows.append(row)
            fresh.append(row)
            if row.outcome == "recalled":
                events.append(
                    ledger_event(
                        EventType.RECALLED, self.service.now(), user.org, sent.envelope.digest,
                        counterparty=delivery.destination,
                        reason=f"{row.route or 'outbox'}:{reason_code}",
                    )
                )  # fmt: skip
        await self.store.record_recalls(fresh, events)
        for row in fresh:
            log.info(
                "envelope.recall",
                digest=digest.hex(),
                org=user.org,
                recipient=row.recipient,
                outcome=row.outcome,
                route=row.route,
            )
        return sorted(rows, key=lambda r: r.recipient)

    async def _settle(self, origin: OrgId, digest: bytes) -> dict[OrgId, str]:
        """Wait for attempts in flight to finish (bounded); return the states then."""
        deadline = time.monotonic() + self.timeout + _SETTLE_SLACK
        while True:
            states = await self.store.outbox_states(origin, digest)
            if "attempting" not in states.values() or time.monotonic() > deadline:
                return states
            await asyncio.sleep(0.05)

    async def _one(self, row: RecallRow, item: OutboxItem, state: str) -> RecallRow:
        """Recall the envelope from one recipient, by where its outbox item stands."""
        if state == "recalled":
            return replace(
                row, outcome="recalled", route="outbox", at=self.service.now(),
                detail="it had not left this node: its delivery was cancelled",
            )  # fmt: skip
        if state != "delivered":
            return replace(
                row, outcome="pending", route=None,
                detail="a delivery attempt was in flight; ask again to finish the recall",
            )  # fmt: skip
        kind = item.route_kind or "https"
        if kind == "mailbox":
            return await self._from_relay(row, item)
        if kind == "https":
            return self._from_notice(row, await self._notify(row), "https")
        if self._https_addresses(item.destination):
            # The recipient's node may hold it by now (collected from MESH, imported from a
            # mail): a notice withdraws it there if nobody has opened it.
            notice = await self._notify(row)
            if notice.outcome in {"recalled", "too-late"}:
                return self._from_notice(row, notice, "https")
        return replace(
            row, outcome="not-recallable", route=kind,
            detail=_NOT_RECALLABLE.get(kind, "the route that took it cannot recall it"),
        )  # fmt: skip

    def _from_notice(self, row: RecallRow, notice: _Notice, route: str) -> RecallRow:
        if notice.outcome == "recalled":
            return replace(
                row, outcome="recalled", route=route, at=notice.at,
                detail="the recipient's node withdrew it before anyone opened it",
            )  # fmt: skip
        if notice.outcome == "too-late":
            return replace(
                row, outcome="too-late", route=route, at=notice.at,
                opened_by_role=notice.opened_by_role,
                detail="it had already been opened at the recipient's node",
            )  # fmt: skip
        if notice.outcome == "unknown":
            return replace(
                row, outcome="not-recallable", route=route,
                detail="the recipient's node no longer holds it under this sender",
            )  # fmt: skip
        return replace(row, outcome="failed", route=route, detail=notice.detail)

    # --- relay mailboxes ---------------------------------------------------------------------

    def _addresses(self, org: OrgId, kind: str) -> list[str]:
        try:
            routes = self.service.directory.organisation(org).routes
        except KeyLookupError:
            return []
        return list(dict.fromkeys(r.address for r in routes if r.kind == kind))

    def _https_addresses(self, org: OrgId) -> list[str]:
        return self._addresses(org, "https")

    async def _request(self, row: RecallRow) -> RecallRequest:
        """Return what the far sides are asked: the envelope, and the notice's reason and time."""
        envelope = await self.store.envelope(row.digest)
        assert envelope is not None  # a sent envelope's row is kept while it can be recalled
        return RecallRequest(
            item=SentItem(row.digest, row.org, row.recipient),
            envelope_id=envelope.envelope_id,
            reason_code=row.reason_code,
            time=self.service.now(),
        )

    async def _from_relay(self, row: RecallRow, item: OutboxItem) -> RecallRow:  # noqa: PLR0911
        connector = self._recallable("mailbox")
        if connector is None:
            return replace(
                row, outcome="failed", route="mailbox",
                detail="this node has no relay mailbox connector to ask",
            )  # fmt: skip
        request = await self._request(row)
        failure: str | None = None
        for address in self._addresses(item.destination, "mailbox"):
            try:
                answer = await connector.recall(request, address, timeout=self.timeout)
            except RecallError as exc:
                failure = exc.reason
                continue
            if answer.outcome == "recalled":
                return replace(
                    row, outcome="recalled", route="mailbox", at=answer.at,
                    detail="it was deleted from the relay mailbox before it was collected",
                )  # fmt: skip
            if answer.outcome == "expired":
                return replace(
                    row, outcome="expired", route="mailbox", at=answer.at,
                    detail="the relay had already expired it, uncollected",
                )  # fmt: skip
            if answer.outcome == "too-late":
                if self._https_addresses(item.destination):
                    notice = await self._notify(row)
                    if notice.outcome in {"recalled", "too-late"}:
                        return self._from_notice(row, notice, "https")
                return replace(
                    row, outcome="too-late", route="mailbox", at=answer.at,
                    detail="the recipient's node had already collected it from the relay mailbox",
                )  # fmt: skip
        if failure is not None:
            return replace(
                row, outcome="failed", route="mailbox",
                detail=f"the relay could not be asked ({failure}); ask again later",
            )  # fmt: skip
        return replace(
            row, outcome="not-recallable", route="mailbox",
            detail="the relay no longer has any record of it",
        )  # fmt: skip

    # --- recall notices to the recipient's node ------------------------------------------------

    async def _notify(self, row: RecallRow) -> _Notice:
        """Send a signed recall notice to each of the recipient's HTTPS routes until one answers."""
        answer = _Notice("failed", detail="the recipient's node lists no HTTPS route")
        addresses = self._https_addresses(row.recipient)
        if not addresses:
            return answer
        connector = self._recallable("https")
        if connector is None:
            return _Notice("failed", detail="this node has no HTTPS connector to send a notice")
        request = await self._request(row)
        for address in addresses:
            try:
                outcome = await connector.recall(request, address, timeout=self.timeout)
            except RecallError as exc:
                answer = _Notice("failed", detail=exc.reason)
                continue
            return _notice(outcome)
        return answer


def _notice(outcome: RecallOutcome) -> _Notice:
    return _Notice(outcome.outcome, at=outcome.at, opened_by_role=outcome.opened_by_role)


# --- the recipient's node ----------------------------------------------------------------------


async def receive_recall(
    service: NodeService, peer_org: OrgId, owner: OrgId, notice: RecallNotice
) -> dict[str, Any]:
    """Honour a recall notice for ``owner``'s inbox item; return the answer's JSON.

    ``peer_org`` signed the request: it must be the envelope's sender. Otherwise, as for an
    item not held, the answer is 404, so nobody learns what ``owner`` holds.
    """
    digest = notice.digest
    # The recall is honoured whatever the code; a code off the list is not written down.
    listed = notice.reason_code in RECALL_REASON_CODES
    reason_code = notice.reason_code if listed else UNLISTED_REASON_CODE
    store = service.store
    item = await store.inbox_item(owner, digest)
    if item is None or item.envelope.sender != peer_org:
        log.warning("recall.refused", org=owner, signer=peer_org, rule="peer.recall-sender")
        raise NotFoundError(
            f"{owner} holds no envelope with that digest from the signing organisation"
        )
    if item.envelope.envelope_id != notice.envelope_id:
        raise ServiceError("envelope_id does not match the envelope's", status=422)
    now = service.now()
    event = ledger_event(
        EventType.RECALLED,
        now,
        owner,
        item.envelope.digest,
        counterparty=peer_org,
        reason=reason_code,
    )
    result = await store.recall_inbox(owner, digest, now=service.clock(), ledger_events=[event])
    if result is None:  # pragma: no cover - the row was read just above and rows stay
        raise NotFoundError(f"{owner} holds no envelope with that digest")
    if result.changed:
        await _drop_body(store, digest)
        log.info("envelope.recalled", digest=digest.hex(), org=owner, sender=peer_org)
    if result.state == "recalled":
        recalled_at = result.recalled_at if result.recalled_at is not None else now
        return {"outcome": "recalled", "recalled_at": int(recalled_at)}
    return {
        "outcome": "too-late",
        "opened_at": None if result.opened_at is None else int(result.opened_at),
        "opened_by_role": result.opened_by_role,
    }


async def _drop_body(store: Store, digest: bytes) -> None:
    """Delete a recalled envelope's body unless another organisation here still holds it."""
    if await store.body_referenced(digest):
        return
    await store.blobs.delete(digest)


# --- views -------------------------------------------------------------------------------------


def recall_json(row: RecallRow) -> dict[str, Any]:
    """Return one recipient's recall outcome as the API shows it."""
    return {
        "organisation": row.recipient,
        "outcome": row.outcome,
        "route": row.route,
        "detail": row.detail,
        "at": row.at,
        "opened_by_role": row.opened_by_role,
        "requested_at": int(row.requested_at),
        "requested_by": row.requested_by,
        "reason_code": row.reason_code,
    }
