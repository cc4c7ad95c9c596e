"""HTTPS push to a peer node: one signed POST per message (docs/protocol.md §8).

:class:`HttpsPushConnector` serves the directory's ``https`` routes. It POSTs a sealed
envelope or a signed receipt to ``{address}/peer/v1/orgs/{destination}/{envelopes|receipts}``
with the headers an injected signer returns (the node's signer uses
:func:`exchange.peerauth.signed_post_headers` with the origin organisation's key; see
:func:`request_signer`), and classifies the answer (docs/exchange.connectors.md §3): 2xx is
:class:`~exchange.connectors.base.Delivered` with the answer's bytes as ``receipt``; 408, 425, 429,
5xx, network errors, timeouts and oversized answers are :class:`~exchange.connectors.base.RetryLater`;
every other 4xx is :class:`~exchange.connectors.base.Refused`. Every aiohttp exception is translated
in :func:`_translated`, the only place that names them, chained with ``from``.

It is push only: a peer node is reached, never collected from, so it is a
:class:`~exchange.connectors.base.Connector` and not a :class:`~exchange.connectors.base.PullConnector`.
The connector never checks what a 2xx answer says: whether the bytes are a genuine receipt
for the envelope sealed is the node's check (docs/protocol.md [peer.receipt-checked]).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final, Literal

import aiohttp
import yarl

from exchange.connectors.base import ConnectorError, Delivered, Message, MessageKind, Outcome
from exchange.connectors.errors import AttemptError, PermanentError, TransientError
from exchange.peerauth import signed_post_headers
from exchange.keys.ids import OrgId, parse_org_id
from exchange.keys.keypairs import OrgKeyPair

#: Largest answer read from a peer. A signed receipt is well under 1 KiB and the receipts
#: endpoint answers a short JSON object; 16 KiB is the limit the outbox used before
#: connectors (exchange/workers/delivery.py), kept so a hostile peer costs little memory.
MAX_RESPONSE_LEN: Final = 16 * 1024

#: Statuses below 500 that may pass later (docs/protocol.md §8): Request Timeout, Too Early,
#: Too Many Requests.
RETRY_STATUSES: Final = frozenset({408, 425, 429})

#: The Content-Type each kind is sent with; the signer must set it, because it is covered by
#: the signature (docs/protocol.md §4) and aiohttp would otherwise add an uncovered one.
CONTENT_TYPES: Final[Mapping[MessageKind, str]] = {
    "envelope": "application/vnd.exchange.envelope",
    "receipt": "application/vnd.exchange.receipt",
}

#: The path segment of each kind's endpoint (docs/protocol.md §8).
ENDPOINTS: Final[Mapping[MessageKind, str]] = {"envelope": "envelopes", "receipt": "receipts"}

#: Longest ``Retry-After`` honoured, in seconds: a peer cannot park our outbox for longer
#: than a day; the outbox's own backoff and dead-letter age still apply.
MAX_RETRY_AFTER: Final = 24 * 3600

#: A peer's X-Request-Id is kept as ``transport_ref`` only if it is a short token, because
#: it ends up in logs and the ledger's status timeline; anything else is dropped.
_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

#: Signs one request: ``(message, url) -> headers``, Content-Type included.
Signer = Callable[[Message, str], dict[str, str]]

Verdict = Literal["delivered", "retry", "refused"]


def classify_status(status: int) -> Verdict:
    """Return what an HTTP ``status`` from a peer means for the attempt.

    2xx delivered; 408, 425, 429 and 5xx retry; every other 4xx refused. Anything else
    (1xx, 3xx: redirects are not followed, because the signature covers the URL) is retried,
    so a misconfigured peer delays an envelope and never loses it.
    """
    if 200 <= status < 300:
        return "delivered"
    if 400 <= status < 500 and status not in RETRY_STATUSES:
        return "refused"
    return "retry"


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
    """Return a :data:`Signer` that signs as the message's origin (docs/protocol.md §2).

    ``pair_of`` returns the origin organisation's current key pair; ``now`` the clock in
    unix seconds. Each call signs afresh, with a new created time and nonce, so a retry is
    never refused as a replay (docs/protocol.md §5).
    """

    def sign(message: Message, url: str) -> dict[str, str]:
        return signed_post_headers(
            url=url,
            body=message.body,
            content_type=CONTENT_TYPES[message.kind],
            pair=pair_of(message.origin),
            now=now(),
        )

    return sign


@contextmanager
def _translated() -> Iterator[None]:
    """Translate every aiohttp (and socket) exception of an attempt, chained with ``from``.

    The only place in this module that names aiohttp's exceptions. Every one of them is a
    failure that may pass: a network error, a TLS failure (a peer renewing its certificate),
    a broken or truncated answer, or the deadline.
    """
    try:
        yield
    except TimeoutError as exc:  # asyncio.timeout and aiohttp's own timeouts alike
        raise TransientError("could not reach the peer: no answer before the deadline") from exc
    except aiohttp.ClientError as exc:
        raise TransientError(f"could not reach the peer ({type(exc).__name__})") from exc
    except OSError as exc:
        raise TransientError(f"could not reach the peer ({type(exc).__name__})") from exc


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Return a ``Retry-After`` given in delta-seconds, capped; ignore the date form."""
    value = headers.get("Retry-After", "").strip()
    if not value.isdigit() or len(value) > 9:
        return None
    return float(min(int(value), MAX_RETRY_AFTER))


def _request_id(headers: Mapping[str, str]) -> str:
    value = headers.get("X-Request-Id", "")
    return value if _REQUEST_ID_RE.fullmatch(value) else ""


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:  # also refuses NaN
        raise ValueError("timeout must be a positive number of seconds")


class HttpsPushConnector:
    """Pushes messages to peer nodes over HTTPS (route kind ``https``).

    ``session`` is the node's shared :class:`aiohttp.ClientSession` (its TLS settings are
    the connector's); :meth:`close` stops this connector but leaves the session to its
    owner. ``signer`` returns the headers of each request. Plain ``http://`` addresses are
    refused unless ``allow_http`` is set, which only tests do: node-to-node requests go
    over TLS (DESIGN.md §7).
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
        if self._closed:
            raise ConnectorError("the HTTPS connector is closed")
        _check_timeout(timeout)
        try:
            url = self._url(message, address)
            # Signed afresh for every attempt, outside the deadline: signing is local work.
            headers = self._signer(message, url)
            return await self._post(url, message.body, headers, timeout)
        except AttemptError as failure:
            return failure.outcome()

    async def close(self) -> None:
        """Refuse further use; the session belongs to whoever created it."""
        self._closed = True

    def _url(self, message: Message, address: str) -> str:
        try:
            url = peer_url(address, message.destination, message.kind)
        except ValueError as exc:
            # A route address the directory should never have published: never on this route.
            raise PermanentError(f"the https route cannot be used: {exc}") from exc
        if url.startswith("http://") and not self._allow_http:
            raise PermanentError("the https route's address is not https")
        return url

    async def _post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Delivered:
        with _translated():
            async with asyncio.timeout(timeout):
                # encoded=True: the URL goes on the wire exactly as it was signed
                # (docs/protocol.md §4). Redirects are not followed: the signature covers the
                # URL, and a body must not be re-sent to a place the directory does not name.
                async with self._session.post(
                    yarl.URL(url, encoded=True),
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    allow_redirects=False,
                ) as resp:
                    verdict = classify_status(resp.status)
                    if verdict == "retry":
                        raise TransientError(
                            f"the peer answered {resp.status}", after=_retry_after(resp.headers)
                        )
                    if verdict == "refused":
                        raise PermanentError(f"the peer refused with {resp.status}")
                    receipt = await self._read_answer(resp)
                    return Delivered(transport_ref=_request_id(resp.headers), receipt=receipt)

    async def _read_answer(self, resp: aiohttp.ClientResponse) -> bytes:
        """Read the answer incrementally, stopping as soon as it exceeds the limit.

        ``StreamReader.read(n)`` returns whatever has arrived, up to ``n`` bytes, so one
        call can return a partial answer; reading runs until end of stream.
        """
        limit = self._max_response
        too_large = f"the peer's answer is larger than {limit} bytes"
        if resp.content_length is not None and resp.content_length > limit:
            raise TransientError(too_large)
        data = bytearray()
        while chunk := await resp.content.read(limit + 1 - len(data)):
            data += chunk
            if len(data) > limit:
                raise TransientError(too_large)
        return bytes(data)
