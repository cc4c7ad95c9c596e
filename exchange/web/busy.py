"""The "service is busy" page of the send journey (back-pressure: exchange.service.busy).

While the node's outbox is behind, the journey's final Send is answered with this page
(503 with ``Retry-After``) instead of sending: nothing is sealed, the draft is kept, and the
page links back to the draft's answers so that Send can be pressed again in a minute.
"""

from __future__ import annotations

from aiohttp import web

from exchange.service.busy import BusyError, refuse_when_busy
from exchange.service.node_service import NodeService
from exchange.web.app import render


def busy_page(request: web.Request, service: NodeService, again: str) -> web.Response | None:
    """Return the busy page (linking to ``again``) if the node is busy, else None."""
    try:
        refuse_when_busy(service)
    except BusyError as exc:
        page = render(request, "send/busy.html", {"again": again}, status=503)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    return None
