"""The store's inbox for the web pages: unread first by cursor, and lookup by envelope id."""

from __future__ import annotations

import hashlib

from exchange.keys.ids import OrgId
from exchange.model import EnvelopeRecord, ReceiptRecord
from exchange.store import SqliteStore
from exchange.store.base import inbox_place

from .conftest import LA, NURSES, T0, envelope


def _delivered(env: EnvelopeRecord, org: OrgId = LA) -> ReceiptRecord:
    signed = b"delivered " + env.digest + org.encode()
    return ReceiptRecord(
        digest=hashlib.sha256(signed).digest(),
        envelope_digest=env.digest,
        receipter=org,
        status="delivered",
        time=int(T0),
        signed=signed,
    )


async def _deliver(store: SqliteStore, n: int, at: float, org: OrgId = LA) -> EnvelopeRecord:
    env = envelope(n)
    await store.record_delivery(org, env, now=at, receipt=_delivered(env, org), ledger_events=[])
    return env


async def test_unread_items_come_first_then_the_newest(store: SqliteStore) -> None:
    """Unread newest first, then read newest first; a cursor continues exactly after an item."""
    envs = [await _deliver(store, n, T0 + n) for n in range(1, 6)]
    for env in (envs[1], envs[4]):  # the 2nd and the 5th (newest) are read
        await store.update_inbox(
            LA, env.digest, state="opened", receipt=None, outbox=[], ledger_events=[], now=T0 + 9
        )
    everything = await store.inbox_unread_first(LA, limit=10)
    order = [item.envelope.digest for item in everything]
    assert order == [e.digest for e in (envs[3], envs[2], envs[0], envs[4], envs[1])]
    pages, after = [], None
    while True:
        page = await store.inbox_unread_first(LA, limit=2, after=after)
        if not page:
            break
        pages.extend(item.envelope.digest for item in page)
        after = inbox_place(page[-1])
    assert pages == order
    assert await store.inbox_unread_first(NURSES, limit=10) == []


async def test_an_item_is_found_by_envelope_id_for_its_owner_only(store: SqliteStore) -> None:
    """The notice's envelope id finds the owner's item; another organisation's finds nothing."""
    env = await _deliver(store, 7, T0)
    item = await store.inbox_item_by_envelope_id(LA, env.envelope_id)
    assert item is not None
    assert item.envelope.digest == env.digest
    assert await store.inbox_item_by_envelope_id(NURSES, env.envelope_id) is None
    assert await store.inbox_item_by_envelope_id(LA, bytes(16)) is None
