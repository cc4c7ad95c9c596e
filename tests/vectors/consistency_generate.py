r"""Deterministic generator of the consistency bundle test vectors (docs/ledger.md §6.1).

Run ``python tests/vectors/consistency_generate.py`` from the repository root to (re)write
``tests/vectors/consistency/positive/*.json`` and ``negative/*.json``; with ``--check`` it
writes nothing and exits with status 1 if any file on disk differs from what it would write
(or if a file is missing or left over). Nothing reads the clock or the operating system's
random source: leaf ``i`` is a ``submitted`` event of ``la:356`` at 2026-01-01T00:00:00Z
plus ``i`` seconds about the envelope digest ``SHA-256("envelope <i>")``, the log's Ed25519 seed is
``SHA-256("exchange/v1/test-vector-key\0" ‖ "ed25519" ‖ 0x00 ‖ "ledger" ‖ 0x00 ‖ <name>)``,
and Ed25519 signatures are deterministic.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from vectorkit import FRONT_DOOR, KEY_LABEL, NOW, generator_main, render

from exchange.keys.ids import OrgId
from exchange.keys.keypairs import SigningKey
from exchange.keys.notes import NoteSigner
from exchange.ledger import Checkpoint, EventType, LedgerEvent, MerkleLog, sign_checkpoint
from exchange.ledger.consistency_bundle import make_consistency_bundle

HERE: Final = Path(__file__).resolve().parent
OUT: Final = HERE / "consistency"
ORIGIN: Final = "exchange.example/node/la-356"
FORMAT: Final = "exchange-ledger-consistency-bundle-v1-test-vector"


def signer(name: str) -> NoteSigner:
    """Return the log's signer for key ``name`` (``node``, or ``other`` for a forgery)."""
    seed = hashlib.sha256(KEY_LABEL + b"ed25519\x00ledger\x00" + name.encode()).digest()
    return NoteSigner(ORIGIN, SigningKey(seed))


NODE: Final = signer("node")
LOG: Final = MerkleLog()
for _i in range(7):
    LOG.append(
        LedgerEvent(
            type=EventType.SUBMITTED,
            time=NOW + _i,
            org=OrgId(FRONT_DOOR),
            envelope_digest=hashlib.sha256(f"envelope {_i}".encode("ascii")).digest(),
        ).encode()
    )


def bundle(old: int, new: int, key: NoteSigner = NODE) -> bytes:
    """Return the bundle from ``old`` to the checkpoint of ``new`` signed by ``key``."""
    note = sign_checkpoint(Checkpoint(ORIGIN, new, LOG.root(new)), key)
    return make_consistency_bundle(old, LOG.consistency_proof(old, new), note)


def _line(index: int, text: str) -> Callable[[bytes], bytes]:
    def change(raw: bytes) -> bytes:
        lines = raw.split(b"\n")
        lines[index] = text.encode("ascii")
        return b"\n".join(lines)

    return change


def _flip_first_proof_hash(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    lines[2] = b"A" + lines[2][1:] if lines[2][:1] != b"A" else b"B" + lines[2][1:]
    return b"\n".join(lines)


def _drop_last_proof_hash(raw: bytes) -> bytes:
    head, note = raw.split(b"\n\n", 1)
    return b"\n".join(head.split(b"\n")[:-1]) + b"\n\n" + note


def _insert_hash(raw: bytes) -> bytes:
    head, note = raw.split(b"\n\n", 1)
    return head + b"\n" + b"A" * 43 + b"=\n\n" + note


_P, _B = "ProofError", "BundleError"

#: name, description, old size, new size, the change, the old root's size, the error.
NEGATIVE: Final[list[tuple[str, str, int, int, Callable[[bytes], bytes], int, str]]] = [
    ("wrong-old-root", "the old root is that of size 2, not 3", 3, 7, lambda b: b, 2, _P),
    ("changed-hash", "the first proof hash is changed", 3, 7, _flip_first_proof_hash, 3, _P),
    ("truncated-proof", "the last proof hash is missing", 3, 7, _drop_last_proof_hash, 3, _P),
    ("extra-hash", "M = N with one proof hash", 7, 7, _insert_hash, 7, _P),
    ("old-past-new", "old size 8 is past the checkpoint's 7", 7, 7, _line(1, "old 8"), 7, _P),
    ("header", "line 1 is not the header", 3, 7, _line(0, "c2sp.org/tlog-proof@v1"), 3, _B),
    ("leading-zero", "the old size has a leading zero", 3, 7, _line(1, "old 03"), 3, _B),
    ("old-zero", "the old size is 0", 3, 7, _line(1, "old 0"), 3, _B),
    ("not-canonical", "a hash is not canonical base64", 3, 7, _line(2, "A" * 42 + "B="), 3, _B),
]


def _vector(kind: str, name: str, description: str, old_size: int, raw: bytes) -> dict[str, Any]:
    """Return a vector whose relying party trusts the root of ``old_size`` leaves."""
    return {
        "format": FORMAT,
        "kind": kind,
        "name": name,
        "description": description,
        "verifier_key": NODE.verifier.vkey(),
        "origin": ORIGIN,
        "old_root": LOG.root(old_size).hex(),
        "bundle": raw.decode("utf-8"),
    }


def all_files() -> dict[Path, str]:
    """Return every vector file's path and text."""
    files = {
        OUT / "positive" / "grown.json": render(
            {**_vector("positive", "grown", "from 3 to 7 leaves", 3, bundle(3, 7)), "sizes": [3, 7]}
        ),
        OUT / "positive" / "same-size.json": render(
            {
                **_vector("positive", "same-size", "M = N: no proof lines", 7, bundle(7, 7)),
                "sizes": [7, 7],
            }
        ),
    }
    for name, description, old, new, change, root_of, error in NEGATIVE:
        vector = _vector("negative", name, description, root_of, change(bundle(old, new)))
        files[OUT / "negative" / f"{name}.json"] = render({**vector, "error": error})
    forged = _vector(
        "negative",
        "other-key",
        "the checkpoint is signed by another key",
        3,
        bundle(3, 7, signer("other")),
    )
    files[OUT / "negative" / "other-key.json"] = render({**forged, "error": "CheckpointError"})
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Write the vectors, or with ``--check`` report whether the files on disk differ."""
    return generator_main(__doc__, all_files, OUT, HERE, argv)


if __name__ == "__main__":
    sys.exit(main())
