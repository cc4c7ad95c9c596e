"""HTTP endpoints of recall, threads and corrections.

Staff API (bearer token, scoped to the user's organisation like every staff endpoint):

- ``POST /api/v1/sent/{digest}/recall`` ``{"reason", "reason_code"?}``: recall a sent
  envelope from every recipient (:mod:`exchange.service.recall`); 200 with each outcome;
- ``POST /api/v1/sent/{digest}/rectify`` ``{"record", "reason", "attachments"?}``: send a
  corrected record to everyone who received the original (:mod:`exchange.service.corrections`);
  202 as a submission, with who was sent it and who was left out;
- ``GET /api/v1/threads/{digest}``: the conversation the envelope belongs to
  (:mod:`exchange.service.threads`).

Peer protocol (RFC 9421-signed by the envelope's sender, docs/protocol.md §8):

- ``POST /peer/v1/orgs/{org}/recalls``: a recall notice for an envelope delivered to
  ``{org}``.

``create_app`` registers them with :func:`add_routes`; the composition root hands the
node's :class:`~exchange.service.recall.Recaller` over with :func:`set_recaller`. Handlers
parse and check the body here, call one service method, and render its answer.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from exchange.connectors.peer_wire import MAX_NOTICE_BODY, NOTICE_MEDIA
from exchange.http.common import JSON_LIMIT, SERVICE, path_digest, staff_user
from exchange.http.jsonbody import BadRequestError, Field, parse_object
from exchange.http.peer import authenticate_peer
from exchange.http.submissions import submission_body
from exchange.service.busy import refuse_when_busy
from exchange.service.corrections import rectify
from exchange.service.errors import ServiceError
from exchange.service.recall import (
    DEFAULT_REASON_CODE,
    Recaller,
    RecallNotice,
    recall_json,
    receive_recall,
)

#: Holds the node's :class:`Recaller`, handed over by :func:`set_recaller` once the node's
#: connectors exist (the application is frozen by then, so it is a holder, not the value).
RECALLER: Final = web.AppKey("recaller", dict)

_REASON_CODE_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_HEX32: Final = re.compile(r"[0-9a-f]{32}")

_RECALL_FIELDS: Final = {"reason": Field(str), "reason_code": Field(str, required=False)}
_NOTICE_FIELDS: Final = {
    "envelope_digest": Field(str),
    "envelope_id": Field(str),
    "reason_code": Field(str),
    "time": Field(int),
}
_RECTIFY_FIELDS: Final = {
    "record": Field(dict),
    "reason": Field(str),
    "attachments": Field(list, required=False),
}


def check_reason_code(code: object) -> str:
    """Return a recall reason code (a short lower-case token), or refuse it (400)."""
    if not isinstance(code, str) or _REASON_CODE_RE.fullmatch(code) is None:
        raise BadRequestError(
            "reason_code must be a lower-case token of letters, digits and '-' "
            "(at most 40 characters), such as sent-in-error"
        )
    return code


def parse_notice(body: bytes) -> RecallNotice:
    """Return the recall notice in ``body``, or refuse it (400) naming the field that is wrong."""
    doc = parse_object(body, _NOTICE_FIELDS, limit=MAX_NOTICE_BODY)
    if _HEX64.fullmatch(doc["envelope_digest"]) is None:
        raise BadRequestError("envelope_digest must be 64 lower-case hexadecimal characters")
    if _HEX32.fullmatch(doc["envelope_id"]) is None:
        raise BadRequestError("envelope_id must be 32 lower-case hexadecimal characters")
    reason_code = check_reason_code(doc["reason_code"])
    if doc["time"] < 0:
        raise BadRequestError("time must be a non-negative number of unix seconds")
    return RecallNotice(
        digest=bytes.fromhex(doc["envelope_digest"]),
        envelope_id=bytes.fromhex(doc["envelope_id"]),
        reason_code=reason_code,
        time=doc["time"],
    )


def set_recaller(app: web.Application, recaller: Recaller) -> None:
    """Hand the node's :class:`Recaller` to the application's recall endpoint."""
    app[RECALLER]["recaller"] = recaller


def node_recaller(request: web.Request) -> Recaller:
    """Return the node's :class:`Recaller` (the staff API's and the web pages')."""
    recaller: Recaller | None = request.app[RECALLER].get("recaller")
    if recaller is None:
        raise ServiceError("recall is not available on this node yet", status=503)
    return recaller


async def recall_sent(request: web.Request) -> web.Response:
    """POST /api/v1/sent/{digest}/recall: recall a sent envelope from every recipient."""
    user = await staff_user(request)
    digest = path_digest(request)
    doc = parse_object(await request.read(), _RECALL_FIELDS, limit=request.app[JSON_LIMIT])
    code = check_reason_code(doc.get("reason_code", DEFAULT_REASON_CODE))
    rows = await node_recaller(request).recall(user, digest, reason=doc["reason"], reason_code=code)
    return web.json_response({"digest": digest.hex(), "recipients": [recall_json(r) for r in rows]})


async def rectify_sent(request: web.Request) -> web.Response:
    """POST /api/v1/sent/{digest}/rectify: send the corrected record to the original's receivers."""
    user = await staff_user(request)
    digest = path_digest(request)
    service = request.app[SERVICE]
    refuse_when_busy(service)  # a correction is a new envelope: 503 while the outbox is behind
    async with submission_body(request, _RECTIFY_FIELDS) as given:
        done = await rectify(
            service,
            user,
            digest,
            record=given.fields["record"],
            reason=given.fields["reason"],
            attachments=given.attachments,
        )
    submitted = done.submitted
    deadline = (
        None
        if submitted.deadline_rule is None
        else {"due": submitted.deadline_due, "rule": submitted.deadline_rule}
    )
    body: dict[str, Any] = {
        "envelope_id": submitted.envelope_id.hex(),
        "digest": submitted.digest.hex(),
        "corrects": done.corrects.hex(),
        "recipients": list(done.recipients),
        "not_sent": [{"organisation": org, "reason": why} for org, why in done.not_sent],
        "lawful_basis": submitted.lawful_basis,
        "deadline": deadline,
    }
    return web.json_response(body, status=202)


async def thread(request: web.Request) -> web.Response:
    """GET /api/v1/threads/{digest}: every envelope of the conversation, in time order."""
    user = await staff_user(request)
    return web.json_response(await request.app[SERVICE].thread(user, path_digest(request)))


async def peer_recall(request: web.Request) -> web.Response:
    """POST /peer/v1/orgs/{org}/recalls: a recall notice signed by the envelope's sender."""
    async with authenticate_peer(request, MAX_NOTICE_BODY) as (peer_org, owner, body):
        if request.content_type != NOTICE_MEDIA:
            raise ServiceError(f"a recall notice is sent as {NOTICE_MEDIA}", status=415)
        notice = parse_notice(await body.read())
        answer = await receive_recall(request.app[SERVICE], peer_org, owner, notice)
    return web.json_response(answer)


def add_routes(app: web.Application) -> None:
    """Register the endpoints of this module on the node's application."""
    app[RECALLER] = {}
    app.router.add_post("/api/v1/sent/{digest}/recall", recall_sent)
    app.router.add_post("/api/v1/sent/{digest}/rectify", rectify_sent)
    app.router.add_get("/api/v1/threads/{digest}", thread)
    app.router.add_post("/peer/v1/orgs/{org}/recalls", peer_recall)
