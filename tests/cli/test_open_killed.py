"""``exchange open`` killed part-way leaves no plaintext behind (docs/cli.md, ``open``).

A real ``exchange open`` process is fed a large envelope slowly through a pipe, killed with
SIGKILL once it has written megabytes of plaintext, and the folder is compared with what it
held before. Where the system has unnamed files (Linux, O_TMPFILE) nothing is ever left;
the fallback (a pid-marked temporary) is forced in a second process and must be removed by
the next ``exchange open`` in the folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchange.files import _OPENING, sweep_partial_outputs
from tests.cli.conftest import RECORD, World, assert_refused, run, seal_record

pytestmark = pytest.mark.subprocess

#: Content large enough that the open is still writing when it is killed.
SIZE = 24 * 1024 * 1024
#: The child runs the real command; ``FALLBACK`` makes it behave as without O_TMPFILE.
CHILD = """
import sys
if sys.argv[1] == "fallback":
    import exchange.files
    exchange.files._open_unnamed = lambda directory: None
from exchange.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _written(pid: int) -> int:
    """Return the bytes process ``pid`` has written so far (``/proc/<pid>/io``)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar line")


def _kill_mid_open(mode: str, envelope: bytes) -> None:
    """Start ``exchange open`` on a pipe, feed half the envelope, kill it after it wrote."""
    argv = ["open", "--key", "la.key", "--in", "-", "--out", "opened.txt"]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdin is not None
    try:
        child.stdin.write(envelope[: len(envelope) // 2])
        child.stdin.flush()
        deadline = time.monotonic() + 60
        while _written(child.pid) < 4 * 1024 * 1024:
            assert child.poll() is None, "exchange open ended before it was killed"
            assert time.monotonic() < deadline, "exchange open wrote nothing"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()


@pytest.fixture
def envelope(world: World) -> bytes:
    """Seal a 24 MiB record to the LA; return the envelope's bytes."""
    (world.folder / "record.txt").write_bytes(os.urandom(SIZE))
    assert seal_record().status == 0
    return (world.folder / "record.env").read_bytes()


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="unnamed files are Linux's")
def test_killed_open_leaves_nothing(world: World, envelope: bytes) -> None:
    """SIGKILL after megabytes of plaintext were written: the folder is as it was."""
    before = world.listing()
    _kill_mid_open("unnamed", envelope)
    assert world.listing() == before


def test_killed_fallback_open_is_swept_by_the_next_open(world: World, envelope: bytes) -> None:
    """Without unnamed files the temporary is left, pid-marked, and the next open removes it."""
    before = world.listing()
    _kill_mid_open("fallback", envelope)
    left = world.listing() - before
    assert len(left) == 1
    (name,) = left
    assert name.startswith(f".opened.txt{_OPENING}")
    # The next open in the folder sweeps it as it starts, even one that is then refused.
    refused = run("open", "--key", "la.key", "--in", "record.env", "--out", "record.txt")
    assert_refused(refused, 1, "already exists")
    assert world.listing() == before
    Path("small.txt").write_bytes(RECORD)
    assert run("seal", "--key", "school.key", "--to", "la:356", "--kind", "referral",
               "--in", "small.txt", "--out", "small.env").status == 0  # fmt: skip
    assert run("open", "--key", "la.key", "--in", "small.env", "--out", "small.out").status == 0
    assert Path("small.out").read_bytes() == RECORD


def test_sweep_keeps_live_writers_and_other_commands_files(tmp_path: Path) -> None:
    """Only temporaries of dead writers, and this output's legacy partial, are removed."""
    dead = subprocess.Popen(["true"])  # a process that has ended: its pid is free
    dead.wait()
    names = {
        f".a.txt{_OPENING}{dead.pid}-abcdefgh": False,  # a killed open: removed
        f".b.txt{_OPENING}{os.getpid()}-abcdefgh": True,  # a running open: kept
        ".a.txt.partial-abcd1234": False,  # what an earlier version left for a.txt: removed
        ".c.env.partial-abcd1234": True,  # another command's file being written: kept
        "a.txt.opening-1-abcdefgh": True,  # not hidden: not ours
    }
    folder = tmp_path / "out"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"plaintext")
    removed = sweep_partial_outputs(folder, "a.txt")
    assert {p.name for p in removed} == {n for n, kept in names.items() if not kept}
    assert {p.name for p in folder.iterdir()} == {n for n, kept in names.items() if kept}
