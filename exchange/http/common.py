"""What every HTTP module of the node shares: app keys, errors, staff auth, fields, paging.

Staff requests carry ``Authorization: Bearer <token>``; the token's hash finds the user
(:func:`staff_user`). Every refusal is JSON ``{"error": {"status", "message"}}`` with a plain
sentence and no record content (:func:`errors_middleware`); on the peer protocol and the
relay it takes the protocol's shape instead (docs/protocol.md §6).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, Final

from aiohttp import hdrs, web

from exchange.http.jsonbody import BadRequestError
from exchange.keys.ids import OrgId, parse_org_id
from exchange.logs import get_logger
from exchange.model import User
from exchange.peerauth import PeerAuthError
from exchange.peerauth.aiohttp_glue import error_response
from exchange.service.busy import BusyError
from exchange.service.errors import InvalidTokenError, NotYetError, ServiceError
from exchange.service.faults import (
    DAMAGED_REFUSAL,
    LEDGER_REFUSAL,
    STORAGE_FULL_REFUSAL,
    STORAGE_FULL_RETRY_AFTER,
    UNAVAILABLE_REFUSAL,
    UNAVAILABLE_RETRY_AFTER,
    fault_of,
)
from exchange.service.ledger import NodeLedger
from exchange.service.node_service import NodeService
from exchange.sharing.prepare import AttachmentInput
from exchange.workers.collect import CollectStats
from exchange.workers.delivery import DeliveryWorker
from exchange.workers.supervisor import Supervisor

log = get_logger("exchange.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICE: Final = web.AppKey("service", NodeService)
WORKER: Final = web.AppKey("worker", DeliveryWorker)
LEDGER: Final = web.AppKey("ledger", NodeLedger)
JSON_LIMIT: Final = web.AppKey("json_limit", int)
READY: Final = web.AppKey("ready", dict)
COLLECT_STATS: Final = web.AppKey("collect_stats", CollectStats)
SUPERVISOR: Final = web.AppKey("supervisor", Supervisor)

#: A digest as written in paths and fields: 64 lower-case hexadecimal characters.
DIGEST_RE: Final = re.compile(r"[0-9a-f]{64}")
_BEARER_RE: Final = re.compile(r"Bearer ([A-Za-z0-9_-]{16,128})")


# --- errors ---------------------------------------------------------------------------------


def json_error(status: int, message: str) -> web.Response:
    """Return the staff API's error: ``{"error": {"status", "message"}}``."""
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


def _shaped(request: web.Request, status: int, message: str) -> web.Response:
    """Return an error in the shape of the API the request was made to."""
    if request.path.startswith(("/peer/", "/relay/")):
        # The peer protocol's error shape (docs/protocol.md §6): a code and a sentence.
        return web.json_response({"error": str(status), "message": message}, status=status)
    return json_error(status, message)


def _service_error(request: web.Request, exc: ServiceError) -> web.Response:
    details = getattr(exc, "details", None)
    if isinstance(details, dict) and request.path.startswith("/api/"):
        # A rule-based refusal names the rule, and for a record every field problem.
        error = {"status": exc.status, "message": str(exc), **details}
        return web.json_response({"error": error}, status=exc.status)
    answer = _shaped(request, exc.status, str(exc))
    if isinstance(exc, NotYetError | BusyError):
        # Dated ahead by a fast clock, or the outbox behind: the sender tries again later.
        answer.headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, InvalidTokenError):
        # RFC 6750 §3.1: a token that was given but is not (or no longer) accepted.
        answer.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer error="invalid_token"'
    return answer


def _route(request: web.Request) -> str:
    """Return the matched route's template, e.g. ``/peer/v1/orgs/{org}/envelopes``.

    Logs name the route, never the path as sent: the caller chooses the path, and it could
    hold anything, a child's name included (docs/architecture.md §5).
    """
    resource = request.match_info.route.resource
    return "unmatched" if resource is None else resource.canonical


def _with_allow(response: web.Response, exc: web.HTTPException) -> web.Response:
    """Keep the ``Allow`` header of aiohttp's 405 (RFC 9110 §15.5.6 requires it)."""
    if hdrs.ALLOW in exc.headers:
        response.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every refusal into a JSON error; never let a traceback or content out."""
    try:
        return await handler(request)
    except ServiceError as exc:
        return _service_error(request, exc)
    except PeerAuthError as exc:
        log.warning("peer.refused", rule=exc.rule, status=exc.status, path=_route(request))
        return error_response(exc)  # docs/protocol.md §6: rule, message, and a challenge
    except web.HTTPRequestEntityTooLarge:
        return _shaped(request, 413, "the request body is larger than this endpoint accepts")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _with_allow(_shaped(request, exc.status, exc.reason), exc)
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback leaks
        return fault_response(request, exc)


def fault_response(request: web.Request, exc: Exception) -> web.Response:
    """Answer a request that failed because of the node itself, by the kind of fault.

    A full disk is a refusal that says so (507 to staff; 503 with ``Retry-After`` to a peer,
    whose outbox tries again), a ledger that does not verify or a damaged database a 503,
    anything else a 500.
    Only the class name is logged: an exception's message could quote anything.
    """
    fault = fault_of(exc)
    log.error(
        "request.failed", path=_route(request), cause=fault.kind, error_class=type(exc).__name__
    )
    if fault.kind == "storage-full":
        if request.path.startswith(("/peer/", "/relay/")):
            response = _shaped(request, 503, f"{STORAGE_FULL_REFUSAL}; try again later")
            response.headers["Retry-After"] = str(STORAGE_FULL_RETRY_AFTER)
            return response
        return _shaped(request, 507, STORAGE_FULL_REFUSAL)
    if fault.kind == "ledger-integrity":
        return _shaped(request, 503, LEDGER_REFUSAL)
    if fault.kind == "store-damaged":
        return _shaped(request, 503, DAMAGED_REFUSAL)
    if fault.kind == "store-unavailable":
        response = _shaped(request, 503, UNAVAILABLE_REFUSAL)
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return response
    return _shaped(request, 500, "the node failed to handle the request; it has been logged")


# --- the service, the staff user, the digest in the path ------------------------------------


def node_service(request: web.Request) -> NodeService:
    """Return the node's service, which every handler works through."""
    return request.app[SERVICE]


async def staff_user(request: web.Request) -> User:
    """Return the user whose bearer token the request carries (401 without a valid one)."""
    match = _BEARER_RE.fullmatch(request.headers.get("Authorization", ""))
    if match is None:
        raise ServiceError("a bearer token is required (Authorization: Bearer ...)", status=401)
    user = await node_service(request).staff_user(match.group(1))
    if user is None:
        raise InvalidTokenError("the bearer token is not valid")
    return user


def path_digest(request: web.Request) -> bytes:
    """Return the ``{digest}`` of the request's path (400 unless 64 lower-case hex digits)."""
    text = request.match_info["digest"]
    if DIGEST_RE.fullmatch(text) is None:
        raise BadRequestError("the digest in the path must be 64 lower-case hexadecimal characters")
    return bytes.fromhex(text)


# --- fields of request bodies and queries ---------------------------------------------------

_ATTACHMENT_FIELDS: Final = frozenset({"name", "content_type", "content_base64"})
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def org_ids(values: list[Any], field: str) -> list[OrgId]:
    """Return a list of organisation ids, each checked (400 naming the first bad one)."""
    orgs: list[OrgId] = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise BadRequestError(f"{field}[{i}] must be a string")
        try:
            orgs.append(parse_org_id(value, field=f"{field}[{i}]"))
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
    return orgs


def parse_date(value: str | None, field: str) -> date | None:
    """Return a ``YYYY-MM-DD`` date, or None when the field is absent."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or _DATE_RE.fullmatch(value) is None:
        raise BadRequestError(f"{field} must be a date (YYYY-MM-DD)")
    return day


def attachment_inputs(values: list[Any]) -> tuple[AttachmentInput, ...]:
    """Return the ``attachments`` of a submission, each decoded from base64."""
    found = []
    for i, value in enumerate(values):
        where = f"attachments[{i}]"
        if not isinstance(value, dict) or set(value) != _ATTACHMENT_FIELDS:
            raise BadRequestError(
                f"{where} must be an object with exactly name, content_type and content_base64"
            )
        if not all(isinstance(value[k], str) for k in _ATTACHMENT_FIELDS):
            raise BadRequestError(f"{where}: name, content_type and content_base64 are strings")
        try:
            data = base64.b64decode(value["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError(f"{where}.content_base64 is not valid base64") from None
        found.append(AttachmentInput(value["name"], value["content_type"], data))
    return tuple(found)


# --- paging of lists ------------------------------------------------------------------------

#: Most items one list request answers (``limit``'s default and maximum).
MAX_LIST: Final = 200
#: A list cursor: the last item's time as ``float.hex()`` writes zero or a positive normal
#: double, its "+" dropped, then its digest; the exponent is within a double's range, so
#: every text matching this is exactly one time (docs/openapi.yaml, the ``before``
#: parameter). Item times are seconds since 1970: never subnormal.
HEX_TIME: Final = (
    r"(?:0x0\.0p0|0x1\.[0-9a-f]{13}p(?:0|-?[1-9][0-9]{0,2}|-?10[01][0-9]|-?102[0-2]|1023))"
)
CURSOR_RE: Final = re.compile(rf"({HEX_TIME}):([0-9a-f]{{64}})")
_ASCII_DIGITS_RE: Final = re.compile(r"[0-9]+")
_PAGE_PARAMETERS: Final = ("limit", "before")


def only_parameters(request: web.Request, *names: str) -> None:
    """Refuse (400) a query holding a parameter not in ``names``, or one given twice.

    The refusal lists what the address takes and never repeats what was sent: a parameter's
    name is the caller's text, and could be anything, a child's name included.
    """
    query = request.query
    if set(query) - set(names):
        listed = ", ".join(names)
        plural = "s" if len(names) > 1 else ""
        raise BadRequestError(f"this address takes only the parameter{plural} {listed}")
    if len(query) != len(set(query)):
        raise BadRequestError("each query parameter may be given only once")


def whole_number(text: str, low: int, high: int) -> int | None:
    """Return ``text`` as a whole number from ``low`` to ``high``, or None.

    Only ASCII digits count (``str.isdigit`` also takes "²" and other scripts' digits, which
    ``int`` then refuses or reads), and no more of them than ``high`` has, so a number of
    thousands of digits is never converted.
    """
    if len(text) > len(str(high)) or _ASCII_DIGITS_RE.fullmatch(text) is None:
        return None
    value = int(text)
    return value if low <= value <= high else None


def exact_time(text: str) -> float | None:
    """Return the time a cursor's ``float.hex()`` text names, or None unless exactly as issued.

    The text must read back to itself: a well-shaped exponent too large for a float, or the
    same time written another way, is not a cursor the node gave out.
    """
    try:
        at = float.fromhex(text)
    except (OverflowError, ValueError):
        return None
    if not math.isfinite(at) or at.hex().replace("+", "") != text:
        return None
    return at


def parse_cursor(text: str) -> tuple[float, bytes] | None:
    """Return the (time, digest) of a :func:`next_cursor` text, or None for anything else."""
    match = CURSOR_RE.fullmatch(text)
    at = None if match is None else exact_time(match[1])
    if match is None or at is None:
        return None
    return at, bytes.fromhex(match[2])


def read_page(request: web.Request) -> tuple[int, tuple[float, bytes] | None]:
    """Read ``limit`` (1 to 200) and ``before`` (a ``next`` cursor) from a list's query."""
    only_parameters(request, *_PAGE_PARAMETERS)
    query = request.query
    limit = MAX_LIST
    if "limit" in query:
        given = whole_number(query["limit"], 1, MAX_LIST)
        if given is None:
            raise BadRequestError(f"limit must be a whole number from 1 to {MAX_LIST}")
        limit = given
    before = None
    if "before" in query:
        before = parse_cursor(query["before"])
        if before is None:
            raise BadRequestError("before must be the next cursor of an earlier page")
    return limit, before


def next_cursor(at: float, digest: bytes) -> str:
    """Return the cursor of the page after the item at time ``at`` with ``digest``."""
    # float.hex() is exact, so the next page starts precisely after this item; its "+"
    # is dropped, as a query string would read it as a space.
    return f"{at.hex().replace('+', '')}:{digest.hex()}"
