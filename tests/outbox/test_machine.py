"""The outbox state machine, transition by transition, with no store and no network.

:data:`TABLE` has one row per line of the state table in :mod:`exchange.outbox.machine`'s
docstring (a line with several "from" states or outcomes has a row for each), in the same
order; every row says what the item must look like afterwards and which ledger events go
with it.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType, LedgerEvent
from exchange.model import OutboxItem, ReceiptRecord
from exchange.outbox import machine
from exchange.outbox.machine import (
    CHASE_MET,
    DESTROYED,
    ChaseMet,
    Claimed,
    Delivered,
    EnvelopeDestroyed,
    HandedOver,
    InternalError,
    NonDeliveryReport,
    NoRoute,
    NoticeWithdrawn,
    Policy,
    RecallRequested,
    Refused,
    RequeueDead,
    Restarted,
    RetryLater,
    RouteTaken,
    TransitionError,
)

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
T0 = 1_800_000_000.0
NOW = T0 + 100.0
DIGEST = hashlib.sha256(b"envelope").digest()
POLICY = Policy(backoff_base=2.0, backoff_max=600.0, dead_letter_after=3600.0, fallback_after=3)
HTTPS = RouteTaken(0, 2, "https")
LAST = RouteTaken(1, 2, "mesh")
ONLY = RouteTaken(0, 1, "https")
RECEIPT = ReceiptRecord(
    digest=hashlib.sha256(b"receipt").digest(),
    envelope_digest=DIGEST,
    receipter=LA,
    status="delivered",
    time=int(T0) + 5,
    signed=b"signed",
)


class FixedRandom:
    """A source of jitter that always answers the same value and counts the draws."""

    def __init__(self, value: float = 0.5) -> None:
        self.value = value
        self.draws = 0

    def random(self) -> float:
        """Return the fixed value."""
        self.draws += 1
        return self.value


def _item(state: str = "attempting", **changes: Any) -> OutboxItem:
    base = OutboxItem(
        id=7,
        kind="envelope",
        envelope_digest=DIGEST,
        ref=DIGEST,
        origin=SCHOOL,
        destination=LA,
        state="queued",
        attempts=1,
        next_attempt_at=T0,
        created_at=T0,
        updated_at=T0,
        last_error=None,
    )
    return replace(base, state=state, **changes)


def _event(kind: EventType, reason: str | None = None, **extra: Any) -> LedgerEvent:
    return LedgerEvent(
        type=kind,
        time=int(NOW),
        org=SCHOOL,
        envelope_digest=DIGEST,
        counterparty=LA,
        reason=reason,
        **extra,
    )


def _attempted(reason: str) -> LedgerEvent:
    return _event(EventType.ATTEMPTED, reason)


def _fallback(kind: str) -> LedgerEvent:
    return _event(EventType.FALLBACK, kind)


MARK = T0 + 50.0
#: The process that claims in these tests, and its lease on what it claims.
CLAIM = Claimed("process-b", NOW + 60.0)
LEASED_TO_B = {"lease_owner": "process-b", "lease_until": NOW + 60.0}
#: An item another process is attempting, its lease running until a second from now.
LIVE_LEASE = {"lease_owner": "process-a", "lease_until": NOW + 1.0}


@dataclass(frozen=True)
class Row:
    """One transition: the item before, the event, the changes expected, the ledger events."""

    name: str
    item: OutboxItem
    event: machine.Event
    changes: dict[str, Any]
    events: tuple[LedgerEvent, ...] = ()
    receipt: ReceiptRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# With r = 0.5 the jitter factor is 0.75: the first back-off step (2 s) waits 1.5 s.
FIRST_WAIT = 1.5

TABLE: tuple[Row, ...] = (
    Row("queued-claimed", _item("queued", attempts=0), CLAIM,
        {"state": "attempting", "attempts": 1, "updated_at": NOW, **LEASED_TO_B}),
    Row("retry-wait-claimed", _item("retry-wait"), CLAIM,
        {"state": "attempting", "attempts": 2, "updated_at": NOW, **LEASED_TO_B}),
    Row("expired-lease-taken-over", _item(lease_owner="process-a", lease_until=NOW), CLAIM,
        {"attempts": 2, "updated_at": NOW, **LEASED_TO_B}),
    Row("attempting-without-a-lease-taken-over", _item(), CLAIM,
        {"attempts": 2, "updated_at": NOW, **LEASED_TO_B}),
    Row("delivered-ends-the-lease", _item(**LIVE_LEASE), HandedOver(LAST, "mesh-1"),
        {"state": "delivered", "updated_at": NOW, "route_kind": "mesh", "transport_ref": "mesh-1",
         "lease_owner": None, "lease_until": None},
        (_attempted("handed-over:mesh"),)),
    Row("retry-ends-the-lease", _item(**LIVE_LEASE), RetryLater(HTTPS, "down"),
        {"state": "retry-wait", "next_attempt_at": NOW + FIRST_WAIT, "updated_at": NOW,
         "last_error": "down", "route_failures": 1, "lease_owner": None, "lease_until": None},
        (_attempted("retry:https"),)),
    Row("restarted-ends-the-lease", _item(**LIVE_LEASE), Restarted(),
        {"state": "queued", "next_attempt_at": NOW, "updated_at": NOW, "lease_owner": None,
         "lease_until": None}),
    Row("attempting-recall-keeps-the-lease", _item(**LIVE_LEASE), RecallRequested(),
        {"recall_requested_at": NOW}),
    Row("delivered-with-receipt", _item(), Delivered(HTTPS, RECEIPT, "req-1"),
        {"state": "delivered", "updated_at": NOW, "route_kind": "https", "transport_ref": "req-1"},
        (LedgerEvent(EventType.DELIVERED, RECEIPT.time, SCHOOL, DIGEST, LA, RECEIPT.digest),),
        RECEIPT),
    Row("envelope-handed-over", _item(), HandedOver(LAST, "mesh-1"),
        {"state": "delivered", "updated_at": NOW, "route_kind": "mesh", "transport_ref": "mesh-1"},
        (_attempted("handed-over:mesh"),)),
    Row("receipt-handed-over", _item(kind="receipt"), HandedOver(ONLY),
        {"state": "delivered", "updated_at": NOW, "route_kind": "https"}),
    Row("chase-met", _item(kind="chase"), ChaseMet(),
        {"state": "delivered", "updated_at": NOW, "last_error": CHASE_MET}),
    Row("retry-later", _item(), RetryLater(HTTPS, "the peer is down"),
        {"state": "retry-wait", "next_attempt_at": NOW + FIRST_WAIT, "updated_at": NOW,
         "last_error": "the peer is down", "route_failures": 1},
        (_attempted("retry:https"),)),
    Row("retry-later-falls-back", _item(route_failures=2), RetryLater(HTTPS, "down"),
        {"state": "retry-wait", "next_attempt_at": NOW + FIRST_WAIT, "updated_at": NOW,
         "last_error": "down", "route_index": 1, "route_failures": 0},
        (_attempted("retry:https"), _fallback("https"))),
    Row("retry-later-cycles-to-the-first-route", _item(route_index=1, route_failures=2),
        RetryLater(LAST, "down"),
        {"state": "retry-wait", "next_attempt_at": NOW + FIRST_WAIT, "updated_at": NOW,
         "last_error": "down", "route_index": 0, "route_failures": 0},
        (_attempted("retry:mesh"), _fallback("mesh"))),
    Row("retry-later-on-the-only-route-stays", _item(route_failures=5), RetryLater(ONLY, "down"),
        {"state": "retry-wait", "next_attempt_at": NOW + FIRST_WAIT, "updated_at": NOW,
         "last_error": "down", "route_failures": 6},
        (_attempted("retry:https"),)),
    Row("internal-error", _item(), InternalError(None, "KeyError"),
        {"state": "retry-wait", "next_attempt_at": NOW + FIRST_WAIT, "updated_at": NOW,
         "last_error": "internal error (KeyError)", "route_failures": 1},
        (_attempted("retry:none"),)),
    Row("retry-later-expired", _item(created_at=NOW - 3600.0), RetryLater(HTTPS, "down"),
        {"state": "dead", "updated_at": NOW, "last_error": "down"},
        (_attempted("expired:https"),)),
    Row("internal-error-expired", _item(created_at=NOW - 3600.0),
        InternalError(HTTPS, "KeyError"),
        {"state": "dead", "updated_at": NOW, "last_error": "internal error (KeyError)"},
        (_attempted("expired:https"),)),
    Row("refused-falls-back-at-once", _item(route_failures=1), Refused(HTTPS, "unknown org"),
        {"state": "retry-wait", "next_attempt_at": NOW, "updated_at": NOW,
         "last_error": "unknown org", "route_index": 1, "route_failures": 0},
        (_attempted("refused:https"), _fallback("https"))),
    Row("refused-on-the-last-route", _item(route_index=1), Refused(LAST, "too large"),
        {"state": "dead", "updated_at": NOW, "last_error": "too large"},
        (_attempted("refused:mesh"),)),
    Row("no-route", _item(), NoRoute("no usable route"),
        {"state": "dead", "updated_at": NOW, "last_error": "no usable route"},
        (_attempted("refused:none"),)),
    Row("marked-retry-later-is-recalled", _item(recall_requested_at=MARK),
        RetryLater(HTTPS, "down"),
        {"state": "recalled", "next_attempt_at": NOW + FIRST_WAIT, "updated_at": NOW,
         "last_error": "down", "route_failures": 1},
        (_attempted("retry:https"),)),
    Row("marked-refused-is-recalled", _item(recall_requested_at=MARK), Refused(ONLY, "no"),
        {"state": "recalled", "updated_at": NOW, "last_error": "no"},
        (_attempted("refused:https"),)),
    Row("marked-handed-over-stays-delivered", _item(recall_requested_at=MARK),
        HandedOver(LAST, "mesh-1"),
        {"state": "delivered", "updated_at": NOW, "route_kind": "mesh", "transport_ref": "mesh-1"},
        (_attempted("handed-over:mesh"),)),
    Row("restarted", _item(), Restarted(),
        {"state": "queued", "next_attempt_at": NOW, "updated_at": NOW}),
    Row("marked-restarted-is-recalled", _item(recall_requested_at=MARK), Restarted(),
        {"state": "recalled", "next_attempt_at": NOW, "updated_at": NOW}),
    Row("queued-recalled", _item("queued"), RecallRequested(),
        {"state": "recalled", "updated_at": NOW, "recall_requested_at": NOW}),
    Row("retry-wait-recalled", _item("retry-wait"), RecallRequested(),
        {"state": "recalled", "updated_at": NOW, "recall_requested_at": NOW}),
    Row("dead-recalled", _item("dead"), RecallRequested(),
        {"state": "recalled", "updated_at": NOW, "recall_requested_at": NOW}),
    Row("attempting-recall-marks", _item(), RecallRequested(), {"recall_requested_at": NOW}),
    Row("delivered-recall-marks", _item("delivered"), RecallRequested(),
        {"recall_requested_at": NOW}),
    Row("recalled-recall-keeps-the-first-mark", _item("recalled", recall_requested_at=MARK),
        RecallRequested(), {}),
    Row("non-delivery-report", _item("delivered", route_kind="mesh", transport_ref="mesh-1"),
        NonDeliveryReport("MESH reported it undelivered"),
        {"state": "retry-wait", "next_attempt_at": NOW, "updated_at": NOW,
         "last_error": "MESH reported it undelivered", "route_index": 1, "transport_ref": None},
        (_attempted("undelivered:mesh"),)),
    Row("marked-non-delivery-report-is-recalled",
        _item("delivered", route_kind="mesh", transport_ref="mesh-1", recall_requested_at=MARK),
        NonDeliveryReport("undelivered"),
        {"state": "recalled", "updated_at": NOW, "last_error": "undelivered"}),
    Row("dead-requeued", _item("dead", route_index=1, route_failures=2, last_error="down"),
        RequeueDead(),
        {"state": "queued", "next_attempt_at": NOW, "updated_at": NOW, "created_at": NOW,
         "route_index": 0, "route_failures": 0}),
    Row("marked-dead-requeue-is-recalled", _item("dead", recall_requested_at=MARK),
        RequeueDead(),
        {"state": "recalled", "next_attempt_at": NOW, "updated_at": NOW, "created_at": NOW}),
    Row("queued-notice-withdrawn", _item("queued", kind="notice"), NoticeWithdrawn(),
        {"state": "recalled", "updated_at": NOW}),
    Row("retry-wait-notice-withdrawn", _item("retry-wait", kind="notice"), NoticeWithdrawn(),
        {"state": "recalled", "updated_at": NOW}),
    Row("dead-notice-withdrawn", _item("dead", kind="notice"), NoticeWithdrawn(),
        {"state": "recalled", "updated_at": NOW}),
    Row("attempting-notice-withdrawn-is-kept", _item(kind="notice"), NoticeWithdrawn(), {}),
    Row("delivered-notice-withdrawn-is-kept", _item("delivered", kind="notice"),
        NoticeWithdrawn(), {}),
    Row("recalled-notice-withdrawn-is-kept", _item("recalled", kind="notice"),
        NoticeWithdrawn(), {}),
    Row("dead-envelope-destroyed", _item("dead", last_error="down"), EnvelopeDestroyed(),
        {"last_error": DESTROYED}),
    Row("delivered-envelope-destroyed-is-kept", _item("delivered"), EnvelopeDestroyed(), {}),
)  # fmt: skip


@pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
def test_transition(row: Row) -> None:
    """Each line of the state table moves the item and records exactly the events it says."""
    transition = machine.step(row.item, row.event, NOW, POLICY, FixedRandom())
    assert transition.before == row.item
    assert transition.after == replace(row.item, **row.changes)
    assert transition.ledger_events == row.events
    assert transition.receipt == row.receipt


def test_every_event_of_the_machine_is_in_the_docstring_and_the_table() -> None:
    """The state table in the docstring and the test table name the same events."""
    names = {t.__name__ for t in typing.get_args(machine.Event)}
    documented = {n for n in names if n in (machine.__doc__ or "")}
    tested = {type(r.event).__name__ for r in TABLE}
    assert documented == names
    assert tested == names


ILLEGAL: tuple[tuple[str, OutboxItem, machine.Event], ...] = (
    ("claim-attempting-under-a-live-lease", _item(**LIVE_LEASE), CLAIM),
    ("claim-not-due", _item("queued", next_attempt_at=NOW + 1), CLAIM),
    ("claim-marked", _item("queued", recall_requested_at=MARK), CLAIM),
    ("claim-marked-expired", _item(recall_requested_at=MARK, lease_until=NOW), CLAIM),
    ("claim-delivered", _item("delivered"), CLAIM),
    ("outcome-of-a-queued-item", _item("queued"), HandedOver(ONLY)),
    ("outcome-of-a-delivered-item", _item("delivered"), RetryLater(ONLY, "down")),
    ("chase-met-on-a-notice", _item(kind="notice"), ChaseMet()),
    ("restart-a-queued-item", _item("queued"), Restarted()),
    ("report-on-an-attempting-item", _item(), NonDeliveryReport("x")),
    ("requeue-a-queued-item", _item("queued"), RequeueDead()),
    ("withdraw-an-envelope", _item("queued"), NoticeWithdrawn()),
    ("recall-a-receipt", _item("queued", kind="receipt"), RecallRequested()),
)


@pytest.mark.parametrize(
    ("item", "event"), [(i, e) for _, i, e in ILLEGAL], ids=[n for n, _, _ in ILLEGAL]
)
def test_an_event_the_state_cannot_take_is_refused(item: OutboxItem, event: machine.Event) -> None:
    """An event the item's state cannot take raises TransitionError and changes nothing."""
    with pytest.raises(TransitionError):
        machine.step(item, event, NOW, POLICY, FixedRandom())


@pytest.mark.parametrize(
    ("attempts", "r", "wait"),
    [(1, 0.0, 1.0), (1, 0.999, 1.999), (2, 0.5, 3.0), (4, 0.0, 8.0), (20, 0.0, 300.0)],
)
def test_backoff_doubles_with_jitter_up_to_the_maximum(
    attempts: int, r: float, wait: float
) -> None:
    """The wait is min(max, base * 2**(n-1)) times a factor in [1/2, 1), from the attempt's end."""
    transition = machine.step(
        _item(attempts=attempts), RetryLater(ONLY, "down"), NOW, POLICY, FixedRandom(r)
    )
    assert transition.after.next_attempt_at == pytest.approx(NOW + wait)


def test_the_jitter_is_drawn_once_and_only_when_backing_off() -> None:
    """A retry draws one random number; a refusal, a delivery or a dead letter draws none."""
    rng = FixedRandom()
    machine.step(_item(), RetryLater(ONLY, "down"), NOW, POLICY, rng)
    machine.step(_item(), Refused(ONLY, "no"), NOW, POLICY, rng)
    machine.step(_item(created_at=NOW - 3600), RetryLater(ONLY, "down"), NOW, POLICY, rng)
    machine.step(_item(), HandedOver(ONLY), NOW, POLICY, rng)
    assert rng.draws == 1


@pytest.mark.parametrize(
    ("option", "failures_to_leave"),
    [("1", 1), ("5", 5), ("100", 100), ("0", 3), ("101", 3), ("two", 3), ("", 3)],
)
def test_a_route_may_set_its_own_fallback_after_within_bounds(
    option: str, failures_to_leave: int
) -> None:
    """A route's fallback_after (1 to 100) replaces the policy's; anything else is ignored."""
    route = RouteTaken(0, 2, "mesh", {"fallback_after": option} if option else {})
    stays = machine.step(
        _item(route_failures=failures_to_leave - 2), RetryLater(route, "down"), NOW, POLICY,
        FixedRandom(),
    ) if failures_to_leave > 1 else None  # fmt: skip
    leaves = machine.step(
        _item(route_failures=failures_to_leave - 1), RetryLater(route, "down"), NOW, POLICY,
        FixedRandom(),
    )  # fmt: skip
    if stays is not None:
        assert stays.after.route_index == 0
    assert leaves.after.route_index == 1


def test_back_off_needs_randomness() -> None:
    """A retry without a source of jitter is a caller's mistake, not a silent zero."""
    with pytest.raises(ValueError, match="rng"):
        machine.step(_item(), RetryLater(ONLY, "down"), NOW, POLICY)


def test_a_policy_refuses_a_fallback_after_below_one() -> None:
    """fallback_after of zero would leave every route before its first attempt."""
    with pytest.raises(ValueError, match="fallback_after"):
        Policy(fallback_after=0)


@pytest.mark.parametrize(
    ("item", "due"),
    [
        (_item("queued", next_attempt_at=NOW), True),
        (_item("retry-wait", next_attempt_at=NOW), True),
        (_item("retry-wait", next_attempt_at=NOW + 0.1), False),
        (_item("queued", recall_requested_at=MARK), False),
        (_item("dead"), False),
    ],
    ids=["queued", "retry-wait", "not-yet", "marked", "dead"],
)
def test_is_due(item: OutboxItem, due: bool) -> None:
    """An item is due when claimable, not marked for recall and its time has come."""
    assert machine.is_due(item, NOW) is due


#: What the machine may import: the value types, the ledger's event values and org ids.
ALLOWED_FIRST_PARTY = {"exchange.model", "exchange.ledger.events", "exchange.keys.ids"}


def test_the_machine_imports_only_values_and_the_standard_library() -> None:
    """The machine's module imports no I/O: only pure first-party values and pure stdlib."""
    source = Path(machine.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    first_party = {m for m in imported if m.split(".")[0] == "exchange"}
    assert first_party <= ALLOWED_FIRST_PARTY
    stdlib = imported - first_party
    assert stdlib <= set(sys.stdlib_module_names) | {"collections.abc"}
    assert not stdlib & {"asyncio", "sqlite3", "socket", "ssl", "time", "random", "os"}
