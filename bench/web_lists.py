"""Benchmark of the sent and inbox list pages with 10,000 items each (docs/performance.md).

Run ``python bench/web_lists.py`` for the full run (10,000 sent and 10,000 received items,
200 requests of each page), ``--quick`` for a short one (2,000 items, 50 requests), ``--n``
and ``--requests`` to choose.

What is measured:

- a node with three tenants is created with :func:`start_deployment` and stopped; its store
  is filled directly (store calls, not the API): Hillside sends N referrals to the front
  door, each with its register row (a deadline), its outbox row marked delivered and a
  ``delivered`` receipt, and receives N items from the front door. The node is then started
  again over that store, so its delivery worker finds nothing to do;
- the pages are served by an in-process aiohttp application holding the node's service and
  the real staff pages (:func:`~exchange.web.pages.add_staff_pages`: session lookup, CSRF,
  templates), with one more middleware, outermost, that times each request on the server:
  from the request reaching the application to the rendered response, without the network.
  A signed-in session (password and app, made through the service) is sent as its cookie;
- timed pages, interleaved round-robin: ``/sent`` (first page), ``/sent?before=`` a cursor
  halfway down (a deep page), ``/sent?show=overdue`` and ``/sent?show=awaiting-acknowledgement``
  (every item is past its deadline, so both filters match from the top), ``/inbox``, and
  the reference, ``/sent`` of the third tenant, which sent nothing (the same page, session
  and layout over an empty list). Each is reported as median and 95th percentile in ms and
  as a ratio of its median to the reference's median. The target is under 100 ms.

The inbox holds 100 unread items and the rest read, as a working inbox does: its first page
lists the unread ones first, and ``/inbox?after=`` a cursor halfway down is a deep page of
read items.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exchange.auth.totp import code_at
from exchange.demo.loopback import OrgSpec, start_deployment
from exchange.http.common import next_cursor
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.logs import configure
from exchange.model import EnvelopeRecord, NewOutbox, ReceiptRecord, RegisterEntry, User
from exchange.node.runtime import Node
from exchange.service.node_service import NodeService
from exchange.store.sqlite import SqliteStore
from exchange.web.accounts import SESSION_COOKIE
from exchange.web.inbox.listing import cursor_text
from exchange.web.pages import add_staff_pages

SCHOOL: Final = OrgId("urn:106123")
LA: Final = OrgId("la:356")
QUIET: Final = OrgId("urn:106124")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "one"),
    OrgSpec(LA, "Stockport children's front door", "la", "one"),
    OrgSpec(QUIET, "Moorside Primary School", "school", "one"),
)
TARGET_MS: Final = 100.0
#: Writes in flight while filling (the store commits them in groups).
FILL_BATCH: Final = 500
#: Received items left unread; the rest have been opened.
UNREAD: Final = 100
PASSWORD: Final = "bench password, not a secret"  # noqa: S105

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _digest(label: str, i: int) -> bytes:
    return hashlib.sha256(f"{label} {i}".encode()).digest()


async def _fill(store: SqliteStore, n: int, now: float) -> None:
    """Store ``n`` items Hillside sent (delivered, past their deadline) and ``n`` it received."""
    due = (datetime.fromtimestamp(now, UTC) - timedelta(days=3)).date().isoformat()

    async def sent(i: int) -> None:
        digest = _digest("sent", i)
        at = now - 86400 * 4 - i * 30
        envelope = EnvelopeRecord(
            digest=digest, envelope_id=digest[:16], sender=SCHOOL, recipients=(LA,),
            record_kind="referral", created=int(at), length=10_000,
        )  # fmt: skip
        entry = RegisterEntry(
            org=SCHOOL, outcome="shared", decided_by=f"{SCHOOL}/dsl", decided_at=at,
            purpose="safeguarding-referral", rule="purposes.safeguarding-referral",
            reason="Synthetic bench referral.", recipients=((LA, "la"),),
            categories=("identity", "safeguarding-concerns"), record_kind="referral",
            envelope_digest=digest, envelope_id=digest[:16], deadline_due=due,
            deadline_rule="deadlines.referral", satisfied_by=("acknowledged",),
        )  # fmt: skip
        await store.record_submission(
            envelope, submitted_by=f"{SCHOOL}/dsl", now=at,
            outbox=[NewOutbox("envelope", digest, SCHOOL, LA)], ledger_events=[], register=entry,
        )  # fmt: skip
        receipt = ReceiptRecord(
            digest=_digest("sent receipt", i), envelope_digest=digest, receipter=LA,
            status="delivered", time=int(at) + 1, signed=b"synthetic receipt",
        )  # fmt: skip
        await store.add_receipt(receipt, ledger_events=[], now=at + 1)

    async def received(i: int) -> None:
        digest = _digest("received", i)
        at = now - i * 30
        envelope = EnvelopeRecord(
            digest=digest, envelope_id=digest[:16], sender=LA, recipients=(SCHOOL,),
            record_kind="information-request", created=int(at), length=10_000,
        )  # fmt: skip
        receipt = ReceiptRecord(
            digest=_digest("received receipt", i), envelope_digest=digest, receipter=SCHOOL,
            status="delivered", time=int(at), signed=b"synthetic receipt",
        )  # fmt: skip
        await store.record_delivery(SCHOOL, envelope, now=at, receipt=receipt, ledger_events=[])

    for fill in (sent, received):
        for start in range(0, n, FILL_BATCH):
            await asyncio.gather(*(fill(i) for i in range(start, min(n, start + FILL_BATCH))))

    def delivered(db: sqlite3.Connection) -> None:
        # The node is stopped: mark every outbox row handed over, as a real run would leave it.
        db.execute("UPDATE outbox SET state = 'delivered', route_kind = 'https'")
        # All but the newest UNREAD received items have been opened.
        db.execute(
            "UPDATE inbox SET state = 'opened' WHERE owner = ? AND received_at < ?",
            (SCHOOL, now - UNREAD * 30 + 1),
        )

    await store._tx(delivered)  # a bench fill, not the node's own write path


async def _session(service: NodeService, org: OrgId, name: str = "dsl") -> str:
    """Make a DSL account ``name`` of ``org`` and sign it in with its app; return the token."""
    user = User(f"{org}/{name}", org, "Bench DSL", "dsl")
    email = f"{name}@{org.replace(':', '-')}.example"
    await service.accounts.create_user(
        user, hashlib.sha256(email.encode()).digest(), email=email, password=PASSWORD
    )
    step = await service.accounts.begin_sign_in(email, PASSWORD)
    token, _ = await service.accounts.start_session(step)
    enrolment = await service.accounts.enrol_totp(token)
    confirmed = await service.accounts.confirm_totp_enrolment(
        token, code_at(enrolment.secret, time.time())
    )
    return confirmed.token


def _timed_app(service: NodeService, timings: list[float]) -> web.Application:
    """Return the staff pages over ``service``, timing each request on the server."""

    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        response = await handler(request)
        timings.append((time.perf_counter() - start) * 1000)
        return response

    app = web.Application(middlewares=[timing])
    add_staff_pages(app, service)
    return app


def _summary(name: str, times: list[float], reference: float) -> str:
    ordered = sorted(times)
    median = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    verdict = "ok" if p95 < TARGET_MS else "OVER TARGET"
    return (
        f"  {name:<44} median {median:7.2f} ms  p95 {p95:7.2f} ms  "
        f"x{median / reference:5.2f} of reference  {verdict}"
    )


async def run(n: int, requests: int) -> None:
    """Fill a node's store, then time each page ``requests`` times."""
    configure(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        deployment = await start_deployment(Path(tmp), ORGS, kdf=KdfParams.fast_for_tests())
        config = deployment.nodes["one"].config
        await deployment.stop()
        store = await SqliteStore.open(config.data_dir)
        started = time.perf_counter()
        await _fill(store, n, time.time())
        await store.close()
        print(
            f"filled {n:,} sent and {n:,} received items in {time.perf_counter() - started:.1f} s"
        )
        node = Node(config)
        await node.start()
        try:
            await _measure(node.service, n, requests)
        finally:
            await node.stop()


async def _measure(service: NodeService, n: int, requests: int) -> None:
    school, quiet = await _session(service, SCHOOL), await _session(service, QUIET)
    deep_at = time.time() - 86400 * 4 - (n // 2) * 30
    deep = next_cursor(deep_at, _digest("sent", n // 2))
    halfway = (1, time.time() - (n // 2) * 30, _digest("received", n // 2))
    inbox_deep = cursor_text(halfway)
    pages = {
        "/sent (first page)": ("/sent", school),
        f"/sent?before= (page at item {n // 2:,})": (f"/sent?before={deep}", school),
        "/sent?show=overdue": ("/sent?show=overdue", school),
        "/sent?show=awaiting-acknowledgement": ("/sent?show=awaiting-acknowledgement", school),
        "/inbox (first page)": ("/inbox", school),
        f"/inbox?after= (page at item {n // 2:,})": (f"/inbox?after={inbox_deep}", school),
        "reference: /sent of a tenant with none": ("/sent", quiet),
    }
    timings: list[float] = []
    results: dict[str, list[float]] = {name: [] for name in pages}
    async with TestClient(TestServer(_timed_app(service, timings))) as client:
        for name, (path, token) in pages.items():  # warm-up, and a check that each page works
            async with client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={token}"}) as r:
                assert r.status == 200, (name, r.status)
                await r.read()
        for _ in range(requests):
            for name, (path, token) in pages.items():
                timings.clear()
                async with client.get(
                    path, headers={"Cookie": f"{SESSION_COOKIE}={token}"}, allow_redirects=False
                ) as response:
                    await response.read()
                results[name].append(timings[0])
    reference = statistics.median(results["reference: /sent of a tenant with none"])
    print(f"server time per page, {requests} requests each, {n:,} items sent and received:")
    for name, times in results.items():
        print(_summary(name, times, reference))
    machine = f"python {platform.python_version()} on {platform.machine()}"
    print(f"{machine}, SQLite {sqlite3.sqlite_version}")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the bench."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2,000 items, 50 requests each")
    parser.add_argument("--n", type=int, default=None, help="items sent and items received")
    parser.add_argument("--requests", type=int, default=None, help="requests of each page")
    args = parser.parse_args(argv)
    n = args.n or (2_000 if args.quick else 10_000)
    requests = args.requests or (50 if args.quick else 200)
    asyncio.run(run(n, requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
