"""The consistency bundle vectors of tests/vectors/consistency verify, or fail, as they say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exchange.keys.notes import parse_verifier_key
from exchange.ledger import errors
from exchange.ledger.consistency_bundle import verify_consistency_bundle
from tests.vectors.vectorkit import run_generator_check

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "consistency"
POSITIVE = sorted((VECTORS / "positive").glob("*.json"))
NEGATIVE = sorted((VECTORS / "negative").glob("*.json"))


def _check(v: dict[str, Any]) -> tuple[int, int]:
    old, checkpoint = verify_consistency_bundle(
        v["bundle"].encode("utf-8"),
        [parse_verifier_key(v["verifier_key"])],
        v["origin"],
        bytes.fromhex(v["old_root"]),
    )
    return old, checkpoint.size


def test_there_are_vectors() -> None:
    """The folder holds positive vectors and a negative one per kind of error."""
    assert len(POSITIVE) >= 1
    kinds = {json.loads(p.read_text("utf-8"))["error"] for p in NEGATIVE}
    assert kinds == {"BundleError", "CheckpointError", "ProofError"}


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_vector(path: Path) -> None:
    """A positive vector verifies from its old root, with its sizes."""
    v = json.loads(path.read_text("utf-8"))
    assert list(_check(v)) == v["sizes"]


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_vector(path: Path) -> None:
    """A negative vector is refused with exactly its error class."""
    v = json.loads(path.read_text("utf-8"))
    with pytest.raises(errors.LedgerError) as caught:
        _check(v)
    assert type(caught.value).__name__ == v["error"]


@pytest.mark.subprocess
def test_generator_check_passes() -> None:
    """`consistency_generate.py --check` finds the files exactly as it would write them."""
    result = run_generator_check(ROOT / "tests" / "vectors" / "consistency_generate.py")
    assert result.returncode == 0, result.stderr
