"""The tree as a store keeps it: the hash of every complete subtree, written once (pure).

A log of ``n`` leaves has, at each level ``l``, ``n >> l`` complete subtrees of ``2**l``
leaves; subtree ``(l, i)`` covers leaves ``i * 2**l`` to ``(i + 1) * 2**l - 1``. Its hash never
changes once written, since leaves are only appended, so a store can keep each one as a row
(level 0 is the leaf hash) and answer any root or proof from O(log n) of them, with nothing
held in memory between calls. This module is the arithmetic, without I/O:

- :func:`append_keys` and :func:`completed_subtrees`: the subtrees a batch of appended
  leaves completes, from the part of the log's frontier it merges (what the store reads and
  writes in the append's transaction);
- :func:`root_keys`, :func:`inclusion_keys`, :func:`consistency_keys`: which stored subtrees a
  root, an inclusion proof or a consistency proof needs (what the store reads);
- :func:`stored_range_hasher`: a :data:`~exchange.ledger.merkle.RangeHasher` over the hashes
  read, for :func:`~exchange.ledger.merkle.inclusion_proof_from`,
  :func:`~exchange.ledger.merkle.consistency_proof_from` and
  :meth:`~exchange.ledger.checkpoint.CheckpointSigner.sign_tree`.

Each key list has at most 63 subtrees per range, so about 63 × 63 in the worst case and
O(log n) for the ranges proofs ask for (each range's subtrees nest in the next one's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from exchange.ledger.errors import StoredTreeError
from exchange.ledger.merkle import (
    HASH_LEN,
    RangeHasher,
    SubtreeKey,
    consistency_ranges,
    inclusion_ranges,
    node_hash,
    range_subtrees,
    subtree_range_hasher,
)

#: A subtree with its hash: ``(level, index, hash)``.
StoredSubtree = tuple[int, int, bytes]


def frontier_keys(size: int) -> list[SubtreeKey]:
    """Return the maximal complete subtrees of a tree of ``size`` leaves, largest first."""
    return range_subtrees(0, size) if size else []


def append_keys(start: int, count: int) -> list[SubtreeKey]:
    """Return the subtrees an append of ``count`` leaves to ``start`` leaves reads.

    They are the frontier subtrees of the log before that the new leaves merge into larger
    ones (the smallest ones, on the right): amortised one per leaf appended.
    """
    kept = set(frontier_keys(start + count))
    return [key for key in frontier_keys(start) if key not in kept]


def completed_subtrees(
    start: int, frontier: Mapping[SubtreeKey, bytes], leaves: Sequence[bytes]
) -> list[StoredSubtree]:
    """Return the subtrees above the leaves (level 1 up) that appending ``leaves`` completes.

    ``start`` is the log's size before the append and ``frontier`` holds (at least) the hashes
    of :func:`append_keys` ``(start, len(leaves))``. The leaves themselves (level 0) are not
    returned: the caller has them.
    """
    # A stack of (level, hash), as in Frontier.append: a new leaf merges with every complete
    # subtree of the same height on top, and each merge is a newly complete subtree.
    stack = [
        (level, _hash_of(frontier, (level, index)))
        for level, index in append_keys(start, len(leaves))
    ]
    made: list[StoredSubtree] = []
    for offset, leaf in enumerate(leaves):
        index = start + offset
        level, value = 0, leaf
        while stack and stack[-1][0] == level:
            value = node_hash(stack.pop()[1], value)
            level += 1
            made.append((level, index >> level, value))
        stack.append((level, value))
    return made


def _keys_of(ranges: Iterable[tuple[int, int]]) -> list[SubtreeKey]:
    """Return the distinct subtrees the ranges fold, in a stable order."""
    return list(dict.fromkeys(key for start, end in ranges for key in range_subtrees(start, end)))


def root_keys(size: int) -> list[SubtreeKey]:
    """Return the subtrees the root of a tree of ``size`` leaves folds (none for size 0)."""
    return frontier_keys(size)


def inclusion_keys(index: int, size: int) -> list[SubtreeKey]:
    """Return the subtrees the inclusion proof of leaf ``index`` in ``size`` leaves needs."""
    return _keys_of(inclusion_ranges(index, size))


def consistency_keys(old_size: int, new_size: int) -> list[SubtreeKey]:
    """Return the subtrees the consistency proof from ``old_size`` to ``new_size`` needs.

    None when the sizes are equal or ``old_size`` is 0 (no proof exists from the empty tree).
    """
    return _keys_of(consistency_ranges(old_size, new_size)) if old_size else []


def stored_range_hasher(hashes: Mapping[SubtreeKey, bytes]) -> RangeHasher:
    """Return a range hasher over stored subtree hashes (as the store read them).

    Asking for a subtree that was not read, or that is not a hash, raises
    :class:`~exchange.ledger.errors.StoredTreeError`: the store lost or damaged a row.
    """

    def subtree_hash(level: int, index: int) -> bytes:
        return _hash_of(hashes, (level, index))

    return subtree_range_hasher(subtree_hash)


def _hash_of(hashes: Mapping[SubtreeKey, bytes], key: SubtreeKey) -> bytes:
    """Return the stored hash of ``key``, or raise :class:`StoredTreeError`."""
    value = hashes.get(key)
    level, index = key
    if value is None:
        raise StoredTreeError(f"the stored tree has no hash for level {level}, index {index}")
    if len(value) != HASH_LEN:
        raise StoredTreeError(
            f"the stored hash for level {level}, index {index} is {len(value)} bytes, "
            f"not {HASH_LEN}"
        )
    return bytes(value)
