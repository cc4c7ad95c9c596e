"""What did we send? The record a sent item carried, read back from the sender's own copy.

The node keeps a copy of every record it seals, sealed to the sending organisation's own key
(exchange/store/own_copies.py). The sent item page's "Show what we sent" button (a POST,
because each reading is recorded in the ledger) shows the record as the inbox shows a
received one: sections of labelled rows built from its kind's schema. Only the roles that
read records may; the service decides. Like every page that shows a record, it needs a
second factor given recently (exchange/web/step_up.py).
"""

from __future__ import annotations

from aiohttp import web

from exchange.model import short_reference
from exchange.records import RecordError, decode_container
from exchange.web.accounts import SESSION
from exchange.web.app import path_digest, render, web_service
from exchange.web.inbox.record_view import RecordView
from exchange.web.step_up import needs_recent_factor
from exchange.web.words import kind_name, organisation_name


@needs_recent_factor(back=lambda request: f"/sent/{path_digest(request).hex()}")
async def read_back(request: web.Request) -> web.StreamResponse:
    """``POST /sent/<digest>/copy``: the record the organisation sent, from its own copy.

    Without a recent second factor the person confirms it's them, then comes back to the
    sent item's page to press the button again.
    """
    user = request[SESSION].user
    digest = path_digest(request)
    service = web_service(request)
    content = await service.read_back(user, digest)
    envelope = (await service.sent_item(user, digest)).item.envelope
    try:
        container = decode_container(content)
    except RecordError:
        container = None
    sections = []
    kind = ""
    if container is not None:
        kind = container.record.kind
        view = RecordView(kind, lambda org: organisation_name(request, org))  # type: ignore[arg-type]
        sections = view.sections(container.record.data)
    return render(
        request,
        "sent/copy.html",
        {
            "kind": kind_name(kind),
            "digest": digest.hex(),
            "reference": short_reference(envelope.envelope_id),
            "sections": sections,
            "documents": [] if container is None else [a.name for a in container.attachments],
        },
    )


def add_read_back_routes(app: web.Application) -> None:
    """Add the "Show what we sent" action of the sent item page."""
    app.router.add_post("/sent/{digest}/copy", read_back)
