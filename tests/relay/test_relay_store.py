"""The relay's store on a real SQLite file and folder: durability settings, crash debris, races."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.relay.store import MailboxFullError, RelayStore
from tests.connectors.relay_world import LA, NURSE, SCHOOL

BODY = b"sealed bytes"
DIGEST = hashlib.sha256(BODY).digest()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RelayStore]:
    """Yield an open store in a temporary folder."""
    opened = await RelayStore.open(tmp_path / "relay")
    yield opened
    await opened.close()


async def put(store: RelayStore, owner: str = LA, body: bytes = BODY, now: float = 1000.0) -> bool:
    """Deposit ``body`` from SCHOOL in ``owner``'s mailbox; return whether it is new."""
    _, new = await store.put(
        owner=owner,  # type: ignore[arg-type]
        kind="envelope",
        digest=hashlib.sha256(body).digest(),
        author=SCHOOL,
        body=body,
        now=now,
        max_items=10,
    )
    return new


async def test_wal_and_full_synchronous(store: RelayStore) -> None:
    """The database is in WAL mode; commits are synchronous=FULL on the store's connection."""
    db = sqlite3.connect(store.folder / "relay.sqlite")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()
    assert await store._call(lambda: store._conn().execute("PRAGMA synchronous").fetchone()[0]) == 2


async def test_body_is_on_disk_before_the_row_and_gone_after_collection(store: RelayStore) -> None:
    """A waiting row always has its body file; collecting deletes the body, keeps the row."""
    assert await put(store)
    path = store.body_path("envelope", DIGEST)
    assert path.read_bytes() == BODY
    item = await store.collect(LA, "envelope", DIGEST, 2000.0)
    assert item is not None
    assert (item.state, item.ended_at) == ("collected", 2000.0)
    assert not path.exists()
    assert not await put(store)  # a redelivery after collection stores nothing
    assert not path.exists()


async def test_crash_debris_is_swept_on_open(tmp_path: Path) -> None:
    """A body without a row and an unfinished temporary file are removed; held bodies stay."""
    folder = tmp_path / "relay"
    first = await RelayStore.open(folder)
    await put(first)
    orphan = first.body_path("envelope", bytes(32))
    orphan.write_bytes(b"written, then the process died before the row committed")
    partial = first.bodies / ".partial-abc123"
    partial.write_bytes(b"half a body")
    await first.close()

    again = await RelayStore.open(folder)
    try:
        assert not orphan.exists()
        assert not partial.exists()
        assert again.body_path("envelope", DIGEST).read_bytes() == BODY
        (item,) = await again.waiting(LA, limit=10)
        assert item.id == DIGEST
    finally:
        await again.close()


async def test_racing_deposits_store_once(store: RelayStore) -> None:
    """Ten concurrent deposits of one item: one is new, one row, one body."""
    results = await asyncio.gather(*(put(store) for _ in range(10)))
    assert results.count(True) == 1
    assert len(await store.waiting(LA, limit=10)) == 1
    assert [p.name for p in (store.bodies / "envelope").iterdir()] == [DIGEST.hex()]
    assert not list(store.bodies.glob(".partial-*"))


async def test_a_body_shared_by_two_mailboxes_is_kept_while_one_waits(store: RelayStore) -> None:
    """One envelope for LA and NURSE: LA's collection keeps the body for NURSE."""
    await put(store, LA)
    await put(store, NURSE)
    await store.collect(LA, "envelope", DIGEST, 2000.0)
    assert store.body_path("envelope", DIGEST).exists()
    await store.recall(NURSE, "envelope", DIGEST, 2000.0)
    assert not store.body_path("envelope", DIGEST).exists()


async def test_full_mailbox(store: RelayStore) -> None:
    """The limit counts waiting items only."""
    for i in range(10):
        await put(store, body=b"%d" % i)
    with pytest.raises(MailboxFullError):
        await put(store, body=b"one too many")
    await store.collect(LA, "envelope", hashlib.sha256(b"0").digest(), 2000.0)
    assert await put(store, body=b"one too many")


async def test_recall_refuses_once_fetched(store: RelayStore) -> None:
    """A fetched item cannot be recalled; an unfetched one can, once."""
    await put(store)
    opened = await store.open_body(LA, "envelope", DIGEST, 1500.0)
    assert opened is not None
    item, handle = opened
    with handle:
        assert handle.read() == BODY
    assert item.fetched_at == 1500.0
    after = await store.recall(LA, "envelope", DIGEST, 2000.0)
    assert after is not None
    assert (after.state, after.fetched_at) == ("waiting", 1500.0)
    other = b"other"
    await put(store, body=other)
    recalled = await store.recall(LA, "envelope", hashlib.sha256(other).digest(), 2000.0)
    assert recalled is not None
    assert recalled.state == "recalled"


async def test_expire_and_forget(store: RelayStore) -> None:
    """Expiry ends old waiting items and deletes their bodies; forget drops old ended rows."""
    await put(store, now=1000.0)
    await put(store, body=b"new", now=5000.0)
    expired = await store.expire(stored_before=2000.0, now=6000.0)
    assert [(i.id, i.state, i.ended_at) for i in expired] == [(DIGEST, "expired", 6000.0)]
    assert not store.body_path("envelope", DIGEST).exists()
    assert await store.counts() == {"expired": 1, "waiting": 1}
    assert await store.forget(ended_before=6000.0) == 0
    assert await store.forget(ended_before=6001.0) == 1
    assert await store.item(LA, "envelope", DIGEST) is None
