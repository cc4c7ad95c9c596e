"""Offline-verifiable proof bundles: one event, its inclusion proof and a signed checkpoint.

A bundle lets anyone holding the node's checkpoint key check, with no network access, that an
event statement (for instance "la:356 acknowledged envelope X") is in the node's ledger. The
format is C2SP tlog-proof@v1 (c2sp.org/tlog-proof): a header line, an ``extra`` line, an
``index`` line, one base64 hash per line of the RFC 9162 inclusion proof, an empty line and
the checkpoint note verbatim. The ``extra`` line carries the event statement itself; the
specification says extra data is not authenticated, and we do not trust it as such: the
statement is only believed because its leaf hash verifies against the signed root.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Final

from exchange.keys.notes import NoteVerifier
from exchange.ledger.checkpoint import MAX_CHECKPOINT_NOTE_LEN, Checkpoint, open_checkpoint
from exchange.ledger.errors import BundleError
from exchange.ledger.events import MAX_EVENT_LEN, LedgerEvent, decode_event
from exchange.ledger.merkle import (
    HASH_LEN,
    MAX_PROOF_LEN,
    MAX_TREE_SIZE,
    leaf_hash,
    verify_inclusion,
)

#: First line of every bundle (tlog-proof, "Format").
BUNDLE_HEADER: Final = "c2sp.org/tlog-proof@v1"

#: Largest bundle read: the header, the statement in base64, 64 proof lines of 45 bytes and
#: the largest checkpoint note, rounded up.
MAX_BUNDLE_LEN: Final = MAX_CHECKPOINT_NOTE_LEN + 8 * 1024

#: File extension the specification recommends for stored bundles.
BUNDLE_EXTENSION: Final = ".tlog-proof"

_INDEX_RE: Final = re.compile(r"0|[1-9][0-9]{0,18}")


def encode_b64(value: bytes) -> str:
    """Return ``value`` in standard base64 with padding."""
    return base64.b64encode(value).decode("ascii")


def decode_b64(text: str, what: str) -> bytes:
    """Decode canonical standard base64, or raise :class:`BundleError` naming ``what``."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise BundleError(f"{what} is not standard base64") from None
    if encode_b64(raw) != text:
        raise BundleError(f"{what} is not canonical base64")
    return raw


def split_bundle(bundle: bytes) -> tuple[list[str], bytes]:
    """Return a bundle's lines before its first empty line, and the checkpoint note after it.

    Header and proof lines are non-empty, so the first empty line ends them (tlog-proof,
    "Format"); the checkpoint note that follows has its own blank line, which is later.
    """
    if len(bundle) > MAX_BUNDLE_LEN:
        raise BundleError(f"the bundle is longer than the limit of {MAX_BUNDLE_LEN} bytes")
    split = bundle.find(b"\n\n")
    if split < 0:
        raise BundleError("the bundle has no empty line before the checkpoint")
    try:
        head = bundle[:split].decode("ascii")
    except UnicodeDecodeError:
        raise BundleError("the bundle's proof section is not ASCII") from None
    return head.split("\n"), bundle[split + 2 :]


def decode_proof_lines(lines: Sequence[str], first: int) -> list[bytes]:
    """Return the proof hashes of ``lines``, one base64 hash each; ``first`` numbers line 1."""
    if len(lines) > MAX_PROOF_LEN:
        raise BundleError(f"the bundle has more than {MAX_PROOF_LEN} proof lines")
    proof: list[bytes] = []
    for number, text in enumerate(lines, start=first):
        value = decode_b64(text, f"line {number} (proof hash)")
        if len(value) != HASH_LEN:
            raise BundleError(f"line {number} (proof hash) is not {HASH_LEN} bytes")
        proof.append(value)
    return proof


def check_proof_hashes(proof: Sequence[bytes]) -> list[bytes]:
    """Return ``proof`` as a list, or raise ``ValueError`` unless it is at most 64 hashes."""
    hashes = list(proof)
    if len(hashes) > MAX_PROOF_LEN or any(
        not isinstance(h, bytes) or len(h) != HASH_LEN for h in hashes
    ):
        raise ValueError(f"proof must be at most {MAX_PROOF_LEN} hashes of {HASH_LEN} bytes")
    return hashes


def make_bundle(event: bytes, index: int, proof: Sequence[bytes], checkpoint_note: bytes) -> bytes:
    """Return the bundle for the statement ``event`` at leaf ``index``.

    ``proof`` is the inclusion proof at the size of the checkpoint in ``checkpoint_note``.
    Nothing is verified here except the shapes; :func:`verify_bundle` is the check.
    """
    if not isinstance(event, bytes) or not isinstance(checkpoint_note, bytes):
        raise TypeError("event and checkpoint_note must be bytes")
    decode_event(event)  # refuse to wrap something that is not a statement
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_TREE_SIZE:
        raise ValueError(f"index must be an int from 0 to {MAX_TREE_SIZE - 1}")
    hashes = check_proof_hashes(proof)
    lines = [BUNDLE_HEADER, f"extra {encode_b64(event)}", f"index {index}"]
    lines += [encode_b64(h) for h in hashes]
    return ("\n".join(lines) + "\n\n").encode("ascii") + checkpoint_note


def verify_bundle(
    bundle: bytes, verifiers: Sequence[NoteVerifier], origin: str
) -> tuple[LedgerEvent, Checkpoint]:
    """Check a bundle and return its event and checkpoint.

    Raise :class:`BundleError` if the bundle is malformed,
    :class:`~exchange.ledger.errors.EventFormatError` if the statement is,
    :class:`~exchange.ledger.errors.CheckpointError` if the checkpoint is not signed by one
    of ``verifiers`` for ``origin``, and :class:`~exchange.ledger.errors.ProofError` if the
    statement is not at its index in the checkpointed tree.
    """
    if not isinstance(bundle, bytes):
        raise TypeError("bundle must be bytes")
    lines, note = split_bundle(bundle)
    if lines[0] != BUNDLE_HEADER:
        raise BundleError(f"line 1 of the bundle is not {BUNDLE_HEADER!r}")
    if len(lines) < 3 or not lines[1].startswith("extra "):
        raise BundleError("line 2 of the bundle must be 'extra' with the event statement")
    extra = decode_b64(lines[1].removeprefix("extra "), "line 2 (extra)")
    if len(extra) > MAX_EVENT_LEN:
        raise BundleError("line 2 (extra) is longer than any event statement")
    index_text = lines[2].removeprefix("index ")
    if not lines[2].startswith("index ") or _INDEX_RE.fullmatch(index_text) is None:
        raise BundleError("line 3 of the bundle must be 'index' and a decimal with no leading 0")
    proof = decode_proof_lines(lines[3:], first=4)
    event = decode_event(extra)
    checkpoint = open_checkpoint(note, verifiers, origin)
    verify_inclusion(leaf_hash(extra), int(index_text), checkpoint.size, proof, checkpoint.root)
    return event, checkpoint
