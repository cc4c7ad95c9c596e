"""The node's ledger module: typed event building, checkpoints on the injected clock, bundles.

The store is an in-memory fake holding the few ledger methods the module calls (its stored
subtrees come from the reference MerkleLog), so these tests need no database, no socket and
no real time. The same ledger over the SQLite store: tests/store/test_ledger_tree.py.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import cast

import pytest

from exchange.keys.ids import OrgId
from exchange.ledger import (
    EventType,
    LedgerEvent,
    MerkleLog,
    decode_event,
    leaf_hash,
    verify_bundle,
)
from exchange.receipts import ReceiptStatus
from exchange.service.ledger import RECEIPT_EVENTS, NodeLedger, ledger_event
from exchange.store import Store
from tests.ledger.helpers import ORIGIN, T0, digest, node_signer

LA = OrgId("la:356")
SCHOOL = OrgId("urn:106123")
SIGNER = node_signer()


class FakeLedgerStore:
    """The ledger part of a store, in memory: events in log order and signed checkpoints."""

    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.saved: list[tuple[int, bytes, float]] = []

    async def ledger_size(self) -> int:
        """Return the number of events."""
        return len(self.events)

    async def ledger_events(self, start: int, end: int) -> list[bytes]:
        """Return the events with indexes ``start <= i < end``."""
        return self.events[start:end]

    async def ledger_subtrees(
        self, keys: Collection[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Return the hashes of the complete subtrees ``keys``, from the reference log."""
        log = MerkleLog()
        for event in self.events:
            log.append(event)
        return {
            (level, index): log.subtree_hash(level, index)
            for level, index in keys
            if (index + 1) << level <= log.size
        }

    async def ledger_events_for(self, envelope_digest: bytes) -> list[tuple[int, bytes]]:
        """Return ``(index, event)`` for every event naming the envelope."""
        return [
            (i, e)
            for i, e in enumerate(self.events)
            if decode_event(e).envelope_digest == envelope_digest
        ]

    async def ledger_index_of(self, event_hash: bytes) -> int | None:
        """Return the index of the first event with that leaf hash."""
        hashes = [leaf_hash(e) for e in self.events]
        return hashes.index(event_hash) if event_hash in hashes else None

    async def save_checkpoint(self, size: int, note: bytes, now: float) -> None:
        """Keep a checkpoint and the time it was signed (once per size)."""
        if all(size != s for s, _, _ in self.saved):
            self.saved.append((size, note, now))

    async def checkpoints(self) -> list[tuple[int, bytes]]:
        """Return every checkpoint, smallest first."""
        return [(size, note) for size, note, _ in sorted(self.saved)]

    async def last_checkpoint(self) -> tuple[int, bytes] | None:
        """Return the checkpoint of the largest size."""
        return max(((size, note) for size, note, _ in self.saved), default=None)


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        """Return the time the test set."""
        return self.now


def _ledger(store: FakeLedgerStore, clock: Clock) -> NodeLedger:
    return NodeLedger(cast(Store, store), SIGNER, clock)


def _event(kind: EventType, envelope: str, at: int = T0) -> bytes:
    return ledger_event(kind, at, LA, digest(envelope), counterparty=SCHOOL)


def test_event_builder_encodes_the_typed_statement() -> None:
    """The builder's bytes are the encoding of the LedgerEvent with the same fields."""
    event = ledger_event(
        EventType.OPENED,
        T0,
        LA,
        digest("envelope"),
        counterparty=SCHOOL,
        receipt=digest("receipt"),
        reason="dsl",
    )
    assert decode_event(event) == LedgerEvent(
        EventType.OPENED, T0, LA, digest("envelope"), SCHOOL, digest("receipt"), "dsl"
    )


def test_event_builder_refuses_an_event_type_spelled_as_a_string() -> None:
    """Passing the string "opened" instead of EventType.OPENED is a TypeError."""
    with pytest.raises(TypeError, match="type must be an EventType"):
        ledger_event("opened", T0, LA, digest("envelope"))  # type: ignore[arg-type]


def test_every_receipt_status_has_its_event_type() -> None:
    """Each receipt status maps to the event type of the same name."""
    assert set(RECEIPT_EVENTS) == set(ReceiptStatus)
    assert all(kind.value == status.value for status, kind in RECEIPT_EVENTS.items())


async def test_checkpoint_is_stamped_with_the_injected_clock() -> None:
    """A checkpoint is stored with the time of the clock the ledger was given."""
    store, clock = FakeLedgerStore(), Clock(T0 + 42.5)
    store.events = [_event(EventType.SUBMITTED, "a"), _event(EventType.DELIVERED, "a")]
    note = await _ledger(store, clock).checkpoint()
    assert store.saved == [(2, note, T0 + 42.5)]


async def test_checkpoint_is_signed_again_only_once_the_log_has_grown() -> None:
    """Without new events the last note is returned; a new event brings a new checkpoint."""
    store, clock = FakeLedgerStore(), Clock(T0)
    ledger = _ledger(store, clock)
    store.events = [_event(EventType.SUBMITTED, "a")]
    first = await ledger.checkpoint()
    clock.now = T0 + 5
    assert await ledger.checkpoint() == first
    store.events.append(_event(EventType.DELIVERED, "a"))
    second = await ledger.checkpoint()
    assert second != first
    assert [(size, now) for size, _, now in store.saved] == [(1, T0), (2, T0 + 5)]


async def test_bundles_prove_the_checkpointed_events_of_the_envelopes_in_log_order() -> None:
    """Bundles cover every event naming the envelopes up to the last checkpoint, no later."""
    store, clock = FakeLedgerStore(), Clock(T0)
    store.events = [
        _event(EventType.SUBMITTED, "a"),
        _event(EventType.SUBMITTED, "b"),
        _event(EventType.DELIVERED, "a"),
        _event(EventType.SUBMITTED, "c"),
    ]
    ledger = _ledger(store, clock)
    await ledger.checkpoint()
    store.events.append(_event(EventType.OPENED, "a"))
    bundles = await ledger.bundles_for([digest("a"), digest("c")])
    proven = [verify_bundle(b, [SIGNER.verifier], ORIGIN) for b in bundles]
    assert [(e.type, e.envelope_digest) for e, _ in proven] == [
        (EventType.SUBMITTED, digest("a")),
        (EventType.DELIVERED, digest("a")),
        (EventType.SUBMITTED, digest("c")),
    ]
    assert {checkpoint.size for _, checkpoint in proven} == {4}


async def test_a_loaded_ledger_proves_under_the_stored_checkpoint_without_signing() -> None:
    """A ledger loaded from the store proves under the last saved checkpoint and saves none."""
    store = FakeLedgerStore()
    store.events = [_event(EventType.SUBMITTED, "a"), _event(EventType.DELIVERED, "a")]
    await _ledger(store, Clock(T0)).checkpoint()
    store.events.append(_event(EventType.OPENED, "a"))
    reader = _ledger(store, Clock(T0 + 60))
    await reader.load()
    bundles = await reader.bundles_for([digest("a")])
    assert len(bundles) == 2
    assert len(store.saved) == 1


async def test_bundle_for_an_event_signs_a_fresh_checkpoint_first() -> None:
    """Asking for one event's bundle checkpoints the log so that the newest event is proven."""
    store, clock = FakeLedgerStore(), Clock(T0)
    store.events = [_event(EventType.SUBMITTED, "a")]
    bundle = await _ledger(store, clock).bundle_for(store.events[0])
    assert bundle is not None
    event, checkpoint = verify_bundle(bundle, [SIGNER.verifier], ORIGIN)
    assert (event.type, checkpoint.size) == (EventType.SUBMITTED, 1)
    assert await _ledger(store, clock).bundle_for(_event(EventType.OPENED, "z")) is None
