"""The spool a body arrives into, and reading a message body in pieces (exchange/spool.py).

A small body stays in memory; a large one rolls over to a file with no name, so dropping it
leaves nothing behind, and publishing it is a link into place; a body file is read in
pieces of exactly the length its message names.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from exchange.connectors.base import StoredBody
from exchange.connectors.bodies import (
    BodyChangedError,
    body_pieces,
    body_sha256,
    file_body,
    read_small,
)
from exchange.spool import Handoff, Spool, SpoolFeeder

DATA = bytes(range(256)) * 1024  # 256 KiB


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_small_body_stays_in_memory(tmp_path: Path) -> None:
    with Spool(tmp_path, in_memory=1024) as spool:
        spool.write(b"a" * 1000)
        assert spool.in_memory
        assert spool.read(1000) == b"a" * 1000
        assert _names(tmp_path) == []
        spool.publish(tmp_path / "kept")
    assert (tmp_path / "kept").read_bytes() == b"a" * 1000


def test_a_large_body_rolls_over_to_a_file_with_no_name(tmp_path: Path) -> None:
    spool = Spool(tmp_path, in_memory=1024)
    spool.writelines([DATA[:1000], DATA[1000:]])
    assert not spool.in_memory
    assert spool.length == len(DATA)
    assert _names(tmp_path) == []  # nothing to see, nothing to leave behind
    assert b"".join(spool.pieces(4096)) == DATA
    assert [len(p) for p in spool.pieces(100_000)] == [100_000, 100_000, 62_144]
    spool.close()
    assert _names(tmp_path) == []


def test_publishing_links_it_into_place_once(tmp_path: Path) -> None:
    with Spool(tmp_path, in_memory=0) as spool:
        spool.write(DATA)
        spool.publish(tmp_path / "body")
        with pytest.raises(FileExistsError):
            spool.publish(tmp_path / "body")
    assert (tmp_path / "body").read_bytes() == DATA
    assert _names(tmp_path) == ["body"]
    assert (tmp_path / "body").stat().st_mode & 0o777 == 0o600


def test_reading_whole_is_refused_over_a_limit(tmp_path: Path) -> None:
    with Spool(tmp_path, in_memory=0) as spool:
        spool.write(DATA)
        with pytest.raises(ValueError, match="longer than 1000 bytes"):
            spool.read(1000)


def test_a_closed_spool_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.close()
    spool.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        spool.write(b"x")


async def test_the_feeder_batches_writes(tmp_path: Path) -> None:
    with Spool(tmp_path, in_memory=10) as spool:
        feeder = SpoolFeeder(spool, batch=4096)
        for start in range(0, len(DATA), 1000):
            await feeder.add(DATA[start : start + 1000])
        await feeder.flush()
        assert feeder.length == spool.length == len(DATA)
        assert b"".join(spool.pieces()) == DATA


def _file(tmp_path: Path, data: bytes = DATA) -> StoredBody:
    path = tmp_path / "body"
    path.write_bytes(data)
    return file_body(path)


async def test_a_body_file_is_read_in_pieces_and_ranges(tmp_path: Path) -> None:
    body = _file(tmp_path)
    pieces = [p async for p in body_pieces(body, 100_000)]
    assert [len(p) for p in pieces] == [100_000, 100_000, 62_144]
    assert b"".join(pieces) == DATA
    middle = b"".join([p async for p in body_pieces(body, 7, start=10, stop=50)])
    assert middle == DATA[10:50]
    assert b"".join([p async for p in body_pieces(DATA, 7, start=10, stop=50)]) == middle
    assert await body_sha256(body) == hashlib.sha256(DATA).digest()
    with pytest.raises(ValueError, match="range"):
        _ = [p async for p in body_pieces(body, start=10, stop=len(DATA) + 1)]


@pytest.mark.parametrize("change", [-1, 1], ids=["shorter", "longer"])
async def test_a_body_file_of_another_length_is_refused(tmp_path: Path, change: int) -> None:
    """A file changed under its message is never sent as a body of the wrong length."""
    body = _file(tmp_path)
    os.truncate(tmp_path / "body", len(DATA) + change)
    with pytest.raises(BodyChangedError):
        _ = [p async for p in body_pieces(body)]


async def test_read_small_refuses_a_large_body_before_reading_it(tmp_path: Path) -> None:
    body = _file(tmp_path)
    assert await read_small(body, len(DATA)) == DATA
    (tmp_path / "body").unlink()  # not read: refused from its length alone
    with pytest.raises(ValueError, match="longer than"):
        await read_small(body, len(DATA) - 1)


async def test_a_handoff_runs_jobs_in_order_one_at_a_time() -> None:
    """Each job starts once the one before it ended; wait() gives what the last job raised."""
    done: list[int] = []
    running: list[int] = []

    def job(n: int) -> Callable[[], None]:
        def run() -> None:
            running.append(n)
            assert len(running) == 1, "two jobs ran at once"
            time.sleep(0.01)
            done.append(n)
            running.remove(n)

        return run

    handoff = Handoff()
    for n in range(5):
        await handoff.run(job(n))
    await handoff.wait()
    assert done == [0, 1, 2, 3, 4]

    def fails() -> None:
        raise OSError("disk full")

    await handoff.run(fails)
    with pytest.raises(OSError, match="disk full"):
        await handoff.wait()


async def test_settling_a_handoff_waits_for_the_job_and_drops_its_failure() -> None:
    """On a failure path the running write ends before anything is closed; nothing is raised."""
    ended = threading.Event()

    def slow_failure() -> None:
        time.sleep(0.05)
        ended.set()
        raise OSError("disk full")

    handoff = Handoff()
    await handoff.run(slow_failure)
    await handoff.settle()
    assert ended.is_set()
    await handoff.wait()  # nothing left in flight
