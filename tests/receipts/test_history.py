"""The receipts of one envelope together: timeline order and final-disposition consistency."""

from __future__ import annotations

import itertools

import pytest

from exchange.receipts import (
    Receipt,
    ReceiptConflictError,
    ReceiptStatus,
    check_consistent,
    parse_signed,
    timeline,
)
from tests.receipts.conftest import POSITIVE, Fixture, fixture_for


def _all() -> list[Receipt]:
    return [fixture_for(p.stem).receipt for p in POSITIVE]


def _like(r: Receipt, **changes: object) -> Receipt:
    fields = {f: getattr(r, f) for f in Receipt.__dataclass_fields__}
    return Receipt(**{**fields, **changes})


def test_timeline_orders_by_time_whatever_the_arrival_order() -> None:
    """Every arrival order of the four positive receipts gives the same timeline."""
    expected = ["delivered", "opened", "acknowledged", "rejected"]
    for order in itertools.permutations(_all()):
        assert [r.status.value for r in timeline(order)] == expected


def test_timeline_breaks_ties_by_status_then_receipter() -> None:
    """Receipts of the same second are in lifecycle order, then by receipter."""
    base = fixture_for("delivered").receipt
    opened = _like(base, status=ReceiptStatus.OPENED)
    other = _like(base, receipter="ods:X26ABC")
    assert timeline([opened, other, base]) == [base, other, opened]


def test_timeline_keeps_signed_receipts_signed() -> None:
    """Given signed receipts, timeline returns the same signed receipts, ordered."""
    signed = [parse_signed(fixture_for(p.stem).signed) for p in POSITIVE]
    ordered = timeline(reversed(signed))
    assert sorted(ordered, key=lambda s: s.receipt.time) == ordered
    assert set(ordered) == set(signed)


def test_acknowledged_then_rejected_conflicts(acknowledged: Fixture) -> None:
    """A rejection after an acknowledgement from the same organisation is refused."""
    rejected = _like(acknowledged.receipt, status=ReceiptStatus.REJECTED, disposition="not-for-us")
    with pytest.raises(ReceiptConflictError) as info:
        check_consistent([acknowledged.receipt], rejected)
    assert info.value.rule == "receipt.final-disposition"
    assert "acknowledged (accepted-for-assessment)" in str(info.value)


def test_rejected_then_acknowledged_conflicts(acknowledged: Fixture) -> None:
    """The rule holds in the other order too: receipts can arrive out of order."""
    rejected = _like(acknowledged.receipt, status=ReceiptStatus.REJECTED, disposition="not-for-us")
    with pytest.raises(ReceiptConflictError):
        check_consistent([rejected], acknowledged.receipt)


def test_same_status_other_code_conflicts(acknowledged: Fixture) -> None:
    """Two acknowledgements with different codes are two different final dispositions."""
    query = _like(acknowledged.receipt, disposition="query")
    with pytest.raises(ReceiptConflictError):
        check_consistent([acknowledged.receipt], query)
    none = _like(acknowledged.receipt, disposition=None)
    with pytest.raises(ReceiptConflictError):
        check_consistent([none], acknowledged.receipt)


def test_repeat_of_the_same_final_disposition_is_consistent(acknowledged: Fixture) -> None:
    """The same disposition re-sent later, over another route, is not a conflict."""
    again = _like(acknowledged.receipt, time=acknowledged.receipt.time + 3600, transport_ref="x")
    check_consistent([acknowledged.receipt], again)


@pytest.mark.parametrize(
    "changes",
    [{"receipter": "ods:X26ABC"}, {"envelope_digest": bytes(32)}],
)
def test_other_organisation_or_envelope_never_conflicts(
    acknowledged: Fixture, changes: dict[str, object]
) -> None:
    """Final dispositions of other receipters or other envelopes are not compared."""
    rejected = _like(
        acknowledged.receipt, status=ReceiptStatus.REJECTED, disposition="not-for-us", **changes
    )
    check_consistent([acknowledged.receipt], rejected)


@pytest.mark.parametrize("status", [ReceiptStatus.DELIVERED, ReceiptStatus.OPENED])
def test_non_final_receipts_never_conflict(acknowledged: Fixture, status: ReceiptStatus) -> None:
    """Delivered and opened receipts are consistent with anything, in any order."""
    r = _like(acknowledged.receipt, status=status, disposition=None)
    check_consistent([acknowledged.receipt], r)
    rejected = _like(acknowledged.receipt, status=ReceiptStatus.REJECTED, disposition="query")
    check_consistent([r, r], rejected)


def test_check_consistent_accepts_signed_receipts(acknowledged: Fixture) -> None:
    """Signed receipts may be passed as the existing ones and as the new one."""
    signed = parse_signed(acknowledged.signed)
    rejected = parse_signed(
        acknowledged.make(status=ReceiptStatus.REJECTED, disposition="wrong-pupil")
    )
    with pytest.raises(ReceiptConflictError):
        check_consistent([signed], rejected)
