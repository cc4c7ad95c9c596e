"""Merkle hashing, the frontier, proof generation and proof verification (RFC 9162 §2.1)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.ledger import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    list_range_hasher,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger.helpers import make_log

MAX_SIZE = 300
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE + 1)]


def reference_root(hashes: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 §2.1.1 writes it, recursively."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


ROOTS = [reference_root(LEAVES[:n]) for n in range(MAX_SIZE + 1)]


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(2, MAX_SIZE))
    return draw(st.integers(1, new - 1)), new


def flip(proof: list[bytes], position: int, bit: int) -> list[bytes]:
    """Return ``proof`` with one bit of its ``position``-th byte (over all hashes) flipped."""
    flat = bytearray(b"".join(proof))
    flat[position % len(flat)] ^= 1 << bit
    return [bytes(flat[i : i + 32]) for i in range(0, len(flat), 32)]


def test_hash_prefixes() -> None:
    """Leaves are hashed with the prefix 0x00 and nodes with 0x01 (RFC 9162 §2.1.1)."""
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


def test_frontier_root_equals_full_tree_root_for_every_size() -> None:
    """Appending leaf by leaf, the frontier's root equals MTH of all leaves, sizes 0 to 300."""
    frontier = Frontier()
    for n in range(MAX_SIZE + 1):
        assert frontier.size == n
        assert frontier.root() == ROOTS[n]
        assert len(frontier.hashes) == n.bit_count()
        if n < MAX_SIZE:
            frontier.append(LEAVES[n])


def test_root_hash_matches_reference() -> None:
    """root_hash of a list equals the recursive definition of MTH for every size."""
    for n in range(MAX_SIZE + 1):
        assert root_hash(LEAVES[:n]) == ROOTS[n]


def test_frontier_restores_from_its_hashes() -> None:
    """A frontier rebuilt from (size, hashes) continues exactly like the original."""
    frontier = Frontier()
    for leaf in LEAVES[:77]:
        frontier.append(leaf)
    restored = Frontier.from_hashes(frontier.size, frontier.hashes)
    copy = frontier.copy()
    for leaf in LEAVES[77:100]:
        restored.append(leaf)
        copy.append(leaf)
    assert restored.root() == copy.root() == ROOTS[100]
    assert frontier.root() == ROOTS[77]


def test_frontier_refuses_wrong_state() -> None:
    """Restoring needs one 32-byte hash per set bit of the size; a leaf must be 32 bytes."""
    with pytest.raises(ValueError, match="hashes must hold 2"):
        Frontier.from_hashes(5, [LEAVES[0]])
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier.from_hashes(1, [b"short"])
    with pytest.raises(ValueError, match="leaf must be 32 bytes"):
        Frontier().append(b"data, not a hash")


def test_store_style_proofs_match_list_proofs() -> None:
    """Proofs from cached subtree hashes equal proofs from the plain list, for every size."""
    log = make_log(70)
    leaves = [log.leaf_hash(i) for i in range(70)]
    for n in range(1, 71):
        for i in range(n):
            assert log.inclusion_proof(i, n) == inclusion_proof(leaves, i, n)
        for m in range(1, n + 1):
            assert log.consistency_proof(m, n) == consistency_proof(leaves, m, n)


@settings(max_examples=300)
@given(size_and_index())
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    """An inclusion proof generated for any leaf of any tree verifies against its root."""
    size, index = case
    proof = inclusion_proof(LEAVES, index, size)
    verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@settings(max_examples=300)
@given(two_sizes())
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    """A consistency proof generated between any two sizes verifies against both roots."""
    old, new = case
    proof = consistency_proof(LEAVES, old, new)
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@settings(max_examples=300)
@given(size_and_index(), st.integers(0, 10_000), st.integers(0, 7))
def test_inclusion_proof_with_a_flipped_bit_fails(
    case: tuple[int, int], position: int, bit: int
) -> None:
    """Flipping any bit of an inclusion proof makes it fail."""
    size, index = case
    proof = inclusion_proof(LEAVES, index, size)
    if not proof:
        return
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[index], index, size, flip(proof, position, bit), ROOTS[size])


@settings(max_examples=300)
@given(two_sizes(), st.integers(0, 10_000), st.integers(0, 7))
def test_consistency_proof_with_a_flipped_bit_fails(
    case: tuple[int, int], position: int, bit: int
) -> None:
    """Flipping any bit of a consistency proof makes it fail."""
    old, new = case
    proof = consistency_proof(LEAVES, old, new)
    with pytest.raises(ProofError):
        verify_consistency(old, new, ROOTS[old], ROOTS[new], flip(proof, position, bit))


@settings(max_examples=300)
@given(size_and_index(), st.integers(0, MAX_SIZE - 1), st.integers(1, MAX_SIZE))
def test_inclusion_proof_fails_for_another_index_or_size(
    case: tuple[int, int], other_index: int, other_size: int
) -> None:
    """An inclusion proof fails at another index, or for another size and that size's root."""
    size, index = case
    proof = inclusion_proof(LEAVES, index, size)
    if other_index != index:
        with pytest.raises(ProofError):
            verify_inclusion(LEAVES[index], other_index, size, proof, ROOTS[size])
    if other_size != size:
        with pytest.raises(ProofError):
            verify_inclusion(LEAVES[index], index, other_size, proof, ROOTS[other_size])


@settings(max_examples=300)
@given(size_and_index(), st.integers(0, 31), st.integers(0, 7))
def test_inclusion_proof_fails_for_another_root_or_leaf(
    case: tuple[int, int], position: int, bit: int
) -> None:
    """An inclusion proof fails if one bit of the root or of the leaf hash changes."""
    size, index = case
    proof = inclusion_proof(LEAVES, index, size)
    changed = bytearray(ROOTS[size])
    changed[position] ^= 1 << bit
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[index], index, size, proof, bytes(changed))
    leaf = bytearray(LEAVES[index])
    leaf[position] ^= 1 << bit
    with pytest.raises(ProofError):
        verify_inclusion(bytes(leaf), index, size, proof, ROOTS[size])


@settings(max_examples=300)
@given(two_sizes(), st.integers(1, MAX_SIZE), st.integers(1, MAX_SIZE))
def test_consistency_proof_fails_for_other_sizes(
    case: tuple[int, int], other_old: int, other_new: int
) -> None:
    """A consistency proof fails for another old or new size (with that size's root)."""
    old, new = case
    proof = consistency_proof(LEAVES, old, new)
    if other_old != old:
        with pytest.raises(ProofError):
            verify_consistency(other_old, new, ROOTS[other_old], ROOTS[new], proof)
    if other_new != new:
        with pytest.raises(ProofError):
            verify_consistency(old, other_new, ROOTS[old], ROOTS[other_new], proof)


@settings(max_examples=300)
@given(two_sizes(), st.booleans(), st.integers(0, 31), st.integers(0, 7))
def test_consistency_proof_fails_for_another_root(
    case: tuple[int, int], change_old: bool, position: int, bit: int
) -> None:
    """A consistency proof fails if one bit of either root changes."""
    old, new = case
    proof = consistency_proof(LEAVES, old, new)
    roots = [bytearray(ROOTS[old]), bytearray(ROOTS[new])]
    roots[0 if change_old else 1][position] ^= 1 << bit
    with pytest.raises(ProofError):
        verify_consistency(old, new, bytes(roots[0]), bytes(roots[1]), proof)


@given(size_and_index(), st.integers(0, 1))
def test_truncated_or_extended_inclusion_proof_fails(case: tuple[int, int], extend: int) -> None:
    """Removing the last hash of an inclusion proof, or adding one, makes it fail."""
    size, index = case
    proof = inclusion_proof(LEAVES, index, size)
    changed = [*proof, LEAVES[0]] if extend or not proof else proof[:-1]
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[index], index, size, changed, ROOTS[size])


def test_proof_errors_are_sentences() -> None:
    """A failing verification says what was wrong, with the index and size."""
    proof = inclusion_proof(LEAVES, 3, 10)
    with pytest.raises(ProofError, match=r"leaf 3 of 10 does not lead to the root hash"):
        verify_inclusion(LEAVES[4], 3, 10, proof, ROOTS[10])
    with pytest.raises(ProofError, match="hash 0 of the inclusion proof is 3 bytes"):
        verify_inclusion(LEAVES[3], 3, 10, [b"abc", *proof[1:]], ROOTS[10])
    with pytest.raises(ProofError, match="leaf index 10 is not inside a tree of 10"):
        verify_inclusion(LEAVES[3], 10, 10, proof, ROOTS[10])


def test_empty_tree_consistency_rules() -> None:
    """Two empty trees are consistent; no proof exists from the empty tree to a larger one."""
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    with pytest.raises(ValueError, match="old_size"):
        consistency_proof(LEAVES, 0, 5)
    assert consistency_proof(LEAVES, 5, 5) == []


def test_generator_misuse_raises_value_error() -> None:
    """Asking for a proof outside the tree is a ValueError naming the argument."""
    with pytest.raises(ValueError, match="index 5 is not a leaf"):
        inclusion_proof(LEAVES, 5, 5)
    with pytest.raises(ValueError, match="size 400 is larger"):
        inclusion_proof(LEAVES, 0, 400)
    with pytest.raises(ValueError, match="old_size 6 is larger"):
        consistency_proof(LEAVES, 6, 5)
    with pytest.raises(TypeError, match="sequence of hashes"):
        verify_inclusion(LEAVES[0], 0, 1, b"", ROOTS[1])  # type: ignore[arg-type]


def test_generators_ask_only_for_tree_nodes() -> None:
    """The range hasher is asked only for complete subtrees or ranges ending at the size."""
    asked: list[tuple[int, int]] = []
    base = list_range_hasher(LEAVES)

    def recording(start: int, end: int) -> bytes:
        asked.append((start, end))
        return base(start, end)

    for size in range(1, 80):
        for i in range(size):
            inclusion_proof_from(recording, i, size)
        for old in range(1, size):
            consistency_proof_from(recording, old, size)
        for start, end in asked:
            width = end - start
            complete = width & (width - 1) == 0 and start % width == 0
            assert complete or end == size, (start, end, size)
        asked.clear()
