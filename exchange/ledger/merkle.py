"""RFC 9162 Merkle tree hashing, proof generation and proof verification (pure functions).

The ledger is a Merkle Tree Hash (RFC 9162 §2.1.1) over SHA-256 with the leaf prefix 0x00 and
the node prefix 0x01, the same tree as Certificate Transparency and every C2SP transparency
log, so any RFC 9162 tool can check our proofs. This module knows nothing about events: it
hashes leaves, keeps the O(log n) :class:`Frontier` a node holds in memory, generates
inclusion and consistency proofs (RFC 9162 §2.1.3.1 and §2.1.4.1) from a *range hasher* (a
callable the store backs with cached subtree hashes), and verifies proofs with the exact
algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2. Verifiers raise :class:`ProofError` with a
plain sentence; they never return ``False``.

Complexity, for a tree of ``n`` leaves:

- :func:`root_hash` of a list: O(n) hashes, O(log n) memory.
- :meth:`Frontier.append`: amortised O(1), worst case O(log n) hashes;
  :meth:`Frontier.root`: O(log n) hashes.
- :func:`inclusion_proof_from` / :func:`consistency_proof_from`: O(log n) calls to the range
  hasher. With :func:`subtree_range_hasher` over cached complete subtrees each call costs
  O(log n) lookups, so a proof costs O(log² n) lookups and hashes; with
  :func:`list_range_hasher` over a plain list the calls touch disjoint ranges, so a proof
  costs O(n) hashes.
- :func:`verify_inclusion` / :func:`verify_consistency`: O(log n) hashes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Final

from exchange.ledger.errors import ProofError

#: SHA-256 output length: every leaf hash, node hash and root is this long.
HASH_LEN: Final = 32

#: Domain separation between leaves and interior nodes (RFC 9162 §2.1.1): without it a node
#: hash could be passed off as a leaf hash (a second-preimage attack on the tree).
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"

#: MTH({}) = SHA-256() (RFC 9162 §2.1.1): the root of the empty tree.
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

#: Largest tree size the ledger handles: 2**63 - 1 fits SQLite's signed 64-bit INTEGER, in
#: which the store keeps sizes and indexes. It also bounds every proof at 63 hashes.
MAX_TREE_SIZE: Final = (1 << 63) - 1

#: Longest proof that can be valid for a tree of at most MAX_TREE_SIZE leaves (one hash per
#: level, plus the prepended old root in a consistency proof, RFC 9162 §2.1.4.2 step 2).
MAX_PROOF_LEN: Final = 64

#: ``range_hash(start, end)`` returns MTH(D[start:end]) for ``0 <= start < end``. Proof
#: generators only ask it for *nodes* of the tree being proved: complete subtrees (``end -
#: start`` a power of two and ``start`` a multiple of it) or the last, incomplete subtree of a
#: level, which ends at the tree size.
RangeHasher = Callable[[int, int], bytes]

#: ``subtree_hash(level, index)`` returns the hash of the complete subtree of ``2**level``
#: leaves that starts at leaf ``index * 2**level``. Such hashes never change once the tree has
#: grown past them, so a store can cache them forever (the addressing of C2SP tlog-tiles).
SubtreeHasher = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash SHA-256(0x00 || data) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash SHA-256(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """Return k, the largest power of two smaller than ``n`` (``n >= 2``; RFC 9162 §2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(name: str, value: int) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``value`` is a tree size or index."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ValueError(f"{name} must be between 0 and {MAX_TREE_SIZE}")


def _check_hash(name: str, value: bytes) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``value`` is a 32-byte hash."""
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes")
    if len(value) != HASH_LEN:
        raise ValueError(f"{name} must be {HASH_LEN} bytes, not {len(value)}")


class Frontier:
    """The right edge of a Merkle tree: the roots of its maximal complete subtrees.

    A tree of ``n`` leaves is the concatenation of one complete subtree per set bit of ``n``,
    largest first (a *compact range* starting at leaf 0). Keeping only those ``popcount(n)``
    hashes is enough to append a leaf and compute the root, so a node holds this in memory and
    the store holds the leaves. :meth:`from_hashes` restores it from the store.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> Frontier:
        """Rebuild a frontier from its size and subtree roots (as :attr:`hashes` gave them)."""
        _check_size("size", size)
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"hashes must hold {size.bit_count()} subtree roots for a tree of {size} leaves"
            )
        for position, value in enumerate(hashes):
            _check_hash(f"hashes[{position}]", value)
        frontier = cls()
        frontier._size = size
        frontier._hashes = [bytes(value) for value in hashes]
        return frontier

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree roots, largest (leftmost) subtree first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash (not the leaf data: pass ``leaf_hash(data)``)."""
        _check_hash("leaf", leaf)
        if self._size >= MAX_TREE_SIZE:
            raise ValueError(f"the tree cannot grow beyond {MAX_TREE_SIZE} leaves")
        # Each trailing 1 bit of the size is a complete subtree of the same height as the
        # running hash; merging them is binary addition with carries.
        value, carry = leaf, self._size
        while carry & 1:
            value = node_hash(self._hashes.pop(), value)
            carry >>= 1
        self._hashes.append(value)
        self._size += 1

    def root(self) -> bytes:
        """Return MTH of the leaves appended so far (RFC 9162 §2.1.1)."""
        if not self._hashes:
            return EMPTY_ROOT
        # MTH splits at the largest power of two, so the root folds the subtrees from the
        # right: node(s0, node(s1, node(s2, ...))).
        return fold_right(self._hashes)

    def copy(self) -> Frontier:
        """Return an independent copy (to compute a tentative root without committing)."""
        return Frontier.from_hashes(self._size, self._hashes)

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()[:16]}…)"


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH of a list of leaf hashes (RFC 9162 §2.1.1) in O(n) time, O(log n) memory."""
    frontier = Frontier()
    for leaf in leaf_hashes:
        frontier.append(leaf)
    return frontier.root()


def list_range_hasher(leaf_hashes: Sequence[bytes]) -> RangeHasher:
    """Return a range hasher over an in-memory list of leaf hashes (O(end - start) per call)."""

    def range_hash(start: int, end: int) -> bytes:
        if not 0 <= start < end <= len(leaf_hashes):
            raise ValueError(f"the range [{start}, {end}) is outside the {len(leaf_hashes)} leaves")
        return root_hash(leaf_hashes[start:end])

    return range_hash


#: ``(level, index)``: the complete subtree of ``2**level`` leaves that starts at leaf
#: ``index * 2**level`` (the address :data:`SubtreeHasher` takes).
SubtreeKey = tuple[int, int]


def range_subtrees(start: int, end: int) -> list[SubtreeKey]:
    """Return the complete subtrees whose right fold is MTH(D[start:end]), largest first.

    A node of a tree ``[start, end)`` whose length is not a power of two is the right fold
    of the complete subtrees given by the set bits of ``end - start`` (largest first),
    because MTH splits at the largest power of two (RFC 9162 §2.1.1): at most 63 subtrees.
    ``range_subtrees(0, size)`` is the tree's frontier.
    """
    if not 0 <= start < end:
        raise ValueError(f"the range [{start}, {end}) is empty or negative")
    keys: list[SubtreeKey] = []
    position, remaining = start, end - start
    while remaining:
        level = remaining.bit_length() - 1
        width = 1 << level
        if position % width:
            raise ValueError(f"the range [{start}, {end}) is not a node of any tree")
        keys.append((level, position >> level))
        position += width
        remaining -= width
    return keys


def fold_right(parts: Sequence[bytes]) -> bytes:
    """Return node(p0, node(p1, ... node(p[-2], p[-1]))): the root of adjacent subtrees."""
    value = parts[-1]
    for left in reversed(parts[:-1]):
        value = node_hash(left, value)
    return value


def subtree_range_hasher(subtree_hash: SubtreeHasher) -> RangeHasher:
    """Return a range hasher built on a provider of complete-subtree hashes.

    Each call folds the subtrees :func:`range_subtrees` names: at most 63 lookups.
    """

    def range_hash(start: int, end: int) -> bytes:
        return fold_right([subtree_hash(*key) for key in range_subtrees(start, end)])

    return range_hash


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the ranges ``[start, end)`` whose hashes make PATH(index, D[size]), leaf side first.

    RFC 9162 §2.1.3.1: each range is the sibling of a subtree on the way down to the leaf.
    """
    _check_size("size", size)
    _check_size("index", index)
    if index >= size:
        raise ValueError(f"index {index} is not a leaf of a tree of {size} leaves")
    # Walk from the root down to the leaf, collecting the sibling of each subtree entered;
    # RFC 9162 lists them from the leaf up, hence the reversal.
    ranges: list[tuple[int, int]] = []
    low, high = 0, size
    while high - low > 1:
        k = _split(high - low)
        if index < low + k:
            ranges.append((low + k, high))
            high = low + k
        else:
            ranges.append((low, low + k))
            low += k
    ranges.reverse()
    return ranges


def inclusion_proof_from(range_hash: RangeHasher, index: int, size: int) -> list[bytes]:
    """Return the inclusion proof PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf side first."""
    return [range_hash(start, end) for start, end in inclusion_ranges(index, size)]


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Return the ranges whose hashes make PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1).

    There are none when the sizes are equal. RFC 9162 defines no proof from the empty tree
    (every tree extends it), so ``old_size == 0 < new_size`` is a ``ValueError``.
    """
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if old_size > new_size:
        raise ValueError(f"old_size {old_size} is larger than new_size {new_size}")
    if old_size == new_size:
        return []
    if old_size == 0:
        raise ValueError("old_size: no consistency proof exists from the empty tree")
    # SUBPROOF(m, D[low:high], complete), unrolled: ``old_size`` is the absolute end of the
    # old tree and ``complete`` is SUBPROOF's flag b, true while the current subtree is a
    # prefix of the old tree's left edge (so the verifier already knows its hash).
    ranges: list[tuple[int, int]] = []
    low, high, complete = 0, new_size, True
    while old_size != high:
        k = _split(high - low)
        if old_size <= low + k:
            ranges.append((low + k, high))
            high = low + k
        else:
            ranges.append((low, low + k))
            low += k
            complete = False
    if not complete:
        ranges.append((low, high))
    ranges.reverse()
    return ranges


def consistency_proof_from(range_hash: RangeHasher, old_size: int, new_size: int) -> list[bytes]:
    """Return the consistency proof PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1).

    The proof is empty when the sizes are equal; see :func:`consistency_ranges`.
    """
    return [range_hash(start, end) for start, end in consistency_ranges(old_size, new_size)]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """Return PATH(index, D[size]) over the first ``size`` of ``leaf_hashes`` (O(size) hashes)."""
    _check_size("size", size)
    if size > len(leaf_hashes):
        raise ValueError(f"size {size} is larger than the {len(leaf_hashes)} leaves given")
    return inclusion_proof_from(list_range_hasher(leaf_hashes[:size]), index, size)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Return PROOF(old_size, D[new_size]) over ``leaf_hashes`` (O(new_size) hashes)."""
    _check_size("new_size", new_size)
    if new_size > len(leaf_hashes):
        raise ValueError(f"new_size {new_size} is larger than the {len(leaf_hashes)} leaves given")
    return consistency_proof_from(list_range_hasher(leaf_hashes[:new_size]), old_size, new_size)


def _proof_hashes(proof: Sequence[bytes], what: str) -> list[bytes]:
    """Return ``proof`` as a list, raising :class:`ProofError` if any element is malformed."""
    given: object = proof  # typed as a Sequence, but a lone bytes value is a likely slip
    if isinstance(given, bytes | str):
        raise TypeError(f"the {what} proof must be a sequence of hashes, not one bytes value")
    hashes = list(proof)
    if len(hashes) > MAX_PROOF_LEN:
        raise ProofError(
            f"the {what} proof has {len(hashes)} hashes; no valid proof has more "
            f"than {MAX_PROOF_LEN}"
        )
    for position, value in enumerate(hashes):
        if not isinstance(value, bytes):
            raise TypeError(f"element {position} of the {what} proof must be bytes")
        if len(value) != HASH_LEN:
            raise ProofError(
                f"hash {position} of the {what} proof is {len(value)} bytes, not {HASH_LEN}"
            )
    return hashes


def _check_proof_int(name: str, value: int) -> None:
    """Raise ``TypeError`` for a non-int and :class:`ProofError` for an impossible value."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(f"the {name} {value} is outside 0 to {MAX_TREE_SIZE}")


def _same(a: bytes, b: bytes) -> bool:
    """Compare hashes in constant time (cheap, and no timing question to answer)."""
    return hmac.compare_digest(a, b)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``leaf`` at ``index`` under ``root``.

    ``leaf`` is the leaf *hash*; this is the algorithm of RFC 9162 §2.1.3.2, step by step.
    """
    if not isinstance(leaf, bytes) or not isinstance(root, bytes):
        raise TypeError("the leaf hash and the root must be bytes")
    _check_proof_int("leaf index", index)
    _check_proof_int("tree size", size)
    path = _proof_hashes(proof, "inclusion")
    if len(leaf) != HASH_LEN:
        raise ProofError(f"the leaf hash is {len(leaf)} bytes, not {HASH_LEN}")
    # Step 1: the leaf must lie inside the tree.
    if index >= size:
        raise ProofError(f"leaf index {index} is not inside a tree of {size} leaves")
    # Steps 2-4: fn is the leaf's position and sn the last position at the current level.
    fn, sn = index, size - 1
    value = leaf
    for sibling in path:
        # Step 4a: the proof is longer than the path from this leaf to the root.
        if sn == 0:
            raise ProofError(
                f"the inclusion proof for leaf {index} of {size} has {len(path)} hashes, "
                "more than the path to the root"
            )
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            # Step 4b.ii: a rightmost node with no right sibling is promoted unchanged
            # (RFC 9162 §2.1.1), so skip the levels where it has none.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            value = node_hash(value, sibling)
        fn >>= 1
        sn >>= 1
    # Step 5: the proof must reach the root level exactly, and land on the root hash.
    if sn != 0:
        raise ProofError(
            f"the inclusion proof for leaf {index} of {size} has {len(path)} hashes, "
            "fewer than the path to the root"
        )
    if not _same(value, root):
        raise ProofError(
            f"the inclusion proof for leaf {index} of {size} does not lead to the root hash"
        )


def _check_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: list[bytes]
) -> bool:
    """Check the cases RFC 9162 §2.1.4.2 presupposes away; return True if one applied.

    Raise :class:`ProofError` if sizes shrink, a size-0 root is not the empty-tree hash, the
    old tree is empty while the new one is not (no proof exists from the empty tree), or equal
    sizes come with a non-empty proof or different roots.
    """
    if old_size > new_size:
        raise ProofError(f"the old tree size {old_size} is larger than the new size {new_size}")
    if old_size == 0:
        if not _same(old_root, EMPTY_ROOT):
            raise ProofError("the old tree has size 0 but its root is not the empty-tree hash")
        if new_size != 0:
            raise ProofError(
                "no consistency proof exists from the empty tree (RFC 9162 §2.1.4): every tree "
                "extends it, so there is nothing to verify"
            )
        if not _same(new_root, EMPTY_ROOT):
            raise ProofError("the new tree has size 0 but its root is not the empty-tree hash")
    if old_size == new_size:
        if path:
            raise ProofError(
                f"the consistency proof between two trees of size {old_size} must be empty"
            )
        if not _same(old_root, new_root):
            raise ProofError(f"two trees of size {old_size} have different roots")
        return True
    return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`ProofError` unless the tree ``new_root`` extends the tree ``old_root``.

    This is RFC 9162 §2.1.4.2, with its preconditions made explicit: equal sizes need an empty
    proof and equal roots; a size-0 tree must have the empty root, and no proof *from* the
    empty tree exists (every tree extends it: callers skip the check, as
    :class:`~exchange.ledger.checkpoint.CheckpointSigner` does).
    """
    if not isinstance(old_root, bytes) or not isinstance(new_root, bytes):
        raise TypeError("the old and new roots must be bytes")
    _check_proof_int("old tree size", old_size)
    _check_proof_int("new tree size", new_size)
    path = _proof_hashes(proof, "consistency")
    if _check_trivial_consistency(old_size, new_size, old_root, new_root, path):
        return
    # Step 1.
    if not path:
        raise ProofError(
            f"the consistency proof from size {old_size} to {new_size} is empty, but a tree "
            "that grew needs at least one hash"
        )
    # Step 2: when the old tree is a complete subtree its root is the first node of the path.
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    # Steps 3-4: skip the levels where the old tree's last node is a right child.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5: fr rebuilds the old root, sr the new root.
    fr = sr = path[0]
    # Step 6.
    for node in path[1:]:
        if sn == 0:
            raise ProofError(
                f"the consistency proof from size {old_size} to {new_size} has too many hashes"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(node, fr)
            sr = node_hash(node, sr)
            # Step 6b.ii, as in verify_inclusion.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, node)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise ProofError(
            f"the consistency proof from size {old_size} to {new_size} has too few hashes"
        )
    mismatch = [
        name
        for name, got, want in (("old", fr, old_root), ("new", sr, new_root))
        if not _same(got, want)
    ]
    if mismatch:
        raise ProofError(
            f"the consistency proof from size {old_size} to {new_size} does not lead to the "
            f"{' and '.join(mismatch)} root"
        )
