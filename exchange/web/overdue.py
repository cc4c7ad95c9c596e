"""The overdue page: what the organisation is waiting for, and what it owes, by deadline.

Waiting for: records it sent whose deadline passed without the receipt that meets it (the
service's overdue list, as the staff API and ``exchange overdue`` give it). Owes: records it
received and has not acknowledged or rejected, when their kind waits for an answer, soonest
deadline first (:mod:`exchange.service.owed`). Deadlines are days in Europe/London, in words.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from exchange.model import short_reference
from exchange.policy import local_date
from exchange.service.owed import OwedItem
from exchange.service.register_reports import OverdueItem
from exchange.web.accounts import SESSION
from exchange.web.app import render, web_service
from exchange.web.sent_words import item_path
from exchange.web.words import (
    day_words,
    deadline_words,
    kind_name,
    london_time,
    organisation_name,
)

#: What a recipient must still do, by the receipt statuses that would meet the deadline.
_AWAITED: Final = {
    ("acknowledged",): "Their acknowledgement",
    ("delivered", "opened", "acknowledged"): "Their node to receive it",
}


def _waiting_row(request: web.Request, item: OverdueItem) -> dict[str, str]:
    return {
        "href": item_path(item.digest),
        "kind": kind_name(item.record_kind),
        "reference": short_reference(item.envelope_id),
        "recipient": organisation_name(request, item.recipient),
        "due": f"Was due {deadline_words(item.due)}",
        "awaited": _AWAITED.get(tuple(item.waiting_for), "Their answer"),
        "sent": london_time(item.submitted_at),
    }


def _owed_row(request: web.Request, item: OwedItem) -> dict[str, object]:
    if item.due is None:
        due, tag = "On the date given in the request", None
    elif item.overdue:
        due, tag = f"Was due {deadline_words(item.due)}", ("Overdue", "red")
    else:
        due, tag = f"Due {deadline_words(item.due)}", ("Due", "yellow")
    return {
        "href": f"/inbox/{item.digest.hex()}",
        "kind": kind_name(item.record_kind),
        "reference": short_reference(item.envelope_id),
        "sender": organisation_name(request, item.sender),
        "received": london_time(item.received_at),
        "due": due,
        "tag": tag,
        "opened": item.opened,
    }


async def overdue_page(request: web.Request) -> web.StreamResponse:
    """``GET /overdue``: deadlines the organisation is waiting on, and those it must meet."""
    if request.query:
        raise web.HTTPBadRequest
    user = request[SESSION].user
    service = web_service(request)
    waiting = await service.overdue_for(user)
    owed = await service.owed_by(user)
    today = local_date(datetime.fromtimestamp(service.clock(), UTC), argument="now")
    return render(
        request,
        "sent/overdue.html",
        {
            "today": day_words(today),
            "waiting": [_waiting_row(request, item) for item in waiting],
            "owed": [_owed_row(request, item) for item in owed],
        },
    )


def add_overdue_routes(app: web.Application) -> None:
    """Add the overdue page."""
    app.router.add_get("/overdue", overdue_page)
