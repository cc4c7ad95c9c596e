"""The inbox pages: the list, each item (before and after opening), its documents, decisions.

- :mod:`~exchange.web.inbox.listing`: ``/inbox``, unread first, a page at a time.
- :mod:`~exchange.web.inbox.item`: ``/inbox/{ref}`` (by digest, or by envelope id from a
  notice), ``POST /inbox/{digest}/open`` and each document's download.
- :mod:`~exchange.web.inbox.record_view`: an opened record as sections, from its schema.
- :mod:`~exchange.web.inbox.decisions`: acknowledge with an outcome, reject with a reason.
"""

from __future__ import annotations

from aiohttp import web

from exchange.web.inbox import decisions, item, listing


def add_inbox_routes(app: web.Application) -> None:
    """Add the inbox pages."""
    router = app.router
    router.add_get("/inbox", listing.inbox_page)
    router.add_get("/inbox/{ref}", item.item_page)
    router.add_post("/inbox/{digest}/open", item.open_item)
    router.add_get("/inbox/{digest}/attachments/{number}", item.download)
    router.add_get("/inbox/{digest}/acknowledge", decisions.acknowledge_page)
    router.add_post("/inbox/{digest}/acknowledge", decisions.acknowledge)
    router.add_get("/inbox/{digest}/reject", decisions.reject_page)
    router.add_post("/inbox/{digest}/reject", decisions.reject)
    router.add_get("/inbox/{digest}/decided", decisions.decided_page)
