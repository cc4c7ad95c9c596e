"""The staff API of retention: the DPO's review queue, inquiry holds, destruction.

The rules and actions are in exchange/service/retention.py (docs/node.md "Retention"); these
endpoints are for the organisation's DPO only, and :func:`sweep_destroyed_on_startup` finishes,
at start-up, a destruction a crash interrupted.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from exchange.http.common import (
    DIGEST_RE,
    JSON_LIMIT,
    SERVICE,
    node_service,
    only_parameters,
    parse_date,
    path_digest,
    staff_user,
)
from exchange.http.jsonbody import BadRequestError, Field, parse_object

_HOLD_FIELDS: Final = {
    "digest": Field(str, required=False),
    "reason": Field(str),
    "reference": Field(str),
}
_DESTROY_FIELDS: Final = {"reason": Field(str)}
_HOLD_ID_RE: Final = re.compile(r"[1-9][0-9]{0,17}")


async def retention_due(request: web.Request) -> web.Response:
    """GET /api/v1/retention/due?before=: items whose review date has passed (DPO only)."""
    user = await staff_user(request)
    only_parameters(request, "before")
    before = parse_date(request.query.get("before"), "before")
    report = await node_service(request).retention_due(user, before)
    return web.json_response(report, headers={"Cache-Control": "no-store"})


async def retention_holds(request: web.Request) -> web.Response:
    """GET /api/v1/retention/holds: the organisation's holds, in force and lifted (DPO)."""
    user = await staff_user(request)
    return web.json_response(await node_service(request).retention_holds(user))


async def retention_place_hold(request: web.Request) -> web.Response:
    """POST /api/v1/retention/holds {digest?, reason, reference}: place a hold (DPO)."""
    user = await staff_user(request)
    doc = parse_object(await request.read(), _HOLD_FIELDS, limit=request.app[JSON_LIMIT])
    digest = doc.get("digest")
    if digest is not None and DIGEST_RE.fullmatch(digest) is None:
        raise BadRequestError("digest must be 64 lower-case hexadecimal characters")
    hold = await node_service(request).place_hold(
        user,
        digest=None if digest is None else bytes.fromhex(digest),
        reason=doc["reason"],
        reference=doc["reference"],
    )
    return web.json_response(hold, status=201)


async def retention_lift_hold(request: web.Request) -> web.Response:
    """DELETE /api/v1/retention/holds/{id}: lift a hold (DPO)."""
    user = await staff_user(request)
    text = request.match_info["id"]
    if _HOLD_ID_RE.fullmatch(text) is None:
        raise BadRequestError("the hold id in the path must be a positive whole number")
    return web.json_response(await node_service(request).lift_hold(user, int(text)))


async def retention_destroy(request: web.Request) -> web.Response:
    """POST /api/v1/retention/{digest}/destroy {reason}: destroy after review (DPO)."""
    user = await staff_user(request)
    digest = path_digest(request)
    doc = parse_object(await request.read(), _DESTROY_FIELDS, limit=request.app[JSON_LIMIT])
    done = await node_service(request).destroy(user, digest, reason=doc["reason"])
    return web.json_response(done)


async def sweep_destroyed_on_startup(app: web.Application) -> None:
    """At start-up: delete the bodies of destroyed envelopes that a crash left behind."""
    await app[SERVICE].sweep_destroyed()
