"""The inbox list: what other organisations sent to the signed-in person's organisation.

Unread items come first, then the rest, each newest first; a page holds :data:`PAGE_SIZE`
items and links to the next by a cursor (the last item's place in that order), never by a
page number that shifts as items arrive. Each row holds what staff need to choose what to
open: who sent it (by name), the kind of record, when it arrived (Europe/London) and where
it stands, and links to its item page. The list never shows record content: that is
released only by opening the item, which the signed receipts and the ledger record.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from exchange.http.common import HEX_TIME, exact_time
from exchange.store.base import InboxPlace, inbox_place
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

#: The ``after`` cursor: read or not (0, 1), the received time as an exact hexadecimal
#: float (its "+" dropped, as a query string reads it as a space) and the digest.
_CURSOR_RE: Final = re.compile(rf"([01]):({HEX_TIME}):([0-9a-f]{{64}})")


def state_tag(state: str) -> tuple[str, str]:
    """Return the words and tag colour of an inbox state."""
    return STATE_TAGS.get(state, (state.capitalize(), "grey"))


def cursor_text(place: InboxPlace) -> str:
    """Return the ``after`` cursor of the page that follows the item at ``place``."""
    read, at, digest = place
    return f"{read}:{at.hex().replace('+', '')}:{digest.hex()}"


def parse_cursor(text: str) -> InboxPlace:
    """Return the place an ``after`` cursor names, or refuse the request."""
    match = _CURSOR_RE.fullmatch(text)
    at = None if match is None else exact_time(match[2])
    if match is None or at is None:
        raise web.HTTPBadRequest
    return int(match[1]), at, bytes.fromhex(match[3])


async def inbox_page(request: web.Request) -> web.StreamResponse:
    """``GET /inbox``: unread items first, then the rest, newest first, a page at a time."""
    session = request[SESSION]
    after_text = request.query.get("after")
    after = None if after_text is None else parse_cursor(after_text)
    views = await web_service(request).inbox_unread_first(
        session.user, limit=PAGE_SIZE + 1, after=after
    )
    more = len(views) > PAGE_SIZE
    views = views[:PAGE_SIZE]
    rows = []
    for view in views:
        item = view.item
        words, colour = state_tag(item.state)
        rows.append(
            {
                "href": f"/inbox/{item.envelope.digest.hex()}",
                "sender": organisation_name(request, item.envelope.sender),
                "kind": kind_name(item.envelope.record_kind),
                "received": london_time(item.received_at),
                "tag": words,
                "colour": colour,
                "new": item.state == "delivered",
            }
        )
    next_href = None
    if more:
        next_href = f"/inbox?after={cursor_text(inbox_place(views[-1].item))}"
    return render(
        request,
        "inbox/list.html",
        {"rows": rows, "next_href": next_href, "first_href": "/inbox" if after else None},
    )
