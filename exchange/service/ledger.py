"""The node's view of its ledger: a Merkle mirror, signed checkpoints and proof bundles.

Events are appended by the store inside the transactions that cause them; this class
catches its mirror up from the store, signs a checkpoint whenever the log has grown (the
:class:`~exchange.ledger.CheckpointSigner` refuses one inconsistent with the last it signed,
and the last is read back from the store at start-up), and builds offline-verifiable proof
bundles for events.
"""

from __future__ import annotations

import asyncio
import time

from exchange.keys.notes import NoteSigner
from exchange.ledger.bundle import make_bundle
from exchange.ledger.checkpoint import CheckpointSigner, open_checkpoint
from exchange.ledger.log import MerkleLog
from exchange.ledger.merkle import leaf_hash
from exchange.store import Store


class NodeLedger:
    """Checkpoints and proofs over the events in the store."""

    def __init__(self, store: Store, signer: NoteSigner) -> None:
        self.store = store
        self.note_signer = signer
        self.signer = CheckpointSigner(signer)
        self.log = MerkleLog()
        self.last_note: bytes | None = None
        self._lock = asyncio.Lock()

    @property
    def origin(self) -> str:
        """The log's origin line (the checkpoint key's name)."""
        return self.signer.origin

    async def load(self) -> None:
        """Rebuild the mirror from the store and resume from the last signed checkpoint."""
        saved = await self.store.checkpoints()
        if saved:
            _, note = saved[-1]
            last = open_checkpoint(note, [self.note_signer.verifier], self.origin)
            self.signer = CheckpointSigner(self.note_signer, last)
            self.last_note = note
        await self._catch_up()

    async def _catch_up(self) -> None:
        size = await self.store.ledger_size()
        if size > self.log.size:
            for event in await self.store.ledger_events(self.log.size, size):
                self.log.append(event)

    async def checkpoint(self) -> bytes:
        """Sign and store a checkpoint of everything logged so far; return its note."""
        async with self._lock:
            await self._catch_up()
            last = self.signer.last
            if last is not None and last.size == self.log.size and self.last_note is not None:
                return self.last_note
            checkpoint, note = self.signer.sign_tree(self.log.range_hash, self.log.size)
            await self.store.save_checkpoint(checkpoint.size, note, time.time())
            self.last_note = note
            return note

    async def bundle_for(self, event: bytes) -> bytes | None:
        """Return a proof bundle for ``event`` under a fresh checkpoint, or None if absent."""
        await self.checkpoint()
        index = await self.store.ledger_index_of(leaf_hash(event))
        return None if index is None else await self.bundle_at(index, event)

    async def bundle_at(self, index: int, event: bytes) -> bytes | None:
        """Return the proof bundle of the event at ``index`` under the last checkpoint."""
        last = self.signer.last
        note = self.last_note
        if last is None or note is None or index >= last.size:
            return None
        proof = self.log.inclusion_proof(index, last.size)
        return make_bundle(event, index, proof, note)
