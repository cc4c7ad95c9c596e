"""The node's HTTP application: the staff API (/api/v1), the peer protocol (/peer/v1), health.

:func:`create_app` registers the endpoints of each module:

- :mod:`exchange.node.staff_api`: submit, sent, inbox, import, open, acknowledge, reject,
  receipts;
- :mod:`exchange.node.peer_api`: envelopes and receipts from other nodes;
- :mod:`exchange.node.ops_api`: health, readiness and metrics;
- :mod:`exchange.node.register_api`: decisions not to share, the register, overdue, subject
  access;
- :mod:`exchange.node.retention_api`: the review queue, holds and destruction;
- :mod:`exchange.node.recall_api`: recall, rectification and threads.

What they share (app keys, errors, staff auth, paging) is :mod:`exchange.node.http_common`.
"""

from __future__ import annotations

from aiohttp import web

from exchange.node import ops_api, peer_api, recall_api, register_api, retention_api, staff_api
from exchange.node.collect import CollectStats
from exchange.node.delivery import DeliveryWorker
from exchange.node.http_common import (
    COLLECT_STATS,
    JSON_LIMIT,
    LEDGER,
    READY,
    SERVICE,
    WORKER,
    errors_middleware,
)
from exchange.node.ledger import NodeLedger
from exchange.node.service import NodeService

__all__ = ["READY", "create_app"]


def create_app(
    service: NodeService,
    worker: DeliveryWorker,
    ledger: NodeLedger,
    *,
    json_limit: int,
    collect_stats: CollectStats | None = None,
) -> web.Application:
    """Build the node's application."""
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=service.max_envelope_bytes + 65536
    )
    app[SERVICE] = service
    app[WORKER] = worker
    app[LEDGER] = ledger
    app[JSON_LIMIT] = json_limit
    app[READY] = {"accepting": True}
    app[COLLECT_STATS] = collect_stats or CollectStats()
    app.router.add_post("/api/v1/envelopes", staff_api.submit)
    app.router.add_get("/api/v1/sent", staff_api.list_sent)
    app.router.add_get("/api/v1/sent/{digest}", staff_api.sent_item)
    app.router.add_get("/api/v1/inbox", staff_api.list_inbox)
    app.router.add_post("/api/v1/inbox/import", staff_api.import_envelope)
    app.router.add_post("/api/v1/inbox/{digest}/open", staff_api.open_item)
    app.router.add_post("/api/v1/inbox/{digest}/acknowledge", staff_api.acknowledge)
    app.router.add_post("/api/v1/inbox/{digest}/reject", staff_api.reject)
    app.router.add_get("/api/v1/envelopes/{digest}/receipts", staff_api.receipts)
    app.router.add_post("/peer/v1/orgs/{org}/envelopes", peer_api.peer_envelope)
    app.router.add_post("/peer/v1/orgs/{org}/receipts", peer_api.peer_receipt)
    app.router.add_get("/healthz", ops_api.healthz)
    app.router.add_get("/readyz", ops_api.readyz)
    app.router.add_get("/metrics", ops_api.metrics)
    # --- records, register, deadlines (issue 5) ---
    app.router.add_post("/api/v1/decisions/not-shared", register_api.not_shared)
    app.router.add_get("/api/v1/register", register_api.register_export)
    app.router.add_get("/api/v1/overdue", register_api.overdue)
    app.router.add_post("/api/v1/subject-access", register_api.subject_access)
    # --- retention (issue 5) ---
    app.router.add_get("/api/v1/retention/due", retention_api.retention_due)
    app.router.add_get("/api/v1/retention/holds", retention_api.retention_holds)
    app.router.add_post("/api/v1/retention/holds", retention_api.retention_place_hold)
    app.router.add_delete("/api/v1/retention/holds/{id}", retention_api.retention_lift_hold)
    app.router.add_post("/api/v1/retention/{digest}/destroy", retention_api.retention_destroy)
    app.on_startup.append(retention_api.sweep_destroyed_on_startup)
    # --- recall, threads, corrections (issue 5) ---
    recall_api.add_routes(app)
    return app
