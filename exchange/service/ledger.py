"""The node's ledger: the events it records, its signed checkpoints and its proof bundles.

This module is the one place the node builds ledger events, checkpoints and bundles.
:func:`ledger_event` encodes a statement from an :class:`~exchange.ledger.events.EventType`
member; use cases hand the encoded events to the store, which appends them inside the same
transaction as the change that causes them, so an event is never recorded without its
change or the other way round. :class:`NodeLedger` keeps an in-memory Merkle mirror of the
stored log, signs a checkpoint whenever the log has grown, with the time taken from the
injected clock (the :class:`~exchange.ledger.CheckpointSigner` refuses one inconsistent with
the last it signed, and the last is read back from the store at start-up), and builds
offline-verifiable proof bundles for events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Final

from exchange.keys.ids import OrgId
from exchange.keys.notes import NoteSigner
from exchange.ledger.bundle import make_bundle
from exchange.ledger.checkpoint import CheckpointSigner, open_checkpoint
from exchange.ledger.errors import InconsistentCheckpointError
from exchange.ledger.events import EventType, LedgerEvent, encode_event
from exchange.ledger.log import MerkleLog
from exchange.ledger.merkle import leaf_hash
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
    """Checkpoints and proofs over the events in the store.

    ``clock`` returns the current unix time; it stamps each stored checkpoint and is the
    same clock the node service runs on.
    """

    def __init__(self, store: Store, signer: NoteSigner, clock: Callable[[], float]) -> None:
        self.store = store
        self.note_signer = signer
        self.clock = clock
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
        """Sign and store a checkpoint of everything logged so far; return its note.

        Raise :class:`~exchange.ledger.errors.InconsistentCheckpointError` when the log no
        longer matches the last checkpoint signed (a stored event was changed or removed),
        whether or not it grew since. A checkpoint the store fails to keep (a full disk) is
        forgotten, never published, so the next call signs it again.
        """
        async with self._lock:
            await self._catch_up()
            last = self.signer.last
            if last is not None and last.size == self.log.size and self.last_note is not None:
                if self.log.root(last.size) != last.root:
                    raise InconsistentCheckpointError(
                        f"the stored log of {last.size} events no longer matches the last "
                        "checkpoint signed"
                    )
                return self.last_note
            checkpoint, note = self.signer.sign_tree(self.log.range_hash, self.log.size)
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
        last = self.signer.last
        note = self.last_note
        if last is None or note is None or index >= last.size:
            return None
        proof = self.log.inclusion_proof(index, last.size)
        return make_bundle(event, index, proof, note)

    async def bundles_for(self, digests: Collection[EnvelopeDigest]) -> list[bytes]:
        """Return the bundles of every checkpointed event naming one of ``digests``.

        The bundles are in log order and proven under the last signed checkpoint; none is
        signed here, so an auditor reading a stopped node's data changes nothing.
        """
        found: list[tuple[int, bytes]] = []
        for digest in set(digests):
            found += await self.store.ledger_events_for(digest)
        bundles = []
        for index, event in sorted(found):
            bundle = await self.bundle_at(index, event)
            if bundle is not None:
                bundles.append(bundle)
        return bundles
