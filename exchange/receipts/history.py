"""The receipts of one envelope taken together: their timeline and their consistency.

Receipts travel back over asynchronous routes (a MESH mailbox, SMTP, a later HTTPS push), so
they can arrive in any order: an ``acknowledged`` can overtake its ``opened``. Verification
therefore never depends on which receipts came before (docs/receipts.md §9). What the
history does enforce is that an organisation gives at most one final disposition per
envelope: it acknowledged the record or rejected it, not both, and not with two different
codes (rule receipt.final-disposition).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from exchange.receipts.errors import ReceiptConflictError
from exchange.receipts.format import SignedReceipt, encode_receipt
from exchange.receipts.receipt import Receipt

R = TypeVar("R", Receipt, SignedReceipt)


def _receipt(item: Receipt | SignedReceipt) -> Receipt:
    return item.receipt if isinstance(item, SignedReceipt) else item


def _order(item: Receipt | SignedReceipt) -> tuple[int, int, str, bytes]:
    r = _receipt(item)
    # Time first; in the same second the lifecycle order (the status byte); then the
    # receipter and the statement bytes, so that the order is total and the same everywhere.
    return (r.time, r.status.code, r.receipter, encode_receipt(r))


def timeline(receipts: Iterable[R]) -> list[R]:
    """Return ``receipts`` sorted by time, then status (delivered, opened, then the finals).

    The order is total and deterministic, so two nodes holding the same receipts show the
    same history. Receipts or signed receipts may be given; the same kind is returned.
    """
    return sorted(receipts, key=_order)


def check_consistent(
    existing: Iterable[Receipt | SignedReceipt], new: Receipt | SignedReceipt
) -> None:
    """Raise :class:`ReceiptConflictError` if ``new`` contradicts a final disposition given.

    Only receipts for the same envelope digest from the same receipter are compared. A final
    disposition (``acknowledged`` or ``rejected``) is its status with its code; a repeat of
    the same one (re-sent over another route, at another time) is consistent, a different
    one is refused. Non-final receipts never conflict, in any order.
    """
    r = _receipt(new)
    if not r.status.is_final:
        return
    for item in existing:
        old = _receipt(item)
        if (
            old.status.is_final
            and old.envelope_digest == r.envelope_digest
            and old.receipter == r.receipter
            and (old.status, old.disposition) != (r.status, r.disposition)
        ):
            raise ReceiptConflictError(
                "receipt.final-disposition",
                f"{r.receipter} already gave the final disposition {_describe(old)} for "
                f"envelope {r.envelope_digest.hex()[:16]}…; {_describe(r)} contradicts it",
            )


def _describe(r: Receipt) -> str:
    return r.status.value if r.disposition is None else f"{r.status.value} ({r.disposition})"
