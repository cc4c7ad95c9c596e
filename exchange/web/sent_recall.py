"""Recall from the pages: a confirmation page saying what recall does, then each outcome.

``GET /sent/<digest>/recall`` explains recall in plain words and asks why, from a fixed
list: the reason goes into the sharing register, so it is never free text that could name
a child. ``POST`` asks the node's :class:`~exchange.service.recall.Recaller`, which checks
the role and the item, and the answer page shows what happened with each recipient:
recalled before anyone opened it, already opened, not recallable over its route, and so on.
Asking again only retries the recipients whose recall did not finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from exchange.http.recall import node_recaller
from exchange.model import RecallRow, short_reference
from exchange.web.accounts import SESSION
from exchange.web.app import DIGEST_ROUTE, render, web_service
from exchange.web.sent_timeline import RECALL_OUTCOMES, route_words
from exchange.web.sent_words import item_path
from exchange.web.words import kind_name, london_time, organisation_name


@dataclass(frozen=True)
class RecallReason:
    """A reason to recall: the choice's words, and the sentence the register keeps."""

    choice: str
    register: str


#: The reasons a person may give, by the reason code the recall records: one for each of the
#: service's codes (``exchange.service.recall.RECALL_REASON_CODES``), in its order.
REASONS: Final = {
    "sent-in-error": RecallReason("It was sent by mistake", "Sent in error."),
    "wrong-recipient": RecallReason(
        "It went to the wrong organisation", "Sent to the wrong organisation."
    ),
    "wrong-child": RecallReason(
        "It is about a different child", "The record is about a different child."
    ),
    "incorrect-content": RecallReason(
        "Information in it is wrong", "The record holds information that is wrong."
    ),
    "duplicate": RecallReason("It was sent twice", "A duplicate of a record already sent."),
}
_NO_REASON: Final = "Select why you are recalling this record"


async def _confirmation(
    request: web.Request, digest: bytes, *, error: str | None, status: int = 200
) -> web.Response:
    user = request[SESSION].user
    await node_recaller(request).check(user, digest)
    view = await web_service(request).sent_item(user, digest)
    env = view.item.envelope
    return render(
        request,
        "sent/recall.html",
        {
            "kind": kind_name(env.record_kind),
            "reference": short_reference(env.envelope_id),
            "sent": london_time(view.item.submitted_at),
            "item_href": item_path(digest),
            "digest": digest.hex(),
            "recipient_names": [
                organisation_name(request, r.delivery.destination) for r in view.recipients
            ],
            "reasons": [{"value": code, "text": r.choice} for code, r in REASONS.items()],
            "errors": [] if error is None else [{"href": "#reason", "text": error}],
            "error": error,
        },
        status=status,
    )


async def recall_page(request: web.Request) -> web.StreamResponse:
    """``GET /sent/<digest>/recall``: what recall does, and why this record is recalled."""
    digest = bytes.fromhex(request.match_info["digest"])
    return await _confirmation(request, digest, error=None)


def _outcome(request: web.Request, row: RecallRow) -> dict[str, Any]:
    detail = row.detail.rstrip(".")
    return {
        "name": organisation_name(request, row.recipient),
        "outcome": RECALL_OUTCOMES.get(row.outcome, row.outcome),
        "recalled": row.outcome == "recalled",
        "detail": detail[:1].upper() + detail[1:] if detail else "",
        "route": None if row.route is None else route_words(row.route),
        "when": None if row.at is None else london_time(row.at),
    }


async def recall(request: web.Request) -> web.StreamResponse:
    """``POST /sent/<digest>/recall``: recall from every recipient; show each outcome."""
    digest = bytes.fromhex(request.match_info["digest"])
    form = await request.post()
    code = form.get("reason")
    if not isinstance(code, str) or code not in REASONS:
        return await _confirmation(request, digest, error=_NO_REASON, status=400)
    user = request[SESSION].user
    rows = await node_recaller(request).recall(
        user, digest, reason=REASONS[code].register, reason_code=code
    )
    view = await web_service(request).sent_item(user, digest)
    env = view.item.envelope
    outcomes = [_outcome(request, row) for row in rows]
    return render(
        request,
        "sent/recalled.html",
        {
            "kind": kind_name(env.record_kind),
            "reference": short_reference(env.envelope_id),
            "item_href": item_path(digest),
            "outcomes": outcomes,
            "all_recalled": all(o["recalled"] for o in outcomes),
            "unfinished": any(r.outcome in {"pending", "failed"} for r in rows),
        },
    )


def add_recall_routes(app: web.Application) -> None:
    """Add the recall confirmation page and its form."""
    app.router.add_get(f"/sent/{DIGEST_ROUTE}/recall", recall_page)
    app.router.add_post(f"/sent/{DIGEST_ROUTE}/recall", recall)
