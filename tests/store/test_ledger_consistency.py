"""Consistency bundles from the stored tree: random sizes verify; refusals name the size at fault.

The node's ledger over a real store (each engine of tests/store_engines.py) signs checkpoints
at random sizes; every bundle it gives between a random old size and a stored checkpoint
must verify from the reference log's root of the old size, and not from another root.
"""

from __future__ import annotations

import random

import pytest

from exchange.keys.keypairs import SigningKey
from exchange.keys.notes import NoteSigner
from exchange.ledger import MerkleLog
from exchange.ledger.consistency_bundle import read_consistency_bundle, verify_consistency_bundle
from exchange.ledger.errors import InconsistentCheckpointError, ProofError
from exchange.ledger.log import log_of
from exchange.service.ledger import ConsistencyRequestError, NodeLedger
from exchange.store import SqliteStore
from tests.ledger.helpers import make_events

from .conftest import T0

EVENTS = make_events(300)
SIGNER = NoteSigner("exchange.test.invalid/school", SigningKey(bytes([7]) * 32))


async def _ledger_with_checkpoints(store: SqliteStore, rng: random.Random) -> list[int]:
    """Append the events in random batches, signing a checkpoint after each; return the sizes."""
    ledger = NodeLedger(store, SIGNER, lambda: T0)
    await ledger.load()
    sizes, done = [], 0
    while done < len(EVENTS):
        step = rng.randint(1, 60)
        await store.append_ledger(EVENTS[done : done + step])
        done = min(len(EVENTS), done + step)
        await ledger.checkpoint()
        sizes.append(done)
    return sizes


def _verify(bundle: bytes, log: MerkleLog, old: int) -> int:
    _, checkpoint = verify_consistency_bundle(
        bundle, [SIGNER.verifier], SIGNER.verifier.name, log.root(old), old
    )
    return checkpoint.size


@pytest.mark.parametrize("seed", [1, 2])
async def test_bundles_from_the_stored_tree_verify_for_random_sizes(
    store: SqliteStore, seed: int
) -> None:
    """For random M <= N (N a stored checkpoint), the bundle verifies from M's root only."""
    rng = random.Random(seed)
    sizes = await _ledger_with_checkpoints(store, rng)
    log = log_of(EVENTS)
    reader = NodeLedger(store, SIGNER, lambda: T0)
    assert _verify(await reader.consistency_bundle(1), log, 1) == len(EVENTS)
    for _ in range(25):
        new = rng.choice(sizes)
        old = rng.randint(1, new)
        bundle = await reader.consistency_bundle(old, new)
        assert _verify(bundle, log, old) == new
        assert read_consistency_bundle(bundle)[1] == log.consistency_proof(old, new)
        if old > 1:
            with pytest.raises(ProofError):
                verify_consistency_bundle(
                    bundle, [SIGNER.verifier], SIGNER.verifier.name, log.root(old - 1)
                )


async def test_sizes_the_ledger_cannot_prove_are_refused(store: SqliteStore) -> None:
    """No checkpoint, old size 0 or past the new one, a size with no checkpoint: one sentence."""
    ledger = NodeLedger(store, SIGNER, lambda: T0)
    with pytest.raises(ConsistencyRequestError, match="no signed checkpoint yet"):
        await ledger.consistency_bundle(1)
    await store.append_ledger(EVENTS[:5])
    await ledger.checkpoint()
    await store.append_ledger(EVENTS[5:9])
    await ledger.checkpoint()
    for old, new, message in [
        (0, None, "from 1 to the new size \\(9\\), not 0"),
        (6, 5, "from 1 to the new size \\(5\\), not 6"),
        (1, 7, "no checkpoint of size 7"),
        (1, 10, "larger than the last checkpoint's size 9"),
    ]:
        with pytest.raises(ConsistencyRequestError, match=message):
            await ledger.consistency_bundle(old, new)
    assert read_consistency_bundle(await ledger.consistency_bundle(5, 5))[1] == []


async def test_a_changed_stored_tree_gives_no_bundle(store: SqliteStore) -> None:
    """A stored subtree on the proof's path that was changed is refused, never handed out."""
    ledger = NodeLedger(store, SIGNER, lambda: T0)
    await store.append_ledger(EVENTS[:8])
    await ledger.checkpoint()
    await store._tx(
        lambda db: db.execute("UPDATE ledger SET leaf_hash = ? WHERE idx = 2", (bytes(32),))
    )
    with pytest.raises(InconsistentCheckpointError, match="does not verify"):
        await ledger.consistency_bundle(3, 8)
