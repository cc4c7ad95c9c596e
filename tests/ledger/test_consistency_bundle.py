"""Consistency bundles (docs/ledger.md §6.1): round trip, layout, strict parsing, tampering."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.ledger import BundleError, Checkpoint, CheckpointError, ProofError, sign_checkpoint
from exchange.ledger.consistency_bundle import (
    CONSISTENCY_HEADER,
    make_consistency_bundle,
    read_consistency_bundle,
    verify_consistency_bundle,
)
from exchange.ledger.merkle import EMPTY_ROOT
from tests.ledger.helpers import ORIGIN, make_log, node_signer

SIGNER = node_signer()
VERIFIERS = [SIGNER.verifier]
LOG = make_log(70)


def _bundle(old: int, new: int) -> bytes:
    note = sign_checkpoint(Checkpoint(ORIGIN, new, LOG.root(new)), SIGNER)
    return make_consistency_bundle(old, LOG.consistency_proof(old, new), note)


def _verify(bundle: bytes, old_root: bytes, old_size: int | None = None) -> int:
    size, checkpoint = verify_consistency_bundle(bundle, VERIFIERS, ORIGIN, old_root, old_size)
    return checkpoint.size - size


def _sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, LOG.size))
    return draw(st.integers(1, new)), new


sizes = st.composite(_sizes)


@settings(max_examples=150, deadline=None)
@given(sizes())
def test_every_old_size_verifies_and_a_wrong_old_root_does_not(pair: tuple[int, int]) -> None:
    """A bundle from M to N verifies from M's root, and from no other root."""
    old, new = pair
    bundle = _bundle(old, new)
    assert _verify(bundle, LOG.root(old), old) == new - old
    wrong = LOG.root(old - 1) if old > 1 else EMPTY_ROOT
    with pytest.raises(ProofError):
        _verify(bundle, wrong)


@settings(max_examples=150, deadline=None)
@given(sizes(), st.data())
def test_a_truncated_or_changed_proof_is_refused(
    pair: tuple[int, int], data: st.DataObject
) -> None:
    """Dropping the last hash, or changing one bit of any hash, fails the proof."""
    old, new = pair
    proof = LOG.consistency_proof(old, new)
    note = sign_checkpoint(Checkpoint(ORIGIN, new, LOG.root(new)), SIGNER)
    if proof:
        with pytest.raises(ProofError):
            _verify(make_consistency_bundle(old, proof[:-1], note), LOG.root(old))
        at = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        changed = bytearray(proof[at])
        changed[bit // 8] ^= 1 << (bit % 8)
        proof[at] = bytes(changed)
    else:  # M = N: any hash at all is too many
        proof = [bytes(32)]
    with pytest.raises(ProofError):
        _verify(make_consistency_bundle(old, proof, note), LOG.root(old))


def test_exact_layout() -> None:
    """Header, the old size, one base64 hash per line, an empty line, the note verbatim."""
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, LOG.root(7)), SIGNER)
    proof = LOG.consistency_proof(3, 7)
    expected = (
        f"{CONSISTENCY_HEADER}\nold 3\n"
        + "".join(base64.b64encode(h).decode() + "\n" for h in proof)
        + "\n"
    ).encode() + note
    assert make_consistency_bundle(3, proof, note) == expected
    assert read_consistency_bundle(expected) == (3, proof, note)


def test_equal_sizes_have_an_empty_proof() -> None:
    """M = N: no proof lines, and the old root must be the checkpoint's."""
    bundle = _bundle(9, 9)
    assert bundle.startswith(f"{CONSISTENCY_HEADER}\nold 9\n\n".encode())
    assert _verify(bundle, LOG.root(9)) == 0
    with pytest.raises(ProofError):
        _verify(bundle, LOG.root(8))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.replace(b"consistency-proof", b"consistency-proof2", 1), "line 1"),
        (lambda b: b.replace(b"\nold 5\n", b"\nold 05\n"), "line 2"),
        (lambda b: b.replace(b"\nold 5\n", b"\nold 0\n"), "line 2"),
        (lambda b: b.replace(b"\nold 5\n", b"\nolder 5\n"), "line 2"),
        (lambda b: b.replace(b"\nold 5\n", b"\nold 99999999999999999999\n"), "line 2"),
        (lambda b: b.replace(b"=\n", b"\n", 1), "line 3"),
        (lambda b: b.replace(b"\n\n", b"\n"), "no empty line"),
        (lambda b: b + b"x" * 40000, "longer than the limit"),
    ],
)
def test_malformed_bundles_are_refused(change: object, message: str) -> None:
    """Each framing fault is a BundleError naming the line or the rule."""
    bundle = _bundle(5, 12)
    assert callable(change)
    with pytest.raises(BundleError, match=message):
        _verify(change(bundle), LOG.root(5))


def test_old_size_must_match_and_not_exceed_the_checkpoint() -> None:
    """A given old size that is not the bundle's, or an old size past the new one, is refused."""
    with pytest.raises(BundleError, match="not from the old size 4"):
        _verify(_bundle(5, 12), LOG.root(4), 4)
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, LOG.root(5)), SIGNER)
    with pytest.raises(ProofError, match="larger than the checkpoint's size 5"):
        _verify(make_consistency_bundle(6, [], note), LOG.root(6))


def test_a_checkpoint_of_another_key_is_refused() -> None:
    """The checkpoint must be signed by the node's key."""
    note = sign_checkpoint(Checkpoint(ORIGIN, 12, LOG.root(12)), node_signer("other"))
    bundle = make_consistency_bundle(5, LOG.consistency_proof(5, 12), note)
    with pytest.raises(CheckpointError):
        _verify(bundle, LOG.root(5))


def test_make_refuses_bad_arguments() -> None:
    """Size 0, a short hash or a note that is not bytes are programming errors."""
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, LOG.root(3)), SIGNER)
    with pytest.raises(ValueError, match="old_size"):
        make_consistency_bundle(0, [], note)
    with pytest.raises(ValueError, match="proof"):
        make_consistency_bundle(1, [b"short"], note)
    with pytest.raises(TypeError):
        make_consistency_bundle(1, [], note.decode())  # type: ignore[arg-type]
