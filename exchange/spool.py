"""The file a body arrives into: written in pieces, read back in pieces, kept or dropped.

A body that comes from another node (an HTTPS push, a relay deposit, a relay or MESH
collection) can be gigabytes; it is never held whole in memory. A :class:`Spool` takes it
piece by piece as it arrives: up to ``in_memory`` bytes stay in memory (a receipt, a small
envelope: no file is created for them), beyond that it rolls over to a file with no name
in ``folder`` (``O_TMPFILE`` on Linux), so a crash, a kill or a refusal at any point leaves
nothing behind. Once the body is checked, :meth:`Spool.publish` gives it its final name,
durably (data synced, linked, folder synced), without copying it when ``folder`` is on the
same file system; otherwise, and where unnamed files are not available, it falls back to
the careful writes of :mod:`exchange.files`. The spool is read back with
:meth:`Spool.pieces` (positioned reads, so reading never disturbs writing) and released by
:meth:`Spool.close`.

Not thread-safe: one owner at a time (the event loop hands it to a worker thread for each
write or read, never to two at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

from exchange.files import _fsync_directory, _link_unnamed, _open_unnamed, atomic_output

#: Bytes kept in memory before the spool rolls over to a file (a signed receipt, a short
#: JSON request, a small envelope).
IN_MEMORY: Final = 64 * 1024

#: Size of each piece read back.
PIECE: Final = 1024 * 1024


class Spool:
    """A body being received: in memory while small, then in an unnamed file in ``folder``.

    ``folder`` should be on the file system of the body's final place (a store's bodies
    folder), so that publishing is a link rather than a copy; ``None`` is the system's
    temporary folder.
    """

    def __init__(self, folder: Path | None = None, *, in_memory: int = IN_MEMORY) -> None:
        if in_memory < 0:
            raise ValueError("in_memory must not be negative")
        self._folder = Path(tempfile.gettempdir()) if folder is None else folder
        self._in_memory = in_memory
        self._memory = bytearray()
        self._fd: int | None = None
        self._named: Path | None = None
        self._closed = False
        #: Bytes written so far.
        self.length = 0

    def __repr__(self) -> str:
        where = "memory" if self.in_memory else "file"
        return f"Spool(length={self.length}, in={where})"

    @property
    def in_memory(self) -> bool:
        """Whether the body is still in memory (it has never passed ``in_memory`` bytes)."""
        return self._fd is None

    # --- writing -----------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``."""
        self._check_open()
        size = len(data)
        if self._fd is None and self.length + size <= self._in_memory:
            self._memory += data
        else:
            fd = self._fd if self._fd is not None else self._roll_over()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        self.length += size

    def writelines(self, pieces: Iterable[bytes | bytearray | memoryview]) -> None:
        """Append every piece of ``pieces`` in order."""
        for piece in pieces:
            self.write(piece)

    def _roll_over(self) -> int:
        fd = _open_unnamed(self._folder, os.O_RDWR)
        if fd is None:
            fd, name = tempfile.mkstemp(prefix=".spool-", dir=self._folder)
            self._named = Path(name)
        self._fd = fd
        view = memoryview(self._memory)
        while view:
            view = view[os.write(fd, view) :]
        self._memory = bytearray()
        return fd

    # --- reading -----------------------------------------------------------------------------

    def pieces(self, size: int = PIECE) -> Iterator[bytes]:
        """Yield the body from its start in pieces of at most ``size`` bytes."""
        self._check_open()
        if size < 1:
            raise ValueError("size must be positive")
        if self._fd is None:
            view = memoryview(self._memory)
            for start in range(0, len(view), size):
                yield bytes(view[start : start + size])
            return
        fd, offset = self._fd, 0
        while offset < self.length:
            piece = os.pread(fd, min(size, self.length - offset), offset)
            if not piece:
                raise OSError(errno.EIO, "the spooled body is shorter than what was written")
            offset += len(piece)
            yield piece

    def read(self, limit: int) -> bytes:
        """Return the whole body; ``ValueError`` if it is longer than ``limit`` bytes.

        For bodies known to be small (a receipt, a JSON request): a body in a file is read
        whole only below the limit the caller names.
        """
        if self.length > limit:
            raise ValueError(f"the body is longer than {limit} bytes")
        return b"".join(self.pieces())

    # --- keeping or dropping -----------------------------------------------------------------

    def publish(self, target: Path) -> None:
        """Give the body the name ``target``, durably; ``FileExistsError`` if it exists.

        The data is synced before the name appears and the folder after, so the file
        survives a crash once this returns. The spool stays readable until closed.
        """
        self._check_open()
        if self._fd is None:
            with atomic_output(target) as out:
                out.write(self._memory)
            return
        os.fsync(self._fd)
        try:
            if self._named is not None:
                os.link(self._named, target)
            else:
                _link_unnamed(self._fd, target)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.ENOENT}:
                raise
            self._copy_to(target)  # another file system, or no links: copy, carefully
            return
        _fsync_directory(target.parent)

    def _copy_to(self, target: Path) -> None:
        with atomic_output(target) as out:
            for piece in self.pieces():
                out.write(piece)

    def close(self) -> None:
        """Drop the body (an unpublished one leaves nothing behind); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._memory = bytearray()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._named is not None:
            self._named.unlink(missing_ok=True)
            self._named = None

    @contextlib.contextmanager
    def dropped_on_failure(self) -> Iterator[Spool]:
        """Yield the spool; close it if the block raises (it is kept, open, otherwise)."""
        try:
            yield self
        except BaseException:
            self.close()
            raise

    def __del__(self) -> None:
        # A safety net only: every owner closes its spool (an unnamed file then vanishes).
        if not getattr(self, "_closed", True):
            self.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the spool is closed")


#: Bytes gathered from the network before one write to a spool's file, off the event loop.
BATCH: Final = 1024 * 1024


class SpoolFeeder:
    """Feeds a spool from the event loop: pieces are gathered and written in a thread.

    Call :meth:`flush` after the last piece; :attr:`length` counts what was given.
    """

    def __init__(self, spool: Spool, *, batch: int = BATCH) -> None:
        self.spool = spool
        self._batch = batch
        self._pending: list[bytes] = []
        self._pending_len = 0
        self.length = 0

    async def add(self, piece: bytes) -> None:
        """Take the next ``piece``."""
        self._pending.append(piece)
        self._pending_len += len(piece)
        self.length += len(piece)
        if self._pending_len >= self._batch:
            await self.flush()

    async def flush(self) -> None:
        """Write what was gathered (in memory while the spool is small)."""
        pending, self._pending, self._pending_len = self._pending, [], 0
        if not pending:
            return
        if self.spool.in_memory and self.spool.length + sum(map(len, pending)) <= IN_MEMORY:
            self.spool.writelines(pending)
        else:
            await asyncio.to_thread(self.spool.writelines, pending)


class Handoff:
    """Jobs run in a worker thread one at a time, in order, while the event loop reads on.

    A body read from the network is hashed and written a batch at a time; with the batch
    handed over here the next one is read while the last is written (hashing releases the
    GIL, so the two overlap on two cores). At most one job is in flight: :meth:`run` waits
    for the previous one, raising what it raised, so the reader is never more than one
    batch ahead and memory stays about two batches.
    """

    def __init__(self) -> None:
        self._in_flight: asyncio.Future[None] | None = None

    async def run(self, job: Callable[[], None]) -> None:
        """Start ``job`` in a worker thread once the previous job has ended."""
        await self.wait()
        self._in_flight = asyncio.ensure_future(asyncio.to_thread(job))

    async def wait(self) -> None:
        """Wait for the job in flight, if any; raise what it raised."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight

    async def settle(self) -> None:
        """Wait for the job in flight without raising: on a failure path, before closing.

        A write must never go on into a file that is about to be closed; what the job
        raised is dropped (the failure being handled says what happened).
        """
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return
        if not in_flight.done():
            await asyncio.wait([in_flight])
        if not in_flight.cancelled():
            in_flight.exception()
