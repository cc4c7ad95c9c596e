"""The aiohttp edge every HTTP connector shares: one request, translated, bounded, judged.

HTTPS push, relay mailboxes and NHS MESH all speak HTTP through aiohttp, and all need the
same three things, which live here and nowhere else:

- :func:`translated`: the only place that names aiohttp's exceptions. Each one (a network
  or TLS failure, a dropped or truncated answer, the deadline) becomes an
  :class:`UnreachableError`, a :class:`~exchange.connectors.errors.TransientError` chained with
  ``from`` that names the far side and the exception class, never what was sent;
- :func:`read_bounded`: reads an answer incrementally and stops as soon as it passes its
  limit, so a hostile or broken server costs at most that much memory; the failure,
  :class:`AnswerTooLargeError`, names the limit;
- :func:`classify_status` and :func:`judge`: what a status means (success, retry later,
  refused) and the failure with its plain reason. A 401 whose body names the problem
  ``signature.time`` (the far side refused the request's time: a clock is off,
  docs/protocol.md §6) may pass later, once the clocks agree, and is a
  :class:`ClockRefusedError`; :func:`far_time` reads the far side's clock from its ``Date``.

:func:`request` puts them together for one request under one deadline. Redirects are never
followed: a signature covers the URL, and a body must not be re-sent to a place the
directory does not name. The URL goes on the wire exactly as given (``encoded=True``).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterable, Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final, Literal

import aiohttp
import yarl

from exchange.connectors.base import StoredBody
from exchange.connectors.bodies import body_pieces
from exchange.connectors.errors import PermanentError, TransientError
from exchange.peerauth.errors import CLOCK_PROBLEM

#: Statuses below 500 that may pass later on a peer node or a relay (docs/protocol.md §8):
#: Request Timeout, Too Early, Too Many Requests.
RETRY_STATUSES: Final = frozenset({408, 425, 429})

#: Longest ``Retry-After`` honoured, in seconds: a far side cannot park our outbox for
#: longer than a day; the outbox's own backoff and dead-letter age still apply.
MAX_RETRY_AFTER: Final = 24 * 3600

#: Most bytes asked of the stream per read: a large limit (a 64 MiB download) is still
#: read in pieces, so one read never asks for the whole limit at once.
READ_PIECE: Final = 1024 * 1024

#: Most bytes read of a 401 answer, whose JSON may name the problem (docs/protocol.md §6);
#: a longer one is not read, and counts as a plain refusal.
ERROR_BODY_LIMIT: Final = 4096

Verdict = Literal["success", "retry", "refused"]


class UnreachableError(TransientError):
    """The far side could not be reached or did not answer completely before the deadline.

    ``error_class`` is the name of the library exception translated (``TimeoutError`` for
    the deadline), for a caller that words its own sentence.
    """

    def __init__(self, reason: str, *, error_class: str) -> None:
        super().__init__(reason)
        self.error_class = error_class


class AnswerTooLargeError(TransientError):
    """An answer over its read limit (declared by Content-Length, or counted while reading)."""

    def __init__(self, reason: str, *, limit: int) -> None:
        super().__init__(reason)
        self.limit = limit


class ClockRefusedError(TransientError):
    """The far side refused the request's signature time: its clock and ours disagree."""

    def __init__(self, reason: str, *, far_time: float | None) -> None:
        super().__init__(reason, far_time=far_time, clock=True)


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer: its status, its headers (case-insensitive) and, for a 2xx, its body.

    A 401's body is kept too, up to :data:`ERROR_BODY_LIMIT` bytes, for its ``problem``.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes


@contextmanager
def translated(far_side: str) -> Iterator[None]:
    """Translate every aiohttp (and socket) exception of a request, chained with ``from``.

    ``far_side`` names who was asked in the reason, as in "could not reach the relay".
    Every exception translated is a failure that may pass.
    """
    try:
        yield
    except TimeoutError as exc:  # asyncio.timeout and aiohttp's own timeouts alike
        raise UnreachableError(
            f"could not reach {far_side}: no answer before the deadline",
            error_class=type(exc).__name__,
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        name = type(exc).__name__
        raise UnreachableError(f"could not reach {far_side} ({name})", error_class=name) from exc


async def read_bounded(resp: aiohttp.ClientResponse, limit: int, *, whose: str) -> bytes:
    """Read ``resp``'s body incrementally, refusing it as soon as it exceeds ``limit`` bytes.

    ``StreamReader.read(n)`` returns whatever has arrived, up to ``n`` bytes, so one call
    can return a partial answer; reading runs until the end of the stream. ``whose`` names
    the answer in the failure, as in "the relay's answer is larger than 1024 bytes".
    """
    too_large = f"{whose} answer is larger than {limit} bytes"
    if resp.content_length is not None and resp.content_length > limit:
        raise AnswerTooLargeError(too_large, limit=limit)
    data = bytearray()
    while chunk := await resp.content.read(min(limit + 1 - len(data), READ_PIECE)):
        data += chunk
        if len(data) > limit:
            raise AnswerTooLargeError(too_large, limit=limit)
    return bytes(data)


def classify_status(status: int, *, retry_statuses: Collection[int] = RETRY_STATUSES) -> Verdict:
    """Return what an HTTP ``status`` means for the request.

    2xx success; ``retry_statuses`` and 5xx retry; every other 4xx refused. Anything else
    (1xx, 3xx: redirects are not followed) is retried, so a misconfigured far side delays a
    message and never loses it.
    """
    if 200 <= status < 300:
        return "success"
    if 400 <= status < 500 and status not in retry_statuses:
        return "refused"
    return "retry"


def far_time(headers: Mapping[str, str]) -> float | None:
    """Return the far side's clock from an answer's ``Date`` (unix seconds), or None."""
    value = headers.get("Date", "")
    if not value or len(value) > 64:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": the RFC 5322 way of saying "UTC, source unknown"
        return None
    return moment.timestamp()


def clock_refused(answer: Answer) -> bool:
    """Return whether ``answer`` refuses the request because of its time (a clock is off)."""
    if answer.status != 401 or not answer.body:
        return False
    try:
        doc = json.loads(answer.body)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("problem") == CLOCK_PROBLEM


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Return a ``Retry-After`` given in delta-seconds, capped at a day; ignore the date form."""
    value = headers.get("Retry-After", "").strip()
    if not value.isdigit() or len(value) > 9:
        return None
    return float(min(int(value), MAX_RETRY_AFTER))


def judge(
    answer: Answer,
    *,
    far_side: str,
    doing: str = "",
    retry_statuses: Collection[int] = RETRY_STATUSES,
    honour_retry_after: bool = True,
) -> None:
    """Return for a 2xx; otherwise raise the failure the status means, with its reason.

    Reasons read "<far side> answered 503 to <doing>" (may pass later, with the
    ``Retry-After`` wish unless ``honour_retry_after`` is false) and "<far side> refused
    <doing> with 403" (never on this route); without ``doing`` they end at the status. A
    refusal because of the request's time raises :class:`ClockRefusedError` (may pass).
    """
    if clock_refused(answer):
        raise ClockRefusedError(
            f"{far_side} refused the request's signature time: the two clocks disagree",
            far_time=far_time(answer.headers),
        )
    verdict = classify_status(answer.status, retry_statuses=retry_statuses)
    if verdict == "retry":
        to = f" to {doing}" if doing else ""
        after = retry_after(answer.headers) if honour_retry_after else None
        raise TransientError(
            f"{far_side} answered {answer.status}{to}",
            after=after,
            far_time=far_time(answer.headers),
        )
    if verdict == "refused":
        what = f" {doing}" if doing else ""
        raise PermanentError(f"{far_side} refused{what} with {answer.status}")


#: Bodies larger than this are handed to aiohttp as a file-like object: given raw bytes of
#: more than 1 MiB it warns (ResourceWarning) that writing them at once could block the loop.
_RAW_BODY_MAX: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Streamed:
    """A request body made piece by piece as it is sent, ``length`` bytes in all."""

    pieces: AsyncIterable[bytes]
    length: int


#: A request body: bytes, a stored file (read in pieces as it is sent), or a stream of
#: pieces of a length known in advance.
Data = bytes | StoredBody | Streamed


def _payload(
    data: Data | None, headers: Mapping[str, str] | None
) -> tuple[bytes | io.BytesIO | AsyncIterable[bytes] | None, Mapping[str, str] | None]:
    """Return ``data`` and the headers as aiohttp should take them.

    A large body in memory goes as a stream aiohttp writes in parts; a file or a stream
    goes piece by piece with its Content-Length (never chunked: the far side can refuse an
    oversized body before reading it, docs/protocol.md §3).
    """
    if data is None or isinstance(data, bytes):
        if data is None or len(data) <= _RAW_BODY_MAX:
            return data, headers
        return io.BytesIO(data), headers
    sized = {**(headers or {}), "Content-Length": str(data.length)}
    if isinstance(data, StoredBody):
        return body_pieces(data), sized
    return data.pieces, sized


#: Receives each piece of a streamed 2xx answer (:func:`request` with ``sink``).
Sink = Callable[[bytes], Awaitable[None]]

#: Given a 2xx answer's headers, returns the :data:`Sink` for its body (or raises, to refuse
#: the answer before its body is read).
SinkFor = Callable[[Mapping[str, str]], Sink]


async def read_into(resp: aiohttp.ClientResponse, limit: int, sink: Sink, *, whose: str) -> int:
    """Hand ``resp``'s body to ``sink`` piece by piece, refusing it past ``limit`` bytes.

    Returns the number of bytes read. Nothing is kept here: memory stays at one piece
    whatever the answer's size.
    """
    too_large = f"{whose} answer is larger than {limit} bytes"
    if resp.content_length is not None and resp.content_length > limit:
        raise AnswerTooLargeError(too_large, limit=limit)
    total = 0
    while chunk := await resp.content.read(min(limit + 1 - total, READ_PIECE)):
        total += len(chunk)
        if total > limit:
            raise AnswerTooLargeError(too_large, limit=limit)
        await sink(chunk)
    if resp.content_length is not None and total != resp.content_length:
        # aiohttp ends the stream early on a connection cut short; say so, never take it.
        raise UnreachableError(
            f"could not read {whose} whole answer: the connection ended early",
            error_class="ClientPayloadError",
        )
    return total


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    far_side: str,
    whose: str,
    timeout: float,
    limit: int,
    headers: Mapping[str, str] | None = None,
    data: Data | None = None,
    sink: SinkFor | None = None,
) -> Answer:
    """Make one request under one deadline; return its status, headers and bounded 2xx body.

    ``url`` is already percent-encoded and is sent byte for byte; ``data`` is sent in
    pieces when it is a file or a stream. With ``sink``, a 2xx answer's body is handed piece
    by piece (at most ``limit`` bytes) to the sink ``sink`` returns for the answer's headers,
    and the answer's ``body`` is empty. The body of
    a non-2xx answer is not read, except a short 401's (for its ``problem``). Raises
    :class:`UnreachableError` or :class:`AnswerTooLargeError`; the status is the caller's to
    judge.
    """
    payload, sent = _payload(data, headers)
    with translated(far_side):
        async with asyncio.timeout(timeout):
            async with session.request(
                method,
                yarl.URL(url, encoded=True),
                data=payload,
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                body = b""
                if 200 <= resp.status < 300:
                    if sink is None:
                        body = await read_bounded(resp, limit, whose=whose)
                    else:
                        await read_into(resp, limit, sink(resp.headers), whose=whose)
                elif resp.status == 401:
                    try:
                        body = await read_bounded(resp, ERROR_BODY_LIMIT, whose=whose)
                    except AnswerTooLargeError:
                        body = b""  # too long to be ours: a plain refusal
                return Answer(resp.status, resp.headers, body)
