"""The node's HTTP surface: the staff API (/api/v1), the peer protocol (/peer/v1), health.

Staff requests carry ``Authorization: Bearer <token>``; the token's hash finds the user,
and every query is scoped to the user's organisation, so one organisation's items can never
be seen or acted on by another's staff, even on a shared node (a foreign item is "not
found", never "forbidden", so its existence is not disclosed). Peer requests are
authenticated by their HTTP message signature (docs/protocol.md) before their body is
looked at. Every refusal is JSON ``{"error": {"status", "message"}}`` with a plain sentence
and no record content.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from aiohttp import web

from exchange.ledger.events import decode_event
from exchange.logs import get_logger
from exchange.node import retention
from exchange.node.collect import CollectStats
from exchange.node.delivery import DeliveryWorker
from exchange.node.jsonbody import BadRequestError, Field, parse_object
from exchange.node.ledger import NodeLedger
from exchange.node.recall import decorate_inbox, decorate_sent
from exchange.node.service import NodeService, ServiceError, UnprocessableError, token_hash
from exchange.node.sharing import AttachmentInput, Submission
from exchange.peerauth import PeerAuthError, ReplayCache, ReplayError, verify_request
from exchange.peerauth.aiohttp_glue import error_response, read_body
from exchange.policy import LONDON
from exchange.records import KINDS, InvalidIdentifierError, validate_nhs_number, validate_upn
from exchange.store import InboxItem, ReceiptRecord, SentItem, User
from exchange.store.base import SubjectKind
from keys.ids import OrgId, parse_org_id

log = get_logger("exchange.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICE: Final = web.AppKey("service", NodeService)
WORKER: Final = web.AppKey("worker", DeliveryWorker)
LEDGER: Final = web.AppKey("ledger", NodeLedger)
JSON_LIMIT: Final = web.AppKey("json_limit", int)
READY: Final = web.AppKey("ready", dict)
COLLECT_STATS: Final = web.AppKey("collect_stats", CollectStats)

_DIGEST_RE: Final = re.compile(r"[0-9a-f]{64}")
_BEARER_RE: Final = re.compile(r"Bearer ([A-Za-z0-9_-]{16,128})")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


def _shaped(request: web.Request, status: int, message: str) -> web.Response:
    """Return an error in the shape of the API the request was made to."""
    if request.path.startswith(("/peer/", "/relay/")):
        # The peer protocol's error shape (docs/protocol.md §6): a code and a sentence.
        return web.json_response({"error": str(status), "message": message}, status=status)
    return _error(status, message)


def _service_error(request: web.Request, exc: ServiceError) -> web.Response:
    details = getattr(exc, "details", None)
    if isinstance(details, dict) and request.path.startswith("/api/"):
        # A rule-based refusal names the rule, and for a record every field problem.
        error = {"status": exc.status, "message": str(exc), **details}
        return web.json_response({"error": error}, status=exc.status)
    return _shaped(request, exc.status, str(exc))


def _route(request: web.Request) -> str:
    """Return the matched route's template, e.g. ``/peer/v1/orgs/{org}/envelopes``.

    Logs name the route, never the path as sent: the caller chooses the path, and it could
    hold anything, a child's name included (DESIGN.md §7).
    """
    resource = request.match_info.route.resource
    return "unmatched" if resource is None else resource.canonical


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
            return _shaped(request, exc.status, exc.reason)
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback leaks
        # Only the class name is logged: an exception's message could quote anything.
        log.error("request.failed", path=_route(request), error_class=type(exc).__name__)  # noqa: TRY400
        return _shaped(request, 500, "the node failed to handle the request; it has been logged")


def _service(request: web.Request) -> NodeService:
    return request.app[SERVICE]


async def _user(request: web.Request) -> User:
    match = _BEARER_RE.fullmatch(request.headers.get("Authorization", ""))
    if match is None:
        raise ServiceError("a bearer token is required (Authorization: Bearer ...)", status=401)
    user = await _service(request).store.user_by_token_hash(token_hash(match.group(1)))
    if user is None:
        raise ServiceError("the bearer token is not valid", status=401)
    return user


def _digest(request: web.Request) -> bytes:
    text = request.match_info["digest"]
    if _DIGEST_RE.fullmatch(text) is None:
        raise BadRequestError("the digest in the path must be 64 lower-case hexadecimal characters")
    return bytes.fromhex(text)


def _digest_field(value: str | None, field: str) -> bytes | None:
    if value is None:
        return None
    if _DIGEST_RE.fullmatch(value) is None:
        raise BadRequestError(f"{field} must be 64 lower-case hexadecimal characters (a digest)")
    return bytes.fromhex(value)


def _receipt_json(r: ReceiptRecord) -> dict[str, Any]:
    return {
        "status": r.status,
        "organisation": r.receipter,
        "time": r.time,
        "receipt_digest": r.digest.hex(),
        "receipt": base64.b64encode(r.signed).decode("ascii"),
    }


def _sent_shape(request: web.Request) -> dict[str, float]:
    return {
        "now": _service(request).clock(),
        "overdue_after": request.app[WORKER].config.overdue_after,
    }


def _sent_json(item: SentItem, *, now: float, overdue_after: float) -> dict[str, Any]:
    env = item.envelope
    recipients = []
    for delivery in item.deliveries:
        if delivery.kind != "envelope":
            continue
        timeline = [
            {"status": r.status, "time": r.time, "receipt_digest": r.digest.hex()}
            for r in item.receipts
            if r.receipter == delivery.destination
        ]
        # Overdue: no "delivered" receipt yet, long after submission (a relay mailbox not
        # collected, a MESH message not downloaded, a route down for a day).
        late = now - item.submitted_at > overdue_after
        overdue = late and not any(e["status"] == "delivered" for e in timeline)
        recipients.append(
            {
                "organisation": delivery.destination,
                "delivery_state": delivery.state,
                "route": delivery.route_kind,
                "overdue": overdue,
                "attempts": delivery.attempts,
                "last_error": delivery.last_error,
                "timeline": timeline,
            }
        )
    return {
        "envelope_id": env.envelope_id.hex(),
        "digest": env.digest.hex(),
        "record_kind": env.record_kind,
        "created": env.created,
        "length": env.length,
        "submitted_by": item.submitted_by,
        "recipients": recipients,
    }


def _inbox_json(item: InboxItem) -> dict[str, Any]:
    env = item.envelope
    return {
        "envelope_id": env.envelope_id.hex(),
        "digest": env.digest.hex(),
        "sender": env.sender,
        "record_kind": env.record_kind,
        "created": env.created,
        "length": env.length,
        "received_at": int(item.received_at),
        "state": item.state,
    }


# --- staff API ----------------------------------------------------------------------------

_SUBMIT_FIELDS: Final = {
    "recipients": Field(list),
    "purpose": Field(str),
    "record_kind": Field(str),
    "record": Field(dict),
    "categories": Field(list),
    "lawful_basis": Field(str, required=False),
    "reason": Field(str),
    "attachments": Field(list, required=False),
    "new_school_confirmed": Field(str, required=False),
    "due": Field(str, required=False),
    "in_reply_to": Field(str, required=False),
}
_ATTACHMENT_FIELDS: Final = frozenset({"name", "content_type", "content_base64"})
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _org_ids(values: list[Any], field: str) -> list[OrgId]:
    orgs: list[OrgId] = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise BadRequestError(f"{field}[{i}] must be a string")
        try:
            orgs.append(parse_org_id(value, field=f"{field}[{i}]"))
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
    return orgs


def _strings(values: list[Any], field: str) -> tuple[str, ...]:
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise BadRequestError(f"{field}[{i}] must be a string")
    return tuple(values)


def _date(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or _DATE_RE.fullmatch(value) is None:
        raise BadRequestError(f"{field} must be a date (YYYY-MM-DD)")
    return day


def _attachment_inputs(values: list[Any]) -> tuple[AttachmentInput, ...]:
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


async def submit(request: web.Request) -> web.Response:
    """POST /api/v1/envelopes: check, seal, register and queue a record; 202 once stored."""
    user = await _user(request)
    # Attachments travel base64-encoded: allow the envelope limit in base64, plus the fields.
    limit = _service(request).max_envelope_bytes * 4 // 3 + request.app[JSON_LIMIT]
    doc = parse_object(await request.read(), _SUBMIT_FIELDS, limit=limit)
    submission = Submission(
        recipients=tuple(_org_ids(doc["recipients"], "recipients")),
        purpose=doc["purpose"],
        record_kind=doc["record_kind"],
        record=doc["record"],
        categories=_strings(doc["categories"], "categories"),
        reason=doc["reason"],
        lawful_basis=doc.get("lawful_basis"),
        attachments=_attachment_inputs(doc.get("attachments", [])),
        new_school_confirmed=_date(doc.get("new_school_confirmed"), "new_school_confirmed"),
        due=_date(doc.get("due"), "due"),
        in_reply_to=_digest_field(doc.get("in_reply_to"), "in_reply_to"),
    )
    submitted = await _service(request).submit(user, submission)
    deadline = (
        None
        if submitted.deadline_rule is None
        else {"due": submitted.deadline_due, "rule": submitted.deadline_rule}
    )
    return web.json_response(
        {
            "envelope_id": submitted.envelope_id.hex(),
            "digest": submitted.digest.hex(),
            "lawful_basis": submitted.lawful_basis,
            "deadline": deadline,
        },
        status=202,
    )


_NOT_SHARED_FIELDS: Final = {
    "purpose": Field(str),
    "recipients": Field(list),
    "reason_code": Field(str),
    "reason": Field(str),
    "record_kind": Field(str, required=False),
    "upn": Field(str, required=False),
    "nhs_number": Field(str, required=False),
}
_SUBJECT_FIELDS: Final = {
    "upn": Field(str, required=False),
    "nhs_number": Field(str, required=False),
}


def _identifiers(doc: dict[str, Any]) -> list[tuple[SubjectKind, str]]:
    """Validate the ``upn`` and ``nhs_number`` fields (422 naming the rule, never the value)."""
    found: list[tuple[SubjectKind, str]] = []
    try:
        if "upn" in doc:
            found.append(("upn", validate_upn(doc["upn"], field="upn")))
        if "nhs_number" in doc:
            found.append(("nhs-number", validate_nhs_number(doc["nhs_number"], field="nhs_number")))
    except InvalidIdentifierError as exc:
        raise UnprocessableError(str(exc), rule=exc.rule) from None
    return found


async def not_shared(request: web.Request) -> web.Response:
    """POST /api/v1/decisions/not-shared: register a decision not to share, with its reason."""
    user = await _user(request)
    doc = parse_object(await request.read(), _NOT_SHARED_FIELDS, limit=request.app[JSON_LIMIT])
    record_kind = doc.get("record_kind")
    if record_kind is not None and record_kind not in KINDS:
        raise UnprocessableError(
            f"record_kind must be one of: {', '.join(KINDS)}", rule="record_kind"
        )
    register_id = await _service(request).record_not_shared(
        user,
        purpose=doc["purpose"],
        recipients=_org_ids(doc["recipients"], "recipients"),
        reason_code=doc["reason_code"],
        reason=doc["reason"],
        record_kind=record_kind,
        identifiers=_identifiers(doc),
    )
    return web.json_response(
        {"register_id": register_id, "rule": f"not-to-share.{doc['reason_code']}"}, status=201
    )


_REGISTER_QUERY: Final = frozenset({"format", "from", "to"})


def _london_midnight(day: date) -> float:
    return datetime.combine(day, time(0), tzinfo=LONDON).timestamp()


async def register_export(request: web.Request) -> web.Response:
    """GET /api/v1/register?format=csv|json&from=&to=: the sharing register (DPO only)."""
    user = await _user(request)
    query = request.query
    if set(query) - _REGISTER_QUERY:
        raise BadRequestError("unknown query parameter; the parameters are format, from and to")
    form = query.get("format", "json")
    if form not in {"csv", "json"}:
        raise BadRequestError("format must be csv or json")
    first, last = _date(query.get("from"), "from"), _date(query.get("to"), "to")
    since = None if first is None else _london_midnight(first)
    until = None if last is None else _london_midnight(last + timedelta(days=1))
    result = await _service(request).register_export(user, since=since, until=until, form=form)
    headers = {"Cache-Control": "no-store"}
    if isinstance(result, str):
        headers["Content-Disposition"] = (
            f'attachment; filename="register-{user.org.replace(":", "-")}.csv"'
        )
        return web.Response(text=result, content_type="text/csv", charset="utf-8", headers=headers)
    return web.json_response(result, headers=headers)


async def overdue(request: web.Request) -> web.Response:
    """GET /api/v1/overdue: the organisation's deadlines past due without their receipt."""
    user = await _user(request)
    items = await _service(request).overdue_for(user)
    return web.json_response({"items": [i.as_json() for i in items]})


async def subject_access(request: web.Request) -> web.Response:
    """POST /api/v1/subject-access {upn} or {nhs_number}: every exchange about one child."""
    user = await _user(request)
    doc = parse_object(await request.read(), _SUBJECT_FIELDS, limit=request.app[JSON_LIMIT])
    if len(doc) != 1:
        raise BadRequestError("give exactly one of upn and nhs_number")
    ((kind, value),) = _identifiers(doc)
    report = await _service(request).subject_access(user, kind, value)
    return web.json_response(report, headers={"Cache-Control": "no-store"})


async def import_envelope(request: web.Request) -> web.Response:
    """POST /api/v1/inbox/import: an envelope that came by mail, added to the inbox."""
    user = await _user(request)
    service = _service(request)
    try:
        body = await read_body(request, service.max_envelope_bytes)
    except PeerAuthError as exc:
        raise ServiceError(str(exc), status=exc.status) from None
    digest, new = await service.import_envelope(user, body)
    return web.json_response({"digest": digest.hex(), "new": new}, status=201 if new else 200)


#: Most items one list request answers (``limit``'s default and maximum).
MAX_LIST: Final = 200
#: A list cursor: the last item's time as an exact hexadecimal float, then its digest.
_CURSOR_RE: Final = re.compile(r"(0x[01]\.[0-9a-f]{1,13}p-?[0-9]{1,4}):([0-9a-f]{64})")


def _page(request: web.Request) -> tuple[int, tuple[float, bytes] | None]:
    """Read ``limit`` (1 to 200) and ``before`` (a ``next`` cursor) from a list's query."""
    query = request.query
    unknown = sorted(set(query) - {"limit", "before"})
    if unknown:
        raise BadRequestError(f"{unknown[0]} is not a query parameter of this list")
    limit = MAX_LIST
    if "limit" in query:
        text = query["limit"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIST:
            raise BadRequestError(f"limit must be a whole number from 1 to {MAX_LIST}")
        limit = int(text)
    before = None
    if "before" in query:
        match = _CURSOR_RE.fullmatch(query["before"])
        if match is None:
            raise BadRequestError("before must be the next cursor of an earlier page")
        before = (float.fromhex(match[1]), bytes.fromhex(match[2]))
    return limit, before


def _cursor(at: float, digest: bytes) -> str:
    # float.hex() is exact, so the next page starts precisely after this item; its "+"
    # is dropped, as a query string would read it as a space.
    return f"{at.hex().replace('+', '')}:{digest.hex()}"


async def list_sent(request: web.Request) -> web.Response:
    """GET /api/v1/sent: the organisation's sent items with per-recipient timelines."""
    user = await _user(request)
    limit, before = _page(request)
    items = await _service(request).store.list_sent(user.org, limit=limit, before=before)
    shape = _sent_shape(request)
    views = [_sent_json(i, **shape) for i in items]
    await decorate_sent(_service(request).store, user.org, views)  # recall, threads (issue 5)
    await retention.annotate(_service(request), user.org, views)  # retention (issue 5)
    last = items[-1] if len(items) == limit else None
    cursor = None if last is None else _cursor(last.submitted_at, last.envelope.digest)
    return web.json_response({"items": views, "next": cursor})


async def sent_item(request: web.Request) -> web.Response:
    """GET /api/v1/sent/{digest}: one sent item."""
    user = await _user(request)
    item = await _service(request).store.sent_item(user.org, _digest(request))
    if item is None:
        raise ServiceError("no such item among this organisation's sent items", status=404)
    doc = _sent_json(item, **_sent_shape(request))
    doc["events"] = await _sent_events(request, user.org, item.envelope.digest)
    await decorate_sent(_service(request).store, user.org, [doc])  # recall, threads (issue 5)
    await retention.annotate(_service(request), user.org, [doc])  # retention (issue 5)
    return web.json_response(doc)


#: Ledger events shown in a sent item's status timeline.
_TIMELINE_EVENTS: Final = frozenset({"submitted", "attempted", "fallback", "delivered", "recalled"})


async def _sent_events(request: web.Request, org: OrgId, digest: bytes) -> list[dict[str, Any]]:
    """Return the sender's own ledger events for an envelope: every attempt and fallback."""
    rows = await _service(request).store.ledger_events_for(digest)
    events = []
    for index, raw in rows:
        event = decode_event(raw)
        if event.org != org or event.type.value not in _TIMELINE_EVENTS:
            continue
        events.append(
            {
                "index": index,
                "type": event.type.value,
                "time": event.time,
                "counterparty": event.counterparty,
                "reason": event.reason,
            }
        )
    return events


async def list_inbox(request: web.Request) -> web.Response:
    """GET /api/v1/inbox: items delivered to the organisation."""
    user = await _user(request)
    limit, before = _page(request)
    items = await _service(request).store.inbox(user.org, limit=limit, before=before)
    views = [_inbox_json(i) for i in items]
    await decorate_inbox(_service(request).store, user.org, views)  # recall, threads (issue 5)
    await retention.annotate(_service(request), user.org, views)  # retention (issue 5)
    last = items[-1] if len(items) == limit else None
    cursor = None if last is None else _cursor(last.received_at, last.envelope.digest)
    return web.json_response({"items": views, "next": cursor})


async def open_item(request: web.Request) -> web.Response:
    """POST /api/v1/inbox/{digest}/open: the plaintext, to an authorised user."""
    user = await _user(request)
    content = await _service(request).open_item(user, _digest(request))
    return web.Response(
        body=content,
        content_type="application/octet-stream",
        headers={"Cache-Control": "no-store"},
    )


_ACK_FIELDS: Final = {"disposition": Field(str, required=False)}
_REJECT_FIELDS: Final = {"reason": Field(str)}


async def acknowledge(request: web.Request) -> web.Response:
    """POST /api/v1/inbox/{digest}/acknowledge {disposition?}: emits ``acknowledged``."""
    user = await _user(request)
    raw = await request.read()
    doc = parse_object(raw or b"{}", _ACK_FIELDS, limit=request.app[JSON_LIMIT])
    receipt = await _service(request).decide(
        user, _digest(request), accept=True, code=doc.get("disposition")
    )
    return web.json_response({"status": "acknowledged", "receipt_digest": receipt.hex()})


async def reject(request: web.Request) -> web.Response:
    """POST /api/v1/inbox/{digest}/reject {reason}: emits ``rejected``."""
    user = await _user(request)
    doc = parse_object(await request.read(), _REJECT_FIELDS, limit=request.app[JSON_LIMIT])
    receipt = await _service(request).decide(
        user, _digest(request), accept=False, code=doc["reason"]
    )
    return web.json_response({"status": "rejected", "receipt_digest": receipt.hex()})


async def receipts(request: web.Request) -> web.Response:
    """GET /api/v1/envelopes/{digest}/receipts: receipts held for one of the org's items."""
    user = await _user(request)
    service = _service(request)
    digest = _digest(request)
    sent = await service.store.sent_item(user.org, digest)
    received = await service.store.inbox_item(user.org, digest)
    if sent is None and received is None:
        raise ServiceError("no such item for this organisation", status=404)
    # The sender sees every recipient's receipts; a recipient only its own, or a co-recipient
    # served by the same node would see the other organisation's opened/acknowledged.
    held = [
        r
        for r in await service.store.receipts_for(digest)
        if sent is not None or r.receipter == user.org
    ]
    ledger = request.app[LEDGER]
    await ledger.checkpoint()
    proofs = []
    for index, event in await service.store.ledger_events_for(digest):
        # The node's log is shared by its tenants: prove only this organisation's events.
        if decode_event(event).org != user.org:
            continue
        bundle = await ledger.bundle_at(index, event)
        if bundle is not None:
            proofs.append({"index": index, "bundle": bundle.decode("utf-8")})
    return web.json_response(
        {
            "digest": digest.hex(),
            "receipts": [_receipt_json(r) for r in held],
            "ledger": {"origin": ledger.origin, "proofs": proofs},
        }
    )


# --- peer protocol --------------------------------------------------------------------------


class StoreReplayCache(ReplayCache):
    """Nonces remembered in the store, so a replay is refused even across a restart."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.pending: list[tuple[str, str, int, int]] = []

    def seen_or_record(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Defer to the store: recorded after the synchronous check (see _peer_auth)."""
        self.pending.append((key, nonce, created, now))
        return False


async def _peer(request: web.Request, max_body: int) -> tuple[OrgId, OrgId, bytes]:
    service = _service(request)
    # Streamed with the limit enforced as it is read, chunked bodies included.
    body = await read_body(request, max_body)
    cache = StoreReplayCache(service)
    peer = verify_request(
        method=request.method,
        url=service.public_url + request.raw_path,
        headers={k: ", ".join(request.headers.getall(k)) for k in request.headers},
        body=body,
        directory=service.directory,
        now=service.now(),
        replay=cache,
        max_body=max_body,
    )
    for key, nonce, created, now in cache.pending:
        if await service.store.seen_or_record_nonce(key, nonce, created, now):
            raise ReplayError
    # The organisation in the path is looked at only after the request is authenticated,
    # so an anonymous caller cannot learn which organisations this node serves.
    try:
        owner = parse_org_id(request.match_info["org"], field="organisation in the path")
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    service.tenant(owner)
    return peer.org_id, owner, body


async def peer_envelope(request: web.Request) -> web.Response:
    """POST /peer/v1/orgs/{org}/envelopes: store once and answer with the signed receipt."""
    service = _service(request)
    peer_org, owner, body = await _peer(request, service.max_envelope_bytes)
    receipt = await service.receive_envelope(peer_org, owner, body)
    return web.Response(body=receipt, content_type="application/vnd.exchange.receipt")


async def peer_receipt(request: web.Request) -> web.Response:
    """POST /peer/v1/orgs/{org}/receipts: a receipt for an envelope the org sent."""
    service = _service(request)
    peer_org, owner, body = await _peer(request, 4096)
    await service.receive_receipt(peer_org, owner, body)
    return web.json_response({"status": "recorded"}, status=200)


# --- operations -----------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is up."""
    del request
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: the store answers and the node is not shutting down."""
    ready = request.app[READY]
    if not ready.get("accepting", False):
        return _error(503, "the node is not accepting requests")
    try:
        await _service(request).store.ledger_size()
    except Exception as exc:  # noqa: BLE001 - any store failure means "not ready"
        log.warning("readiness.failed", error_class=type(exc).__name__)
        return _error(503, "the node's store does not answer")
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format."""
    service = _service(request)
    counts = await service.store.outbox_counts()
    receipts = await service.store.receipt_counts()
    stats = request.app[WORKER].stats
    collected = request.app[COLLECT_STATS]
    lines = [
        "# HELP exchange_outbox_items Outbox items by state.",
        "# TYPE exchange_outbox_items gauge",
    ]
    lines += [
        f'exchange_outbox_items{{state="{state}"}} {counts.get(state, 0)}'
        for state in ("queued", "attempting", "retry-wait", "delivered", "dead", "recalled")
    ]
    lines += [
        "# HELP exchange_delivery_attempts_total Delivery attempts made.",
        "# TYPE exchange_delivery_attempts_total counter",
        f"exchange_delivery_attempts_total {stats.attempts}",
        "# HELP exchange_deliveries_total Deliveries by outcome.",
        "# TYPE exchange_deliveries_total counter",
        f'exchange_deliveries_total{{outcome="delivered"}} {stats.delivered}',
        f'exchange_deliveries_total{{outcome="retried"}} {stats.retried}',
        f'exchange_deliveries_total{{outcome="dead"}} {stats.dead}',
        "# HELP exchange_delivery_latency_seconds Time from submission to delivery.",
        "# TYPE exchange_delivery_latency_seconds summary",
        f"exchange_delivery_latency_seconds_sum {stats.latency_sum:.6f}",
        f"exchange_delivery_latency_seconds_count {stats.latency_count}",
        "# HELP exchange_receipts Signed receipts held (issued and received), by status.",
        "# TYPE exchange_receipts gauge",
        *(
            f'exchange_receipts{{status="{status}"}} {receipts.get(status, 0)}'
            for status in ("delivered", "opened", "acknowledged", "rejected")
        ),
        "# HELP exchange_collected_total Messages taken from pull routes, by outcome.",
        "# TYPE exchange_collected_total counter",
        f'exchange_collected_total{{outcome="stored"}} {collected.collected}',
        f'exchange_collected_total{{outcome="refused"}} {collected.refused}',
        "# HELP exchange_collect_failures_total Collections from a route that failed.",
        "# TYPE exchange_collect_failures_total counter",
        f"exchange_collect_failures_total {collected.failed_rounds}",
        "# HELP exchange_mesh_non_delivery_total MESH non-delivery reports acted on.",
        "# TYPE exchange_mesh_non_delivery_total counter",
        f"exchange_mesh_non_delivery_total {collected.reports}",
        "# HELP exchange_ledger_events Events in the ledger.",
        "# TYPE exchange_ledger_events gauge",
        f"exchange_ledger_events {await service.store.ledger_size()}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


# --- retention (issue 5) ---------------------------------------------------------------------
# The DPO's review queue, inquiry holds and destruction (exchange/node/retention.py,
# docs/node.md "Retention").

_HOLD_FIELDS: Final = {
    "digest": Field(str, required=False),
    "reason": Field(str),
    "reference": Field(str),
}
_DESTROY_FIELDS: Final = {"reason": Field(str)}
_HOLD_ID_RE: Final = re.compile(r"[1-9][0-9]{0,17}")


async def _retained(call: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Await a retention action; a refusal becomes the API's error, naming its rule."""
    try:
        return await call
    except retention.RetentionRefusedError as exc:
        if exc.rule is None:
            raise ServiceError(str(exc), status=exc.status) from None
        error = UnprocessableError(str(exc), rule=exc.rule)
        error.status = exc.status
        raise error from None


async def retention_due(request: web.Request) -> web.Response:
    """GET /api/v1/retention/due?before=: items whose review date has passed (DPO only)."""
    user = await _user(request)
    if set(request.query) - {"before"}:
        raise BadRequestError("unknown query parameter; the parameter is before")
    before = _date(request.query.get("before"), "before")
    service = _service(request)
    service.tenant(user.org)
    report = await _retained(retention.due(service, user, before))
    return web.json_response(report, headers={"Cache-Control": "no-store"})


async def retention_holds(request: web.Request) -> web.Response:
    """GET /api/v1/retention/holds: the organisation's holds, in force and lifted (DPO)."""
    user = await _user(request)
    service = _service(request)
    service.tenant(user.org)
    return web.json_response(await _retained(retention.list_holds(service, user)))


async def retention_place_hold(request: web.Request) -> web.Response:
    """POST /api/v1/retention/holds {digest?, reason, reference}: place a hold (DPO)."""
    user = await _user(request)
    doc = parse_object(await request.read(), _HOLD_FIELDS, limit=request.app[JSON_LIMIT])
    digest = doc.get("digest")
    if digest is not None and _DIGEST_RE.fullmatch(digest) is None:
        raise BadRequestError("digest must be 64 lower-case hexadecimal characters")
    service = _service(request)
    service.tenant(user.org)
    hold = await _retained(
        retention.place_hold(
            service,
            user,
            digest=None if digest is None else bytes.fromhex(digest),
            reason=doc["reason"],
            reference=doc["reference"],
        )
    )
    return web.json_response(hold, status=201)


async def retention_lift_hold(request: web.Request) -> web.Response:
    """DELETE /api/v1/retention/holds/{id}: lift a hold (DPO)."""
    user = await _user(request)
    text = request.match_info["id"]
    if _HOLD_ID_RE.fullmatch(text) is None:
        raise BadRequestError("the hold id in the path must be a positive whole number")
    service = _service(request)
    service.tenant(user.org)
    return web.json_response(await _retained(retention.lift_hold(service, user, int(text))))


async def retention_destroy(request: web.Request) -> web.Response:
    """POST /api/v1/retention/{digest}/destroy {reason}: destroy after review (DPO)."""
    user = await _user(request)
    digest = _digest(request)
    doc = parse_object(await request.read(), _DESTROY_FIELDS, limit=request.app[JSON_LIMIT])
    service = _service(request)
    service.tenant(user.org)
    done = await _retained(retention.destroy(service, user, digest, reason=doc["reason"]))
    return web.json_response(done)


async def _sweep_destroyed(app: web.Application) -> None:
    """At start-up: delete the bodies of destroyed envelopes that a crash left behind."""
    await retention.sweep_destroyed(app[SERVICE].store)


def create_app(
    service: NodeService,
    worker: DeliveryWorker,
    ledger: NodeLedger,
    *,
    json_limit: int,
    collect_stats: CollectStats | None = None,
) -> web.Application:
    """Build the node's application."""
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=service.max_envelope_bytes + 65536
    )
    app[SERVICE] = service
    app[WORKER] = worker
    app[LEDGER] = ledger
    app[JSON_LIMIT] = json_limit
    app[READY] = {"accepting": True}
    app[COLLECT_STATS] = collect_stats or CollectStats()
    app.router.add_post("/api/v1/envelopes", submit)
    app.router.add_get("/api/v1/sent", list_sent)
    app.router.add_get("/api/v1/sent/{digest}", sent_item)
    app.router.add_get("/api/v1/inbox", list_inbox)
    app.router.add_post("/api/v1/inbox/import", import_envelope)
    app.router.add_post("/api/v1/inbox/{digest}/open", open_item)
    app.router.add_post("/api/v1/inbox/{digest}/acknowledge", acknowledge)
    app.router.add_post("/api/v1/inbox/{digest}/reject", reject)
    app.router.add_get("/api/v1/envelopes/{digest}/receipts", receipts)
    app.router.add_post("/peer/v1/orgs/{org}/envelopes", peer_envelope)
    app.router.add_post("/peer/v1/orgs/{org}/receipts", peer_receipt)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    # --- records, register, deadlines (issue 5) ---
    app.router.add_post("/api/v1/decisions/not-shared", not_shared)
    app.router.add_get("/api/v1/register", register_export)
    app.router.add_get("/api/v1/overdue", overdue)
    app.router.add_post("/api/v1/subject-access", subject_access)
    # --- retention (issue 5) ---
    app.router.add_get("/api/v1/retention/due", retention_due)
    app.router.add_get("/api/v1/retention/holds", retention_holds)
    app.router.add_post("/api/v1/retention/holds", retention_place_hold)
    app.router.add_delete("/api/v1/retention/holds/{id}", retention_lift_hold)
    app.router.add_post("/api/v1/retention/{digest}/destroy", retention_destroy)
    app.on_startup.append(_sweep_destroyed)
    # --- recall, threads, corrections (issue 5) ---
    # Imported here: the handlers module builds on this module's helpers.
    from exchange.node.recall_api import add_routes  # noqa: PLC0415

    add_routes(app)
    return app
