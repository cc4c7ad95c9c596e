"""The staff API of the sharing register: not-shared decisions, export, overdue, subject access.

These endpoints record a decision not to share, with its reason, export the register (DPO
only), list the organisation's deadlines past due and answer a subject access request about
one child (by every identifier given); the register itself is exchange/service/register_reports.py.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from exchange.http.common import (
    JSON_LIMIT,
    node_service,
    only_parameters,
    org_ids,
    parse_date,
    staff_user,
)
from exchange.http.jsonbody import BadRequestError, Field, parse_object
from exchange.http.streaming import stream_text
from exchange.model import SubjectKind
from exchange.records import KINDS, InvalidIdentifierError, validate_nhs_number, validate_upn
from exchange.service.errors import UnprocessableError
from exchange.service.register_reports import london_days

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
    user = await staff_user(request)
    doc = parse_object(await request.read(), _NOT_SHARED_FIELDS, limit=request.app[JSON_LIMIT])
    record_kind = doc.get("record_kind")
    if record_kind is not None and record_kind not in KINDS:
        raise UnprocessableError(
            f"record_kind must be one of: {', '.join(KINDS)}", rule="record_kind"
        )
    register_id = await node_service(request).record_not_shared(
        user,
        purpose=doc["purpose"],
        recipients=org_ids(doc["recipients"], "recipients"),
        reason_code=doc["reason_code"],
        reason=doc["reason"],
        record_kind=record_kind,
        identifiers=_identifiers(doc),
    )
    return web.json_response(
        {"register_id": register_id, "rule": f"not-to-share.{doc['reason_code']}"}, status=201
    )


_REGISTER_QUERY: Final = ("format", "from", "to")


async def register_export(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/register?format=csv|json&from=&to=: the sharing register (DPO only)."""
    user = await staff_user(request)
    only_parameters(request, *_REGISTER_QUERY)
    query = request.query
    form = query.get("format", "json")
    if form not in {"csv", "json"}:
        raise BadRequestError("format must be csv or json")
    first, last = parse_date(query.get("from"), "from"), parse_date(query.get("to"), "to")
    since, until = london_days(first, last)
    pieces = node_service(request).register_stream(user, since=since, until=until, form=form)
    headers = {"Cache-Control": "no-store"}
    if form == "csv":
        headers["Content-Disposition"] = (
            f'attachment; filename="register-{user.org.replace(":", "-")}.csv"'
        )
    content_type = "text/csv" if form == "csv" else "application/json"
    return await stream_text(request, pieces, content_type=content_type, headers=headers)


async def overdue(request: web.Request) -> web.Response:
    """GET /api/v1/overdue: the organisation's deadlines past due without their receipt."""
    user = await staff_user(request)
    items = await node_service(request).overdue_for(user)
    return web.json_response({"items": [i.as_json() for i in items]})


async def subject_access(request: web.Request) -> web.Response:
    """POST /api/v1/subject-access {upn?, nhs_number?}: every exchange about one child."""
    user = await staff_user(request)
    doc = parse_object(await request.read(), _SUBJECT_FIELDS, limit=request.app[JSON_LIMIT])
    if not doc:
        raise BadRequestError("give upn, nhs_number or both")
    report = await node_service(request).subject_access(user, _identifiers(doc))
    return web.json_response(report, headers={"Cache-Control": "no-store"})
