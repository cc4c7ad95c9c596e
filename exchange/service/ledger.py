"""The node's ledger: the events it records, its signed checkpoints and its proof bundles.

This module is the one place the node builds ledger events, checkpoints and bundles.
:func:`ledger_event` encodes a statement from an :class:`~exchange.ledger.events.EventType`
member; use cases hand the encoded events to the store, which appends them inside the same
transaction as the change that causes them, so an event is never recorded without its
change or the other way round, with the hashes of the Merkle subtrees they complete.
:class:`NodeLedger` reads roots and proofs from those stored hashes (it keeps nothing of the
log in memory), signs a checkpoint whenever the log has grown, with the time taken from the
injected clock (the :class:`~exchange.ledger.CheckpointSigner` refuses one inconsistent with
the last it signed, and the last is read back from the store at start-up and whenever
another process stored a newer one), and builds offline-verifiable proof bundles for events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Iterator
from typing import Final

from exchange.keys.ids import OrgId
from exchange.keys.notes import NoteSigner
from exchange.ledger.bundle import make_bundle
from exchange.ledger.checkpoint import CheckpointSigner, open_checkpoint
from exchange.ledger.consistency_bundle import make_consistency_bundle
from exchange.ledger.errors import InconsistentCheckpointError, ProofError, StoredTreeError
from exchange.ledger.events import EventType, LedgerEvent, encode_event
from exchange.ledger.merkle import (
    EMPTY_ROOT,
    MAX_TREE_SIZE,
    Frontier,
    consistency_proof_from,
    inclusion_proof_from,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from exchange.ledger.subtrees import (
    consistency_keys,
    inclusion_keys,
    root_keys,
    stored_range_hasher,
)
from exchange.model import EnvelopeDigest, EventHash, ReceiptDigest
from exchange.receipts import ReceiptStatus
from exchange.store import Store

#: The event a node records when it issues or accepts a receipt of each status.
RECEIPT_EVENTS: Final[dict[ReceiptStatus, EventType]] = {
    ReceiptStatus.DELIVERED: EventType.DELIVERED,
    ReceiptStatus.OPENED: EventType.OPENED,
    ReceiptStatus.ACKNOWLEDGED: EventType.ACKNOWLEDGED,
    ReceiptStatus.REJECTED: EventType.REJECTED,
}


class ConsistencyRequestError(ValueError):
    """A consistency bundle was asked for between sizes the ledger cannot prove; one sentence."""


#: Statements read at a time when a process hashes the stored events (its first checkpoint).
EVENT_CHUNK: Final = 4096


def ledger_event(
    kind: EventType,
    at: int,
    org: OrgId,
    digest: EnvelopeDigest,
    *,
    counterparty: OrgId | None = None,
    receipt: ReceiptDigest | None = None,
    reason: str | None = None,
) -> bytes:
    """Return the encoded event ``kind`` that ``org`` records at ``at`` about envelope ``digest``.

    ``receipt`` is the digest of the receipt the event is about, if any; ``reason`` a short
    code, never free text. A ``kind`` that is not an :class:`EventType` member is a
    ``TypeError``, so no event type is ever spelled as a string.
    """
    return encode_event(
        LedgerEvent(
            type=kind,
            time=at,
            org=org,
            envelope_digest=digest,
            counterparty=counterparty,
            receipt_digest=receipt,
            reason=reason,
        )
    )


def event_hash(event: bytes) -> EventHash:
    """Return the hash by which the log knows ``event``: its RFC 9162 leaf hash."""
    return EventHash(leaf_hash(event))


class NodeLedger:
    """Checkpoints and proofs over the events and the Merkle tree in the store.

    It holds the last checkpoint and O(log n) hashes, never the log: every root and proof
    is computed from the subtree hashes the store keeps (:mod:`exchange.ledger.subtrees`),
    so several processes can share one ledger, each resuming from the checkpoint the
    others last stored. ``clock`` returns the current unix time; it stamps each stored
    checkpoint and is the same clock the node service runs on.
    """

    def __init__(self, store: Store, signer: NoteSigner, clock: Callable[[], float]) -> None:
        self.store = store
        self.note_signer = signer
        self.clock = clock
        self.signer = CheckpointSigner(signer)
        self.last_note: bytes | None = None
        # The events this process has hashed from their statements, as a frontier: O(log n).
        self._hashed = Frontier()
        self._lock = asyncio.Lock()

    @property
    def origin(self) -> str:
        """The log's origin line (the checkpoint key's name)."""
        return self.signer.origin

    async def load(self) -> None:
        """Resume from the last checkpoint signed (as stored); nothing else is read."""
        async with self._lock:
            await self._adopt()

    async def _adopt(self) -> None:
        """Take up the stored checkpoint if it is newer than ours (another process signed it).

        It must be signed by this log's key and consistent with the last checkpoint this
        process knows, by a proof from the stored tree, or the signer would contradict it.
        """
        saved = await self.store.last_checkpoint()
        last = self.signer.last
        if saved is None or (last is not None and saved[0] <= last.size):
            return
        note = saved[1]
        checkpoint = open_checkpoint(note, [self.note_signer.verifier], self.origin)
        if last is not None:
            hashes = await self.store.ledger_subtrees(consistency_keys(last.size, checkpoint.size))
            with _stored_tree():
                proof = consistency_proof_from(
                    stored_range_hasher(hashes), last.size, checkpoint.size
                )
            self.signer.check(checkpoint, proof)
        self.signer = CheckpointSigner(self.note_signer, checkpoint)
        self.last_note = note

    async def _check_events(self, size: int, root: bytes) -> None:
        """Raise unless the statements stored hash to ``root``, the stored tree's root.

        Each process hashes every statement once (on its first checkpoint) and then only
        those appended since, keeping only a frontier: a statement changed in the store,
        below what this process has hashed, is found here; the stored tree is checked
        against the checkpoints by :meth:`checkpoint`.
        """
        hashed = self._hashed.copy()
        if size < hashed.size:
            raise InconsistentCheckpointError(
                f"the stored log has {size} events, fewer than the {hashed.size} already read"
            )
        for start in range(hashed.size, size, EVENT_CHUNK):
            for event in await self.store.ledger_events(start, min(size, start + EVENT_CHUNK)):
                hashed.append(leaf_hash(event))
        if hashed.size != size or hashed.root() != root:
            raise InconsistentCheckpointError(
                f"the stored events no longer match the stored Merkle tree of {size} events"
            )
        self._hashed = hashed

    async def checkpoint(self) -> bytes:
        """Sign and store a checkpoint of everything logged so far; return its note.

        Raise :class:`~exchange.ledger.errors.InconsistentCheckpointError` when the log no
        longer matches the last checkpoint signed (a stored event, leaf hash or subtree hash
        was changed or removed), whether or not it grew since. A checkpoint the store fails
        to keep (a full disk) is forgotten, never published, so the next call signs it again.
        """
        async with self._lock:
            await self._adopt()
            size = await self.store.ledger_size()
            last = self.signer.last
            keys = root_keys(size)
            if last is not None and last.size <= size:
                keys += consistency_keys(last.size, size)
            range_hash = stored_range_hasher(await self.store.ledger_subtrees(keys))
            with _stored_tree():
                root = range_hash(0, size) if size else EMPTY_ROOT
            await self._check_events(size, root)
            if last is not None and last.size == size and self.last_note is not None:
                if root != last.root:
                    raise InconsistentCheckpointError(
                        f"the stored log of {last.size} events no longer matches the last "
                        "checkpoint signed"
                    )
                return self.last_note
            with _stored_tree():
                checkpoint, note = self.signer.sign_tree(range_hash, size)
            try:
                await self.store.save_checkpoint(checkpoint.size, note, self.clock())
            except BaseException:
                self.signer = CheckpointSigner(self.note_signer, last)
                raise
            self.last_note = note
            return note

    async def bundle_for(self, event: bytes) -> bytes | None:
        """Return a proof bundle for ``event`` under a fresh checkpoint, or None if absent."""
        await self.checkpoint()
        index = await self.store.ledger_index_of(event_hash(event))
        return None if index is None else await self.bundle_at(index, event)

    async def bundle_at(self, index: int, event: bytes) -> bytes | None:
        """Return the proof bundle of the event at ``index`` under the last checkpoint."""
        found = await self._bundles([(index, event)])
        return found[0] if found else None

    async def _bundles(self, events: Collection[tuple[int, bytes]]) -> list[bytes]:
        """Return the bundles of the ``(index, event)`` under the last checkpoint, in order.

        Events the checkpoint does not cover are left out. The subtrees of every proof are
        read at once, and each proof is checked against the signed root before it is
        handed out, so a changed stored hash or statement is refused, never exported.
        """
        last = self.signer.last
        note = self.last_note
        if last is None or note is None:
            return []
        covered = sorted((i, e) for i, e in events if 0 <= i < last.size)
        keys = {key for index, _ in covered for key in inclusion_keys(index, last.size)}
        range_hash = stored_range_hasher(await self.store.ledger_subtrees(keys))
        bundles = []
        for index, event in covered:
            with _stored_tree():
                proof = inclusion_proof_from(range_hash, index, last.size)
                verify_inclusion(leaf_hash(event), index, last.size, proof, last.root)
            bundles.append(make_bundle(event, index, proof, note))
        return bundles

    async def bundles_for(self, digests: Collection[EnvelopeDigest]) -> list[bytes]:
        """Return the bundles of every checkpointed event naming one of ``digests``.

        The bundles are in log order and proven under the last checkpoint stored; none is
        signed here, so an auditor reading a stopped node's data changes nothing.
        """
        async with self._lock:
            await self._adopt()
        found: list[tuple[int, bytes]] = []
        for digest in set(digests):
            found += await self.store.ledger_events_for(digest)
        return await self._bundles(found)

    async def consistency_bundle(self, old_size: int, new_size: int | None = None) -> bytes:
        """Return the bundle proving the stored checkpoint of ``new_size`` extends ``old_size``.

        ``new_size`` must be the size of a checkpoint the node stored (the last if None): a
        bundle never signs one. ``old_size`` must be from 1 to ``new_size``. The proof is
        read from the stored tree and checked against the stored root of ``old_size`` and
        the signed root before it is handed out; a refusal is a
        :class:`ConsistencyRequestError`.
        """
        async with self._lock:
            await self._adopt()
        last = self.signer.last
        if last is None:
            raise ConsistencyRequestError("the ledger has no signed checkpoint yet")
        size = last.size if new_size is None else new_size
        if not 0 < old_size <= size < MAX_TREE_SIZE:
            raise ConsistencyRequestError(
                f"the old size must be from 1 to the new size ({size}), not {old_size}"
            )
        if size > last.size:
            raise ConsistencyRequestError(
                f"the new size {size} is larger than the last checkpoint's size {last.size}"
            )
        note = self.last_note if size == last.size else await self.store.checkpoint_of_size(size)
        if note is None:
            raise ConsistencyRequestError(f"the node signed no checkpoint of size {size}")
        checkpoint = open_checkpoint(note, [self.note_signer.verifier], self.origin)
        keys = root_keys(old_size) + consistency_keys(old_size, size)
        range_hash = stored_range_hasher(await self.store.ledger_subtrees(keys))
        with _stored_tree():
            proof = consistency_proof_from(range_hash, old_size, size)
            old_root = range_hash(0, old_size)
            verify_consistency(old_size, size, old_root, checkpoint.root, proof)
        return make_consistency_bundle(old_size, proof, note)


@contextlib.contextmanager
def _stored_tree() -> Iterator[None]:
    """Report a missing stored hash, or a proof that fails, as the ledger not verifying."""
    try:
        yield
    except (StoredTreeError, ProofError) as exc:
        raise InconsistentCheckpointError(f"the stored Merkle tree does not verify: {exc}") from exc
