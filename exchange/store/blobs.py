"""Envelope bodies behind one small interface, and the folder of files that holds them.

A body is named by its digest (the SHA-256 the envelope format defines) and written once:
a :class:`Blobs` takes it from bytes in memory, a local file, a transport's spool
(:class:`~exchange.connectors.base.HeldBody`) or a stream of pieces, and returns only once
it is durable, so the transaction that names it commits after it ("persist, then send").
Writing a digest already held changes nothing (the name is the digest of what was written).
A write that fails or is cut short leaves nothing under the digest: readers see a body
whole or not at all.

Every read is a stream or a span, never a whole large body in memory: :meth:`Blobs.chunks`
streams a body from its start, :meth:`Blobs.read_at` returns one span (what a connector reads
as it sends, and what an office document's checks read at any offset), and
:meth:`Blobs.in_thread` gives the same reads as blocking calls for code that runs in a
worker thread (opening, scanning, verifying).

Bodies being sealed or received are first written to :attr:`Blobs.spool`, a local folder
of this process; :meth:`Blobs.write_file` and :meth:`Blobs.write_held` then give them their
place. No reader needs a local file: nothing asks for a path, so the bodies can live where
every process of a group reaches them.

:class:`FileBlobs` is the embedded store's: one file per body under ``<data>/bodies/``, named
by the hex digest, its temporaries in the same folder (so publishing one is a rename or a
link). The PostgreSQL store's bodies are rows (:mod:`exchange.store.pg_blobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterator, Sequence
from pathlib import Path
from typing import Final, Protocol

from exchange.connectors.base import HeldBody
from exchange.files import atomic_output, read_span, rename_durably, write_new_files
from exchange.files import read_small as read_small_file

#: The size of the pieces a body is read in by :meth:`Blobs.chunks` and ``blocks``.
PIECE: Final = 1024 * 1024

#: Prefixes of temporaries written next to bodies: ``atomic_output``'s, the spool's,
#: this module's own, and the sealer's.
_TEMPORARY_PREFIXES: Final = (".", "sealing-")

#: A body younger than this is left alone by a sweep while the node runs: its row may still
#: be on its way to the disk.
LEFTOVER_AGE: Final = 3600.0


class BlobMissingError(FileNotFoundError):
    """No body is held under that digest (a ``FileNotFoundError``, as a missing file was)."""

    def __init__(self) -> None:
        super().__init__("no body is held under that digest")


class ThreadReader(Protocol):
    """One body read by blocking calls, from a worker thread (never on the event loop)."""

    def blocks(self, size: int = PIECE) -> Iterator[bytes]:
        """Yield the body from its start in pieces of at most ``size`` bytes."""
        ...

    def read_at(self, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset`` (fewer only at the body's end)."""
        ...


class Blobs(Protocol):
    """Where a store keeps envelope bodies, each named by its digest (bytes)."""

    @property
    def spool(self) -> Path:
        """A local folder of this process for bodies being sealed or received."""
        ...

    async def write(self, bodies: Sequence[tuple[bytes, bytes]]) -> None:
        """Keep each (digest, bytes) pair, small bodies in memory; durable on return."""
        ...

    async def write_file(self, digest: bytes, path: Path) -> None:
        """Keep the local file ``path`` (in :attr:`spool`) as ``digest``; ``path`` is gone after."""
        ...

    async def write_held(self, digest: bytes, body: HeldBody) -> None:
        """Keep a transport's spooled body as ``digest`` (the spool stays the caller's)."""
        ...

    async def write_stream(self, digest: bytes, pieces: AsyncIterable[bytes]) -> None:
        """Keep the bytes ``pieces`` yield as ``digest``; nothing is kept if they fail."""
        ...

    async def size(self, digest: bytes) -> int | None:
        """Return the size of the body ``digest`` in bytes, or None if none is held."""
        ...

    async def read_small(self, digest: bytes, limit: int) -> bytes | None:
        """Return the whole body if it holds at most ``limit`` bytes, else None.

        Raises :class:`BlobMissingError` if no body is held.
        """
        ...

    async def read_at(self, digest: bytes, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes of the body from ``offset`` (fewer only at its end).

        Raises :class:`BlobMissingError` if no body is held.
        """
        ...

    def chunks(self, digest: bytes) -> AsyncIterator[bytes]:
        """Yield the body from its start, a piece at a time (:class:`BlobMissingError`)."""
        ...

    def in_thread(self, digest: bytes) -> ThreadReader:
        """Return a blocking reader of the body for a worker thread; call it on the loop.

        A missing body raises :class:`BlobMissingError` on the first read.
        """
        ...

    async def delete(self, digest: bytes) -> bool:
        """Remove the body ``digest``; return whether there was one."""
        ...

    async def digests(self) -> list[bytes]:
        """Return the digest of every body held (for the leftover sweep)."""
        ...

    async def sweep(self, committed: Collection[bytes], *, min_age: float = 0.0) -> int:
        """Remove what no row names (``committed`` are those some row names); return how many.

        Only what is older than ``min_age`` seconds goes: 0 at the node's start, when
        nothing is being written; :data:`LEFTOVER_AGE` while it runs.
        """
        ...


async def pieces_of(body: HeldBody, size: int = PIECE) -> AsyncIterator[bytes]:
    """Yield a spooled body's pieces, each read in a worker thread."""
    pieces = body.pieces(size)
    while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
        yield piece


async def file_pieces(path: Path, size: int = PIECE) -> AsyncIterator[bytes]:
    """Yield a local file's pieces, each read in a worker thread."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while piece := await asyncio.to_thread(handle.read, size):
            yield piece
    finally:
        handle.close()


class FileReader:
    """A body file read by blocking calls (the file is opened for each call)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def blocks(self, size: int = PIECE) -> Iterator[bytes]:
        """Yield the file from its start in pieces of at most ``size`` bytes."""
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            raise BlobMissingError from None
        with handle:
            while block := handle.read(size):
                yield block

    def read_at(self, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset``."""
        try:
            return read_span(self.path, offset, count)
        except FileNotFoundError:
            raise BlobMissingError from None


class FileBlobs:
    """Bodies as files named by their hex digest in one folder (the embedded store's).

    Each body is synced, then given its name by a rename (or a link of a spool's unnamed
    file), then the folder is synced: a name, once there, names a whole body. Small bodies
    just sealed (fresh digests) are written once straight under their names, the folder
    synced once for them all; a crash part-way leaves a name no row refers to, which the
    sweep removes.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def spool(self) -> Path:
        """The bodies folder itself: a body spooled there is published by a rename."""
        return self.folder

    def create(self) -> None:
        """Make the folder if it is missing (blocking: at the store's opening)."""
        self.folder.mkdir(exist_ok=True, mode=0o700)

    def path(self, digest: bytes) -> Path:
        """Return where the body ``digest`` is (or will be) kept."""
        return self.folder / digest.hex()

    async def write(self, bodies: Sequence[tuple[bytes, bytes]]) -> None:
        """Write new bodies straight under their names; sync the folder once.

        A body already there (a second delivery of one envelope) is written again whole, by
        a temporary and a rename: the same bytes, and never a partial one left behind.
        """

        def run() -> None:
            try:
                write_new_files([(self.path(digest), data) for digest, data in bodies])
            except FileExistsError:
                for digest, data in bodies:
                    with atomic_output(self.path(digest), overwrite=True) as out:
                        out.write(data)

        await asyncio.to_thread(run)

    async def write_file(self, digest: bytes, path: Path) -> None:
        """Rename ``path`` (in this folder) to the body's name, durably."""
        await asyncio.to_thread(rename_durably, path, self.path(digest))

    async def write_held(self, digest: bytes, body: HeldBody) -> None:
        """Link (or copy) the spool under the body's name; a body already there is kept."""

        def publish() -> None:
            with contextlib.suppress(FileExistsError):
                body.publish(self.path(digest))

        await asyncio.to_thread(publish)

    async def write_stream(self, digest: bytes, pieces: AsyncIterable[bytes]) -> None:
        """Write the pieces to a temporary, sync it, and rename it to the body's name."""
        fd, name = await asyncio.to_thread(tempfile.mkstemp, prefix=".blob-", dir=self.folder)
        temp = Path(name)
        try:
            try:
                async for piece in pieces:
                    await asyncio.to_thread(_write_all, fd, piece)
                await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)
            await self.write_file(digest, temp)
        finally:
            temp.unlink(missing_ok=True)

    async def size(self, digest: bytes) -> int | None:
        """Return the body file's size, or None if there is none."""
        try:
            return (await asyncio.to_thread(self.path(digest).stat)).st_size
        except FileNotFoundError:
            return None

    async def read_small(self, digest: bytes, limit: int) -> bytes | None:
        """Read a small body here, on the loop: a few microseconds from the page cache.

        Cheaper than handing the read to a thread and waiting for that thread's turn; a
        larger body is not read at all.
        """
        try:
            return read_small_file(self.path(digest), limit)
        except FileNotFoundError:
            raise BlobMissingError from None

    async def read_at(self, digest: bytes, offset: int, count: int) -> bytes:
        """Read one span in a worker thread (the file is opened for it alone)."""
        return await asyncio.to_thread(FileReader(self.path(digest)).read_at, offset, count)

    async def chunks(self, digest: bytes) -> AsyncIterator[bytes]:
        """Yield the body file's pieces, each read in a worker thread."""
        try:
            handle = await asyncio.to_thread(self.path(digest).open, "rb")
        except FileNotFoundError:
            raise BlobMissingError from None
        try:
            while piece := await asyncio.to_thread(handle.read, PIECE):
                yield piece
        finally:
            handle.close()

    def in_thread(self, digest: bytes) -> ThreadReader:
        """Return a reader of the body file itself."""
        return FileReader(self.path(digest))

    async def delete(self, digest: bytes) -> bool:
        """Remove the body file; return whether there was one."""
        try:
            await asyncio.to_thread(self.path(digest).unlink)
        except FileNotFoundError:
            return False
        return True

    async def digests(self) -> list[bytes]:
        """Return the digests named by the folder's body files."""

        def names() -> list[bytes]:
            return [bytes.fromhex(p.name) for p in self.folder.iterdir() if _is_digest_name(p.name)]

        return await asyncio.to_thread(names)

    async def sweep(self, committed: Collection[bytes], *, min_age: float = 0.0) -> int:
        """Remove temporaries and body files no row names (:meth:`sweep_now`)."""
        return await asyncio.to_thread(self.sweep_now, committed, min_age=min_age)

    def sweep_now(self, committed: Collection[bytes], *, min_age: float = 0.0) -> int:
        """Remove temporaries and uncommitted body files; return how many (blocking)."""
        return sweep_folder(self.folder, {digest.hex() for digest in committed}, min_age=min_age)


def sweep_folder(
    folder: Path, keep: Collection[str], *, now: float | None = None, min_age: float = 0.0
) -> int:
    """Remove temporaries and body files not named in ``keep`` from ``folder``; return how many.

    ``keep`` are the hex digests whose rows exist. A file is removed only if it is a
    temporary or an uncommitted body and older than ``min_age`` seconds; files of other
    names are left alone.
    """
    moment = time.time() if now is None else now
    removed = 0
    for path in folder.iterdir():
        name = path.name
        temporary = name.startswith(_TEMPORARY_PREFIXES)
        if not temporary and (name in keep or not _is_digest_name(name)):
            continue
        try:
            if not path.is_file() or moment - path.stat().st_mtime < min_age:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _is_digest_name(name: str) -> bool:
    """Return whether a file name is a body's: 64 lower-case hex digits."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)
