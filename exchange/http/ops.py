"""The node's operational endpoints: liveness (/healthz), readiness (/readyz), /metrics.

They are served on their own listener (``[ops] listen``, loopback by default), by the
application :func:`create_ops_app` makes. The main listener answers them only when the
configuration names an operations token (``ops.token_env``), and then only to
``Authorization: Bearer <token>`` (:func:`add_ops_routes` with a token); otherwise it
answers 404 for them, as for any path it does not serve.
"""

from __future__ import annotations

import hmac
from typing import Final

from aiohttp import hdrs, web

from exchange.http.common import (
    COLLECT_STATS,
    READY,
    SERVICE,
    SUPERVISOR,
    WORKER,
    Handler,
    errors_middleware,
    json_error,
    node_service,
)
from exchange.http.server import server_header
from exchange.logs import get_logger
from exchange.service.directory_updates import REFUSAL_REASONS
from exchange.service.errors import StoreDamagedError
from exchange.service.faults import fault_of
from exchange.service.key_expiry import seconds_left
from exchange.service.node_service import NodeService
from exchange.workers.supervisor import Supervisor

log = get_logger("exchange.api")


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is up."""
    del request
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: the node accepts requests, its store can write, its tasks make progress.

    503 names the reason in plain words: shutting down; the store does not answer or
    cannot write ("the node's storage is full"); or a background task that cannot make
    progress ("the outbox cannot make progress: the node's storage is full", "the
    checkpoint signer cannot make progress: the ledger does not verify").
    """
    ready = request.app[READY]
    if not ready.get("accepting", False):
        return json_error(503, "the node is not accepting requests")
    reasons: list[str] = []
    try:
        await node_service(request).check_store()
    except StoreDamagedError as exc:
        return json_error(503, f"the node's database {exc.path.name} is damaged ({exc.what})")
    except Exception as exc:  # noqa: BLE001 - any store failure means "not ready"
        fault = fault_of(exc)
        log.warning("readiness.failed", cause=fault.kind, error_class=type(exc).__name__)
        if fault.kind == "storage-full":
            reasons.append("the node's storage is full")
        elif fault.kind == "store-unavailable":
            reasons.append("the node cannot reach its database")
        elif isinstance(exc, StoreDamagedError):
            reasons.append(f"the node's database {exc.path.name} is damaged ({exc.what})")
        else:
            reasons.append("the node's store does not answer or cannot write")
    reasons += [r for r in request.app[SUPERVISOR].unready() if r not in reasons]
    if reasons:
        return json_error(503, "; ".join(reasons))
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format."""
    counts = await node_service(request).store_counts()
    stats = request.app[WORKER].stats
    collected = request.app[COLLECT_STATS]
    lines = [
        "# HELP exchange_outbox_items Outbox items by state.",
        "# TYPE exchange_outbox_items gauge",
    ]
    lines += [
        f'exchange_outbox_items{{state="{state}"}} {counts.outbox.get(state, 0)}'
        for state in ("queued", "attempting", "retry-wait", "delivered", "dead", "recalled")
    ]
    service = node_service(request)
    busy = service.backpressure
    lines += [
        "# HELP exchange_outbox_backlog Envelopes waiting for destinations that answer.",
        "# TYPE exchange_outbox_backlog gauge",
        f"exchange_outbox_backlog {busy.waiting(service.store.outbox_backlog)}",
        "# HELP exchange_submissions_busy_total Submissions refused as busy (503).",
        "# TYPE exchange_submissions_busy_total counter",
        f"exchange_submissions_busy_total {busy.refused}",
        "# HELP exchange_delivery_attempts_total Delivery attempts made.",
        "# TYPE exchange_delivery_attempts_total counter",
        f"exchange_delivery_attempts_total {stats.attempts}",
        "# HELP exchange_deliveries_total Deliveries by outcome.",
        "# TYPE exchange_deliveries_total counter",
        f'exchange_deliveries_total{{outcome="delivered"}} {stats.delivered}',
        f'exchange_deliveries_total{{outcome="retried"}} {stats.retried}',
        f'exchange_deliveries_total{{outcome="dead"}} {stats.dead}',
        f'exchange_deliveries_total{{outcome="lease-lost"}} {stats.lease_lost}',
        "# HELP exchange_delivery_latency_seconds Time from submission to delivery.",
        "# TYPE exchange_delivery_latency_seconds summary",
        f"exchange_delivery_latency_seconds_sum {stats.latency_sum:.6f}",
        f"exchange_delivery_latency_seconds_count {stats.latency_count}",
        "# HELP exchange_receipts Signed receipts held (issued and received), by status.",
        "# TYPE exchange_receipts gauge",
        *(
            f'exchange_receipts{{status="{status}"}} {counts.receipts.get(status, 0)}'
            for status in ("delivered", "opened", "acknowledged", "rejected")
        ),
        "# HELP exchange_collected_total Messages taken from pull routes, by outcome.",
        "# TYPE exchange_collected_total counter",
        f'exchange_collected_total{{outcome="stored"}} {collected.collected}',
        f'exchange_collected_total{{outcome="refused"}} {collected.refused}',
        "# HELP exchange_collect_failures_total Collections from a route that failed.",
        "# TYPE exchange_collect_failures_total counter",
        f"exchange_collect_failures_total {collected.failed_rounds}",
        "# HELP exchange_mesh_non_delivery_total MESH non-delivery reports acted on.",
        "# TYPE exchange_mesh_non_delivery_total counter",
        f"exchange_mesh_non_delivery_total {collected.reports}",
        "# HELP exchange_mesh_unread_messages MESH messages left unread in the inboxes.",
        "# TYPE exchange_mesh_unread_messages gauge",
        f"exchange_mesh_unread_messages {collected.mesh_unread}",
        *_task_lines(request.app[SUPERVISOR]),
        "# HELP exchange_peer_clock_skew_seconds Last clock skew seen per peer (its clock - ours).",
        "# TYPE exchange_peer_clock_skew_seconds gauge",
        *(
            f'exchange_peer_clock_skew_seconds{{peer="{peer}"}} {skew}'
            for peer, skew in sorted(stats.clock_skew.items())
        ),
        "# HELP exchange_key_expires_seconds Seconds until each organisation's keys expire.",
        "# TYPE exchange_key_expires_seconds gauge",
        *_key_lines(node_service(request)),
        *_directory_lines(node_service(request)),
        "# HELP exchange_sign_in_unknown_total Passwords refused for unknown addresses.",
        "# TYPE exchange_sign_in_unknown_total counter",
        f"exchange_sign_in_unknown_total {node_service(request).accounts.unknown_address_refusals}",
        "# HELP exchange_ledger_events Events in the ledger.",
        "# TYPE exchange_ledger_events gauge",
        f"exchange_ledger_events {counts.ledger_size}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


def _task_lines(supervisor: Supervisor) -> list[str]:
    """Return the background tasks' metrics: failures by cause, failing now, last success."""
    tasks = sorted(supervisor.tasks.values(), key=lambda h: h.name)
    lines = [
        "# HELP exchange_task_failures_total Failed rounds of background tasks, by kind of fault.",
        "# TYPE exchange_task_failures_total counter",
    ]
    lines += [
        f'exchange_task_failures_total{{task="{h.name}",cause="{cause}"}} {count}'
        for h in tasks
        for cause, count in sorted(h.failures.items())
    ]
    lines += [
        "# HELP exchange_task_failing Whether a background task is failing now (1) or not (0).",
        "# TYPE exchange_task_failing gauge",
        *(f'exchange_task_failing{{task="{h.name}"}} {int(h.failure is not None)}' for h in tasks),
        "# HELP exchange_task_last_success_timestamp_seconds When a task last made progress.",
        "# TYPE exchange_task_last_success_timestamp_seconds gauge",
        *(
            f'exchange_task_last_success_timestamp_seconds{{task="{h.name}"}} '
            f"{h.last_success_at:.3f}"
            for h in tasks
            if h.last_success_at is not None
        ),
    ]
    return lines


def _directory_lines(service: NodeService) -> list[str]:
    """Return the directory in use, its last good fetch and the notes refused, by reason."""
    lines = [
        "# HELP exchange_directory_version The version of the signed directory in use.",
        "# TYPE exchange_directory_version gauge",
        f"exchange_directory_version {service.directory.version}",
    ]
    updates = service.directory_updates
    if updates is None:
        return lines
    status = updates.status
    lines += [
        "# HELP exchange_directory_last_fetch_timestamp_seconds Last good directory fetch.",
        "# TYPE exchange_directory_last_fetch_timestamp_seconds gauge",
    ]
    if status.last_fetch_at is not None:
        lines.append(f"exchange_directory_last_fetch_timestamp_seconds {status.last_fetch_at:.3f}")
    lines += [
        "# HELP exchange_directory_refused_total Directory notes refused, by reason.",
        "# TYPE exchange_directory_refused_total counter",
        *(
            f'exchange_directory_refused_total{{reason="{reason}"}} {status.refused[reason]}'
            for reason in REFUSAL_REASONS
        ),
    ]
    return lines


def _key_lines(service: NodeService) -> list[str]:
    """Return the seconds left on each tenant's keys (none when none is valid now)."""
    now = service.now()
    lines = []
    for org in sorted(service.tenants):
        left = seconds_left(service.directory, org, now)
        if left is not None:
            lines.append(f'exchange_key_expires_seconds{{org="{org}"}} {left}')
    return lines


#: The operations endpoints, by path.
OPS_ROUTES: Final[dict[str, Handler]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
}


def _bearer_only(handler: Handler, token: str) -> Handler:
    """Return ``handler`` answering only ``Authorization: Bearer <token>``; 401 otherwise.

    The comparison takes the same time whatever the header holds; neither the header nor
    the token is logged or echoed.
    """
    expected = f"Bearer {token}".encode()

    async def guarded(request: web.Request) -> web.StreamResponse:
        given = request.headers.get(hdrs.AUTHORIZATION)
        if given is None:
            reason = "this endpoint needs the node's operations token: Authorization: Bearer"
        elif not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
            reason = "the operations token is not right"
        else:
            return await handler(request)
        refusal = json_error(401, reason)
        refusal.headers[hdrs.WWW_AUTHENTICATE] = "Bearer"
        return refusal

    return guarded


async def _ops_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Keep operations answers out of caches and MIME sniffing (``on_response_prepare``)."""
    if request.path in OPS_ROUTES:
        response.headers[hdrs.CACHE_CONTROL] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"


def add_ops_routes(app: web.Application, token: str | None = None) -> None:
    """Serve the operations endpoints on ``app``: to anyone, or only to ``token``'s bearer."""
    for path, handler in OPS_ROUTES.items():
        app.router.add_get(path, handler if token is None else _bearer_only(handler, token))
    app.on_response_prepare.append(_ops_headers)


def create_ops_app(main: web.Application) -> web.Application:
    """Return the operations listener's application, over the node's own ``main`` one.

    It shares the main application's service, worker, statistics, supervisor and
    readiness flag, so /readyz says 503 as soon as the node starts shutting down.
    """
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024)
    app[SERVICE] = main[SERVICE]
    app[WORKER] = main[WORKER]
    app[READY] = main[READY]
    app[COLLECT_STATS] = main[COLLECT_STATS]
    app[SUPERVISOR] = main[SUPERVISOR]
    app.on_response_prepare.append(server_header)
    add_ops_routes(app)
    return app
