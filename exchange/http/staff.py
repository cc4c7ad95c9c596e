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
    next_cursor,
    node_service,
    org_ids,
    parse_date,
    path_digest,
    read_page,
    staff_user,
    whole_number,
)
from exchange.http.jsonbody import BadRequestError, Field, parse_object
from exchange.http.streaming import send_attachment, stream_bytes
from exchange.http.submissions import submission_body
from exchange.model import ReceiptRecord
from exchange.peerauth import PeerAuthError
from exchange.peerauth.aiohttp_glue import read_body
from exchange.policy import Deadline
from exchange.service.busy import refuse_when_busy
from exchange.service.errors import ServiceError
from exchange.service.idempotency import HEADER, IdempotencyKey, parse_key
from exchange.service.recall import recall_json
from exchange.service.register_reports import iso_time
from exchange.service.retention import RetentionStanding
from exchange.service.views import InboxView, RecipientView, SentView
from exchange.sharing.prepare import Submission


def _receipt_json(r: ReceiptRecord) -> dict[str, Any]:
    return {
        "status": r.status,
        "organisation": r.receipter,
        "time": r.time,
        "receipt_digest": r.digest.hex(),
        "receipt": base64.b64encode(r.signed).decode("ascii"),
    }


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _retention_json(standing: RetentionStanding) -> dict[str, Any]:
    """Return the ``retention`` object of a sent or inbox item (no hold details)."""
    return {
        "state": standing.state,
        "rule": None if standing.rule is None else f"retention.{standing.rule}",
        "review_date": standing.review_date,
        "destroyed_at": None if standing.destroyed_at is None else iso_time(standing.destroyed_at),
    }


def _recipient_json(recipient: RecipientView) -> dict[str, Any]:
    delivery = recipient.delivery
    return {
        "organisation": delivery.destination,
        "delivery_state": delivery.state,
        "route": delivery.route_kind,
        "overdue": recipient.overdue,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "clock_skew_seconds": recipient.clock_skew,
        "timeline": [
            {"status": r.status, "time": r.time, "receipt_digest": r.digest.hex()}
            for r in recipient.receipts
        ],
        "recall": None if recipient.recall is None else recall_json(recipient.recall),
    }


def _sent_json(view: SentView) -> dict[str, Any]:
    env = view.item.envelope
    doc: dict[str, Any] = {
        "envelope_id": env.envelope_id.hex(),
        "digest": env.digest.hex(),
        "record_kind": env.record_kind,
        "created": env.created,
        "length": env.length,
        "submitted_by": view.item.submitted_by,
        "recipients": [_recipient_json(r) for r in view.recipients],
    }
    if view.events is not None:
        doc["events"] = [
            {
                "index": e.index,
                "type": e.type,
                "time": e.time,
                "counterparty": e.counterparty,
                "reason": e.reason,
            }
            for e in view.events
        ]
    doc["in_reply_to"] = _hex(view.links.in_reply_to)
    doc["corrects"] = _hex(view.links.corrects)
    doc["corrected_by"] = [d.hex() for d in view.links.corrected_by]
    doc["retention"] = _retention_json(view.retention)
    return doc


def _inbox_json(view: InboxView, owed: Deadline | None) -> dict[str, Any]:
    item = view.item
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
        "opened_at": None if view.opened_at is None else int(view.opened_at),
        "opened_by_role": view.opened_by_role,
        "recalled_at": None if view.recalled_at is None else int(view.recalled_at),
        "in_reply_to": _hex(view.links.in_reply_to),
        "corrects": _hex(view.links.corrects),
        "retention": _retention_json(view.retention),
        "deadline": None if owed is None else {"due": owed.due.isoformat(), "rule": owed.rule},
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


def _idempotency_key(request: web.Request, request_hash: bytes) -> IdempotencyKey | None:
    """Return the request's ``Idempotency-Key`` with the hash of the request, or None."""
    values = request.headers.getall(HEADER, [])
    if not values:
        return None
    if len(values) > 1:
        raise BadRequestError(f"the {HEADER} header must be given once")
    return parse_key(values[0], request_hash)


async def submit(request: web.Request) -> web.Response:
    """POST /api/v1/envelopes: check, seal, register and queue a record; 202 once stored.

    The body is JSON (files in base64) or multipart/form-data (files streamed to spool
    files): :mod:`exchange.http.submissions`. With an ``Idempotency-Key``, a repeat of an
    earlier request with the same key and body is answered as the first was, with
    ``Idempotent-Replayed: true``, and seals nothing.
    """
    user = await staff_user(request)
    refuse_when_busy(node_service(request))  # 503 while the outbox is behind, body unread
    async with submission_body(request, _SUBMIT_FIELDS) as body:
        key = _idempotency_key(request, body.digest)
        doc = body.fields
        submission = Submission(
            recipients=tuple(org_ids(doc["recipients"], "recipients")),
            purpose=doc["purpose"],
            record_kind=doc["record_kind"],
            record=doc["record"],
            categories=_strings(doc["categories"], "categories"),
            reason=doc["reason"],
            lawful_basis=doc.get("lawful_basis"),
            attachments=body.attachments,
            new_school_confirmed=parse_date(
                doc.get("new_school_confirmed"), "new_school_confirmed"
            ),
            due=parse_date(doc.get("due"), "due"),
            in_reply_to=_digest_field(doc.get("in_reply_to"), "in_reply_to"),
        )
        submitted = await node_service(request).submit(user, submission, idempotency=key)
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
        headers={"Idempotent-Replayed": "true"} if submitted.replayed else None,
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
    views = await node_service(request).sent_items(user, limit=limit, before=before)
    last = views[-1].item if len(views) == limit else None
    cursor = None if last is None else next_cursor(last.submitted_at, last.envelope.digest)
    return web.json_response({"items": [_sent_json(v) for v in views], "next": cursor})


async def sent_item(request: web.Request) -> web.Response:
    """GET /api/v1/sent/{digest}: one sent item."""
    user = await staff_user(request)
    view = await node_service(request).sent_item(user, path_digest(request))
    return web.json_response(_sent_json(view))


async def list_inbox(request: web.Request) -> web.Response:
    """GET /api/v1/inbox: items delivered to the organisation."""
    user = await staff_user(request)
    limit, before = read_page(request)
    service = node_service(request)
    views = await service.inbox_items(user, limit=limit, before=before)
    last = views[-1].item if len(views) == limit else None
    cursor = None if last is None else next_cursor(last.received_at, last.envelope.digest)
    items = [_inbox_json(v, service.deadline_owed(v, None)) for v in views]
    return web.json_response({"items": items, "next": cursor})


def _wants_json(request: web.Request) -> bool:
    """Whether the request asks for JSON (``Accept: application/json``), not the content."""
    accepted = [v.split(";")[0].strip() for v in request.headers.get("Accept", "").split(",")]
    return "application/json" in accepted and "application/octet-stream" not in accepted


async def open_item(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/inbox/{digest}/open: the plaintext, to an authorised user, streamed.

    With ``Accept: application/json``, the record and a list of its attachments instead,
    each to be downloaded on its own (:func:`attachment`): a large CP file is then never
    sent twice.
    """
    user = await staff_user(request)
    service = node_service(request)
    digest = path_digest(request)
    if _wants_json(request):
        opened = await service.open_item(user, digest)
        record = opened.record
        return web.json_response(
            {
                "digest": digest.hex(),
                "record_kind": None if record is None else record.kind,
                "record": None if record is None else record.data,
                "attachments": [
                    {
                        "number": number,
                        "name": entry.name,
                        "content_type": entry.content_type,
                        "size": entry.size,
                        "sha256": entry.sha256.hex(),
                    }
                    for number, entry in enumerate(opened.entries, start=1)
                ],
            },
            headers={"Cache-Control": "no-store"},
        )
    length, pieces = await service.opened_content(user, digest)
    return await stream_bytes(
        request,
        length,
        pieces,
        content_type="application/octet-stream",
        headers={"Cache-Control": "no-store"},
    )


async def attachment(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/inbox/{digest}/attachments/{number}: one file of an opened item, streamed."""
    user = await staff_user(request)
    number = whole_number(request.match_info["number"], 1, 999)
    if number is None:
        raise ServiceError("number must be a whole number from 1", status=404)
    entry, pieces = await node_service(request).inbox_attachment(user, path_digest(request), number)
    return await send_attachment(request, entry, pieces)


async def read_back(request: web.Request) -> web.Response:
    """POST /api/v1/sent/{digest}/copy: what the organisation sent, from its own copy."""
    user = await staff_user(request)
    content = await node_service(request).read_back(user, path_digest(request))
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
    digest = path_digest(request)
    view = await node_service(request).receipts(user, digest, request.app[LEDGER])
    return web.json_response(
        {
            "digest": digest.hex(),
            "receipts": [_receipt_json(r) for r in view.receipts],
            "ledger": {
                "origin": view.origin,
                "proofs": [
                    {"index": index, "bundle": bundle.decode("utf-8")}
                    for index, bundle in view.proofs
                ],
            },
        }
    )


async def organisations(request: web.Request) -> web.Response:
    """GET /api/v1/organisations: every organisation of the directory, by id, name and kind.

    So that a client (the ``exchange`` command) can show organisations by name; the
    directory is public within the exchange, so any member of staff may read it.
    """
    await staff_user(request)
    directory = node_service(request).directory
    listed = sorted(directory.organisations.values(), key=lambda org: org.id)
    return web.json_response(
        {
            "version": directory.version,
            "organisations": [{"id": o.id, "name": o.name, "kind": o.kind} for o in listed],
        }
    )
