"""The ledger's Merkle tree as the SQLite store keeps it, against the in-memory reference.

Appends in many transactions of random sizes (some committed together by one group commit)
must store exactly the reference's complete subtrees, and give the reference's roots and
proofs; a transaction that fails leaves no event, subtree or size behind; migration 22 builds
the tree of a log stored before it; and the node's ledger refuses a store whose tree or
events were changed, and takes up checkpoints another process signed.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from exchange.keys.keypairs import SigningKey
from exchange.keys.notes import NoteSigner
from exchange.ledger import MerkleLog
from exchange.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from exchange.ledger.errors import (
    CheckpointError,
    InconsistentCheckpointError,
    LogVerificationError,
    StoredTreeError,
)
from exchange.ledger.log import log_of, verify_stored_tree
from exchange.ledger.merkle import consistency_proof_from, inclusion_proof_from, leaf_hash
from exchange.ledger.subtrees import (
    consistency_keys,
    inclusion_keys,
    root_keys,
    stored_range_hasher,
)
from exchange.service.ledger import NodeLedger
from exchange.store import SqliteStore, ledger_tree
from exchange.store.ledger_tree import append_ledger
from exchange.store.schema import MIGRATIONS, run_migration
from exchange.store.sql import Db, connect_sqlite
from tests.ledger.helpers import make_events

from .conftest import T0

#: The migration that stores the tree (the lead may renumber it on merge: found by its step).
TREE_MIGRATION = next(
    number
    for number, steps in enumerate(MIGRATIONS, start=1)
    if ledger_tree.backfill_ledger_tree in steps
)
EVENTS = make_events(800)


def _signer(label: int = 7) -> NoteSigner:
    return NoteSigner("exchange.test.invalid/school", SigningKey(bytes([label]) * 32))


async def _reference(store: SqliteStore) -> MerkleLog:
    """Return the reference log of the events as the store ordered them."""
    return log_of(await store.ledger_events(0, await store.ledger_size()))


async def _check_against(store: SqliteStore, log: MerkleLog, rng: random.Random) -> None:
    """Compare the stored tree, and roots and proofs at random sizes, with ``log``."""
    head, stored = await store.ledger_stored_tree()
    verify_stored_tree(log, head, stored)
    for _ in range(20):
        new = rng.randint(1, log.size)
        old = rng.randint(1, new)
        index = rng.randrange(new)
        keys = inclusion_keys(index, new) + consistency_keys(old, new)
        range_hash = stored_range_hasher(await store.ledger_subtrees(keys))
        assert inclusion_proof_from(range_hash, index, new) == log.inclusion_proof(index, new)
        assert consistency_proof_from(range_hash, old, new) == log.consistency_proof(old, new)
        root_hash = stored_range_hasher(await store.ledger_subtrees(root_keys(new)))
        assert root_hash(0, new) == log.root(new)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_appends_in_many_transactions_store_the_reference_tree(
    store: SqliteStore, seed: int
) -> None:
    """Random batch sizes, empty ones and concurrent ones: the tree is always the reference's."""
    rng = random.Random(seed)
    position = 0
    while position < len(EVENTS):
        together = [rng.randint(0, 40) for _ in range(rng.choice([1, 1, 3]))]
        batches = []
        for count in together:
            batches.append(EVENTS[position : position + count])
            position += count
        sizes = await asyncio.gather(*(store.append_ledger(batch) for batch in batches))
        assert max(sizes) == min(position, len(EVENTS))
    log = await _reference(store)
    assert sorted(await store.ledger_events(0, log.size)) == sorted(EVENTS)
    await _check_against(store, log, rng)


async def test_a_failed_transaction_leaves_no_event_subtree_or_size_behind(
    store: SqliteStore,
) -> None:
    """An append whose transaction fails is undone whole, even beside one that commits."""
    await store.append_ledger(EVENTS[:5])
    before = await store.ledger_stored_tree()

    def failing(db: Db) -> None:
        append_ledger(db, EVENTS[5:12])
        raise RuntimeError("the change the events record was refused")

    with pytest.raises(RuntimeError):
        await store._tx(failing)
    assert await store.ledger_stored_tree() == before
    # In one group commit: the failing write's savepoint is undone, the other one kept.
    outcomes = await asyncio.gather(
        store._tx(failing), store.append_ledger(EVENTS[12:15]), return_exceptions=True
    )
    assert isinstance(outcomes[0], RuntimeError)
    assert outcomes[1] == 8
    log = await _reference(store)
    assert await store.ledger_events(0, 8) == EVENTS[:5] + EVENTS[12:15]
    await _check_against(store, log, random.Random(4))


def _old_store(folder: Path, count: int) -> None:
    """Make a node database as the release before the stored tree left it, with a log."""
    folder.mkdir(parents=True)
    (folder / "bodies").mkdir()
    db = connect_sqlite(str(folder / "node.sqlite3"), isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, steps in enumerate(MIGRATIONS[: TREE_MIGRATION - 1], start=1):
        run_migration(db, steps)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    # The rows the earlier append wrote: the event and its leaf hash, nothing more.
    db.executemany(
        "INSERT INTO ledger (idx, event, leaf_hash) VALUES (?, ?, ?)",
        [(i, e, leaf_hash(e)) for i, e in enumerate(EVENTS[:count])],
    )
    db.close()


@pytest.mark.parametrize("count", [0, 1, 300])
async def test_the_migration_builds_the_tree_of_an_existing_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """Opening an older store writes the head and every subtree; appends then carry on."""
    monkeypatch.setattr(ledger_tree, "BACKFILL_CHUNK", 64)
    _old_store(tmp_path / "node", count)
    store = await SqliteStore.open(tmp_path / "node", upgrade_backups=tmp_path / "backups")
    try:
        assert await store.ledger_size() == count
        log = await _reference(store)
        head, stored = await store.ledger_stored_tree()
        verify_stored_tree(log, head, stored)
        assert await store.append_ledger(EVENTS[count : count + 77]) == count + 77
        log = await _reference(store)
        await _check_against(store, log, random.Random(count))
        ledger = NodeLedger(store, _signer(), lambda: T0)
        await ledger.load()
        note = await ledger.checkpoint()
        checkpoint = open_checkpoint(note, [_signer().verifier], _signer().verifier.name)
        assert (checkpoint.size, checkpoint.root) == (log.size, log.root())
    finally:
        await store.close()


async def test_the_migration_refuses_a_log_with_a_missing_index(tmp_path: Path) -> None:
    """A log whose indexes have a gap is not given a tree: the upgrade stops, unchanged."""
    _old_store(tmp_path / "node", 10)
    db = sqlite3.connect(tmp_path / "node" / "node.sqlite3")
    db.execute("DELETE FROM ledger WHERE idx = 4")
    db.commit()
    db.close()
    with pytest.raises(StoredTreeError, match="not numbered 0 to 8"):
        await SqliteStore.open(tmp_path / "node", upgrade_backups=tmp_path / "backups")
    db = sqlite3.connect(tmp_path / "node" / "node.sqlite3")
    [(version,)] = db.execute("SELECT MAX(version) FROM schema_version").fetchall()
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert version == TREE_MIGRATION - 1
    assert "ledger_nodes" not in tables


async def _checkpointed(store: SqliteStore, count: int) -> NodeLedger:
    ledger = NodeLedger(store, _signer(), lambda: T0)
    await ledger.load()
    await store.append_ledger(EVENTS[:count])
    await ledger.checkpoint()
    return ledger


@pytest.mark.parametrize(
    ("change", "proven"),
    [
        ("UPDATE ledger_nodes SET hash = ? WHERE level = 2 AND idx = 0", 4),
        ("DELETE FROM ledger_nodes WHERE level = 1 AND idx = 2", 0),
        ("UPDATE ledger SET leaf_hash = ? WHERE idx = 6", 4),
    ],
)
async def test_a_changed_stored_tree_is_refused(
    store: SqliteStore, change: str, proven: int
) -> None:
    """A subtree or leaf hash changed or removed: no checkpoint, no bundle, the audit says so.

    ``proven`` is an event whose proof under the checkpoint of 7 needs the changed hash.
    """
    await _checkpointed(store, 7)
    await store._tx(lambda db: db.execute(change, (bytes(32),) if "?" in change else ()))
    reloaded = NodeLedger(store, _signer(), lambda: T0)
    await reloaded.load()
    with pytest.raises(InconsistentCheckpointError, match="stored"):
        await reloaded.checkpoint()
    with pytest.raises(InconsistentCheckpointError, match="stored Merkle tree does not verify"):
        await reloaded.bundle_at(proven, EVENTS[proven])
    head, stored = await store.ledger_stored_tree()
    with pytest.raises(LogVerificationError, match="stored"):
        verify_stored_tree(await _reference(store), head, stored)
    assert [size for size, _ in await store.checkpoints()] == [7]


async def test_the_audit_refuses_a_wrong_head_and_a_subtree_past_the_log(
    store: SqliteStore,
) -> None:
    """The head must count the events; no subtree may lie beyond them."""
    await store.append_ledger(EVENTS[:6])
    log = await _reference(store)
    head, stored = await store.ledger_stored_tree()
    with pytest.raises(LogVerificationError, match="head records 7 events but 6"):
        verify_stored_tree(log, head + 1, stored)
    with pytest.raises(LogVerificationError, match="level 1, index 3, past the 6 events"):
        verify_stored_tree(log, head, [*stored, (1, 3, bytes(32))])


async def test_processes_sharing_the_store_take_up_each_others_checkpoints(
    store: SqliteStore,
) -> None:
    """A second ledger on the same store resumes from the first's checkpoint, and back."""
    first = NodeLedger(store, _signer(), lambda: T0)
    second = NodeLedger(store, _signer(), lambda: T0 + 1)
    await first.load()
    await second.load()
    await store.append_ledger(EVENTS[:4])
    four = await first.checkpoint()
    # The second signed nothing yet: it takes up the first's checkpoint before signing.
    assert await second.checkpoint() == four
    await store.append_ledger(EVENTS[4:6])
    six = await second.checkpoint()
    assert await first.checkpoint() == six
    assert [size for size, _ in await store.checkpoints()] == [4, 6]
    bundles = await first.bundles_for([])
    assert bundles == []
    assert await first.bundle_at(5, EVENTS[5]) is not None


async def test_a_stored_checkpoint_of_another_key_is_not_taken_up(store: SqliteStore) -> None:
    """A checkpoint row signed by another key (a forged row) is refused, not trusted."""
    await _checkpointed(store, 3)
    await store.append_ledger(EVENTS[3:5])
    log = await _reference(store)
    forged = sign_checkpoint(Checkpoint(_signer().verifier.name, 5, log.root()), _signer(9))
    await store.save_checkpoint(5, forged, T0)
    ledger = NodeLedger(store, _signer(), lambda: T0)
    with pytest.raises(CheckpointError, match="no signature on the note is from a trusted key"):
        await ledger.load()


async def test_a_stored_checkpoint_that_forks_the_log_is_not_taken_up(
    store: SqliteStore,
) -> None:
    """A newer stored checkpoint with this key but another history is inconsistent: refused."""
    ledger = await _checkpointed(store, 3)
    await store.append_ledger(EVENTS[3:5])
    fork = sign_checkpoint(Checkpoint(_signer().verifier.name, 5, bytes(32)), _signer())
    await store.save_checkpoint(5, fork, T0)
    with pytest.raises(InconsistentCheckpointError, match="not consistent"):
        await ledger.checkpoint()
