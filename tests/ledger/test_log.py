"""The in-memory reference log and verify_log's detection of every kind of tampering."""

from __future__ import annotations

import hashlib

import pytest

from exchange.ledger import (
    Checkpoint,
    CheckpointSigner,
    EventFormatError,
    LogVerificationError,
    MerkleLog,
    consistency_proof,
    inclusion_proof,
    root_hash,
    sign_checkpoint,
    verify_log,
)
from tests.ledger.helpers import ORIGIN, make_events, make_log, node_signer

SIGNER = node_signer()
VERIFIERS = [SIGNER.verifier]
SIZES = (0, 4, 9, 16, 23)


def honest_log(n: int = 23) -> tuple[list[bytes], list[bytes]]:
    """Return ``n`` events and checkpoints signed (through the guard) at SIZES."""
    log = make_log(n)
    signer = CheckpointSigner(SIGNER)
    notes = [signer.sign_tree(log.range_hash, size)[1] for size in SIZES if size <= n]
    return make_events(n), notes


def test_log_agrees_with_list_functions() -> None:
    """MerkleLog's roots, frontiers and proofs equal those computed from the leaf list."""
    log = make_log(40)
    leaves = [log.leaf_hash(i) for i in range(40)]
    for n in range(41):
        assert log.root(n) == root_hash(leaves[:n])
        assert log.frontier(n).root() == log.root(n)
    assert log.inclusion_proof(17) == inclusion_proof(leaves, 17, 40)
    assert log.consistency_proof(13) == consistency_proof(leaves, 13, 40)


def test_append_refuses_a_malformed_event() -> None:
    """Only event statements enter the log."""
    log = MerkleLog()
    with pytest.raises(EventFormatError):
        log.append(b"free text about a child")
    assert log.size == 0


def test_out_of_range_sizes_are_value_errors() -> None:
    """Asking for a root beyond the log is a ValueError naming the size."""
    with pytest.raises(ValueError, match="size must be between 0 and 3"):
        make_log(3).root(4)


def test_honest_log_verifies() -> None:
    """An untouched log verifies, returning its last checkpoint."""
    events, notes = honest_log()
    last = verify_log(events, notes, VERIFIERS, ORIGIN)
    assert last == Checkpoint(ORIGIN, 23, make_log(23).root())
    assert verify_log(events, [], VERIFIERS, ORIGIN) is None


@pytest.mark.parametrize("row", [0, 3, 4, 15, 22])
def test_changed_event_is_detected(row: int) -> None:
    """A changed event is reported at the first checkpoint covering it, with its row range."""
    events, notes = honest_log()
    events[row] = make_events(30)[29]
    with pytest.raises(LogVerificationError) as caught:
        verify_log(events, notes, VERIFIERS, ORIGIN)
    assert row in (caught.value.rows or range(0))
    assert caught.value.checkpoint_index is not None
    assert f"checkpoint {caught.value.checkpoint_index} " in str(caught.value)


def test_removed_event_is_detected() -> None:
    """Deleting a row is detected, whether in the middle or at the end."""
    for row in (5, 22):
        events, notes = honest_log()
        del events[row]
        with pytest.raises(LogVerificationError) as caught:
            verify_log(events, notes, VERIFIERS, ORIGIN)
        assert row in (caught.value.rows or range(0))


def test_inserted_event_is_detected() -> None:
    """Inserting a row before a checkpoint's size is detected."""
    events, notes = honest_log()
    events.insert(10, make_events(30)[29])
    with pytest.raises(LogVerificationError, match="changed, removed, inserted or reordered"):
        verify_log(events, notes, VERIFIERS, ORIGIN)


def test_reordered_events_are_detected() -> None:
    """Swapping two rows is detected and reported at the checkpoint covering them."""
    events, notes = honest_log()
    events[17], events[18] = events[18], events[17]
    with pytest.raises(LogVerificationError) as caught:
        verify_log(events, notes, VERIFIERS, ORIGIN)
    assert caught.value.checkpoint_index == 4
    assert caught.value.rows == range(16, 23)


def test_forged_checkpoint_is_detected() -> None:
    """A checkpoint signed by another key under the node's name is refused with its index."""
    events, notes = honest_log()
    log = make_log(23)
    notes[2] = sign_checkpoint(Checkpoint(ORIGIN, 9, log.root(9)), node_signer("forger"))
    with pytest.raises(LogVerificationError, match="checkpoint 2 is not a trusted") as caught:
        verify_log(events, notes, VERIFIERS, ORIGIN)
    assert caught.value.checkpoint_index == 2


def test_checkpoint_with_a_wrong_root_is_detected() -> None:
    """A correctly signed checkpoint whose root is not the events' root is refused."""
    events, notes = honest_log()
    wrong = MerkleLog()
    for event in make_events(24)[1:]:
        wrong.append(event)
    notes.append(sign_checkpoint(Checkpoint(ORIGIN, 23, wrong.root()), SIGNER))
    with pytest.raises(LogVerificationError) as caught:
        verify_log(events, notes, VERIFIERS, ORIGIN)
    assert caught.value.checkpoint_index == 5


def test_shrinking_checkpoints_are_detected() -> None:
    """Checkpoints out of order (a smaller one after a larger one) are refused."""
    events, notes = honest_log()
    notes[2], notes[3] = notes[3], notes[2]
    with pytest.raises(LogVerificationError, match="smaller than checkpoint 2"):
        verify_log(events, notes, VERIFIERS, ORIGIN)


def test_checkpoint_beyond_the_events_is_detected() -> None:
    """Truncating the log below a checkpoint's size names the missing rows."""
    events, notes = honest_log()
    with pytest.raises(LogVerificationError, match="holds 20") as caught:
        verify_log(events[:20], notes, VERIFIERS, ORIGIN)
    assert caught.value.rows == range(16, 23)


def test_malformed_row_is_named() -> None:
    """A row that is not an event statement is reported with its index."""
    events, notes = honest_log()
    events[7] = b"garbage"
    with pytest.raises(LogVerificationError, match="event 7 is not a valid statement") as caught:
        verify_log(events, notes, VERIFIERS, ORIGIN)
    assert caught.value.rows == range(7, 8)


def test_pinned_root_of_three_events() -> None:
    """The root of three events is node(node(leaf0, leaf1), leaf2), written out by hand."""

    def sha(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    e0, e1, e2 = make_events(3)
    expected = sha(
        b"\x01" + sha(b"\x01" + sha(b"\x00" + e0) + sha(b"\x00" + e1)) + sha(b"\x00" + e2)
    )
    assert make_log(3).root() == expected
    assert expected.hex() == "b0c03424e96289d429db5f43d99cfa5bce26f1bc9716d16fd83f5df170ee5101"
