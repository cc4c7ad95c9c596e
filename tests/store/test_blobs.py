"""One conformance suite for every kind of body store: the folder of files and PostgreSQL.

Each test runs against both (:func:`blobs`); the PostgreSQL ones against a real server on
loopback. A body is written from bytes, a local file, a transport's spool or a stream, read
back whole, in spans and a piece at a time (on the loop and from a worker thread), written
again to no effect, deleted, and swept; a write that fails part-way leaves nothing visible;
a 50 MiB body goes through with memory that stays flat.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from exchange.spool import Spool
from exchange.store.blobs import LEFTOVER_AGE, BlobMissingError, Blobs, FileBlobs
from exchange.store.pg_blobs import CHUNK, PostgresBlobs
from tests.store_engines import fresh_database

MIB = 1024 * 1024
#: The size of the large body, and the most memory Python may hold while it passes.
LARGE = 50 * MIB
FLAT = 8 * MIB


@dataclass
class Kind:
    """A body store under test, and how to make one of its bodies look an hour old."""

    blobs: Blobs
    age: Callable[[bytes, float], Awaitable[None]]


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def _pieces(
    total: int, size: int = MIB, *, fail_after: int | None = None
) -> AsyncIterator[bytes]:
    """Yield ``total`` synthetic bytes (distinct per piece); raise after ``fail_after`` bytes."""
    sent = 0
    n = 0
    while sent < total:
        if fail_after is not None and sent >= fail_after:
            raise OSError("the source broke part-way")
        piece = (hashlib.sha256(b"%d" % n).digest() * (size // 32 + 1))[: min(size, total - sent)]
        sent += len(piece)
        n += 1
        yield piece


async def _digest_of_stream(total: int) -> bytes:
    running = hashlib.sha256()
    async for piece in _pieces(total):
        running.update(piece)
    return running.digest()


@pytest.fixture(
    params=[
        "files",
        pytest.param("postgres", marks=[pytest.mark.network, pytest.mark.subprocess]),
    ]
)
async def kind(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Kind]:
    """Yield a fresh, empty body store of each kind."""
    if request.param == "files":
        files = FileBlobs(tmp_path / "bodies")
        files.create()

        async def age_file(digest: bytes, seconds: float) -> None:
            then = time.time() - seconds
            os.utime(files.path(digest), (then, then))

        yield Kind(files, age_file)
        return
    server = request.getfixturevalue("postgres_server")
    async with fresh_database(server) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            rows = PostgresBlobs.open(pool, tmp_path / "spool")

            async def age_row(digest: bytes, seconds: float) -> None:
                await pool.execute(
                    "UPDATE bodies SET written_at = written_at - $2 WHERE digest = $1",
                    digest,
                    seconds,
                )

            yield Kind(rows, age_row)
        finally:
            await pool.close()


async def _read_all(blobs: Blobs, digest: bytes) -> bytes:
    return b"".join([piece async for piece in blobs.chunks(digest)])


async def test_a_small_body_reads_back_every_way(kind: Kind) -> None:
    blobs = kind.blobs
    data = b"\x00synthetic envelope body\xff" * 100
    digest = _digest(data)
    assert await blobs.size(digest) is None
    await blobs.write([(digest, data)])
    assert await blobs.size(digest) == len(data)
    assert await blobs.read_small(digest, len(data)) == data
    assert await blobs.read_small(digest, len(data) - 1) is None
    assert await _read_all(blobs, digest) == data
    assert await blobs.read_at(digest, 10, 30) == data[10:40]
    assert await blobs.read_at(digest, len(data) - 5, 30) == data[-5:]
    assert await blobs.read_at(digest, len(data), 30) == b""
    reader = blobs.in_thread(digest)
    assert b"".join(await asyncio.to_thread(lambda: list(reader.blocks(7)))) == data
    assert await asyncio.to_thread(reader.read_at, 3, 4) == data[3:7]
    assert await blobs.digests() == [digest]


async def test_spans_across_chunk_boundaries_read_right(kind: Kind) -> None:
    blobs = kind.blobs
    data = b"".join([piece async for piece in _pieces(2 * CHUNK + 100, 300_001)])
    digest = _digest(data)
    await blobs.write_stream(digest, _pieces(2 * CHUNK + 100, 300_001))
    for offset, count in [(CHUNK - 5, 10), (0, 2 * CHUNK + 100), (CHUNK, CHUNK), (2 * CHUNK, 500)]:
        assert await blobs.read_at(digest, offset, count) == data[offset : offset + count]
    assert await _read_all(blobs, digest) == data


async def test_a_missing_body_is_named_missing_every_way(kind: Kind) -> None:
    blobs = kind.blobs
    digest = _digest(b"never written")
    with pytest.raises(BlobMissingError):
        await blobs.read_small(digest, 100)
    with pytest.raises(BlobMissingError):
        await blobs.read_at(digest, 0, 10)
    with pytest.raises(BlobMissingError):
        await _read_all(blobs, digest)
    reader = blobs.in_thread(digest)
    with pytest.raises(FileNotFoundError):
        await asyncio.to_thread(reader.read_at, 0, 10)
    assert not await blobs.delete(digest)


async def test_writing_a_body_again_changes_nothing(kind: Kind) -> None:
    blobs = kind.blobs
    data = os.urandom(3 * MIB + 17)
    digest = _digest(data)
    await blobs.write([(digest, data)])
    await blobs.write([(digest, data)])
    again = blobs.spool / "sealing-again"
    again.write_bytes(data)
    await blobs.write_file(digest, again)
    assert not again.exists()
    with Spool(blobs.spool, in_memory=1024) as spool:
        spool.write(data)
        await blobs.write_held(digest, spool)
    await blobs.write_stream(digest, _one(data))
    assert await blobs.digests() == [digest]
    assert await _read_all(blobs, digest) == data


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_body_is_kept_from_a_file_and_from_a_spool(kind: Kind) -> None:
    blobs = kind.blobs
    first, second = os.urandom(2 * MIB + 1), os.urandom(MIB + 3)
    sealed = blobs.spool / "sealing-1"
    sealed.write_bytes(first)
    await blobs.write_file(_digest(first), sealed)
    assert not sealed.exists()
    with Spool(blobs.spool, in_memory=1024) as spool:
        spool.write(second)
        await blobs.write_held(_digest(second), spool)
    assert await _read_all(blobs, _digest(first)) == first
    assert await _read_all(blobs, _digest(second)) == second
    assert sorted(await blobs.digests()) == sorted([_digest(first), _digest(second)])


async def test_a_deleted_body_is_gone(kind: Kind) -> None:
    blobs = kind.blobs
    data = os.urandom(CHUNK + 1)
    digest = _digest(data)
    await blobs.write([(digest, data)])
    assert await blobs.delete(digest)
    assert not await blobs.delete(digest)
    assert await blobs.size(digest) is None
    assert await blobs.digests() == []
    with pytest.raises(BlobMissingError):
        await blobs.read_at(digest, 0, 1)


async def test_a_write_that_fails_part_way_leaves_nothing(kind: Kind) -> None:
    blobs = kind.blobs
    digest = _digest(b"broken")
    with pytest.raises(OSError, match="part-way"):
        await blobs.write_stream(digest, _pieces(5 * MIB, fail_after=3 * MIB))
    assert await blobs.size(digest) is None
    assert await blobs.digests() == []
    assert [p.name for p in blobs.spool.iterdir()] == []


async def test_a_write_killed_part_way_leaves_nothing(kind: Kind) -> None:
    """The writing task is cancelled mid-stream (as a process stopped while writing)."""
    blobs = kind.blobs
    digest = _digest(b"killed")
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"x" * MIB
        yield b"y" * MIB
        started.set()
        await asyncio.sleep(60)
        yield b"never"

    task = asyncio.create_task(blobs.write_stream(digest, slow()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await blobs.size(digest) is None
    assert await blobs.digests() == []
    with pytest.raises(BlobMissingError):
        await blobs.read_at(digest, 0, 1)


async def test_the_sweep_keeps_named_and_young_bodies(kind: Kind) -> None:
    blobs = kind.blobs
    named, orphan, young = (os.urandom(100) for _ in range(3))
    await blobs.write([(_digest(b), b) for b in (named, orphan, young)])
    await kind.age(_digest(named), 2 * LEFTOVER_AGE)
    await kind.age(_digest(orphan), 2 * LEFTOVER_AGE)
    assert await blobs.sweep({_digest(named)}, min_age=LEFTOVER_AGE) == 1
    assert sorted(await blobs.digests()) == sorted([_digest(named), _digest(young)])


async def test_a_large_body_passes_with_flat_memory(kind: Kind) -> None:
    """50 MiB written from a stream, then read a piece at a time and from a worker thread."""
    blobs = kind.blobs
    digest = await _digest_of_stream(LARGE)
    tracemalloc.start()
    try:
        await blobs.write_stream(digest, _pieces(LARGE))
        running = hashlib.sha256()
        async for piece in blobs.chunks(digest):
            running.update(piece)
        reader = blobs.in_thread(digest)

        def hashed() -> bytes:
            again = hashlib.sha256()
            for block in reader.blocks():
                again.update(block)
            return again.digest()

        in_thread = await asyncio.to_thread(hashed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert running.digest() == digest
    assert in_thread == digest
    assert await blobs.size(digest) == LARGE
    assert peak < FLAT, f"peak {peak / MIB:.1f} MiB"
