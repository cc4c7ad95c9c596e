"""HTTPS to a peer node: signed POSTs of messages and recall notices (docs/protocol.md §8).

:class:`HttpsPushConnector` serves the directory's ``https`` routes. It POSTs a sealed
envelope or a signed receipt to ``{address}/peer/v1/orgs/{destination}/{envelopes|receipts}``
with the headers an injected signer returns (the node's signer uses
:func:`exchange.peerauth.signed_post_headers` with the origin organisation's key; see
:func:`request_signer`), and classifies the answer (docs/connectors.md §3): 2xx is
:class:`~exchange.connectors.base.Delivered` with the answer's bytes as ``receipt``; 408,
425, 429, 5xx, network errors, timeouts and oversized answers are
:class:`~exchange.connectors.base.RetryLater`; every other 4xx is
:class:`~exchange.connectors.base.Refused`. The request, the translation of aiohttp's
exceptions and the bounded read are the shared edge's (:mod:`exchange.connectors.edge`).

A peer node is reached, never collected from, so it is a
:class:`~exchange.connectors.base.Connector` and not a
:class:`~exchange.connectors.base.PullConnector`. It is
:class:`~exchange.connectors.base.Recallable`: :meth:`HttpsPushConnector.recall` sends a
signed recall notice to ``{address}/peer/v1/orgs/{destination}/recalls``, signed as the
sender. The connector never checks what a 2xx delivery answer says: whether the bytes are a
genuine receipt for the envelope sealed is the node's check (docs/protocol.md
[peer.receipt-checked]).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

import aiohttp
import yarl

from exchange.connectors.base import (
    Body,
    ConnectorError,
    Delivered,
    Message,
    MessageKind,
    Outcome,
    RecallError,
    RecallOutcome,
    RecallRequest,
    check_timeout,
)
from exchange.connectors.bodies import body_sha256
from exchange.connectors.edge import (
    Answer,
    AnswerTooLargeError,
    UnreachableError,
    classify_status,
    clock_refused,
    far_time,
    judge,
    request,
)
from exchange.connectors.errors import AttemptError, PermanentError
from exchange.connectors.peer_wire import NOTICE_MEDIA, notice_body, parse_notice_answer
from exchange.keys.ids import OrgId, parse_org_id
from exchange.keys.keypairs import OrgKeyPair
from exchange.peerauth import BodyDigest, signed_post_headers

#: Largest answer read from a peer. A signed receipt is well under 1 KiB and the receipts
#: endpoint answers a short JSON object; 16 KiB is the limit the outbox used before
#: connectors (exchange/workers/delivery.py), kept so a hostile peer costs little memory.
MAX_RESPONSE_LEN: Final = 16 * 1024

#: The Content-Type each kind is sent with; the signer must set it, because it is covered by
#: the signature (docs/protocol.md §4) and aiohttp would otherwise add an uncovered one.
CONTENT_TYPES: Final[Mapping[MessageKind, str]] = {
    "envelope": "application/vnd.exchange.envelope",
    "receipt": "application/vnd.exchange.receipt",
}

#: The path segment of each kind's endpoint (docs/protocol.md §8).
ENDPOINTS: Final[Mapping[MessageKind, str]] = {"envelope": "envelopes", "receipt": "receipts"}

#: A peer's X-Request-Id is kept as ``transport_ref`` only if it is a short token, because
#: it ends up in logs and the ledger's status timeline; anything else is dropped.
_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

#: Signs one request as an organisation: ``(org, url, body, content_type) -> headers``,
#: Content-Type included, since the signature covers it (docs/protocol.md §4). ``body`` is
#: the bytes, or the :class:`~exchange.peerauth.BodyDigest` of a body streamed from a file.
Signer = Callable[[OrgId, str, bytes | BodyDigest, str], dict[str, str]]


def peer_url(address: str, destination: str, kind: MessageKind) -> str:
    """Return the URL of ``destination``'s endpoint for ``kind`` at the node at ``address``.

    ``address`` is the directory's ``https`` route address: an absolute ``https://`` (or,
    for tests, ``http://``) URL of the node, optionally with a path prefix, without query or
    fragment. The result is already percent-encoded and is sent exactly as signed. Raises
    ``ValueError`` naming the argument that is wrong.
    """
    if kind not in ENDPOINTS:
        raise ValueError(f"kind must be one of {', '.join(sorted(ENDPOINTS))}")
    org = parse_org_id(destination, field="destination")
    base = address.rstrip("/")
    try:
        parsed = yarl.URL(base, encoded=True)
    except ValueError:
        raise ValueError("address must be an absolute http(s) URL") from None
    if parsed.scheme not in {"https", "http"} or not parsed.host:
        raise ValueError("address must be an absolute http(s) URL")
    if parsed.raw_query_string or parsed.raw_fragment or "?" in base or "#" in base:
        raise ValueError("address must not have a query or a fragment")
    return f"{base}/peer/v1/orgs/{org}/{ENDPOINTS[kind]}"


def request_signer(pair_of: Callable[[OrgId], OrgKeyPair], now: Callable[[], int]) -> Signer:
    """Return a :data:`Signer` that signs as ``org`` with ``pair_of(org)`` (docs/protocol.md §2).

    ``pair_of`` returns an organisation's current key pair; ``now`` the clock in unix
    seconds. Each call signs afresh, with a new created time and nonce, so a retry is never
    refused as a replay (docs/protocol.md §5). Peer nodes and relays verify the same way, so
    the relay mailbox connector signs with it too.
    """

    def sign(org: OrgId, url: str, body: bytes | BodyDigest, content_type: str) -> dict[str, str]:
        return signed_post_headers(
            url=url, body=body, content_type=content_type, pair=pair_of(org), now=now()
        )

    return sign


async def signable(body: Body) -> bytes | BodyDigest:
    """Return what a request signature covers of ``body``: its bytes, or a file's SHA-256."""
    if isinstance(body, bytes):
        return body
    return BodyDigest(await body_sha256(body))


def _request_id(headers: Mapping[str, str]) -> str:
    value = headers.get("X-Request-Id", "")
    return value if _REQUEST_ID_RE.fullmatch(value) else ""


class HttpsPushConnector:
    """Pushes messages to peer nodes over HTTPS (route kind ``https``).

    ``session`` is the node's shared :class:`aiohttp.ClientSession` (its TLS settings are
    the connector's); :meth:`close` stops this connector but leaves the session to its
    owner. ``signer`` returns the headers of each request. Plain ``http://`` addresses are
    refused unless ``allow_http`` is set, which only tests do: node-to-node requests go
    over TLS (docs/architecture.md §5).
    """

    route_kind: str = "https"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        signer: Signer,
        *,
        allow_http: bool = False,
        max_response: int = MAX_RESPONSE_LEN,
    ) -> None:
        if max_response < 0:
            raise ValueError("max_response must not be negative")
        self._session = session
        self._signer = signer
        self._allow_http = allow_http
        self._max_response = max_response
        self._closed = False

    async def deliver(self, message: Message, address: str, *, timeout: float) -> Outcome:
        """POST ``message`` to its destination at the node at ``address``; classify the answer.

        Returns within ``timeout`` seconds (plus scheduling slack): the whole attempt,
        connecting, sending and reading the answer, runs under one deadline.
        """
        self._check_open()
        check_timeout(timeout)
        try:
            url = self._url(message, address)
            # Signed afresh for every attempt, outside the deadline: signing is local work
            # (for a file without its SHA-256, one read of it before it is sent).
            signed = await signable(message.body)
            headers = self._signer(message.origin, url, signed, CONTENT_TYPES[message.kind])
            answer = await self._post(url, message.body, headers, timeout)
            judge(answer, far_side="the peer")
        except AttemptError as failure:
            return failure.outcome()
        return Delivered(
            transport_ref=_request_id(answer.headers),
            receipt=answer.body,
            far_time=far_time(answer.headers),
        )

    async def recall(
        self, request: RecallRequest, address: str, *, timeout: float
    ) -> RecallOutcome:
        """Send a signed recall notice for ``request.item`` to the node at ``address``.

        The node answers ``recalled`` if nobody had opened it, ``too-late`` (with when and by
        which role it was opened) if someone had, or 404 (``unknown``) if it holds no such
        envelope from the sender. Raises :class:`~exchange.connectors.base.RecallError`
        otherwise, with a reason that says whether to ask again later.
        """
        self._check_open()
        check_timeout(timeout)
        url = self._recall_url(address, request.item.destination)
        body = notice_body(request)
        headers = self._signer(request.item.origin, url, body, NOTICE_MEDIA)
        try:
            answer = await self._post(url, body, headers, timeout)
        except UnreachableError as exc:
            raise RecallError(
                f"the recipient's node could not be reached ({exc.error_class}); ask again later",
                retry=True,
            ) from exc
        except AnswerTooLargeError as exc:
            raise RecallError(
                f"the recipient's node gave an answer larger than {exc.limit} bytes; "
                "ask again later",
                retry=True,
            ) from exc
        if answer.status == 404:
            return RecallOutcome("unknown")
        if answer.status != 200:
            raise RecallError(
                f"the recipient's node answered {answer.status}; ask again later",
                # A refusal of the request's time passes once the clocks agree.
                retry=classify_status(answer.status) != "refused" or clock_refused(answer),
            )
        return parse_notice_answer(answer.body)

    async def close(self) -> None:
        """Refuse further use; the session belongs to whoever created it."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectorError("the HTTPS connector is closed")

    def _url(self, message: Message, address: str) -> str:
        try:
            url = peer_url(address, message.destination, message.kind)
        except ValueError as exc:
            # A route address the directory should never have published: never on this route.
            raise PermanentError(f"the https route cannot be used: {exc}") from exc
        if url.startswith("http://") and not self._allow_http:
            raise PermanentError("the https route's address is not https")
        return url

    def _recall_url(self, address: str, destination: OrgId) -> str:
        base = address.rstrip("/")
        try:
            parsed = yarl.URL(base, encoded=True)
        except ValueError:
            raise RecallError("the recipient's HTTPS route is not a URL", retry=False) from None
        schemes = {"https", "http"} if self._allow_http else {"https"}
        if parsed.scheme not in schemes or not parsed.host or parsed.raw_query_string:
            raise RecallError("the recipient's HTTPS route is not an https URL", retry=False)
        return f"{base}/peer/v1/orgs/{parse_org_id(destination, field='recipient')}/recalls"

    async def _post(
        self, url: str, body: Body, headers: Mapping[str, str], timeout: float
    ) -> Answer:
        return await request(
            self._session,
            "POST",
            url,
            far_side="the peer",
            whose="the peer's",
            timeout=timeout,
            limit=self._max_response,
            headers=headers,
            data=body,
        )
