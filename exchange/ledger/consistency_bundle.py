"""Consistency bundles: a signed checkpoint and the proof that it extends an older tree.

A consistency bundle lets anyone holding the node's checkpoint key and an older (size, root)
of the same log check, with no network access, that the log was only appended to between the
two (RFC 9162 §2.1.4). Its framing follows the proof bundle (:mod:`exchange.ledger.bundle`)
but it has its own header, since C2SP tlog-proof is for inclusion only (docs/ledger.md §6.1)::

    exchange/v1/consistency-proof
    old <old tree size, decimal, no leading zeroes>
    <base64 proof hash>      (zero or more lines)

    <the checkpoint note, verbatim>

The old root is not in the bundle: the relying party brings it (it is what they already
trust), so a bundle can never vouch for its own starting point.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from exchange.keys.notes import NoteVerifier
from exchange.ledger.bundle import (
    check_proof_hashes,
    decode_proof_lines,
    encode_b64,
    split_bundle,
)
from exchange.ledger.checkpoint import Checkpoint, open_checkpoint
from exchange.ledger.errors import BundleError, ProofError
from exchange.ledger.merkle import MAX_TREE_SIZE, verify_consistency

#: First line of every consistency bundle.
CONSISTENCY_HEADER: Final = "exchange/v1/consistency-proof"

_SIZE_RE: Final = re.compile(r"[1-9][0-9]{0,18}")


def make_consistency_bundle(old_size: int, proof: Sequence[bytes], checkpoint_note: bytes) -> bytes:
    """Return the bundle proving the checkpoint in ``checkpoint_note`` extends size ``old_size``.

    ``proof`` is the RFC 9162 consistency proof from ``old_size`` to the checkpoint's size.
    Nothing is verified here except the shapes; :func:`verify_consistency_bundle` is the check.
    """
    if not isinstance(checkpoint_note, bytes):
        raise TypeError("checkpoint_note must be bytes")
    if (
        not isinstance(old_size, int)
        or isinstance(old_size, bool)
        or not 0 < old_size < MAX_TREE_SIZE
    ):
        raise ValueError(f"old_size must be an int from 1 to {MAX_TREE_SIZE - 1}")
    lines = [CONSISTENCY_HEADER, f"old {old_size}"]
    lines += [encode_b64(h) for h in check_proof_hashes(proof)]
    return ("\n".join(lines) + "\n\n").encode("ascii") + checkpoint_note


def read_consistency_bundle(bundle: bytes) -> tuple[int, list[bytes], bytes]:
    """Return a bundle's old size, proof hashes and checkpoint note, checking only the framing.

    Raise :class:`BundleError` naming the line at fault.
    """
    if not isinstance(bundle, bytes):
        raise TypeError("bundle must be bytes")
    lines, note = split_bundle(bundle)
    if lines[0] != CONSISTENCY_HEADER:
        raise BundleError(f"line 1 of the bundle is not {CONSISTENCY_HEADER!r}")
    size_text = lines[1].removeprefix("old ") if len(lines) > 1 else ""
    if len(lines) < 2 or not lines[1].startswith("old ") or not _SIZE_RE.fullmatch(size_text):
        raise BundleError("line 2 of the bundle must be 'old' and a size from 1, no leading 0")
    old_size = int(size_text)
    if old_size >= MAX_TREE_SIZE:
        raise BundleError(f"line 2 (old) is more than the largest tree size, {MAX_TREE_SIZE - 1}")
    return old_size, decode_proof_lines(lines[2:], first=3), note


def verify_consistency_bundle(
    bundle: bytes,
    verifiers: Sequence[NoteVerifier],
    origin: str,
    old_root: bytes,
    old_size: int | None = None,
) -> tuple[int, Checkpoint]:
    """Check that the bundle's checkpoint extends the tree of ``old_root``.

    ``old_size``, if given (from an older checkpoint), must be the bundle's. Returns the old
    size and the new checkpoint. Raise :class:`BundleError` if the bundle is malformed or
    names another old size, :class:`~exchange.ledger.errors.CheckpointError` if the checkpoint
    is not signed by one of ``verifiers`` for ``origin``, and
    :class:`~exchange.ledger.errors.ProofError` if the proof does not verify.
    """
    size, proof, note = read_consistency_bundle(bundle)
    if old_size is not None and old_size != size:
        raise BundleError(f"the bundle proves from size {size}, not from the old size {old_size}")
    checkpoint = open_checkpoint(note, verifiers, origin)
    if size > checkpoint.size:
        raise ProofError(
            f"the old size {size} is larger than the checkpoint's size {checkpoint.size}"
        )
    verify_consistency(size, checkpoint.size, old_root, checkpoint.root, proof)
    return size, checkpoint
