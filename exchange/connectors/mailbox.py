"""Relay mailboxes: deposit at a relay, and collect from the node's own mailboxes (docs/relay.md).

:class:`MailboxConnector` serves the directory's ``mailbox`` routes, whose address is a
relay's base URL. ``deliver`` deposits a sealed envelope or signed receipt in the
destination's mailbox there; ``collect`` lists and fetches what waits in the mailboxes of
the node's own organisations (``mailboxes``: relay URL and owner pairs), and
``acknowledge`` tells the relay the node has stored an item, so the relay deletes it. It
is a :class:`~exchange.connectors.base.PullConnector`; ``recall`` and ``status`` serve the sender.

Every request is signed as the peer protocol signs (docs/protocol.md §2): a deposit as the
message's origin, a collection as the mailbox owner, a recall or status as the sender. The
signer is injected (:func:`mailbox_signer` builds the standard one). Statuses are classified
by :func:`exchange.connectors.https.classify_status`; every aiohttp exception is translated in
:func:`_translated`, the only place that names them; every answer is read with a limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import aiohttp
import yarl

from exchange.connectors.base import Collected, ConnectorError, Delivered, Message, MessageKind, Outcome
from exchange.connectors.errors import AttemptError, PermanentError, TransientError
from exchange.connectors.https import CONTENT_TYPES, classify_status
from exchange.connectors.mailbox_wire import (
    DEPOSIT_ACTION,
    Action,
    ItemStatus,
    Listed,
    RecallOutcome,
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
from exchange.logs import get_logger
from exchange.peerauth import signed_post_headers
from exchange.keys.ids import OrgId, parse_org_id
from exchange.keys.keypairs import OrgKeyPair

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "MAX_RESPONSE_LEN",
    "ItemStatus",
    "MailboxCollectError",
    "MailboxConnector",
    "MailboxError",
    "MailboxSigner",
    "RecallOutcome",
    "mailbox_signer",
]

log = get_logger("exchange.connectors.mailbox")

#: Largest JSON answer read from a relay: a list page of 500 items is about 60 KiB.
MAX_RESPONSE_LEN: Final = 256 * 1024
#: Largest item fetched: the largest body a relay or peer accepts (peerauth DEFAULT_MAX_BODY).
DEFAULT_MAX_MESSAGE: Final = 64 * 1024 * 1024
#: Items asked for per list request.
PAGE: Final = 100
#: Longest ``Retry-After`` honoured, in seconds, as for HTTPS push.
MAX_RETRY_AFTER: Final = 24 * 3600
JSON: Final = "application/json"

#: Signs one request: ``(org, url, body, content_type) -> headers``, Content-Type included.
MailboxSigner = Callable[[OrgId, str, bytes, str], dict[str, str]]


def mailbox_signer(pair_of: Callable[[OrgId], OrgKeyPair], now: Callable[[], int]) -> MailboxSigner:
    """Return a :data:`MailboxSigner` that signs as ``org`` with ``pair_of(org)``'s key.

    Each call signs afresh, with a new created time and nonce (docs/protocol.md §5).
    """

    def sign(org: OrgId, url: str, body: bytes, content_type: str) -> dict[str, str]:
        return signed_post_headers(
            url=url, body=body, content_type=content_type, pair=pair_of(org), now=now()
        )

    return sign


class MailboxError(Exception):
    """A collection, acknowledgement, recall or status request could not complete.

    The connector protocol has no outcome value for these calls, so a failure is this
    exception, chained with ``from`` to the translated failure. ``reason`` is a plain
    sentence naming a status or an exception class, never message content; ``retry`` says
    whether it may pass later.
    """

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class MailboxCollectError(MailboxError):
    """``collect`` reached none of the mailboxes, or ``acknowledge`` failed."""


@dataclass(frozen=True, slots=True)
class _Mailbox:
    url: str
    owner: OrgId
    fingerprint: str


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@contextmanager
def _translated() -> Iterator[None]:
    """Translate every aiohttp (and socket) exception of a request, chained with ``from``."""
    try:
        yield
    except TimeoutError as exc:  # asyncio.timeout and aiohttp's own timeouts alike
        raise TransientError("could not reach the relay: no answer before the deadline") from exc
    except aiohttp.ClientError as exc:
        raise TransientError(f"could not reach the relay ({type(exc).__name__})") from exc
    except OSError as exc:
        raise TransientError(f"could not reach the relay ({type(exc).__name__})") from exc


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:  # also refuses NaN
        raise ValueError("timeout must be a positive number of seconds")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "").strip()
    if not value.isdigit() or len(value) > 9:
        return None
    return float(min(int(value), MAX_RETRY_AFTER))


def _judge(answer: _Answer, doing: str) -> None:
    """Raise the failure an answer's status means; return for 2xx."""
    verdict = classify_status(answer.status)
    if verdict == "retry":
        raise TransientError(
            f"the relay answered {answer.status} to {doing}", after=_retry_after(answer.headers)
        )
    if verdict == "refused":
        raise PermanentError(f"the relay refused {doing} with {answer.status}")


def _invalid(exc: ValueError) -> TransientError:
    # The parse_* messages name the field only, never the relay's bytes.
    return TransientError(str(exc))


class MailboxConnector:
    """Deposits at relays, and collects from the node's mailboxes (route kind ``mailbox``).

    ``session`` is the node's shared :class:`aiohttp.ClientSession` (its TLS settings are
    the connector's); :meth:`close` leaves it to its owner. ``sign`` returns the headers of
    each request. ``mailboxes`` are (relay base URL, owner organisation) pairs to collect
    from; :meth:`set_mailboxes` replaces them after a directory reload. Plain ``http://``
    relays are refused unless ``allow_http`` is set (tests only). JSON answers are read up
    to ``max_response`` bytes, fetched items up to ``max_message``.
    """

    route_kind: str = "mailbox"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        sign: MailboxSigner,
        *,
        mailboxes: Sequence[tuple[str, OrgId]] = (),
        allow_http: bool = False,
        max_response: int = MAX_RESPONSE_LEN,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        if max_response < 1 or max_message < 1:
            raise ValueError("max_response and max_message must be positive")
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
        self, url: str, org: OrgId, body: bytes, *, content_type: str, timeout: float, limit: int
    ) -> _Answer:
        """POST ``body`` signed as ``org``; return the status and, for 2xx, the bounded body."""
        headers = self._sign(org, url, body, content_type)
        with _translated():
            async with asyncio.timeout(timeout):
                # encoded=True: the URL goes on the wire exactly as signed; redirects are not
                # followed, since the signature covers the URL.
                async with self._session.post(
                    yarl.URL(url, encoded=True),
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    allow_redirects=False,
                ) as resp:
                    answered = dict(resp.headers)
                    if not 200 <= resp.status < 300:
                        return _Answer(resp.status, answered, b"")
                    return _Answer(resp.status, answered, await _read(resp, limit))

    async def _json(self, url: str, org: OrgId, body: bytes, timeout: float) -> _Answer:
        return await self._post(
            url, org, body, content_type=JSON, timeout=timeout, limit=self._max_response
        )

    # --- push -------------------------------------------------------------------------------

    async def deliver(self, message: Message, address: str, *, timeout: float) -> Outcome:
        """Deposit ``message`` in its destination's mailbox at the relay at ``address``."""
        self._check_open()
        _check_timeout(timeout)
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
        return Delivered(transport_ref=ident, receipt=b"")

    # --- pull -------------------------------------------------------------------------------

    async def collect(self, *, limit: int, timeout: float) -> Sequence[Collected]:
        """Return up to ``limit`` waiting items of the mailboxes; they stay until acknowledged.

        Mailboxes are visited in turn, starting one further each call so none is starved,
        each with an equal share of the time left. One that cannot be reached is skipped
        this round and logged. Raises :class:`MailboxCollectError` only when nothing was
        collected and no mailbox could be read.
        """
        self._check_open()
        _check_timeout(timeout)
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
            raise MailboxCollectError(
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
                found.append(Collected(ref, item.kind, None, box.owner, body))
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

    async def _fetch(self, box: _Mailbox, item: Listed, timeout: float) -> bytes | None:
        if timeout <= 0:
            raise TransientError("could not reach the relay: no time left before the deadline")
        body = json_body({"id": item.digest.hex(), "kind": item.kind})
        url = relay_url(box.url, box.owner, "fetch")
        answer = await self._post(
            url, box.owner, body, content_type=JSON, timeout=timeout, limit=self._max_message
        )
        if answer.status == 404:
            return None
        _judge(answer, "fetching an item")
        if len(answer.body) != item.length:
            raise TransientError("the relay's fetched item is not of the length it listed")
        return answer.body

    async def acknowledge(self, transport_ref: str, *, timeout: float) -> None:
        """Tell the relay a collected item is stored, so it deletes it (idempotent).

        ``ValueError`` if ``transport_ref`` is not one :meth:`collect` made; raises
        :class:`MailboxCollectError` if the relay cannot be reached or refuses, or if its
        mailbox is no longer among the ones collected from.
        """
        self._check_open()
        _check_timeout(timeout)
        fingerprint, kind, digest = decode_ref(transport_ref)
        box = next((m for m in self._mailboxes if m.fingerprint == fingerprint), None)
        if box is None:
            raise MailboxCollectError(
                "the mailbox this item was collected from is no longer collected from",
                retry=False,
            )
        body = json_body({"id": digest.hex(), "kind": kind})
        try:
            url = relay_url(box.url, box.owner, "ack")
            answer = await self._json(url, box.owner, body, timeout)
            _judge(answer, "acknowledging an item")
        except AttemptError as failure:
            raise MailboxCollectError(
                failure.reason, retry=isinstance(failure, TransientError)
            ) from failure

    # --- the sender's side ------------------------------------------------------------------

    async def _as_sender(
        self,
        action: Action,
        *,
        address: str,
        owner: OrgId,
        digest: bytes,
        sender: OrgId,
        kind: MessageKind,
        timeout: float,
    ) -> _Answer | None:
        """POST a recall or status request; return the 2xx answer, or None for 404."""
        self._check_open()
        _check_timeout(timeout)
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        body = json_body({"id": digest.hex(), "kind": kind})
        try:
            url = self._url(address, owner, action)
            answer = await self._json(url, sender, body, timeout)
            if answer.status == 404:
                return None
            _judge(answer, f"the {action} request")
        except AttemptError as failure:
            raise MailboxError(
                failure.reason, retry=isinstance(failure, TransientError)
            ) from failure
        return answer

    async def recall(
        self,
        address: str,
        owner: OrgId,
        digest: bytes,
        sender: OrgId,
        *,
        timeout: float,
        kind: MessageKind = "envelope",
    ) -> RecallOutcome:
        """Ask the relay at ``address`` to delete ``sender``'s item from ``owner``'s mailbox.

        Answers ``recalled`` if the owner had not fetched it, ``too-late`` (with when the
        owner first fetched or collected it) if it had, ``expired``, or ``unknown``. Raises
        :class:`MailboxError` if the relay cannot be reached, refuses, or answers nonsense.
        """
        answer = await self._as_sender(
            "recall",
            address=address,
            owner=owner,
            digest=digest,
            sender=sender,
            kind=kind,
            timeout=timeout,
        )
        if answer is None:
            return RecallOutcome("unknown")
        try:
            return parse_recall(answer.body)
        except ValueError as exc:
            raise MailboxError(str(exc), retry=True) from None

    async def status(
        self,
        address: str,
        owner: OrgId,
        digest: bytes,
        sender: OrgId,
        *,
        timeout: float,
        kind: MessageKind = "envelope",
    ) -> ItemStatus:
        """Return where ``sender``'s item in ``owner``'s mailbox stands ("not yet collected")."""
        answer = await self._as_sender(
            "status",
            address=address,
            owner=owner,
            digest=digest,
            sender=sender,
            kind=kind,
            timeout=timeout,
        )
        if answer is None:
            return ItemStatus("unknown")
        try:
            return parse_status(answer.body)
        except ValueError as exc:
            raise MailboxError(str(exc), retry=True) from None


async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read an answer incrementally, refusing as soon as it exceeds ``limit`` bytes."""
    too_large = f"the relay's answer is larger than {limit} bytes"
    if resp.content_length is not None and resp.content_length > limit:
        raise TransientError(too_large)
    data = bytearray()
    while chunk := await resp.content.read(min(limit + 1 - len(data), 1024 * 1024)):
        data += chunk
        if len(data) > limit:
            raise TransientError(too_large)
    return bytes(data)
