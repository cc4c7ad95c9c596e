"""Envelope bodies in PostgreSQL, in chunks, so every process of a group reaches them.

A body is rows of :data:`CHUNK` bytes in ``body_chunks`` (every chunk but the last is whole,
so the chunk holding any offset is known) and one row in ``bodies`` naming its size, written
last. The chunks and that row are written in one transaction: a body being written, or
whose writer died part-way, is never seen (the rows of an unfinished transaction are
invisible and a broken one is rolled back), and a body is durable once the write returns.
A second writer of the same digest waits for the first and then writes nothing (``ON
CONFLICT DO NOTHING``): both bodies are the same bytes, since the digest names them.

Memory stays flat whatever the size: a body is written a chunk at a time and read one chunk
(or one span) per query, each on a connection borrowed from the pool for that query alone,
so a slow reader holds no connection. Chunks are kept uncompressed (``STORAGE EXTERNAL``:
ciphertext does not compress, and a span of an uncompressed value is read without the rest).

The tables are the schema's (``exchange.store.pg_schema``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterator, Sequence
from pathlib import Path
from typing import Final

import asyncpg

from exchange.connectors.base import HeldBody
from exchange.store.blobs import (
    LEFTOVER_AGE,
    PIECE,
    BlobMissingError,
    ThreadReader,
    file_pieces,
    pieces_of,
    sweep_folder,
)

#: The size of every stored chunk of a body but its last.
CHUNK: Final = 1024 * 1024

_INSERT_CHUNK: Final = (
    "INSERT INTO body_chunks (digest, seq, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
)
_INSERT_BODY: Final = (
    "INSERT INTO bodies (digest, size, written_at) "
    "VALUES ($1, $2, extract(epoch FROM clock_timestamp())) ON CONFLICT DO NOTHING"
)
# Only the span asked for leaves the server: from its offset within the first chunk, at most
# ``count`` bytes of each (the caller trims what is past ``count``).
_READ_SPAN: Final = (
    "SELECT substring(data FROM (GREATEST($2::bigint - seq::bigint * $3, 0) + 1)::int "
    "FOR $4::int) FROM body_chunks WHERE digest = $1 AND seq BETWEEN $5 AND $6 ORDER BY seq"
)


class PostgresBlobs:
    """Bodies as chunked rows of a PostgreSQL database, on an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, spool: Path) -> None:
        self.pool = pool
        self._spool = spool

    @classmethod
    def open(cls, pool: asyncpg.Pool, spool: Path) -> PostgresBlobs:
        """Return the bodies of the database ``pool`` reaches, making the local ``spool``.

        The tables are the schema's (``exchange.store.pg_schema``).
        """
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(pool, spool)

    @property
    def spool(self) -> Path:
        """This process's own folder for bodies being sealed or received."""
        return self._spool

    async def write(self, bodies: Sequence[tuple[bytes, bytes]]) -> None:
        """Write small bodies, all in one transaction."""
        async with self.pool.acquire() as con, con.transaction():
            for digest, data in bodies:
                await write_body_rows(con, digest, _one(data))

    async def write_file(self, digest: bytes, path: Path) -> None:
        """Copy the local file in chunks, then remove it."""
        try:
            await self.write_stream(digest, file_pieces(path, CHUNK))
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def write_held(self, digest: bytes, body: HeldBody) -> None:
        """Copy the spooled body in chunks (the spool stays the caller's)."""
        await self.write_stream(digest, pieces_of(body, CHUNK))

    async def write_stream(self, digest: bytes, pieces: AsyncIterable[bytes]) -> None:
        """Write the pieces as whole chunks and the body's row last, in one transaction."""
        async with self.pool.acquire() as con, con.transaction():
            held = await con.fetchval("SELECT 1 FROM bodies WHERE digest = $1", digest)
            if held is None:
                await write_body_rows(con, digest, pieces)

    async def size(self, digest: bytes) -> int | None:
        """Return the size the body's row names, or None if there is none."""
        size: int | None = await self.pool.fetchval(
            "SELECT size FROM bodies WHERE digest = $1", digest
        )
        return size

    async def read_small(self, digest: bytes, limit: int) -> bytes | None:
        """Return a body of at most ``limit`` bytes whole, else None."""
        size = await self.size(digest)
        if size is None:
            raise BlobMissingError
        if size > limit:
            return None
        return await self.read_at(digest, 0, size)

    async def read_at(self, digest: bytes, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset``: one query for the chunks holding them."""
        if offset < 0 or count < 0:
            raise ValueError("offset and count must not be negative")
        first, last = offset // CHUNK, (offset + max(count, 1) - 1) // CHUNK
        async with self.pool.acquire() as con:
            rows = await con.fetch(_READ_SPAN, digest, offset, CHUNK, count, first, last)
            data = b"".join(row[0] for row in rows)[:count]
            if not data:
                held = await con.fetchval("SELECT 1 FROM bodies WHERE digest = $1", digest)
                if held is None:
                    raise BlobMissingError
        return data

    async def chunks(self, digest: bytes) -> AsyncIterator[bytes]:
        """Yield the body's chunks in order, one query each."""
        size = await self.size(digest)
        if size is None:
            raise BlobMissingError
        for seq in range(-(-size // CHUNK)):
            data: bytes | None = await self.pool.fetchval(
                "SELECT data FROM body_chunks WHERE digest = $1 AND seq = $2", digest, seq
            )
            if data is None:  # deleted while being read
                raise BlobMissingError
            yield data

    def in_thread(self, digest: bytes) -> ThreadReader:
        """Return a reader whose blocking calls run their queries on this event loop."""
        return _ThreadReader(self, digest, asyncio.get_running_loop())

    async def delete(self, digest: bytes) -> bool:
        """Remove the body's row and its chunks together."""
        async with self.pool.acquire() as con, con.transaction():
            gone = await con.fetchval("DELETE FROM bodies WHERE digest = $1 RETURNING 1", digest)
            await con.execute("DELETE FROM body_chunks WHERE digest = $1", digest)
        return gone is not None

    async def digests(self) -> list[bytes]:
        """Return the digest of every body written whole."""
        rows = await self.pool.fetch("SELECT digest FROM bodies")
        return [bytes(row[0]) for row in rows]

    async def sweep(self, committed: Collection[bytes], *, min_age: float = 0.0) -> int:
        """Remove bodies no row names, and this process's own leftover temporaries.

        Other processes may be writing bodies whose rows have not committed yet, so a body
        is never removed before :data:`LEFTOVER_AGE` (by the database's clock), whatever
        ``min_age`` says; ``min_age`` applies to the local spool, which is this process's.
        """
        removed = await asyncio.to_thread(sweep_folder, self._spool, set(), min_age=min_age)
        keep = set(committed)
        async with self.pool.acquire() as con, con.transaction():
            rows = await con.fetch(
                "SELECT digest FROM bodies "
                "WHERE written_at <= extract(epoch FROM clock_timestamp()) - $1",
                max(min_age, LEFTOVER_AGE),
            )
            gone = [bytes(row[0]) for row in rows if bytes(row[0]) not in keep]
            await con.execute("DELETE FROM bodies WHERE digest = ANY($1::bytea[])", gone)
            await con.execute("DELETE FROM body_chunks WHERE digest = ANY($1::bytea[])", gone)
        return removed + len(gone)


class _ThreadReader:
    """Blocking reads of one body from a worker thread, each run on the pool's loop."""

    def __init__(
        self, blobs: PostgresBlobs, digest: bytes, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._blobs = blobs
        self._digest = digest
        self._loop = loop

    def read_at(self, offset: int, count: int) -> bytes:
        future = asyncio.run_coroutine_threadsafe(
            self._blobs.read_at(self._digest, offset, count), self._loop
        )
        return future.result()

    def blocks(self, size: int = PIECE) -> Iterator[bytes]:
        offset = 0
        while block := self.read_at(offset, size):
            offset += len(block)
            yield block


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def write_body_rows(
    con: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    digest: bytes,
    pieces: AsyncIterable[bytes],
) -> None:
    """Write ``pieces`` as whole chunks, then the body's row (inside the caller's transaction)."""
    insert = await con.prepare(_INSERT_CHUNK)
    # Pieces are gathered by reference and joined once per chunk: one copy of a chunk is
    # made, and each chunk is handed to the driver as a view of it, not copied again.
    pending: list[bytes] = []
    held = seq = size = 0
    async for piece in pieces:
        pending.append(piece)
        held += len(piece)
        size += len(piece)
        if held >= CHUNK:
            joined = b"".join(pending)
            pending.clear()
            whole = len(joined) - len(joined) % CHUNK
            with memoryview(joined) as view:
                for start in range(0, whole, CHUNK):
                    await insert.fetch(digest, seq, view[start : start + CHUNK])
                    seq += 1
            rest = joined[whole:]
            del joined
            pending = [rest] if rest else []
            held = len(rest)
    if pending:
        await insert.fetch(digest, seq, b"".join(pending))
    await con.execute(_INSERT_BODY, digest, size)
