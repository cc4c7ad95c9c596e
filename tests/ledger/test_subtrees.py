"""The stored-subtree arithmetic against the in-memory reference log, for random sizes.

Every root and proof computed from only the subtrees :mod:`exchange.ledger.subtrees` says
are needed must equal :class:`MerkleLog`'s, and the subtrees an append writes must be
exactly the complete subtrees the reference holds, however the leaves are batched.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.ledger import MerkleLog, StoredTreeError
from exchange.ledger.merkle import (
    EMPTY_ROOT,
    SubtreeKey,
    consistency_proof_from,
    inclusion_proof_from,
    leaf_hash,
)
from exchange.ledger.subtrees import (
    append_keys,
    completed_subtrees,
    consistency_keys,
    frontier_keys,
    inclusion_keys,
    root_keys,
    stored_range_hasher,
)
from tests.ledger.helpers import make_log

#: One reference log, long enough for every size the properties draw.
LOG = make_log(12 * 70)  # the most the batches below can append


def _stored(keys: list[SubtreeKey], log: MerkleLog = LOG) -> dict[SubtreeKey, bytes]:
    """Return the reference hashes of exactly ``keys``, as a store would read them."""
    return {key: log.subtree_hash(*key) for key in keys}


def _limit(size: int) -> int:
    """Return a bound on the subtrees one proof of a tree of ``size`` leaves reads."""
    return 2 * max(1, size.bit_length()) ** 2


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 700))
def test_a_root_from_the_stored_subtrees_is_the_reference_root(size: int) -> None:
    """The root of any size folds only its frontier subtrees, one per set bit of the size."""
    keys = root_keys(size)
    assert len(keys) == size.bit_count()
    root = stored_range_hasher(_stored(keys))(0, size) if size else EMPTY_ROOT
    assert root == LOG.root(size)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_an_inclusion_proof_from_the_stored_subtrees_is_the_reference_proof(
    data: st.DataObject,
) -> None:
    """PATH(index, size) from the needed subtrees only equals the reference, in O(log² n)."""
    size = data.draw(st.integers(1, 700))
    index = data.draw(st.integers(0, size - 1))
    keys = inclusion_keys(index, size)
    assert len(keys) <= _limit(size)
    proof = inclusion_proof_from(stored_range_hasher(_stored(keys)), index, size)
    assert proof == LOG.inclusion_proof(index, size)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_consistency_proof_from_the_stored_subtrees_is_the_reference_proof(
    data: st.DataObject,
) -> None:
    """PROOF(old, new) from the needed subtrees only equals the reference."""
    new = data.draw(st.integers(1, 700))
    old = data.draw(st.integers(1, new))
    keys = consistency_keys(old, new)
    assert len(keys) <= _limit(new)
    proof = consistency_proof_from(stored_range_hasher(_stored(keys)), old, new)
    assert proof == LOG.consistency_proof(old, new)


def test_no_consistency_subtrees_are_needed_from_the_empty_tree_or_between_equal_sizes() -> None:
    """Every tree extends the empty tree, and equal sizes need an empty proof."""
    assert consistency_keys(0, 9) == []
    assert consistency_keys(9, 9) == []


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.integers(1, 70), min_size=1, max_size=12))
def test_appends_in_batches_write_exactly_the_reference_subtrees(batches: list[int]) -> None:
    """Whatever the batch sizes, the subtrees written are the reference's complete subtrees."""
    stored: dict[SubtreeKey, bytes] = {}
    start = 0
    for count in batches:
        leaves = [LOG.leaf_hash(i) for i in range(start, start + count)]
        needed = append_keys(start, count)
        # An append reads only part of the frontier before it, already stored.
        assert set(needed) <= set(frontier_keys(start))
        frontier = {key: stored[key] for key in needed}
        stored.update({(0, start + i): leaf for i, leaf in enumerate(leaves)})
        for level, index, value in completed_subtrees(start, frontier, leaves):
            assert (level, index) not in stored
            stored[(level, index)] = value
        start += count
    expected = {
        (level, index): LOG.subtree_hash(level, index)
        for level in range(start.bit_length())
        for index in range(start >> level)
    }
    assert stored == expected


def test_an_append_of_one_leaf_to_an_even_log_reads_nothing() -> None:
    """A leaf after a complete pair merges with nothing yet: no read at all."""
    assert append_keys(6, 1) == []
    assert append_keys(7, 1) == [(2, 0), (1, 2), (0, 6)]


def test_a_missing_or_malformed_stored_subtree_is_a_stored_tree_error() -> None:
    """A store that lost a row, or holds a short hash, is named, not silently used."""
    keys = root_keys(6)
    hashes = _stored(keys)
    del hashes[keys[-1]]
    with pytest.raises(StoredTreeError, match="no hash for level 1, index 2"):
        stored_range_hasher(hashes)(0, 6)
    short = _stored(keys) | {keys[0]: b"short"}
    with pytest.raises(StoredTreeError, match="5 bytes, not 32"):
        stored_range_hasher(short)(0, 6)
    with pytest.raises(StoredTreeError, match="no hash for level 2, index 0"):
        completed_subtrees(7, {}, [leaf_hash(b"x")])
