"""The folder of body files: what its sweep takes and leaves.

What every kind of body store does is checked by the conformance suite (test_blobs.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from exchange.store.blobs import _is_digest_name, sweep_folder


def test_leftovers_are_swept_and_committed_bodies_kept(tmp_path: Path) -> None:
    """Temporaries and bodies without a row go; committed bodies and other files stay."""
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    committed, orphan = "ab" * 32, "cd" * 32
    names = [committed, orphan, ".x.partial-1234", "sealing-00ff", "README"]
    for name in names:
        (bodies / name).write_bytes(b"synthetic")
    assert sweep_folder(bodies, [committed]) == 3
    assert sorted(p.name for p in bodies.iterdir()) == sorted([committed, "README"])


def test_a_running_sweep_leaves_young_files_alone(tmp_path: Path) -> None:
    """While the node runs, a file younger than the age limit may be a write under way."""
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    young, old = bodies / ("cd" * 32), bodies / "sealing-1"
    young.write_bytes(b"synthetic")
    old.write_bytes(b"synthetic")
    an_hour_ago = time.time() - 7200
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert sweep_folder(bodies, [], min_age=3600) == 1
    assert young.exists()
    assert not old.exists()


@given(st.text(min_size=1, max_size=80))
def test_a_body_file_name_is_64_hex_digits_only(name: str) -> None:
    """Only a digest-named file can be taken for an uncommitted body."""
    expected = len(name) == 64 and all(c in "0123456789abcdef" for c in name)
    assert _is_digest_name(name) == expected
