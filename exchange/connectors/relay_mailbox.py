"""Relay mailboxes: deposit at a relay, and collect from the node's own mailboxes (docs/relay.md).

:class:`RelayMailboxConnector` serves the directory's ``mailbox`` routes, whose address is a
relay's base URL. ``deliver`` deposits a sealed envelope or signed receipt in the
destination's mailbox there; ``collect`` lists and fetches what waits in the mailboxes of
the node's own organisations (``mailboxes``: relay URL and owner pairs), and
``acknowledge`` tells the relay the node has stored an item, so the relay deletes it. It
is a :class:`~exchange.connectors.base.PullConnector`, and
:class:`~exchange.connectors.base.Recallable` and :class:`~exchange.connectors.base.Trackable`:
``recall`` and ``status`` serve the sender.

Every request is signed as the peer protocol signs (docs/protocol.md §2): a deposit as the
message's origin, a collection as the mailbox owner, a recall or status as the sender. The
signer is injected (:func:`exchange.connectors.https.request_signer` builds the standard
one). Requests, the translation of aiohttp's exceptions, bounded reads and the status
classification are the shared edge's (:mod:`exchange.connectors.edge`), as for HTTPS push.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

from exchange.connectors.base import (
    Body,
    Collected,
    CollectError,
    ConnectorError,
    Delivered,
    ItemStatus,
    Message,
    NonDelivery,
    Outcome,
    RecallError,
    RecallOutcome,
    RecallRequest,
    SentItem,
    check_timeout,
)
from exchange.connectors.edge import Answer, SinkFor, far_time, judge, request
from exchange.connectors.errors import AttemptError, PermanentError, TransientError
from exchange.connectors.https import CONTENT_TYPES, Signer, signable
from exchange.connectors.relay_wire import (
    DEPOSIT_ACTION,
    Action,
    Listed,
    check_address,
    decode_ref,
    encode_ref,
    json_body,
    mailbox_fingerprint,
    parse_deposit,
    parse_list,
    parse_recall,
    parse_status,
    relay_url,
)
from exchange.keys.ids import OrgId, parse_org_id
from exchange.logs import get_logger
from exchange.spool import Spool, SpoolFeeder

__all__ = ["DEFAULT_MAX_MESSAGE", "MAX_RESPONSE_LEN", "RelayMailboxConnector"]

log = get_logger("exchange.connectors.relay_mailbox")

#: Largest JSON answer read from a relay: a list page of 500 items is about 60 KiB.
MAX_RESPONSE_LEN: Final = 256 * 1024
#: Largest item fetched: the largest body a relay or peer accepts (peerauth DEFAULT_MAX_BODY).
DEFAULT_MAX_MESSAGE: Final = 64 * 1024 * 1024
#: Items asked for per list request.
PAGE: Final = 100
JSON: Final = "application/json"
#: How the relay is named in reasons.
RELAY: Final = "the relay"


@dataclass(frozen=True, slots=True)
class _Mailbox:
    url: str
    owner: OrgId
    fingerprint: str


def _judge(answer: Answer, doing: str) -> None:
    """Raise the failure an answer's status means; return for 2xx."""
    judge(answer, far_side=RELAY, doing=doing)


def _invalid(exc: ValueError) -> TransientError:
    # The parse_* messages name the field only, never the relay's bytes.
    return TransientError(str(exc))


class RelayMailboxConnector:
    """Deposits at relays, and collects from the node's mailboxes (route kind ``mailbox``).

    ``session`` is the node's shared :class:`aiohttp.ClientSession` (its TLS settings are
    the connector's); :meth:`close` leaves it to its owner. ``sign`` returns the headers of
    each request. ``mailboxes`` are (relay base URL, owner organisation) pairs to collect
    from; :meth:`set_mailboxes` replaces them after a directory reload. Plain ``http://``
    relays are refused unless ``allow_http`` is set (tests only). JSON answers are read up
    to ``max_response`` bytes, fetched items up to ``max_message``, streamed into a spool
    in the folder ``spool`` (the node's bodies' spool folder, where storing one in a folder of
    files is a link, not a copy; None: the system's temporary folder).
    """

    route_kind: str = "mailbox"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        sign: Signer,
        *,
        mailboxes: Sequence[tuple[str, OrgId]] = (),
        allow_http: bool = False,
        max_response: int = MAX_RESPONSE_LEN,
        max_message: int = DEFAULT_MAX_MESSAGE,
        spool: Path | None = None,
    ) -> None:
        if max_response < 1 or max_message < 1:
            raise ValueError("max_response and max_message must be positive")
        self._spool = spool
        self._session = session
        self._sign = sign
        self._allow_http = allow_http
        self._max_response = max_response
        self._max_message = max_message
        self._closed = False
        self._mailboxes: tuple[_Mailbox, ...] = ()
        self._start = 0
        self.set_mailboxes(mailboxes)

    def set_mailboxes(self, mailboxes: Iterable[tuple[str, OrgId]]) -> None:
        """Replace the mailboxes collected from; ``ValueError`` names a malformed one.

        Items collected from a mailbox that is still listed can be acknowledged after the
        change, since a ``transport_ref`` names its mailbox by relay and owner.
        """
        boxes: dict[str, _Mailbox] = {}
        for i, (address, owner) in enumerate(mailboxes):
            try:
                url = self._address(address)
            except PermanentError as exc:
                raise ValueError(f"mailboxes[{i}]: {exc.reason}") from None
            org = parse_org_id(owner, field=f"mailboxes[{i}] owner")
            fingerprint = mailbox_fingerprint(url, org)
            boxes.setdefault(fingerprint, _Mailbox(url, org, fingerprint))
        self._mailboxes = tuple(boxes.values())

    @property
    def mailboxes(self) -> tuple[tuple[str, OrgId], ...]:
        """The (relay base URL, owner) pairs collected from."""
        return tuple((m.url, m.owner) for m in self._mailboxes)

    async def close(self) -> None:
        """Refuse further use; the session belongs to whoever created it."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectorError("the mailbox connector is closed")

    def _address(self, address: str) -> str:
        try:
            url = check_address(address)
        except ValueError as exc:
            raise PermanentError(f"the mailbox route cannot be used: {exc}") from exc
        if url.startswith("http://") and not self._allow_http:
            raise PermanentError("the mailbox route's address is not https")
        return url

    def _url(self, address: str, owner: str, action: Action) -> str:
        base = self._address(address)
        try:
            return relay_url(base, owner, action)
        except ValueError as exc:
            raise PermanentError(f"the mailbox route cannot be used: {exc}") from exc

    # --- one request ------------------------------------------------------------------------

    async def _post(
        self,
        url: str,
        org: OrgId,
        body: Body,
        *,
        content_type: str,
        timeout: float,
        limit: int,
        sink: SinkFor | None = None,
    ) -> Answer:
        """POST ``body`` signed as ``org``; return the status and, for 2xx, the bounded body.

        A file body is streamed; with ``sink``, so is a 2xx answer (:func:`request`).
        """
        headers = self._sign(org, url, await signable(body), content_type)
        return await request(
            self._session,
            "POST",
            url,
            far_side=RELAY,
            whose="the relay's",
            timeout=timeout,
            limit=limit,
            headers=headers,
            data=body,
            sink=sink,
        )

    async def _json(self, url: str, org: OrgId, body: bytes, timeout: float) -> Answer:
        return await self._post(
            url, org, body, content_type=JSON, timeout=timeout, limit=self._max_response
        )

    # --- push -------------------------------------------------------------------------------

    async def deliver(self, message: Message, address: str, *, timeout: float) -> Outcome:
        """Deposit ``message`` in its destination's mailbox at the relay at ``address``."""
        self._check_open()
        check_timeout(timeout)
        try:
            url = self._url(address, message.destination, DEPOSIT_ACTION[message.kind])
            answer = await self._post(
                url,
                message.origin,
                message.body,
                content_type=CONTENT_TYPES[message.kind],
                timeout=timeout,
                limit=self._max_response,
            )
            _judge(answer, f"the {message.kind}")
            try:
                ident = parse_deposit(answer.body)
            except ValueError as exc:
                raise _invalid(exc) from None
            if ident != message.message_id.hex():
                raise TransientError("the relay's answer names another item than the one sent")
        except AttemptError as failure:
            return failure.outcome()
        return Delivered(transport_ref=ident, receipt=b"", far_time=far_time(answer.headers))

    # --- pull -------------------------------------------------------------------------------

    async def collect(self, *, limit: int, timeout: float) -> Sequence[Collected]:
        """Return up to ``limit`` waiting items of the mailboxes; they stay until acknowledged.

        Mailboxes are visited in turn, starting one further each call so none is starved,
        each with an equal share of the time left. One that cannot be reached is skipped
        this round and logged. Raises :class:`~exchange.connectors.base.CollectError` only
        when nothing was collected and no mailbox could be read.
        """
        self._check_open()
        check_timeout(timeout)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        boxes = self._mailboxes
        if not boxes:
            return []
        start = self._start % len(boxes)
        self._start += 1
        order = boxes[start:] + boxes[:start]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found: list[Collected] = []
        failures: list[AttemptError] = []
        reached = 0
        for i, box in enumerate(order):
            if len(found) >= limit:
                break
            share = (deadline - loop.time()) / (len(order) - i)
            try:
                if share <= 0:
                    raise TransientError(
                        "could not reach the relay: no time left before the deadline"
                    )
                await self._collect_from(box, limit - len(found), loop.time() + share, found)
                reached += 1
            except AttemptError as failure:
                failures.append(failure)
                log.warning("mailbox.collect-skipped", org=box.owner, error=failure.reason)
        if not reached and not found and failures:
            transient = any(isinstance(f, TransientError) for f in failures)
            raise CollectError(
                f"no mailbox could be read: {failures[0].reason}", retry=transient
            ) from failures[0]
        return found

    async def _collect_from(
        self, box: _Mailbox, want: int, deadline: float, found: list[Collected]
    ) -> None:
        """List and fetch up to ``want`` items of ``box`` into ``found`` before ``deadline``."""
        loop = asyncio.get_running_loop()
        cursor: str | None = None
        seen: set[tuple[str, bytes]] = set()
        taken = 0
        while taken < want:
            asked = min(want - taken, PAGE)
            items, cursor = await self._list(box, asked, cursor, deadline - loop.time())
            for item in items:
                if taken >= want:
                    break
                if (item.kind, item.digest) in seen:
                    continue
                seen.add((item.kind, item.digest))
                body = await self._fetch(box, item, deadline - loop.time())
                if body is None:  # recalled or expired since it was listed
                    continue
                ref = encode_ref(box.fingerprint, item.kind, item.digest)
                # A small body (a receipt) is handed over as bytes; a large one as its spool.
                held = body.read(body.length) if body.in_memory else body
                found.append(Collected(ref, item.kind, None, box.owner, held))
                taken += 1
            if cursor is None or not items:
                return

    async def _list(
        self, box: _Mailbox, asked: int, cursor: str | None, timeout: float
    ) -> tuple[list[Listed], str | None]:
        if timeout <= 0:
            raise TransientError("could not reach the relay: no time left before the deadline")
        body = json_body({"limit": asked, "after": cursor})
        url = relay_url(box.url, box.owner, "list")
        answer = await self._json(url, box.owner, body, timeout)
        _judge(answer, "listing the mailbox")
        try:
            return parse_list(answer.body, asked=asked, max_length=self._max_message)
        except ValueError as exc:
            raise _invalid(exc) from None

    async def _fetch(self, box: _Mailbox, item: Listed, timeout: float) -> Spool | None:
        """Fetch one item into a spool (in pieces, to disk past a small size), or None if gone.

        The caller owns the spool once it is returned; on any failure it is dropped here.
        """
        if timeout <= 0:
            raise TransientError("could not reach the relay: no time left before the deadline")
        body = json_body({"id": item.digest.hex(), "kind": item.kind})
        url = relay_url(box.url, box.owner, "fetch")
        with Spool(self._spool).dropped_on_failure() as spool:
            feeder = SpoolFeeder(spool)
            answer = await self._post(
                url, box.owner, body, content_type=JSON, timeout=timeout,
                limit=item.length, sink=lambda _headers: feeder.add,
            )  # fmt: skip
            await feeder.flush()
            if answer.status == 404:
                spool.close()
                return None
            _judge(answer, "fetching an item")
            if spool.length != item.length:
                raise TransientError("the relay's fetched item is not of the length it listed")
        return spool

    async def acknowledge(self, transport_ref: str, *, timeout: float) -> None:
        """Tell the relay a collected item is stored, so it deletes it (idempotent).

        ``ValueError`` if ``transport_ref`` is not one :meth:`collect` made; raises
        :class:`~exchange.connectors.base.CollectError` if the relay cannot be reached or
        refuses, or if its mailbox is no longer among the ones collected from.
        """
        self._check_open()
        check_timeout(timeout)
        fingerprint, kind, digest = decode_ref(transport_ref)
        box = next((m for m in self._mailboxes if m.fingerprint == fingerprint), None)
        if box is None:
            raise CollectError(
                "the mailbox this item was collected from is no longer collected from",
                retry=False,
            )
        body = json_body({"id": digest.hex(), "kind": kind})
        try:
            url = relay_url(box.url, box.owner, "ack")
            answer = await self._json(url, box.owner, body, timeout)
            _judge(answer, "acknowledging an item")
        except AttemptError as failure:
            raise failure.collect_error() from failure

    def unread(self) -> Mapping[str, str]:
        """Return nothing: a relay item that cannot be read fails its round and is retried."""
        return {}

    def non_delivery_reports(self) -> Sequence[NonDelivery]:
        """Return nothing: a relay reports an item it expired through ``status``, not here."""
        return ()

    # --- the sender's side ------------------------------------------------------------------

    async def _as_sender(
        self, action: Action, item: SentItem, address: str, *, timeout: float
    ) -> Answer | None:
        """POST a recall or status request as the sender; return the 2xx answer, or None for 404."""
        self._check_open()
        check_timeout(timeout)
        body = json_body({"id": item.message_id.hex(), "kind": item.kind})
        try:
            url = self._url(address, item.destination, action)
            answer = await self._json(url, item.origin, body, timeout)
            if answer.status == 404:
                return None
            _judge(answer, f"the {action} request")
        except AttemptError as failure:
            raise failure.recall_error() from failure
        return answer

    async def recall(
        self, request: RecallRequest, address: str, *, timeout: float
    ) -> RecallOutcome:
        """Ask the relay at ``address`` to delete the sender's item from its owner's mailbox.

        Answers ``recalled`` if the owner had not fetched it, ``too-late`` (with when the
        owner first fetched or collected it) if it had, ``expired``, or ``unknown``. Raises
        :class:`~exchange.connectors.base.RecallError` if the relay cannot be reached,
        refuses, or answers nonsense. A relay needs only the item, not the notice's reason.
        """
        answer = await self._as_sender("recall", request.item, address, timeout=timeout)
        if answer is None:
            return RecallOutcome("unknown")
        try:
            return parse_recall(answer.body)
        except ValueError as exc:
            raise RecallError(str(exc), retry=True) from None

    async def status(self, item: SentItem, address: str, *, timeout: float) -> ItemStatus:
        """Return where the sender's item in its owner's mailbox stands ("not yet collected")."""
        answer = await self._as_sender("status", item, address, timeout=timeout)
        if answer is None:
            return ItemStatus("unknown")
        try:
            return parse_status(answer.body)
        except ValueError as exc:
            raise RecallError(str(exc), retry=True) from None
