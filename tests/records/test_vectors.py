"""Schema vectors: valid instances are accepted, invalid ones give exactly their problems."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exchange.records import KINDS, RecordValidationError, validate_record

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "records"
VALID = sorted(VECTORS.glob("*/valid/*.json"))
INVALID = sorted(VECTORS.glob("*/invalid/*.json"))


def _id(path: Path) -> str:
    return path.relative_to(VECTORS).as_posix()


def test_every_kind_has_valid_and_invalid_vectors() -> None:
    """Each kind has at least one valid and three invalid vectors (an empty glob cannot pass)."""
    for kind in KINDS:
        assert list((VECTORS / kind / "valid").glob("*.json")), kind
        assert len(list((VECTORS / kind / "invalid").glob("*.json"))) >= 3, kind


@pytest.mark.parametrize("path", VALID, ids=_id)
def test_valid_vector_is_accepted(path: Path) -> None:
    """A valid vector validates as its kind and keeps its data."""
    kind = path.parts[-3]
    raw = path.read_bytes()
    record = validate_record(kind, raw)
    assert (record.kind, record.version) == (kind, 1)
    assert record.data == json.loads(raw)


@pytest.mark.parametrize("path", INVALID, ids=_id)
def test_invalid_vector_reports_exactly_its_problems(path: Path) -> None:
    """An invalid vector is refused with exactly the declared (path, rule) problems."""
    kind = path.parts[-3]
    vector = json.loads(path.read_text(encoding="utf-8"))
    with pytest.raises(RecordValidationError) as caught:
        validate_record(kind, vector["instance"])
    got = sorted({(p.path, p.rule) for p in caught.value.problems})
    assert got == sorted((e["path"], e["rule"]) for e in vector["expect"])


@pytest.mark.subprocess
def test_generator_check_passes() -> None:
    """`generate.py --check` finds the files on disk exactly as it would write them."""
    result = subprocess.run(
        [sys.executable, str(VECTORS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
