"""The in-memory reference ledger and the whole-log audit.

:class:`MerkleLog` keeps every event statement and every complete-subtree hash in lists, and
answers roots and proofs for any size it has reached. Tests use it directly, and the
persistent store must give the same roots and proofs for the same events: it is the
reference implementation of docs/ledger.md. :func:`verify_log` is the auditor's check of a
store's rows: it recomputes the tree from the events and checks every signed checkpoint
against it, so a changed, removed, inserted or reordered row, or a forged or inconsistent
checkpoint, is reported with the first checkpoint at fault. :func:`verify_stored_tree`
checks the store's own Merkle tree (its head and subtree hashes, from which the node
computes roots and proofs) against the tree recomputed from the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from exchange.keys.notes import NoteVerifier
from exchange.ledger.checkpoint import Checkpoint, open_checkpoint
from exchange.ledger.errors import LedgerError, LogVerificationError, ProofError
from exchange.ledger.events import decode_event
from exchange.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    SubtreeKey,
    consistency_proof_from,
    inclusion_proof_from,
    leaf_hash,
    node_hash,
    subtree_range_hasher,
    verify_consistency,
)
from exchange.ledger.subtrees import StoredSubtree


class MerkleLog:
    """An append-only list of event statements with its RFC 9162 Merkle tree.

    ``_levels[h][i]`` is the hash of the complete subtree of ``2**h`` leaves starting at leaf
    ``i * 2**h``; level 0 holds the leaf hashes. Appending costs amortised O(1) hashes and a
    root or proof O(log² n) (see :mod:`exchange.ledger.merkle`); memory is about 2n hashes.
    """

    __slots__ = ("_events", "_levels")

    def __init__(self) -> None:
        self._events: list[bytes] = []
        self._levels: list[list[bytes]] = [[]]

    def __len__(self) -> int:
        return len(self._events)

    @property
    def size(self) -> int:
        """The number of events appended."""
        return len(self._events)

    def append(self, event: bytes) -> int:
        """Append an encoded event statement and return its index (refusing a malformed one)."""
        decode_event(event)
        index = len(self._events)
        self._events.append(bytes(event))
        value = leaf_hash(event)
        level, position = 0, index
        self._levels[0].append(value)
        # Each time a level gains a right child, the parent subtree is complete.
        while position & 1:
            value = node_hash(self._levels[level][position - 1], value)
            level += 1
            position >>= 1
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(value)
        return index

    def event(self, index: int) -> bytes:
        """Return the statement at ``index``."""
        return self._events[index]

    def leaf_hash(self, index: int) -> bytes:
        """Return the leaf hash at ``index``."""
        return self._levels[0][index]

    def subtree_hash(self, level: int, index: int) -> bytes:
        """Return the hash of a complete subtree (a :data:`~merkle.SubtreeHasher`)."""
        if not 0 <= level < len(self._levels) or not 0 <= index < len(self._levels[level]):
            raise ValueError(f"no complete subtree at level {level}, index {index}")
        return self._levels[level][index]

    def range_hash(self, start: int, end: int) -> bytes:
        """Return MTH of the leaves ``[start, end)`` when that range is a node of some tree."""
        if end > self.size:
            raise ValueError(f"the range ends at {end}, past the {self.size} events")
        return subtree_range_hasher(self.subtree_hash)(start, end)

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"size must be between 0 and {self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Return the root at ``size`` (default: the current size)."""
        size = self._size_arg(size)
        return self.range_hash(0, size) if size else EMPTY_ROOT

    def frontier(self, size: int | None = None) -> Frontier:
        """Return the frontier at ``size``: what a node restarts with after loading the store."""
        size = self._size_arg(size)
        hashes: list[bytes] = []
        start = 0
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                hashes.append(self._levels[level][start >> level])
                start += 1 << level
        return Frontier.from_hashes(size, hashes)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        return inclusion_proof_from(self.range_hash, index, self._size_arg(size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the consistency proof from ``old_size`` to ``new_size`` (empty if equal)."""
        return consistency_proof_from(self.range_hash, old_size, self._size_arg(new_size))


def log_of(events: Sequence[bytes]) -> MerkleLog:
    """Return the reference log of ``events``; raise :class:`LogVerificationError` if one is bad.

    The error names the first event that is not a valid statement.
    """
    log = MerkleLog()
    for index, event in enumerate(events):
        try:
            log.append(event)
        except LedgerError as exc:
            raise LogVerificationError(
                f"event {index} is not a valid statement: {exc}", rows=range(index, index + 1)
            ) from exc
    return log


def verify_stored_tree(log: MerkleLog, head: int, stored: Iterable[StoredSubtree]) -> None:
    """Audit a store's Merkle tree: its head and every subtree hash, against ``log``.

    ``log`` is the tree recomputed from the stored events (:func:`log_of`), ``head`` the
    size the store records and ``stored`` its ``(level, index, hash)`` rows, leaves (level
    0) included. The store must hold exactly the complete subtrees of ``log``, each with the
    hash recomputed. Raise :class:`LogVerificationError` naming the first subtree at fault
    and the events it covers.
    """
    if head != log.size:
        raise LogVerificationError(
            f"the ledger's head records {head} events but {log.size} are stored"
        )
    found: dict[SubtreeKey, bytes] = {}
    for level, index, value in stored:
        width = 1 << level
        rows = range(index * width, (index + 1) * width)
        if rows.stop > log.size:
            raise LogVerificationError(
                f"the stored tree has a hash at level {level}, index {index}, past the "
                f"{log.size} events",
                rows=rows,
            )
        if value != log.subtree_hash(level, index):
            raise LogVerificationError(
                f"the stored hash at level {level}, index {index} does not match events "
                f"{rows.start} to {rows.stop - 1}",
                rows=rows,
            )
        found[(level, index)] = value
    for level in range(log.size.bit_length()):
        for index in range(log.size >> level):
            if (level, index) not in found:
                width = 1 << level
                raise LogVerificationError(
                    f"the stored tree has no hash at level {level}, index {index}",
                    rows=range(index * width, (index + 1) * width),
                )


def verify_log(
    events: Sequence[bytes],
    checkpoints: Sequence[bytes],
    verifiers: Sequence[NoteVerifier],
    origin: str,
) -> Checkpoint | None:
    """Audit a log: every event parses and every checkpoint is signed, ordered and correct.

    ``checkpoints`` are the signed notes in the order the node signed them. Each must be
    signed by one of ``verifiers`` for ``origin``, no smaller than the one before, cover no
    more events than there are, have the root recomputed from the events, and be consistent
    with its predecessor. Return the last checkpoint (``None`` if there are none); events
    after it are not yet attested by any signature. Raise :class:`LogVerificationError`
    naming the first checkpoint at fault and the rows the fault lies in.
    """
    log = log_of(events)
    previous: Checkpoint | None = None
    for position, note in enumerate(checkpoints):
        try:
            checkpoint = open_checkpoint(note, verifiers, origin)
        except LedgerError as exc:
            raise LogVerificationError(
                f"checkpoint {position} is not a trusted checkpoint of {origin}: {exc}",
                checkpoint_index=position,
            ) from exc
        attested = previous.size if previous is not None else 0
        if previous is not None and checkpoint.size < previous.size:
            raise LogVerificationError(
                f"checkpoint {position} has size {checkpoint.size}, smaller than checkpoint "
                f"{position - 1} (size {previous.size}): the node signed a shrinking log",
                checkpoint_index=position,
            )
        if checkpoint.size > log.size:
            raise LogVerificationError(
                f"checkpoint {position} covers {checkpoint.size} events but the log holds "
                f"{log.size}: events from index {attested} on were removed or truncated",
                checkpoint_index=position,
                rows=range(attested, checkpoint.size),
            )
        if log.root(checkpoint.size) != checkpoint.root:
            raise LogVerificationError(
                f"checkpoint {position} (size {checkpoint.size}) does not match the events: "
                f"an event from index {attested} to {checkpoint.size - 1} was changed, removed, "
                "inserted or reordered",
                checkpoint_index=position,
                rows=range(attested, checkpoint.size),
            )
        if previous is not None and previous.size > 0:
            # Implied by both roots matching one list of events, but checked as a relying
            # party would, with a proof, so the audit fails loudly if that reasoning breaks.
            proof = log.consistency_proof(previous.size, checkpoint.size)
            try:
                verify_consistency(
                    previous.size, checkpoint.size, previous.root, checkpoint.root, proof
                )
            except ProofError as exc:  # pragma: no cover - unreachable when both roots match
                raise LogVerificationError(
                    f"checkpoint {position} is not consistent with checkpoint {position - 1}",
                    checkpoint_index=position,
                ) from exc
        previous = checkpoint
    return previous
