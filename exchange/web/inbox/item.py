"""One inbox item: what it is before opening, the record once opened, and its documents.

An item is addressed by its envelope digest in hex, as the staff API addresses it; the
notice mailed when an item arrives links to ``/inbox/<envelope id>``, which leads to the
same page. Either is looked up in the signed-in person's organisation only, so another
organisation's item, on the same node or not, is "Page not found".

Before opening, the page says who sent the item, what it is, when it came and by when it
must be acknowledged, with an "Open record" button: a POST, because opening is recorded
(the sender gets a signed ``opened`` receipt the first time, and the ledger an access each
time). Once the organisation has opened it, the page shows the record, which is again a
recorded access, and lists its documents, each downloaded from its own address as an
attachment, never shown in the browser.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from exchange.http.common import whole_number
from exchange.http.streaming import send_attachment
from exchange.keys.ids import OrgId
from exchange.model import short_reference
from exchange.records.content_checks import DOCX, JPEG, ODT, PDF, PNG, TEXT
from exchange.records.kinds import kind_spec
from exchange.service.errors import ConflictError, GoneError
from exchange.service.opened_bodies import OpenedItem
from exchange.service.views import InboxView
from exchange.web.accounts import SESSION
from exchange.web.app import DIGEST_RE, path_digest, render, web_service
from exchange.web.inbox.listing import state_tag
from exchange.web.inbox.record_view import RecordView, size_words
from exchange.web.step_up import ask_again_unless_recent, needs_recent_factor
from exchange.web.words import (
    deadline_words,
    kind_name,
    london_time,
    organisation_name,
)

#: How an item is named in a path: its envelope digest, or (from a notice) its envelope id.
ENVELOPE_ID_RE: Final = re.compile(r"[0-9a-f]{32}")

#: Each document type in words.
TYPE_WORDS: Final = {
    PDF: "PDF",
    PNG: "PNG image",
    JPEG: "JPEG image",
    DOCX: "Word document",
    ODT: "OpenDocument text",
    TEXT: "Text file",
}


def item_title(request: web.Request, view: InboxView) -> str:
    """Return the item's heading: its kind and who sent it (no personal data)."""
    envelope = view.item.envelope
    return f"{kind_name(envelope.record_kind)} from {organisation_name(request, envelope.sender)}"


def _facts(request: web.Request, view: InboxView, record: dict[str, Any] | None) -> list[Any]:
    """Return the summary rows of an item: sender, kind, times, deadline, status."""
    item = view.item
    envelope = item.envelope
    words, colour = state_tag(item.state)
    rows: list[dict[str, Any]] = [
        {"key": "From", "value": organisation_name(request, envelope.sender)},
        {"key": "Record", "value": kind_name(envelope.record_kind)},
        {"key": "Received", "value": london_time(item.received_at)},
    ]
    if item.state in {"delivered", "opened"}:
        deadline = web_service(request).deadline_owed(view, record)
        if deadline is not None:
            rows.append({"key": "Deadline", "value": f"Acknowledge {deadline_words(deadline.due)}"})
    if view.opened_at is not None:
        rows.append({"key": "Opened", "value": london_time(view.opened_at)})
    rows.append({"key": "Status", "tag": (words, colour)})
    rows.append({"key": "Reference", "value": short_reference(envelope.envelope_id)})
    return rows


def _documents(digest: bytes, container: OpenedItem) -> list[dict[str, str]]:
    """Return the documents' rows: title, file name, type, size and download address."""
    assert container.record is not None
    manifest = kind_spec(container.record.kind).manifest
    entries = container.record.data.get(manifest, []) if manifest else []
    documents = []
    for number, attachment in enumerate(container.entries, start=1):
        entry = entries[number - 1] if number <= len(entries) else {}
        documents.append(
            {
                "title": str(entry.get("title") or attachment.name),
                "name": attachment.name,
                "type": TYPE_WORDS.get(attachment.content_type, "File"),
                "size": size_words(attachment.size),
                "href": f"/inbox/{digest.hex()}/attachments/{number}",
            }
        )
    return documents


def _item_path(digest: bytes) -> str:
    """Return the address of an item's page."""
    return f"/inbox/{digest.hex()}"


async def _item_page(
    request: web.Request, view: InboxView, container: OpenedItem | None, *, read: bool = False
) -> web.Response:
    """Render the item page for its state, with the record when it was ``read``."""
    service = web_service(request)
    user = request[SESSION].user
    digest = view.item.envelope.digest
    opened = None if container is None else container.record
    record = None if opened is None else opened.data
    context: dict[str, Any] = {
        "title": item_title(request, view),
        "sender": organisation_name(request, view.item.envelope.sender),
        "state": view.item.state,
        "destroyed": view.retention.state == "destroyed",
        "may_open": service.may_open(user),
        "facts": _facts(request, view, record),
        "href": _item_path(digest),
        "reply_href": f"/send/reply/{digest.hex()}",
        "read": read,
        "unreadable": read and opened is None,
        "sections": [],
        "documents": [],
    }
    if container is not None and opened is not None:
        names = RecordView(opened.kind, lambda org: organisation_name(request, OrgId(org)))
        context["sections"] = names.sections(opened.data)
        context["documents"] = _documents(digest, container)
    return render(request, "inbox/item.html", context)


async def _read(request: web.Request, view: InboxView) -> web.Response:
    """Read an item (a recorded access) and show it; a recall or destruction shows that.

    The record is shown only after a recent second factor (step-up): otherwise the person
    confirms it's them first and comes back to the item's page.
    """
    service = web_service(request)
    user = request[SESSION].user
    digest = view.item.envelope.digest
    ask_again_unless_recent(request, back=_item_path(digest))
    try:
        container = await service.read_item(user, digest)
    except GoneError:
        # Recalled or destroyed since the page was loaded: show the item as it now stands.
        return await _item_page(request, await service.inbox_item(user, digest), None)
    return await _item_page(request, await service.inbox_item(user, digest), container, read=True)


async def item_page(request: web.Request) -> web.StreamResponse:
    """``GET /inbox/{ref}``: the item; by envelope id (from a notice), a redirect to it."""
    service = web_service(request)
    user = request[SESSION].user
    ref = request.match_info["ref"]
    if ENVELOPE_ID_RE.fullmatch(ref) is not None:
        view = await service.inbox_item_by_envelope_id(user, bytes.fromhex(ref))
        raise web.HTTPSeeOther(f"/inbox/{view.item.envelope.digest.hex()}")
    if DIGEST_RE.fullmatch(ref) is None:
        raise web.HTTPNotFound
    view = await service.inbox_item(user, bytes.fromhex(ref))
    if view.item.state in {"delivered", "recalled"} or view.retention.state == "destroyed":
        return await _item_page(request, view, None)
    if not service.may_open(user):
        return await _item_page(request, view, None)
    return await _read(request, view)


async def open_item(request: web.Request) -> web.StreamResponse:
    """``POST /inbox/{digest}/open``: open the record (recorded) and show it."""
    service = web_service(request)
    view = await service.inbox_item(request[SESSION].user, path_digest(request))
    return await _read(request, view)


@needs_recent_factor(back=lambda request: _item_path(path_digest(request)))
async def download(request: web.Request) -> web.StreamResponse:
    """``GET /inbox/{digest}/attachments/{number}``: one document, as a download (recorded).

    Only an item the organisation has opened has downloads (the service checks); before
    that, the address leads to the item's page. Without a recent second factor the person
    confirms it's them, then comes back to the item's page, where the document's link is.
    """
    number = whole_number(request.match_info["number"], 0, 999)
    if number is None:
        raise web.HTTPNotFound
    digest = path_digest(request)
    try:
        attachment, pieces = await web_service(request).inbox_attachment(
            request[SESSION].user, digest, number
        )
    except ConflictError:
        # Not opened yet: the item page says what it is and offers to open it.
        raise web.HTTPSeeOther(_item_path(digest)) from None
    return await send_attachment(request, attachment, pieces)
