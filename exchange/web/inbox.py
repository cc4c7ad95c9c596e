"""The inbox page: what other organisations sent to the signed-in person's organisation.

The list holds what staff need to choose what to open: who sent it (by name), the kind of
record, when it arrived (Europe/London) and where it stands. It never shows record content:
that is released only by opening the item, which the signed receipts and the ledger record.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from exchange.web.accounts import SESSION
from exchange.web.app import render, web_service
from exchange.web.words import kind_name, london_time, organisation_name

#: Items on one page of the inbox.
PAGE_SIZE: Final = 50

#: Each inbox state's tag: its words and GOV.UK tag colour.
STATE_TAGS: Final = {
    "delivered": ("New", "blue"),
    "opened": ("Opened", "grey"),
    "acknowledged": ("Acknowledged", "green"),
    "rejected": ("Rejected", "red"),
    "recalled": ("Recalled by sender", "grey"),
}


async def inbox_page(request: web.Request) -> web.StreamResponse:
    """``GET /inbox``: the newest items first, unread ones marked as new."""
    session = request[SESSION]
    views = await web_service(request).inbox_items(session.user, limit=PAGE_SIZE, before=None)
    rows = []
    for view in views:
        item = view.item
        words, colour = STATE_TAGS.get(item.state, (item.state.capitalize(), "grey"))
        rows.append(
            {
                "sender": organisation_name(request, item.envelope.sender),
                "kind": kind_name(item.envelope.record_kind),
                "received": london_time(item.received_at),
                "tag": words,
                "colour": colour,
            }
        )
    return render(request, "inbox.html", {"rows": rows})


def add_inbox_routes(app: web.Application) -> None:
    """Add the inbox page."""
    app.router.add_get("/inbox", inbox_page)
