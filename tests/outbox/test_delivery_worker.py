"""The delivery worker drives the machine: an injected clock and fake connectors, no network.

The worker runs against a real SQLite store in a temporary folder, a clock the test moves,
a connector that answers what the test says (advancing the clock by the time it "took") and
a notifier that records the mails it was asked to send.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from exchange.config import DeliveryConfig
from exchange.connectors.base import Delivered, Message, Outcome, Refused, RetryLater
from exchange.keys.directory import Route
from exchange.keys.ids import OrgId
from exchange.model import EnvelopeRecord, NewOutbox, OutboxItem
from exchange.outbox.routing import Routes
from exchange.service.busy import Backpressure
from exchange.store import SqliteStore
from exchange.workers.delivery import MIN_TRANSFER_RATE, DeliveryWorker, attempt_timeout
from exchange.workers.supervisor import SupervisionPolicy
from tests.full_disk import FullDisk
from tests.node.helpers import until
from tests.store.conftest import LEASE, OWNER

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
T0 = 1_800_000_000.0
CONFIG = DeliveryConfig(timeout=1.0, backoff_base=2.0, backoff_max=2.0)
ENVELOPE = EnvelopeRecord(
    digest=hashlib.sha256(b"env").digest(),
    envelope_id=b"\x01" * 16,
    sender=SCHOOL,
    recipients=(LA,),
    record_kind="referral",
    created=int(T0),
    length=4,
)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        """Return the time the test set."""
        return self.now


class HalfRandom:
    """Jitter that is always one half: the wait is three quarters of the step."""

    def random(self) -> float:
        """Return 0.5."""
        return 0.5


@dataclass
class Peer:
    """An HTTPS connector stand-in: each attempt takes ``took`` seconds, then ``answer``."""

    clock: Clock
    answer: Outcome
    took: float = 0.0
    route_kind: str = "https"
    during: Any = None
    seen: list[Message] = field(default_factory=list)

    async def deliver(self, message: Message, address: str, *, timeout: float) -> Outcome:
        """Record the message, let the time pass, run ``during``, answer."""
        del address, timeout
        self.seen.append(message)
        self.clock.now += self.took
        if self.during is not None:
            await self.during()
        return self.answer

    async def close(self) -> None:
        """Nothing to release."""


@dataclass
class Mailer:
    """A notifier that records each mail and answers ``answer``."""

    answer: Outcome = field(default_factory=Delivered)
    mails: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def send_notification(self, **kwargs: Any) -> Outcome:
        """Record a new-item notice."""
        self.mails.append(("notification", kwargs))
        return self.answer

    async def send_overdue_notice(self, **kwargs: Any) -> Outcome:
        """Record a chase."""
        self.mails.append(("overdue", kwargs))
        return self.answer


class Directory:
    """The one directory fact the worker reads: LA's single HTTPS route."""

    def organisation(self, org: OrgId) -> SimpleNamespace:
        """Return LA's entry."""
        assert org == LA
        return SimpleNamespace(routes=(Route("https", "https://la.example"),))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """Open a store holding the school's envelope to LA, its body and one queued delivery."""
    opened = await SqliteStore.open(tmp_path / "node")
    await opened.record_submission(
        ENVELOPE,
        submitted_by="user-1",
        now=T0,
        outbox=[NewOutbox("envelope", ENVELOPE.digest, SCHOOL, LA)],
        ledger_events=[],
    )
    opened.blobs.path(ENVELOPE.digest).write_bytes(b"body")
    yield opened
    await opened.close()


def _worker(
    store: SqliteStore,
    clock: Clock,
    peer: Peer,
    *,
    mailer: Mailer | None = None,
    owner: str = OWNER,
    **service: Any,
) -> DeliveryWorker:
    fake = SimpleNamespace(
        store=store,
        clock=clock,
        now=lambda: int(clock()),
        directory=Directory(),
        outbox_wakeup=asyncio.Event(),
        backpressure=Backpressure(),
        public_url="https://school.example",
        **service,
    )
    return DeliveryWorker(
        fake,
        CONFIG,
        https=peer,
        rng=HalfRandom(),
        routes=Routes({}),
        notifier=mailer,
        notify={SCHOOL: ("dsl@school.example",), LA: ("front-door@la.example",)},
        owner=owner,
    )


async def _attempt_one(store: SqliteStore, worker: DeliveryWorker, now: float) -> OutboxItem:
    [item] = await store.claim_due(now, 10, OWNER, LEASE)
    await worker.attempt(item)
    after = await store.outbox_item(item.id)
    assert after is not None
    return after


async def test_backoff_counts_from_the_end_of_a_timed_out_attempt(store: SqliteStore) -> None:
    """After an attempt that ran into its timeout, the wait starts when the attempt ended."""
    clock = Clock()
    peer = Peer(clock, RetryLater("the peer did not answer in time"), took=CONFIG.timeout)
    after = await _attempt_one(store, _worker(store, clock, peer), T0)
    # One second of timeout, then three quarters of the two-second step.
    assert after.state == "retry-wait"
    assert after.next_attempt_at == T0 + 1.0 + 1.5
    assert await store.claim_due(T0 + 2.4, 10, OWNER, LEASE) == []


async def test_a_recall_during_the_attempt_ends_the_item_recalled(store: SqliteStore) -> None:
    """An attempt that fails after the sender recalled the envelope never re-queues it."""
    clock = Clock()
    peer = Peer(clock, RetryLater("down"))

    async def recall() -> None:
        await store.request_recall(SCHOOL, ENVELOPE.digest, clock())

    peer.during = recall
    worker = _worker(store, clock, peer)
    after = await _attempt_one(store, worker, T0)
    assert after.state == "recalled"
    assert after.last_error == "down"
    assert worker.stats.retried == 0


async def test_a_refusal_on_the_only_route_is_a_dead_letter(store: SqliteStore) -> None:
    """A refusal with no route left ends the item dead and counts it for /metrics."""
    clock = Clock()
    worker = _worker(store, clock, Peer(clock, Refused("unknown organisation")))
    after = await _attempt_one(store, worker, T0)
    assert (after.state, after.last_error) == ("dead", "unknown organisation")
    assert (worker.stats.dead, worker.stats.delivered) == (1, 0)


async def test_a_chase_mails_the_senders_staff_about_the_late_recipient(
    store: SqliteStore,
) -> None:
    """A chase row (from the sender, to the late recipient) mails the sender's staff."""
    clock = Clock()
    late = SimpleNamespace(
        digest=ENVELOPE.digest, recipient=LA, due=date(2027, 6, 1), waiting_for=("acknowledged",)
    )

    async def overdue_items(org: OrgId) -> list[SimpleNamespace]:
        return [late] if org == SCHOOL else []

    mailer = Mailer()
    worker = _worker(
        store, clock, Peer(clock, Delivered()), mailer=mailer, overdue_items=overdue_items
    )
    await store.add_outbox(ENVELOPE.digest, [NewOutbox("chase", b"c" * 32, SCHOOL, LA)], now=T0)
    await store.request_recall(SCHOOL, ENVELOPE.digest, T0)  # keeps the envelope row out
    after = await _attempt_one(store, worker, T0)
    assert (after.kind, after.state, after.route_kind) == ("chase", "delivered", "smtp")
    [(kind, mail)] = mailer.mails
    assert kind == "overdue"
    assert (mail["origin"], mail["recipient"], mail["address"]) == (
        SCHOOL,
        LA,
        "dsl@school.example",
    )
    assert mail["due"] == "2027-06-01"


async def test_a_chase_met_meanwhile_sends_no_mail(store: SqliteStore) -> None:
    """A chase whose deadline was met before the attempt is closed without a mail."""
    clock = Clock()

    async def overdue_items(org: OrgId) -> list[SimpleNamespace]:
        del org
        return []

    mailer = Mailer()
    worker = _worker(
        store, clock, Peer(clock, Delivered()), mailer=mailer, overdue_items=overdue_items
    )
    await store.add_outbox(ENVELOPE.digest, [NewOutbox("chase", b"c" * 32, SCHOOL, LA)], now=T0)
    await store.request_recall(SCHOOL, ENVELOPE.digest, T0)
    after = await _attempt_one(store, worker, T0)
    assert (after.state, after.last_error) == ("delivered", "met before the chase was sent")
    assert mailer.mails == []


async def test_a_notice_mails_the_recipients_staff(store: SqliteStore) -> None:
    """A new-item notice (from the sender, to the recipient) mails the recipient's staff."""
    clock = Clock()
    mailer = Mailer(answer=RetryLater("the mail server is busy"))
    worker = _worker(store, clock, Peer(clock, Delivered()), mailer=mailer)
    await store.add_outbox(
        ENVELOPE.digest, [NewOutbox("notice", ENVELOPE.digest, SCHOOL, LA)], now=T0
    )
    await store.request_recall(SCHOOL, ENVELOPE.digest, T0)
    after = await _attempt_one(store, worker, T0)
    assert (after.state, after.last_error) == ("retry-wait", "the mail server is busy")
    [(kind, mail)] = mailer.mails
    assert (kind, mail["destination"], mail["address"]) == (
        "notification",
        LA,
        "front-door@la.example",
    )


async def test_an_outcome_the_full_store_refuses_is_recorded_once_space_returns(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under run(), an attempt whose outcome cannot be written waits for space, then records.

    The disk fills during the attempt: the item must not stay ``attempting`` until a
    restart (issue 11: 0 of 27 envelopes delivered after space came back). The failure is
    logged once, however often the worker tries, and the worker carries on afterwards.
    """
    clock = Clock()
    disk = FullDisk(store, monkeypatch)
    peer = Peer(clock, RetryLater("down"))

    async def fill() -> None:
        disk.fill()

    peer.during = fill
    worker = _worker(store, clock, peer)
    worker.health.policy = SupervisionPolicy(backoff_base=0.01, backoff_max=0.02)
    stop = asyncio.Event()
    with capture_logs() as events:
        running = asyncio.create_task(worker.run(stop))
        try:
            async with asyncio.timeout(10):
                while worker.health.failures["storage-full"] < 5:
                    await asyncio.sleep(0.01)
                assert (await _only_item(store)).state == "attempting"
                disk.free()
                while (await _only_item(store)).state == "attempting":
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await running
    item = await _only_item(store)
    assert (item.state, item.attempts, item.last_error) == ("retry-wait", 1, "down")
    assert len(peer.seen) == 1
    failed = [e for e in events if e["event"] == "task.failed"]
    assert [(e["task"], e["stage"], e["cause"]) for e in failed] == [
        ("outbox", "record", "storage-full")
    ]
    assert worker.health.failure is None
    assert [e["event"] for e in events].count("task.recovered") == 1


async def _only_item(store: SqliteStore) -> OutboxItem:
    """Return the store's one outbox item (the fixture's delivery, the first row)."""
    item = await store.outbox_item(1)
    assert item is not None
    return item


async def test_attempts_to_one_organisation_wait_for_a_slot(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six items for the LA, two slots: never more than two attempts reach it at once."""
    clock = Clock()
    await _queue_more(store, 5)
    at_once: list[int] = []
    busy = 0
    release = asyncio.Event()

    async def held() -> None:
        nonlocal busy
        busy += 1
        at_once.append(busy)
        await release.wait()
        busy -= 1

    peer = Peer(clock, Refused("the LA refused it"), during=held)
    worker = _worker(store, clock, peer)
    monkeypatch.setattr(worker, "config", replace(CONFIG, per_destination=2))
    items = await store.claim_due(T0, 10, OWNER, LEASE)
    assert len(items) == 6
    attempts = [asyncio.create_task(worker.attempt(item)) for item in items]
    await asyncio.sleep(0.05)
    assert max(at_once) == 2
    release.set()
    await asyncio.gather(*attempts)
    assert len(peer.seen) == 6
    assert max(at_once) == 2


async def _queue_more(store: SqliteStore, count: int) -> None:
    """Queue ``count`` more envelopes from the school to the LA, with their bodies."""
    for n in range(count):
        envelope = replace(
            ENVELOPE, digest=hashlib.sha256(b"more %d" % n).digest(), envelope_id=bytes([n]) * 16
        )
        await store.record_submission(
            envelope, submitted_by="user-1", now=T0,
            outbox=[NewOutbox("envelope", envelope.digest, SCHOOL, LA)], ledger_events=[],
        )  # fmt: skip
        store.blobs.path(envelope.digest).write_bytes(b"body")


async def test_a_destination_that_answers_again_gets_its_backlog_at_once(
    store: SqliteStore,
) -> None:
    """Items waiting on their back-off for the LA are due at once after one gets through."""
    clock = Clock()
    await _queue_more(store, 4)
    peer = Peer(clock, RetryLater("the LA is down"))
    worker = _worker(store, clock, peer)
    for item in await store.claim_due(T0, 10, OWNER, LEASE):
        await worker.attempt(item)
    waiting = await store.outbox_counts()
    assert waiting.get("retry-wait") == 5
    # Long waits: each item's own timer brings it back only in about 1,000 s.
    assert await store.bring_retries_forward(-1000.0) == 5
    clock.now = T0 + 1100.0
    [first] = await store.claim_due(clock.now, 1, OWNER, LEASE)
    clock.now = T0 + 100.0  # the LA is back long before the other timers end
    peer.answer = Delivered()
    wakeup = worker.service.outbox_wakeup
    wakeup.clear()
    await worker.attempt(first)
    # The other four are due now, and the worker was woken to claim them.
    assert wakeup.is_set()
    due = await store.claim_due(clock.now, 10, OWNER, LEASE)
    assert len(due) == 4
    for item in due:
        await worker.attempt(item)
    assert (await store.outbox_counts()).get("delivered") == 5


async def test_only_the_first_delivery_after_a_failure_moves_the_backlog(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the destination keeps answering, a delivery writes nothing more to the outbox."""
    clock = Clock()
    await _queue_more(store, 2)
    calls: list[OrgId] = []
    real = store.make_due_now

    async def counted(destination: OrgId, now: float) -> int:
        calls.append(destination)
        return await real(destination, now)

    monkeypatch.setattr(store, "make_due_now", counted)
    peer = Peer(clock, Delivered())
    worker = _worker(store, clock, peer)
    first, second, third = await store.claim_due(T0, 10, OWNER, LEASE)
    await worker.attempt(first)
    await worker.attempt(second)
    assert calls == [LA]  # the first since the start: the LA may have a backlog from before
    peer.answer = RetryLater("down again")
    await worker.attempt(third)
    [again] = await store.claim_due(T0 + 10**6, 10, OWNER, LEASE)
    peer.answer = Delivered()
    await worker.attempt(again)
    assert calls == [LA, LA]


def test_an_attempt_has_time_for_its_size() -> None:
    """A receipt gets the configured deadline; a 1 GiB envelope that plus 1 GiB at 1 MB/s."""
    assert attempt_timeout(30.0, 0) == 30.0
    assert attempt_timeout(30.0, 1024**3) == 30.0 + 1024**3 / MIN_TRANSFER_RATE
    assert attempt_timeout(30.0, 1024**3) > 30.0 + 1000


async def test_two_workers_of_two_processes_attempt_each_item_once(store: SqliteStore) -> None:
    """Two workers with their own ids on one store file share the items; none is sent twice."""
    clock = Clock()
    await _queue_more(store, 19)
    other_store = await SqliteStore.open(store.folder)
    seen: list[Message] = []

    async def slow() -> None:
        await asyncio.sleep(0.005)

    config = replace(CONFIG, concurrency=2, poll_interval=0.01)
    workers = [
        _worker(each, clock, Peer(clock, Delivered(), during=slow, seen=seen), owner=owner)
        for each, owner in ((store, OWNER), (other_store, "process-b"))
    ]
    stop = asyncio.Event()
    try:
        for worker in workers:
            worker.config = config
        running = [asyncio.create_task(w.run(stop)) for w in workers]

        async def all_delivered() -> bool:
            return (await store.outbox_counts()).get("delivered") == 20

        await until(all_delivered, what="all 20 delivered")
        stop.set()
        await asyncio.gather(*running)
    finally:
        stop.set()
        await other_store.close()
    digests = [m.message_id for m in seen]
    assert len(digests) == 20
    assert len(set(digests)) == 20
    assert all(w.stats.attempts > 0 for w in workers)


async def test_an_outcome_after_the_lease_was_lost_is_dropped(store: SqliteStore) -> None:
    """An attempt whose item another process took over records nothing; that one retries."""
    clock = Clock()

    async def taken_over() -> None:
        clock.now = T0 + LEASE  # the attempt outlived its lease, unrenewed
        assert len(await store.claim_due(clock.now, 10, "process-b", LEASE)) == 1

    worker = _worker(store, clock, Peer(clock, Delivered(), during=taken_over))
    [item] = await store.claim_due(T0, 10, OWNER, LEASE)
    with capture_logs() as events:
        await worker.attempt(item)
    row = await _only_item(store)
    assert (row.state, row.lease_owner, row.attempts) == ("attempting", "process-b", 2)
    assert worker.stats.lease_lost == 1
    assert worker.stats.delivered == 0
    names = [e["event"] for e in events]
    assert "delivery.lease-lost" in names
    assert "delivery.attempted" not in names
    assert "delivery.unrecorded" not in names


async def test_a_long_attempt_renews_its_lease(store: SqliteStore) -> None:
    """While an attempt runs, the worker renews its lease: no other process takes the item."""
    clock = Clock()
    release = asyncio.Event()

    async def held() -> None:
        clock.now = T0 + 50
        await release.wait()

    worker = _worker(store, clock, Peer(clock, Delivered(), during=held))
    worker.config = replace(CONFIG, lease_renew=0.01, poll_interval=0.01)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:

        async def renewed() -> bool:
            return (await _only_item(store)).lease_until == T0 + 50 + LEASE

        await until(renewed, what="the lease renewed")
        clock.now = T0 + LEASE + 1  # past the lease as claimed
        assert await store.claim_due(clock.now, 10, "process-b", LEASE) == []
        release.set()

        async def delivered() -> bool:
            return (await _only_item(store)).state == "delivered"

        await until(delivered, what="the delivery recorded")
    finally:
        release.set()
        stop.set()
        await running
    row = await _only_item(store)
    assert (row.lease_owner, row.lease_until, row.attempts) == (None, None, 1)


async def test_a_stopping_worker_gives_back_what_it_could_not_finish(store: SqliteStore) -> None:
    """At the stop, items still attempting under the worker's id go back to the queue."""
    clock = Clock()
    peer = Peer(clock, Delivered())
    worker = _worker(store, clock, peer)
    await store.claim_due(T0, 10, OWNER, LEASE)  # an attempt whose outcome was never written
    stop = asyncio.Event()
    stop.set()
    await worker.run(stop)
    row = await _only_item(store)
    assert (row.state, row.lease_owner) == ("queued", None)
    assert peer.seen == []
