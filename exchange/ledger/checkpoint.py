"""Checkpoints: the node's signed statement of the ledger's size and root (C2SP tlog-checkpoint).

A checkpoint is a signed note (c2sp.org/signed-note) whose text is three lines: the log's
origin, the tree size in decimal and the base64 root hash (c2sp.org/tlog-checkpoint, "Note
text"). We never emit extension lines and refuse them when parsing, since monitors cannot
audit them. Signing goes through :class:`CheckpointSigner`, which remembers the last
checkpoint the node signed and refuses to sign one inconsistent with it: the specification's
"a log MUST not sign any checkpoint which is inconsistent with any checkpoint it previously
signed" ("Signatures"), which is what lets a relying party trust that history is never
rewritten. Everything here is pure: the caller persists the last checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from exchange.keys.errors import NoteError
from exchange.keys.notes import MAX_NAME_LEN, NoteSigner, NoteVerifier, verify_note
from exchange.ledger.errors import CheckpointError, InconsistentCheckpointError, ProofError
from exchange.ledger.merkle import (
    EMPTY_ROOT,
    HASH_LEN,
    MAX_TREE_SIZE,
    RangeHasher,
    consistency_proof_from,
    verify_consistency,
)

#: Largest checkpoint note accepted: three short lines plus up to 100 signature lines (the
#: signed-note limit we read) of about 100 bytes each.
MAX_CHECKPOINT_NOTE_LEN: Final = 16 * 1024

_SIZE_RE: Final = re.compile(r"0|[1-9][0-9]{0,18}")
# The origin doubles as the signing key's name ("The log's key name in its signature line
# SHOULD match the origin line"), so it obeys the signed-note key-name rules.
_ORIGIN_RE: Final = re.compile(rf"[!-*,-~]{{1,{MAX_NAME_LEN}}}")


def _check_origin(origin: str) -> None:
    if not isinstance(origin, str):
        raise TypeError("origin must be a string")
    if _ORIGIN_RE.fullmatch(origin) is None:
        raise ValueError(
            f"origin must be 1 to {MAX_NAME_LEN} printable ASCII characters without spaces or "
            "'+' (a schema-less URL such as exchange.example/node/la-356)"
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's origin, its size and its RFC 9162 root hash at that size."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        _check_origin(self.origin)
        if not isinstance(self.size, int) or isinstance(self.size, bool):
            raise TypeError("size must be an int")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError(f"size must be between 0 and {MAX_TREE_SIZE}")
        if not isinstance(self.root, bytes):
            raise TypeError("root must be bytes")
        if len(self.root) != HASH_LEN:
            raise ValueError(f"root must be {HASH_LEN} bytes, not {len(self.root)}")
        # MTH({}) is fixed (RFC 9162 §2.1.1): any other root for size 0 is a lie.
        if self.size == 0 and self.root != EMPTY_ROOT:
            raise ValueError("root of an empty tree must be SHA-256 of the empty string")

    def __repr__(self) -> str:
        return f"Checkpoint({self.origin!r}, size={self.size}, root={self.root.hex()[:16]}…)"


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """Return the checkpoint's note text: origin, size and base64 root, each ending in a newline."""
    root = base64.b64encode(checkpoint.root).decode("ascii")
    return f"{checkpoint.origin}\n{checkpoint.size}\n{root}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse note text strictly, or raise :class:`CheckpointError` naming the line at fault."""
    if not isinstance(text, str):
        raise TypeError("text must be a string")
    if not text.endswith("\n"):
        raise CheckpointError("the checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"the checkpoint has {len(lines)} lines; it needs three")
    if len(lines) > 3:
        raise CheckpointError(
            "the checkpoint has extension lines (line 4 on); this ledger never emits them"
        )
    origin, size_text, root_text = lines
    try:
        _check_origin(origin)
    except ValueError as exc:
        raise CheckpointError(f"line 1 (origin) is invalid: {exc}") from None
    if _SIZE_RE.fullmatch(size_text) is None or int(size_text) > MAX_TREE_SIZE:
        raise CheckpointError(
            f"line 2 (tree size) must be a decimal number from 0 to {MAX_TREE_SIZE} with no "
            "leading zeroes"
        )
    try:
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise CheckpointError("line 3 (root hash) is not standard base64") from None
    # Re-encoding refuses the other spellings Python's decoder accepts (non-zero pad bits).
    if len(root) != HASH_LEN or base64.b64encode(root).decode("ascii") != root_text:
        raise CheckpointError(f"line 3 (root hash) is not the canonical base64 of {HASH_LEN} bytes")
    try:
        return Checkpoint(origin, int(size_text), root)
    except ValueError as exc:
        raise CheckpointError(f"the checkpoint is invalid: {exc}") from None


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """Return the checkpoint as a signed note, *without* the consistency check.

    Nodes sign through :class:`CheckpointSigner`; this is the primitive it uses (and tests
    use to forge inconsistent checkpoints). The signer's key name must be the origin, as
    docs/ledger.md [checkpoint.key-name] requires.
    """
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError("checkpoint must be a Checkpoint")
    if signer.verifier.name != checkpoint.origin:
        raise ValueError(
            f"signer: the key name {signer.verifier.name!r} is not the checkpoint's origin "
            f"{checkpoint.origin!r}"
        )
    return signer.sign(format_checkpoint(checkpoint))


def open_checkpoint(note: bytes, verifiers: Sequence[NoteVerifier], origin: str) -> Checkpoint:
    """Verify a checkpoint note and return its checkpoint, or raise :class:`CheckpointError`.

    A signature from one of ``verifiers`` must verify (unknown signatures, such as witness
    cosignatures, are ignored as signed-note requires), and the origin must be ``origin``:
    a checkpoint of another log proves nothing about this one.
    """
    _check_origin(origin)
    if not isinstance(note, bytes):
        raise TypeError("note must be bytes")
    try:
        text, _ = verify_note(note, verifiers, max_len=MAX_CHECKPOINT_NOTE_LEN)
    except NoteError as exc:
        raise CheckpointError(f"the checkpoint note was refused: {exc}") from exc
    checkpoint = parse_checkpoint(text)
    if checkpoint.origin != origin:
        raise CheckpointError(
            f"the checkpoint is for the log {checkpoint.origin!r}, not {origin!r}"
        )
    return checkpoint


class CheckpointSigner:
    """Signs checkpoints of one log, never one inconsistent with the last it signed.

    ``last`` is the last checkpoint this node signed, which the caller MUST persist before
    publishing each note and pass back after a restart; without it the first checkpoint is
    trusted as is. The signer's memory is updated only when a signature is returned.
    """

    __slots__ = ("_last", "_signer")

    def __init__(self, signer: NoteSigner, last: Checkpoint | None = None) -> None:
        if not isinstance(signer, NoteSigner):
            raise TypeError("signer must be a NoteSigner")
        _check_origin(signer.verifier.name)
        if last is not None and last.origin != signer.verifier.name:
            raise ValueError(
                f"last: the checkpoint is for {last.origin!r}, not {signer.verifier.name!r}"
            )
        self._signer = signer
        self._last = last

    @property
    def origin(self) -> str:
        """The log's origin, which is also the signing key's name."""
        return self._signer.verifier.name

    @property
    def last(self) -> Checkpoint | None:
        """The last checkpoint signed (or given at construction)."""
        return self._last

    def check(self, checkpoint: Checkpoint, proof: Sequence[bytes] = ()) -> None:
        """Raise :class:`InconsistentCheckpointError` unless ``checkpoint`` may be signed."""
        if checkpoint.origin != self.origin:
            raise InconsistentCheckpointError(
                f"the checkpoint is for {checkpoint.origin!r}, not this log {self.origin!r}"
            )
        last = self._last
        if last is None:
            return
        if checkpoint.size < last.size:
            raise InconsistentCheckpointError(
                f"the checkpoint has {checkpoint.size} entries, fewer than the {last.size} of "
                "the last checkpoint signed; the log never shrinks"
            )
        if last.size == 0:
            # Every tree extends the empty tree (RFC 9162 §2.1.4 defines no proof from it).
            if list(proof):
                raise InconsistentCheckpointError(
                    "a consistency proof from the empty tree must be empty"
                )
            return
        try:
            verify_consistency(last.size, checkpoint.size, last.root, checkpoint.root, proof)
        except ProofError as exc:
            raise InconsistentCheckpointError(
                f"the checkpoint of size {checkpoint.size} is not consistent with the last "
                f"checkpoint signed (size {last.size}): {exc}"
            ) from exc

    def sign(self, checkpoint: Checkpoint, proof: Sequence[bytes] = ()) -> bytes:
        """Sign ``checkpoint`` if ``proof`` shows it extends the last one; return the note.

        ``proof`` is the consistency proof from the last checkpoint's size to this one's
        (empty when the sizes are equal or nothing was signed yet).
        """
        self.check(checkpoint, proof)
        note = sign_checkpoint(checkpoint, self._signer)
        self._last = checkpoint
        return note

    def sign_tree(self, range_hash: RangeHasher, size: int) -> tuple[Checkpoint, bytes]:
        """Compute the root of the first ``size`` leaves and sign it, with its proof.

        The proof is computed from the same ``range_hash`` but checked against the root this
        signer remembers, so a store whose earlier leaves changed is still refused.
        """
        root = range_hash(0, size) if size else EMPTY_ROOT
        checkpoint = Checkpoint(self.origin, size, root)
        last = self._last
        proof: list[bytes] = []
        if last is not None and 0 < last.size <= size:
            proof = consistency_proof_from(range_hash, last.size, size)
        return checkpoint, self.sign(checkpoint, proof)

    def __repr__(self) -> str:
        return f"CheckpointSigner(origin={self.origin!r}, last={self._last!r})"
