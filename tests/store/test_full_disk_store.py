"""The store and the node's ledger on a full disk, and a changed ledger row, without a node.

The readiness check's write fails while the disk is full and passes once space is back; a
checkpoint the store could not keep is signed again later (not forgotten as if saved); a
changed event is refused at the next checkpoint even when the log has not grown.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from exchange.keys.keypairs import SigningKey
from exchange.keys.notes import NoteSigner
from exchange.ledger.checkpoint import open_checkpoint
from exchange.ledger.errors import InconsistentCheckpointError
from exchange.ledger.events import EventType, decode_event, encode_event
from exchange.model import EnvelopeDigest
from exchange.service.faults import fault_of
from exchange.service.ledger import NodeLedger, ledger_event
from exchange.store import SqliteStore
from tests.full_disk import FullDisk

from .conftest import SCHOOL, T0


def _events(count: int, start: int = 0) -> list[bytes]:
    return [
        ledger_event(
            EventType.SUBMITTED, int(T0) + i, SCHOOL, EnvelopeDigest(bytes([i % 256]) * 32)
        )
        for i in range(start, start + count)
    ]


def _signer() -> NoteSigner:
    return NoteSigner("exchange.test.invalid/school", SigningKey.generate())


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    """SQLite only: a full disk under SQLite's file; PostgreSQL's own disk is the server's."""
    return sqlite_store


async def test_the_readiness_write_fails_while_full_and_passes_after(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check_writable commits a row and writes a file: both refused on a full disk."""
    await store.check_writable(T0)
    disk = FullDisk(store, monkeypatch)
    disk.fill()
    with pytest.raises(sqlite3.OperationalError) as raised:
        await store.check_writable(T0 + 1)
    assert fault_of(raised.value).kind == "storage-full"
    disk.free()
    await store.check_writable(T0 + 2)
    # The file is removed again: nothing is left in the data folder.
    assert not list(store.folder.glob(".write-probe*"))


async def test_the_probe_file_is_refused_on_its_own(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A volume with room for the database's pages but none for a new file: still not ready."""
    FullDisk(store, monkeypatch).fill(database=False)
    with pytest.raises(OSError, match="No space left") as raised:
        await store.check_writable(T0)
    assert fault_of(raised.value).kind == "storage-full"


async def test_a_checkpoint_the_store_could_not_keep_is_signed_again(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signer forgets a checkpoint that failed to save, so the next call saves it."""
    signer = _signer()
    ledger = NodeLedger(store, signer, lambda: T0)
    await ledger.load()
    await store.append_ledger(_events(3))
    first = await ledger.checkpoint()
    await store.append_ledger(_events(2, start=3))
    disk = FullDisk(store, monkeypatch)
    disk.fill()
    with pytest.raises(sqlite3.OperationalError):
        await ledger.checkpoint()
    disk.free()
    note = await ledger.checkpoint()
    assert note != first
    saved = await store.checkpoints()
    assert [size for size, _ in saved] == [3, 5]
    assert open_checkpoint(saved[-1][1], [signer.verifier], signer.verifier.name).size == 5


async def test_a_changed_event_is_refused_even_if_the_log_did_not_grow(
    store: SqliteStore,
) -> None:
    """Loaded from a store whose event changed, the ledger refuses to checkpoint at once."""
    signer = _signer()
    ledger = NodeLedger(store, signer, lambda: T0)
    await ledger.load()
    await store.append_ledger(_events(4))
    await ledger.checkpoint()

    def change(db: sqlite3.Connection) -> None:
        [(event,)] = db.execute("SELECT event FROM ledger WHERE idx = 1").fetchall()
        stored = decode_event(bytes(event))
        forged = encode_event(replace(stored, time=stored.time + 1))
        db.execute("UPDATE ledger SET event = ? WHERE idx = 1", (forged,))

    await store._tx(change)
    reloaded = NodeLedger(store, signer, lambda: T0)
    await reloaded.load()
    with pytest.raises(InconsistentCheckpointError):
        await reloaded.checkpoint()
    # And once it has grown, too (the consistency proof fails).
    await store.append_ledger(_events(1, start=4))
    with pytest.raises(InconsistentCheckpointError):
        await reloaded.checkpoint()
    assert [size for size, _ in await store.checkpoints()] == [4]
