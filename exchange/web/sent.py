"""The sent items pages: what the signed-in person's organisation sent, and where each stands.

``/sent`` lists the organisation's sent records, newest first, a page at a time (the
cursor of the staff API's ``before``, and ``after`` to go back), with a status tag for each
recipient. It may be narrowed to the records awaiting acknowledgement or the overdue ones:
``show`` takes only those fixed values, and anything else in the query is refused with a
400 page that does not repeat it.

``/sent/<digest>`` is one record (addressed by its envelope digest, as the API does): its
kind, recipients, when it was sent, its deadline, each recipient's timeline (attempts,
routes, receipts, recall) and the conversation it belongs to, with the ways to correct or
recall it. Another organisation's digest is "not found", as the service answers.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from aiohttp import web

from exchange.http.common import next_cursor, parse_cursor
from exchange.model import User, short_reference
from exchange.service.recall import RECALL_ROLES
from exchange.service.subject_access import READ_BACK_ROLES
from exchange.service.views import RecipientView, SentView
from exchange.store.recall import FINAL_OUTCOMES
from exchange.store.sent_lists import SentFilterKind
from exchange.web.accounts import SESSION
from exchange.web.app import DIGEST_ROUTE, render, web_service
from exchange.web.sent_copy import add_read_back_routes
from exchange.web.sent_recall import add_recall_routes
from exchange.web.sent_timeline import (
    RECALL_OUTCOMES,
    recipient_timeline,
    route_words,
    timeline_rows,
)
from exchange.web.sent_words import clock_words, status_tag
from exchange.web.words import (
    deadline_words,
    kind_name,
    london_time,
    organisation_name,
)

#: Records on one page of the list.
PAGE_SIZE: Final = 25

#: The list's filters: the query's ``show`` value and its words.
FILTERS: Final[dict[SentFilterKind, str]] = {
    "awaiting-acknowledgement": "Awaiting acknowledgement",
    "overdue": "Overdue",
}
_QUERY: Final = frozenset({"show", "before", "after"})

#: A deadline's standing for a recipient, in words.
_DEADLINE_WORDS: Final = {
    "pending": "not met yet",
    "met": "met",
    "met-late": "met late",
    "overdue": "missed",
}


def _cursor(text: str) -> tuple[float, bytes]:
    cursor = parse_cursor(text)
    if cursor is None:
        raise web.HTTPBadRequest
    return cursor


def _list_query(request: web.Request) -> tuple[SentFilterKind | None, str | None, str | None]:
    """Return the list's filter and cursors; refuse (400) anything else, unrepeated."""
    query = request.query
    if set(query) - _QUERY or len(query) != len(set(query)):
        raise web.HTTPBadRequest
    show = query.get("show", "all")
    if show != "all" and show not in FILTERS:
        raise web.HTTPBadRequest
    before, after = query.get("before"), query.get("after")
    if before is not None and after is not None:
        raise web.HTTPBadRequest
    only: SentFilterKind | None = None if show == "all" else show  # type: ignore[assignment]
    return only, before, after


def _href(only: SentFilterKind | None, **cursor: str) -> str:
    parts = [] if only is None else [f"show={only}"]
    parts += [f"{name}={value}" for name, value in cursor.items()]
    return "/sent" + ("?" + "&".join(parts) if parts else "")


async def _page(
    request: web.Request,
    user: User,
    only: SentFilterKind | None,
    before: str | None,
    after: str | None,
) -> tuple[list[SentView], str | None, str | None]:
    """Return a page of views and the hrefs of the pages before and after it (if any)."""
    service = web_service(request)
    views: list[SentView] = []
    if after is not None:
        views = await service.sent_items(
            user, limit=PAGE_SIZE + 1, before=None, after=_cursor(after), only=only
        )
    if len(views) > PAGE_SIZE:
        views, newer, older = views[1:], True, True
    else:
        # The first page, the one after a cursor, or back at the newest (shown as it is now).
        start = None if before is None else _cursor(before)
        views = await service.sent_items(user, limit=PAGE_SIZE + 1, before=start, only=only)
        newer, older = before is not None, len(views) > PAGE_SIZE
        views = views[:PAGE_SIZE]
    if not views:
        return views, None, None
    first, last = views[0].item, views[-1].item
    previous = _href(only, after=next_cursor(first.submitted_at, first.envelope.digest))
    following = _href(only, before=next_cursor(last.submitted_at, last.envelope.digest))
    return views, previous if newer else None, following if older else None


async def sent_list_page(request: web.Request) -> web.StreamResponse:
    """``GET /sent``: the organisation's sent records, newest first, with a tag per recipient."""
    only, before, after = _list_query(request)
    user = request[SESSION].user
    views, previous, following = await _page(request, user, only, before, after)
    rows = []
    for view in views:
        env = view.item.envelope
        rows.append(
            {
                "href": f"/sent/{env.digest.hex()}",
                "kind": kind_name(env.record_kind),
                "reference": short_reference(env.envelope_id),
                "sent": london_time(view.item.submitted_at),
                "recipients": [
                    {
                        "name": organisation_name(request, r.delivery.destination),
                        "status": status_tag(r),
                    }
                    for r in view.recipients
                ],
            }
        )
    filters = [{"value": "all", "text": "All sent records"}] + [
        {"value": value, "text": text} for value, text in FILTERS.items()
    ]
    return render(
        request,
        "sent/list.html",
        {
            "rows": rows,
            "show": only or "all",
            "showing": None if only is None else FILTERS[only],
            "filters": filters,
            "previous_href": previous,
            "next_href": following,
        },
    )


def _deadline(view: SentView) -> str | None:
    if view.deadline is None:
        return None
    return deadline_words(date.fromisoformat(view.deadline.due))


def may_recall(user: User, view: SentView) -> bool:
    """Whether to offer recall: the role may, and some recipient is not settled yet."""
    if user.role not in RECALL_ROLES:
        return False
    return any(
        r.recall is None or r.recall.outcome not in FINAL_OUTCOMES
        for r in view.recipients
        if r.delivery.state != "recalled"
    )


def _recipient(request: web.Request, view: SentView, recipient: RecipientView) -> dict[str, Any]:
    delivery = recipient.delivery
    moments = recipient_timeline(recipient, view.events or (), view.item.submitted_at)
    deadline = None
    if recipient.deadline_status is not None:
        deadline = _DEADLINE_WORDS.get(recipient.deadline_status, recipient.deadline_status)
    return {
        "name": organisation_name(request, delivery.destination),
        "status": status_tag(recipient),
        "route": None if delivery.route_kind is None else route_words(delivery.route_kind),
        "attempts": delivery.attempts,
        "deadline": deadline,
        "waiting": clock_words(recipient),
        "recall": None
        if recipient.recall is None
        else RECALL_OUTCOMES.get(recipient.recall.outcome, recipient.recall.outcome),
        "timeline": timeline_rows(moments),
    }


async def _thread(request: web.Request, user: User, digest: bytes) -> list[dict[str, str]]:
    """Return the conversation's other records, oldest first (none if it is alone)."""
    thread = await web_service(request).thread(user, digest)
    items = thread["items"]
    if len(items) < 2:
        return []
    rows = []
    for item in items:
        sent = item["direction"] == "sent"
        names = [organisation_name(request, org) for org in item["counterparties"]]
        rows.append(
            {
                "kind": kind_name(item["record_kind"]),
                "href": f"/{'sent' if sent else 'inbox'}/{item['digest']}",
                "current": item["digest"] == digest.hex(),
                "direction": ("Sent to " if sent else "Received from ") + ", ".join(names),
                "relation": {"correction": "Correction", "reply": "Reply"}.get(
                    item.get("relation") or "", ""
                ),
                "time": london_time(item["time"]),
            }
        )
    return rows


async def sent_item_page(request: web.Request) -> web.StreamResponse:
    """``GET /sent/<digest>``: one sent record, each recipient's timeline and its thread."""
    user = request[SESSION].user
    digest = bytes.fromhex(request.match_info["digest"])
    view = await web_service(request).sent_item(user, digest)
    env = view.item.envelope
    corrected_by = [f"/sent/{d.hex()}" for d in view.links.corrected_by]
    return render(
        request,
        "sent/item.html",
        {
            "kind": kind_name(env.record_kind),
            "digest": env.digest.hex(),
            "reference": short_reference(env.envelope_id),
            "sent": london_time(view.item.submitted_at),
            "recipient_names": [
                organisation_name(request, r.delivery.destination) for r in view.recipients
            ],
            "deadline": _deadline(view),
            "corrects": None
            if view.links.corrects is None
            else f"/sent/{view.links.corrects.hex()}",
            "corrected_by": corrected_by,
            "recipients": [_recipient(request, view, r) for r in view.recipients],
            "thread": await _thread(request, user, digest),
            "may_recall": may_recall(user, view),
            "may_read_back": user.role in READ_BACK_ROLES,
        },
    )


def add_sent_routes(app: web.Application) -> None:
    """Add the sent items list, each item's page, and recall."""
    app.router.add_get("/sent", sent_list_page)
    app.router.add_get(f"/sent/{DIGEST_ROUTE}", sent_item_page)
    add_recall_routes(app)
    add_read_back_routes(app)
