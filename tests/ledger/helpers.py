"""Test helpers for the ledger: fixed keys, an origin and deterministic event statements."""

from __future__ import annotations

import hashlib

from exchange.keys.ids import OrgId
from exchange.keys.keypairs import SigningKey
from exchange.keys.notes import NoteSigner
from exchange.ledger import EventType, LedgerEvent, MerkleLog

ORIGIN = "exchange.example/node/la-356"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
#: The envelope event types (an ``account`` event has rules of its own:
#: tests/ledger/test_account_events.py).
TYPES = [t for t in EventType if t is not EventType.ACCOUNT]


def digest(label: str) -> bytes:
    """Return a fixed 32-byte digest derived from ``label``."""
    return hashlib.sha256(label.encode()).digest()


def node_signer(seed_label: str = "node", origin: str = ORIGIN) -> NoteSigner:
    """Return a note signer for ``origin`` with a key derived from ``seed_label``."""
    return NoteSigner(origin, SigningKey(digest(seed_label)))


def make_event(i: int) -> LedgerEvent:
    """Return the ``i``-th of a deterministic series of distinct events."""
    return LedgerEvent(
        type=TYPES[i % len(TYPES)],
        time=T0 + i,
        org=OrgId("la:356"),
        envelope_digest=digest(f"envelope {i}"),
        counterparty=OrgId("urn:106123") if i % 2 else None,
        receipt_digest=digest(f"receipt {i}") if i % 3 == 0 else None,
        reason="policy:no-consent" if i % 5 == 4 else None,
    )


def make_events(n: int) -> list[bytes]:
    """Return ``n`` encoded distinct events."""
    return [make_event(i).encode() for i in range(n)]


def make_log(n: int) -> MerkleLog:
    """Return an in-memory log of ``n`` distinct events."""
    log = MerkleLog()
    for event in make_events(n):
        log.append(event)
    return log
