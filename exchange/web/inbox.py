"""The inbox page: what other organisations sent to the signed-in person's organisation.

The list holds what staff need to choose what to open: who sent it (by name), the kind of
record, when it arrived (Europe/London) and where it stands. It never shows record content:
that is released only by opening the item, which the signed receipts and the ledger record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from exchange.keys.errors import KeysError
from exchange.keys.ids import OrgId
from exchange.policy import LONDON
from exchange.web.accounts import SESSION
from exchange.web.app import render, web_service

#: Items on one page of the inbox.
PAGE_SIZE: Final = 50

#: Record kinds in words, as the pages name them.
KIND_NAMES: Final = {
    "referral": "Referral",
    "cp-file-transfer": "Child protection file",
    "lac-record": "Looked-after child record",
    "outcome": "Outcome",
    "information-request": "Information request",
}

#: Each inbox state's tag: its words and GOV.UK tag colour.
STATE_TAGS: Final = {
    "delivered": ("New", "blue"),
    "opened": ("Opened", "grey"),
    "acknowledged": ("Acknowledged", "green"),
    "rejected": ("Rejected", "red"),
    "recalled": ("Recalled by sender", "grey"),
}


def london_time(moment: float) -> str:
    """Return a moment as GOV.UK style words in Europe/London: ``1 June 2026 at 5:04pm``."""
    local = datetime.fromtimestamp(moment, UTC).astimezone(LONDON)
    hour = local.hour % 12 or 12
    suffix = "am" if local.hour < 12 else "pm"
    return f"{local.day} {local:%B %Y} at {hour}:{local:%M}{suffix}"


def organisation_name(request: web.Request, org: OrgId) -> str:
    """Return the directory's name of an organisation (its id if the directory has none)."""
    try:
        return web_service(request).directory.organisation(org).name
    except KeysError:
        return org


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
                "kind": KIND_NAMES.get(item.envelope.record_kind, item.envelope.record_kind),
                "received": london_time(item.received_at),
                "tag": words,
                "colour": colour,
            }
        )
    return render(request, "inbox.html", {"rows": rows})


def add_inbox_routes(app: web.Application) -> None:
    """Add the inbox page."""
    app.router.add_get("/inbox", inbox_page)
