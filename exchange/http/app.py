"""The node's HTTP application: the staff API (/api/v1), the peer protocol (/peer/v1), health.

:func:`create_app` registers the endpoints of each module:

- :mod:`exchange.http.staff`: submit, sent, inbox, import, open, acknowledge, reject,
  receipts;
- :mod:`exchange.http.peer`: envelopes and receipts from other nodes;
- :mod:`exchange.http.ops`: health, readiness and metrics, here only behind the
  operations token (``ops_token``); they have their own listener;
- :mod:`exchange.http.register`: decisions not to share, the register, overdue, subject
  access;
- :mod:`exchange.http.retention`: the review queue, holds and destruction;
- :mod:`exchange.http.recall`: recall, rectification and threads.

What they share (app keys, errors, staff auth, paging) is :mod:`exchange.http.common`.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import Final

from aiohttp import web

from exchange.http import ops, peer, recall, register, retention, staff
from exchange.http.common import (
    COLLECT_STATS,
    JSON_LIMIT,
    LEDGER,
    READY,
    SERVICE,
    SUPERVISOR,
    WORKER,
    errors_middleware,
)
from exchange.http.server import server_header
from exchange.service.ledger import NodeLedger
from exchange.service.node_service import NodeService
from exchange.workers.collect import CollectStats
from exchange.workers.delivery import DeliveryWorker
from exchange.workers.supervisor import Supervisor

__all__ = ["READY", "create_app"]

#: The most of a request body a handler reads whole, however large the envelope limit.
READ_WHOLE_LIMIT: Final = 64 * 1024 * 1024


async def _dated(request: web.Request, response: web.StreamResponse) -> None:
    """Date every answer by the node's own clock (the one it checks signatures against).

    A peer compares it with its own clock to see how far apart the two are
    (docs/protocol.md §5); aiohttp would otherwise use the system clock.
    """
    response.headers["Date"] = formatdate(request.app[SERVICE].clock(), usegmt=True)


def create_app(
    service: NodeService,
    worker: DeliveryWorker,
    ledger: NodeLedger,
    *,
    json_limit: int,
    collect_stats: CollectStats | None = None,
    supervisor: Supervisor | None = None,
    ops_token: str | None = None,
) -> web.Application:
    """Build the node's application (``supervisor``: whose tasks /readyz and /metrics show).

    With ``ops_token``, /healthz, /readyz and /metrics answer its bearer; without, 404.
    """
    # The most a handler reads whole (``request.read()``, a web form's ``post()``). No handler
    # reads an envelope or a file that way (submissions, peer uploads, imports and uploads
    # read their bodies in pieces against their own limits), so this does not grow with an
    # envelope limit of gigabytes.
    read_whole = min(service.max_envelope_bytes, READ_WHOLE_LIMIT) + 65536
    app = web.Application(middlewares=[errors_middleware], client_max_size=read_whole)
    app[SERVICE] = service
    app[WORKER] = worker
    app[LEDGER] = ledger
    app[JSON_LIMIT] = json_limit
    app[READY] = {"accepting": True}
    app[COLLECT_STATS] = collect_stats or CollectStats()
    app[SUPERVISOR] = supervisor or Supervisor()
    app.on_response_prepare.append(server_header)
    app.router.add_post("/api/v1/envelopes", staff.submit)
    app.router.add_get("/api/v1/sent", staff.list_sent)
    app.router.add_get("/api/v1/sent/{digest}", staff.sent_item)
    app.router.add_post("/api/v1/sent/{digest}/copy", staff.read_back)
    app.router.add_get("/api/v1/inbox", staff.list_inbox)
    app.router.add_post("/api/v1/inbox/import", staff.import_envelope)
    app.router.add_post("/api/v1/inbox/{digest}/open", staff.open_item)
    app.router.add_get("/api/v1/inbox/{digest}/attachments/{number}", staff.attachment)
    app.router.add_post("/api/v1/inbox/{digest}/acknowledge", staff.acknowledge)
    app.router.add_post("/api/v1/inbox/{digest}/reject", staff.reject)
    app.router.add_get("/api/v1/envelopes/{digest}/receipts", staff.receipts)
    app.router.add_get("/api/v1/organisations", staff.organisations)
    app.router.add_post("/peer/v1/orgs/{org}/envelopes", peer.peer_envelope)
    app.router.add_post("/peer/v1/orgs/{org}/receipts", peer.peer_receipt)
    app.router.add_get("/peer/v1/ledger/consistency", peer.peer_ledger_consistency)
    if ops_token is not None:
        ops.add_ops_routes(app, ops_token)
    # --- records, register, deadlines ---
    app.router.add_post("/api/v1/decisions/not-shared", register.not_shared)
    app.router.add_get("/api/v1/register", register.register_export)
    app.router.add_get("/api/v1/overdue", register.overdue)
    app.router.add_post("/api/v1/subject-access", register.subject_access)
    # --- retention ---
    app.router.add_get("/api/v1/retention/due", retention.retention_due)
    app.router.add_get("/api/v1/retention/holds", retention.retention_holds)
    app.router.add_post("/api/v1/retention/holds", retention.retention_place_hold)
    app.router.add_delete("/api/v1/retention/holds/{id}", retention.retention_lift_hold)
    app.router.add_post("/api/v1/retention/{digest}/destroy", retention.retention_destroy)
    app.on_startup.append(retention.sweep_destroyed_on_startup)
    app.on_response_prepare.append(_dated)
    # --- recall, threads, corrections ---
    recall.add_routes(app)
    return app
