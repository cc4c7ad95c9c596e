"""The staff API (/api/v1) of sending and receiving: submit, sent, inbox, import, receipts.

Every query is scoped to the user's organisation, so one organisation's items can never be
seen or acted on by another's staff, even on a shared node (a foreign item is "not found",
never "forbidden", so its existence is not disclosed).
"""

from __future__ import annotations

import base64
from typing import Any, Final

from aiohttp import web

from exchange.http.common import (
    DIGEST_RE,
    JSON_LIMIT,
    LEDGER,
    WORKER,
    attachment_inputs,
    next_cursor,
    node_service,
    org_ids,
    parse_date,
    path_digest,
    read_page,
    staff_user,
)
from exchange.http.jsonbody import BadRequestError, Field, parse_object
from exchange.keys.ids import OrgId
from exchange.ledger.events import decode_event
from exchange.model import InboxItem, ReceiptRecord, SentItem
from exchange.peerauth import PeerAuthError
from exchange.peerauth.aiohttp_glue import read_body
from exchange.service import retention
from exchange.service.errors import ServiceError
from exchange.service.recall import decorate_inbox, decorate_sent
from exchange.sharing.prepare import Submission


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
        "now": node_service(request).clock(),
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


def _strings(values: list[Any], field: str) -> tuple[str, ...]:
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise BadRequestError(f"{field}[{i}] must be a string")
    return tuple(values)


def _digest_field(value: str | None, field: str) -> bytes | None:
    if value is None:
        return None
    if DIGEST_RE.fullmatch(value) is None:
        raise BadRequestError(f"{field} must be 64 lower-case hexadecimal characters (a digest)")
    return bytes.fromhex(value)


async def submit(request: web.Request) -> web.Response:
    """POST /api/v1/envelopes: check, seal, register and queue a record; 202 once stored."""
    user = await staff_user(request)
    # Attachments travel base64-encoded: allow the envelope limit in base64, plus the fields.
    limit = node_service(request).max_envelope_bytes * 4 // 3 + request.app[JSON_LIMIT]
    doc = parse_object(await request.read(), _SUBMIT_FIELDS, limit=limit)
    submission = Submission(
        recipients=tuple(org_ids(doc["recipients"], "recipients")),
        purpose=doc["purpose"],
        record_kind=doc["record_kind"],
        record=doc["record"],
        categories=_strings(doc["categories"], "categories"),
        reason=doc["reason"],
        lawful_basis=doc.get("lawful_basis"),
        attachments=attachment_inputs(doc.get("attachments", [])),
        new_school_confirmed=parse_date(doc.get("new_school_confirmed"), "new_school_confirmed"),
        due=parse_date(doc.get("due"), "due"),
        in_reply_to=_digest_field(doc.get("in_reply_to"), "in_reply_to"),
    )
    submitted = await node_service(request).submit(user, submission)
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


async def import_envelope(request: web.Request) -> web.Response:
    """POST /api/v1/inbox/import: an envelope that came by mail, added to the inbox."""
    user = await staff_user(request)
    service = node_service(request)
    try:
        body = await read_body(request, service.max_envelope_bytes)
    except PeerAuthError as exc:
        raise ServiceError(str(exc), status=exc.status) from None
    digest, new = await service.import_envelope(user, body)
    return web.json_response({"digest": digest.hex(), "new": new}, status=201 if new else 200)


async def list_sent(request: web.Request) -> web.Response:
    """GET /api/v1/sent: the organisation's sent items with per-recipient timelines."""
    user = await staff_user(request)
    limit, before = read_page(request)
    items = await node_service(request).store.list_sent(user.org, limit=limit, before=before)
    shape = _sent_shape(request)
    views = [_sent_json(i, **shape) for i in items]
    await decorate_sent(node_service(request).store, user.org, views)  # recall, threads
    await retention.annotate(node_service(request), user.org, views)  # retention
    last = items[-1] if len(items) == limit else None
    cursor = None if last is None else next_cursor(last.submitted_at, last.envelope.digest)
    return web.json_response({"items": views, "next": cursor})


async def sent_item(request: web.Request) -> web.Response:
    """GET /api/v1/sent/{digest}: one sent item."""
    user = await staff_user(request)
    item = await node_service(request).store.sent_item(user.org, path_digest(request))
    if item is None:
        raise ServiceError("no such item among this organisation's sent items", status=404)
    doc = _sent_json(item, **_sent_shape(request))
    doc["events"] = await _sent_events(request, user.org, item.envelope.digest)
    await decorate_sent(node_service(request).store, user.org, [doc])  # recall, threads
    await retention.annotate(node_service(request), user.org, [doc])  # retention
    return web.json_response(doc)


#: Ledger events shown in a sent item's status timeline.
_TIMELINE_EVENTS: Final = frozenset({"submitted", "attempted", "fallback", "delivered", "recalled"})


async def _sent_events(request: web.Request, org: OrgId, digest: bytes) -> list[dict[str, Any]]:
    """Return the sender's own ledger events for an envelope: every attempt and fallback."""
    rows = await node_service(request).store.ledger_events_for(digest)
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
    user = await staff_user(request)
    limit, before = read_page(request)
    items = await node_service(request).store.inbox(user.org, limit=limit, before=before)
    views = [_inbox_json(i) for i in items]
    await decorate_inbox(node_service(request).store, user.org, views)  # recall, threads
    await retention.annotate(node_service(request), user.org, views)  # retention
    last = items[-1] if len(items) == limit else None
    cursor = None if last is None else next_cursor(last.received_at, last.envelope.digest)
    return web.json_response({"items": views, "next": cursor})


async def open_item(request: web.Request) -> web.Response:
    """POST /api/v1/inbox/{digest}/open: the plaintext, to an authorised user."""
    user = await staff_user(request)
    content = await node_service(request).open_item(user, path_digest(request))
    return web.Response(
        body=content,
        content_type="application/octet-stream",
        headers={"Cache-Control": "no-store"},
    )


_ACK_FIELDS: Final = {"disposition": Field(str, required=False)}
_REJECT_FIELDS: Final = {"reason": Field(str)}


async def acknowledge(request: web.Request) -> web.Response:
    """POST /api/v1/inbox/{digest}/acknowledge {disposition?}: emits ``acknowledged``."""
    user = await staff_user(request)
    raw = await request.read()
    doc = parse_object(raw or b"{}", _ACK_FIELDS, limit=request.app[JSON_LIMIT])
    receipt = await node_service(request).decide(
        user, path_digest(request), accept=True, code=doc.get("disposition")
    )
    return web.json_response({"status": "acknowledged", "receipt_digest": receipt.hex()})


async def reject(request: web.Request) -> web.Response:
    """POST /api/v1/inbox/{digest}/reject {reason}: emits ``rejected``."""
    user = await staff_user(request)
    doc = parse_object(await request.read(), _REJECT_FIELDS, limit=request.app[JSON_LIMIT])
    receipt = await node_service(request).decide(
        user, path_digest(request), accept=False, code=doc["reason"]
    )
    return web.json_response({"status": "rejected", "receipt_digest": receipt.hex()})


async def receipts(request: web.Request) -> web.Response:
    """GET /api/v1/envelopes/{digest}/receipts: receipts held for one of the org's items."""
    user = await staff_user(request)
    service = node_service(request)
    digest = path_digest(request)
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
