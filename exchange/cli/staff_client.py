"""The HTTP client of a node's staff API, for the staff commands (``send``, ``inbox``, ``sent``...).

One :class:`StaffClient` names the node (its base URL), the bearer token, the TLS context
and the timeout. :meth:`StaffClient.call` makes a JSON request and returns the JSON answer;
:meth:`StaffClient.fetch` returns the raw answer (an opened item's content); both can send
a body made in pieces (:class:`Body`), so a request of any size is streamed with its
length known in advance and never held in memory. The standard library's ``urllib`` is the
transport: it imports on every system, Windows included, and needs no event loop.

What can go wrong becomes one :class:`~exchange.cli.errors.CliError` line, translated here
and nowhere else:

- the node's refusal (``{"error": {"message", "rule", "problems"}}``, or an RFC 9457
  ``application/problem+json`` from a proxy in front): ``the node refused: <message> [<rule>]``;
- a redirect: refused, so the token goes nowhere but the node named;
- the node unreachable: one sentence naming the address (refused, TLS, timeout, closed), as
  :class:`UnreachableError`, since the node may have acted on a request whose answer was lost;
- an answer too large, or not JSON where JSON was expected.

``503 Service Unavailable`` with ``Retry-After`` (a node briefly unable to take the request)
is asked again up to :data:`MAX_ATTEMPTS` times; so is a request cut off before its answer,
when asking again is safe (a read, or a submission with an ``Idempotency-Key``).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPException, RemoteDisconnected
from typing import IO, Any, BinaryIO, Final

from exchange import __version__
from exchange.cli.errors import CliError

#: Seconds to wait for the node at each step (connect, send, each read). A recall may wait
#: for a delivery attempt in flight (the node's ``delivery.timeout``), so this is generous.
DEFAULT_TIMEOUT: Final = 60.0
#: Largest JSON answer read: a page of 200 items or a thread of 501 items is far below.
MAX_ANSWER: Final = 16 * 1024 * 1024
#: Largest error answer read: a refusal is one sentence, perhaps with 20 problems.
MAX_ERROR_ANSWER: Final = 64 * 1024
#: How many times a request is made in all when the node answers 503 or the answer is lost.
MAX_ATTEMPTS: Final = 4
#: Longest wait before asking again, whatever ``Retry-After`` says; and the wait when it
#: says nothing usable (an HTTP date, say).
MAX_RETRY_WAIT: Final = 30.0
DEFAULT_RETRY_WAIT: Final = 2.0
#: Most characters of a text from the node shown in one line.
_MAX_SHOWN: Final = 300
#: Most record problems named in a refusal line.
_MAX_PROBLEMS_SHOWN: Final = 5
#: Size of each read of an answer.
_READ_SIZE: Final = 1024 * 1024


@dataclass(frozen=True)
class Body:
    """A request body made in pieces: its content type, exact length, and a way to make it.

    ``pieces`` is called once per attempt, so a retried request sends the same bytes again;
    ``watch``, if given, is told the size of each piece as it goes (a progress bar).
    """

    content_type: str
    length: int
    pieces: Callable[[], Iterable[bytes]]
    watch: Callable[[int], None] | None = field(default=None, compare=False)

    @classmethod
    def of_json(cls, value: object) -> Body:
        """Return a small JSON body."""
        data = json.dumps(value).encode("utf-8")
        return cls("application/json", len(data), lambda: (data,))

    def stream(self) -> Iterable[bytes]:
        """Yield the pieces, telling ``watch`` of each."""
        for piece in self.pieces():
            if self.watch is not None:
                self.watch(len(piece))
            yield piece


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: the token must go to the node named and nowhere else."""

    def redirect_request(  # noqa: PLR0917 - the signature of the method overridden
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        """Refuse; the 3xx then surfaces as an ``HTTPError``."""
        del req, fp, code, msg, headers, newurl
        return None


class _Retry(Exception):  # noqa: N818 - a signal inside this module, not an error
    """Ask again after ``wait`` seconds, or report ``failure`` when no attempt is left."""

    def __init__(self, wait: float, failure: CliError) -> None:
        super().__init__(str(failure))
        self.wait = wait
        self.failure = failure


class UnreachableError(CliError):
    """The node could not be reached, or its answer was lost: it may or may not have acted."""


@dataclass(frozen=True)
class StaffClient:
    """A client of one node's staff API: where the node is and how to reach it."""

    base: str
    token: str = field(repr=False)
    context: ssl.SSLContext | None
    timeout: float = DEFAULT_TIMEOUT
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def call(
        self,
        method: str,
        path: str,
        body: object | Body | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Make one request and return the JSON answer; raise :class:`CliError` otherwise."""
        raw = self.fetch(method, path, body, headers=headers, accept="application/json")
        try:
            return json.loads(raw)
        except (UnicodeError, ValueError):
            raise CliError(
                f"the answer from {self.base} is not JSON; is --node the address of an "
                "exchange node?"
            ) from None

    def fetch(
        self,
        method: str,
        path: str,
        body: object | Body | None = None,
        *,
        headers: dict[str, str] | None = None,
        accept: str = "application/json",
        limit: int = MAX_ANSWER,
        into: BinaryIO | None = None,
    ) -> bytes:
        """Make one request (asking again on 503) and return the answer's bytes.

        With ``into``, the answer is written there a piece at a time instead (each attempt
        starts it afresh) and nothing is returned: a download of any size.
        """
        if body is not None and not isinstance(body, Body):
            body = Body.of_json(body)
        extra = dict(headers or {})
        # Asking again after a lost answer is safe only when it cannot do the work twice.
        safe = method == "GET" or "Idempotency-Key" in extra
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return self._once(method, path, body, extra, accept, limit, into, safe=safe)
            except _Retry as retry:
                if attempt == MAX_ATTEMPTS:
                    raise retry.failure from None
                self.sleep(retry.wait)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _once(  # noqa: PLR0917 - the parts of one request
        self,
        method: str,
        path: str,
        body: Body | None,
        extra: dict[str, str],
        accept: str,
        limit: int,
        into: BinaryIO | None,
        *,
        safe: bool,
    ) -> bytes:
        headers = {
            **extra,
            "Authorization": f"Bearer {self.token}",
            "Accept": accept,
            "User-Agent": f"exchange/{__version__}",
        }
        data: Iterable[bytes] | None = None
        if body is not None:
            headers["Content-Type"] = body.content_type
            headers["Content-Length"] = str(body.length)
            data = body.stream()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked by staff_options
            self.base + path,
            data=data,  # urllib sends an iterable with its Content-Length
            headers=headers,
            method=method,
        )
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.context))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return _read_answer(response, limit, into)
        except urllib.error.HTTPError as exc:
            with exc:
                failure = refusal(exc.code, _read_error(exc))
                if exc.code == 503:
                    raise _Retry(_retry_after(exc.headers.get("Retry-After")), failure) from None
                raise failure from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            failure = self._unreachable(reason if isinstance(reason, BaseException) else None)
            if safe and isinstance(reason, _LOST_ANSWER):
                raise _Retry(DEFAULT_RETRY_WAIT, failure) from None
            raise failure from None
        except (OSError, HTTPException) as exc:
            failure = self._unreachable(exc)
            if safe and isinstance(exc, _LOST_ANSWER):
                raise _Retry(DEFAULT_RETRY_WAIT, failure) from None
            raise failure from None

    def _unreachable(self, reason: BaseException | None) -> UnreachableError:
        for kinds, sentence in _UNREACHABLE:
            if isinstance(reason, kinds):
                return UnreachableError(sentence.format(where=self.base))
        if isinstance(reason, OSError) and reason.strerror:
            return UnreachableError(
                f"could not reach {self.base}: {reason.strerror.rstrip('.').lower()}"
            )
        return UnreachableError(f"could not reach {self.base}")


#: A request that may have reached the node but whose answer was lost on the way back.
_LOST_ANSWER: Final = (ConnectionResetError, ConnectionAbortedError, RemoteDisconnected)

#: What went wrong reaching the node, most specific first, as plain sentences.
_UNREACHABLE: Final[
    tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...]
] = (
    (
        ssl.SSLCertVerificationError,
        "could not verify the TLS certificate of {where} (for a private CA, give --cacert FILE)",
    ),
    (ssl.SSLError, "could not make a TLS connection to {where}"),
    (TimeoutError, "{where} did not answer in time (see --timeout)"),
    (ConnectionRefusedError, "could not connect to {where}: the connection was refused"),
    (
        (ConnectionError, HTTPException),
        "the connection to {where} was closed before the answer was complete",
    ),
)


def _retry_after(value: str | None) -> float:
    """Return the seconds to wait from a ``Retry-After`` header (bounded)."""
    if value is not None and value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_WAIT)
    return DEFAULT_RETRY_WAIT


def _read_answer(response: Any, limit: int, into: BinaryIO | None = None) -> bytes:
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise CliError(f"the node's answer is larger than the limit of {limit:,} bytes")
    if into is not None:
        into.seek(0)
        into.truncate()
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = response.read(min(_READ_SIZE, limit + 1 - size))
        if not part:
            break
        if into is None:
            parts.append(part)
        else:
            into.write(part)
        size += len(part)
    if size > limit:
        raise CliError(f"the node's answer is larger than the limit of {limit:,} bytes")
    return b"".join(parts)


def _read_error(exc: urllib.error.HTTPError) -> bytes:
    try:
        return _read_answer(exc, MAX_ERROR_ANSWER)
    except (CliError, OSError, HTTPException):
        return b""


def clean(value: object, limit: int = _MAX_SHOWN) -> str:
    """Return text from the node safe for one terminal line: no controls, bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_object(raw: bytes) -> dict[str, Any] | None:
    """Return the error of an error answer: the API's ``error`` object, or a problem+json."""
    try:
        doc = json.loads(raw)
    except (UnicodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    error = doc.get("error")
    if isinstance(error, dict):
        return error
    detail = doc.get("detail") or doc.get("title")
    if isinstance(detail, str):
        # RFC 9457 problem details, as a proxy or gateway in front of the node may answer.
        return {"message": detail}
    return None


def refusal(status: int, raw: bytes) -> CliError:
    """Turn an error answer into one line: the node's message and rule, or the status."""
    if 300 <= status < 400:
        return CliError(
            f"the node answered with a redirect (HTTP {status}), which is not followed so the "
            "token goes nowhere else; give --node the address the node answers at"
        )
    error = _error_object(raw)
    message = None if error is None else error.get("message")
    if error is None or not isinstance(message, str) or not message:
        return CliError(f"the node refused the request (HTTP {status}) without saying why")
    line = f"the node refused: {clean(message)}"
    rule = error.get("rule")
    if isinstance(rule, str) and rule:
        line += f" [{clean(rule, 100)}]"
    problems = error.get("problems")
    if isinstance(problems, list) and problems:
        named = [
            f"{clean(p.get('path'), 100)} ({clean(p.get('rule'), 60)})"
            for p in problems[:_MAX_PROBLEMS_SHOWN]
            if isinstance(p, dict)
        ]
        more = len(problems) - len(named)
        line += ": " + "; ".join(named) + (f"; and {more} more" if more > 0 else "")
    return CliError(line)
