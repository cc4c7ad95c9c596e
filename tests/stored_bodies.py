"""Envelope bodies as the tests look at them, on either store engine.

Bodies are files under ``bodies/`` with SQLite (:class:`~exchange.store.blobs.FileBlobs`)
and chunk rows with PostgreSQL (:class:`~exchange.store.pg_blobs.PostgresBlobs`). A test
that checks a stored body, damages one as a bad sector would, or lists what is stored goes
through these helpers, so it runs on both.
"""

from __future__ import annotations

from pathlib import Path

from exchange.store.blobs import FileBlobs
from exchange.store.opening import NodeStore
from exchange.store.pg_blobs import CHUNK, PostgresBlobs


async def copy_out(store: NodeStore, digest: bytes, path: Path) -> Path:
    """Write the stored body of ``digest`` to the file ``path`` (streamed); return ``path``."""
    with path.open("wb") as out:
        async for piece in store.blobs.chunks(digest):
            out.write(piece)
    return path


async def damage(store: NodeStore, digest: bytes, offset: int | None = None) -> None:
    """Flip one bit of the stored body at ``offset`` (default: its middle byte)."""
    blobs = store.blobs
    size = await blobs.size(digest)
    assert size is not None, "no such body"
    at = size // 2 if offset is None else offset
    if isinstance(blobs, FileBlobs):
        path = blobs.path(digest)
        data = bytearray(path.read_bytes())
        data[at] ^= 0x01
        path.write_bytes(bytes(data))
        return
    assert isinstance(blobs, PostgresBlobs)
    seq, within = divmod(at, CHUNK)
    async with blobs.pool.acquire() as connection:
        data = bytearray(
            await connection.fetchval(
                "SELECT data FROM body_chunks WHERE digest = $1 AND seq = $2", digest, seq
            )
        )
        data[within] ^= 0x01
        await connection.execute(
            "UPDATE body_chunks SET data = $3 WHERE digest = $1 AND seq = $2",
            digest,
            seq,
            bytes(data),
        )


async def stored_names(store: NodeStore) -> set[str]:
    """Every body stored (hex digests) and every file of the store's own temporary folder."""
    blobs = store.blobs
    if isinstance(blobs, FileBlobs):
        return {p.name for p in blobs.folder.iterdir()}
    assert isinstance(blobs, PostgresBlobs)
    names = {digest.hex() for digest in await blobs.digests()}
    return names | {p.name for p in blobs.spool.iterdir()}
