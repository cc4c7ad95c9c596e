"""Signed delivery receipts, format version 1, sans-I/O (docs/receipts.md).

A receipt is the receiving organisation's signed statement about one envelope, named by its
digest: delivered, opened, acknowledged or rejected. The receipter builds a
:class:`Receipt` and calls :func:`sign_receipt` and :func:`serialize_signed`; the sender
calls :func:`verify_receipt` with the digest it computed when sealing, stores the bytes and
records :attr:`SignedReceipt.digest` in the ledger.
"""

from exchange.receipts.errors import (
    ReceiptAddressError,
    ReceiptConflictError,
    ReceiptError,
    ReceiptFormatError,
    ReceiptKeyError,
    ReceiptMismatchError,
    ReceiptSignatureError,
    ReceiptTimeError,
)
from exchange.receipts.format import (
    L_RECEIPT,
    MAX_RECEIPT_LEN,
    MAX_SIGNED_LEN,
    MAX_STATEMENT_LEN,
    SignedReceipt,
    decode_receipt,
    encode_receipt,
    parse_signed,
    receipt_digest,
    serialize_signed,
)
from exchange.receipts.history import check_consistent, timeline
from exchange.receipts.receipt import (
    ACKNOWLEDGEMENT_CODES,
    FINAL_STATUSES,
    REJECTION_CODES,
    Receipt,
    ReceiptStatus,
)
from exchange.receipts.signing import ReceipterKeys, sign_receipt, verify_receipt

__all__ = [
    "ACKNOWLEDGEMENT_CODES",
    "FINAL_STATUSES",
    "L_RECEIPT",
    "MAX_RECEIPT_LEN",
    "MAX_SIGNED_LEN",
    "MAX_STATEMENT_LEN",
    "REJECTION_CODES",
    "Receipt",
    "ReceiptAddressError",
    "ReceiptConflictError",
    "ReceiptError",
    "ReceiptFormatError",
    "ReceiptKeyError",
    "ReceiptMismatchError",
    "ReceiptSignatureError",
    "ReceiptStatus",
    "ReceiptTimeError",
    "ReceipterKeys",
    "SignedReceipt",
    "check_consistent",
    "decode_receipt",
    "encode_receipt",
    "parse_signed",
    "receipt_digest",
    "serialize_signed",
    "sign_receipt",
    "timeline",
    "verify_receipt",
]
