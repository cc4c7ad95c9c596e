"""The proof verifiers agree with every RFC 9162 vector of transparency-dev/merkle."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from exchange.ledger import ProofError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "rfc9162"
SKIP_REASON = f"the shared RFC 9162 vectors are not present at {VECTORS}"


def _files(kind: str) -> list[Path]:
    folder = VECTORS / kind
    return sorted(folder.rglob("*.json")) if folder.is_dir() else []


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in vector["proof"] or []]


def _id(path: Path) -> str:
    return path.relative_to(VECTORS).as_posix()


pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason=SKIP_REASON)


def test_vector_counts() -> None:
    """The folder holds the 98 inclusion and 98 consistency cases its README announces."""
    assert len(_files("inclusion")) == 98
    assert len(_files("consistency")) == 98


@pytest.mark.parametrize("path", _files("inclusion"), ids=_id)
def test_inclusion_vector(path: Path) -> None:
    """An inclusion vector verifies when wantErr is false and raises ProofError when true."""
    v = _load(path)

    def run() -> None:
        verify_inclusion(
            _b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v), _b64(v["root"])
        )

    if v["wantErr"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()


@pytest.mark.parametrize("path", _files("consistency"), ids=_id)
def test_consistency_vector(path: Path) -> None:
    """A consistency vector verifies when wantErr is false and raises ProofError when true."""
    v = _load(path)

    def run() -> None:
        verify_consistency(v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), _proof(v))

    if v["wantErr"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()
