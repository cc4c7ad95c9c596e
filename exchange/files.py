"""Files at the edge: careful writes, bounded reads, and streaming seal and open.

Everything else in ``exchange`` and ``keys`` takes and returns bytes; this module is where
they meet the file system. Its promises: a new file never replaces an existing one unless
the caller says so; output appears under its final name only when it is complete and synced
(it is written to ``.name.partial-XXXX`` beside the target, then renamed); opened content is
released only after every check of the envelope passed (docs/envelope.md §7), so a failed
open leaves no file behind and writes nothing to standard output; while it is being written
it has no name at all (:func:`private_output`), so an open killed part-way leaves no
plaintext behind either; reads of small inputs
(keys, directories) are bounded. Envelopes are streamed in 1 MiB pieces, so memory use does
not grow with their size.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Final

from exchange.envelope import (
    OpenedEnvelope,
    Opener,
    Recipient,
    SealedEnvelope,
    Sealer,
    SenderKeys,
    VerifiedEnvelope,
    Verifier,
)
from exchange.keys.keypairs import OrgKeyPair

#: Size of each read from an envelope or content stream. 1 MiB is the largest chunk size the
#: format allows, so one piece never holds more than a chunk's worth of buffered data twice.
PIECE_SIZE: Final = 1024 * 1024

#: The path that means standard input or standard output.
STDIO: Final = "-"

PathLike = str | os.PathLike[str]


class FilesError(Exception):
    """Base class of the errors this module raises itself (beside ``OSError``)."""


class InputTooLargeError(FilesError):
    """An input is larger than the limit for its kind."""


def _is_stdio(path: PathLike) -> bool:
    return isinstance(path, str) and path == STDIO


def _fsync_directory(directory: Path) -> None:
    """Sync a directory so a file created or renamed in it survives a crash."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_small(path: PathLike, limit: int) -> bytes | None:
    """Return the whole of ``path`` if it holds at most ``limit`` bytes, else None.

    For reads small enough to make on an event loop: one open, one ``fstat`` and one read;
    a larger file is not read at all.
    """
    with Path(path).open("rb", buffering=0) as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            return None
        data = handle.read(limit + 1)
    # The file grew after the fstat: it is not small after all.
    return data if len(data) <= limit else None


def read_span(path: PathLike, offset: int, count: int) -> bytes:
    """Return up to ``count`` bytes of ``path`` from ``offset`` (fewer only at its end).

    The file is opened for this read alone: a reader abandoned half-way never leaves a file
    open behind it.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        pieces = []
        while count > 0 and (piece := os.pread(fd, count, offset)):
            pieces.append(piece)
            offset += len(piece)
            count -= len(piece)
        return b"".join(pieces)
    finally:
        os.close(fd)


def set_mode(fd: int, path: Path, mode: int) -> None:
    """Set exactly ``mode`` on the open file ``fd`` at ``path``.

    ``os.fchmod`` is missing on Windows before Python 3.13; there ``os.chmod`` on the path is
    used, which can only set or clear the read-only flag (access is governed by the folder's ACL).
    """
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:
        os.chmod(path, mode)  # noqa: PTH101 (the fallback is the os function by name)


def write_new_file(path: PathLike, data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` holding ``data``; refuse (``FileExistsError``) if it exists.

    The file is created with ``O_EXCL``, so there is no window in which another file could be
    replaced; it is synced, and so is its directory. If writing fails the new file is removed.
    """
    write_new_files([(path, data)], mode=mode)


def write_new_files(files: Sequence[tuple[PathLike, bytes]], *, mode: int = 0o600) -> None:
    """Create each file holding its data, as :func:`write_new_file`; sync each folder once.

    Written under their final names with no temporary and rename, so use it for files that
    are complete once this returns, or whose partial content can be told apart (a node's
    envelope bodies: a body no committed row names is swept away). If any write fails,
    every file created here is removed and the error raised.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    created: list[Path] = []
    try:
        for path, data in files:
            target = Path(path)
            fd = os.open(target, flags, mode)
            created.append(target)
            try:
                # The umask may have removed bits; set exactly what was asked for (0600 for
                # secrets).
                set_mode(fd, target, mode)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        for target in created:
            target.unlink(missing_ok=True)
        raise
    for directory in dict.fromkeys(target.parent for target in created):
        _fsync_directory(directory)


def _refuse_existing(target: Path) -> None:
    if target.exists() or target.is_symlink():
        raise FileExistsError(17, "the output file already exists", str(target))


def _publish(temp: Path, target: Path, *, overwrite: bool) -> None:
    """Move the finished temp file to ``target``, replacing it only if ``overwrite``."""
    if overwrite:
        temp.replace(target)
        return
    try:
        # link() fails if the target exists, so no existing file is ever replaced, even if one
        # appeared while we were writing.
        os.link(temp, target)
    except FileExistsError:
        raise
    except OSError:
        # Some file systems have no hard links; check, then rename (a narrow race remains).
        _refuse_existing(target)
        temp.replace(target)
        return
    temp.unlink()


@contextlib.contextmanager
def atomic_output(
    path: PathLike, *, mode: int = 0o600, overwrite: bool = False
) -> Iterator[BinaryIO]:
    """Yield a binary file that appears at ``path`` only if the block finishes cleanly.

    Data goes to ``.<name>.partial-XXXX`` (mode 0600) in the same directory. On a clean exit
    the file is synced, given ``mode`` and moved into place (refusing to replace an existing
    file unless ``overwrite``); on any exception, interrupts included, it is deleted.
    """
    target = Path(path)
    if not overwrite:
        _refuse_existing(target)
    directory = target.parent
    if not directory.is_dir():
        # Name the missing folder, not the temporary file we could not create in it.
        raise FileNotFoundError(2, "no such directory", str(directory))
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.partial-", dir=directory)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            set_mode(handle.fileno(), temp, mode)
            os.fsync(handle.fileno())
        _publish(temp, target, overwrite=overwrite)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)


def replace_file(path: PathLike, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically, replacing what was there (synced, ``mode``).

    A reader sees the old file or the new one, never a part of either.
    """
    with atomic_output(path, mode=mode, overwrite=True) as out:
        out.write(data)


#: Marks the named temporary of :func:`private_output` where an unnamed file is not available:
#: ``.<name>.opening-<pid>-<random>``. The pid says whether the writer is still alive.
_OPENING: Final = ".opening-"
_OPENING_RE: Final = re.compile(r"\.(?P<name>.+)\.opening-(?P<pid>[0-9]{1,10})-[a-z0-9_]{8}")
#: What :func:`atomic_output` used for opened content before :func:`private_output` existed.
_LEGACY_RE: Final = re.compile(r"\.(?P<name>.+)\.partial-[a-z0-9_]{8}")
_PROC_FD: Final = Path("/proc/self/fd")


def _open_unnamed(directory: Path, access: int = os.O_WRONLY) -> int | None:
    """Open an unnamed file (``O_TMPFILE``) in ``directory``; None where that is unavailable.

    ``access`` is ``os.O_WRONLY`` or ``os.O_RDWR`` (a spool reads back what it wrote).

    Publishing it later needs ``/proc/self/fd`` (see :func:`_link_unnamed`), so without it
    the answer is None too.
    """
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not _PROC_FD.is_dir():
        return None
    try:
        return os.open(directory, flag | access | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        # Kernels and file systems without O_TMPFILE answer one of these.
        if exc.errno in {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT}:
            return None
        raise


def _link_unnamed(fd: int, target: Path) -> None:
    """Give the unnamed file ``fd`` the name ``target``; ``FileExistsError`` if it exists."""
    # linkat(AT_EMPTY_PATH) needs a capability; linkat(AT_SYMLINK_FOLLOW) of the descriptor's
    # /proc link does not. Python calls link(2), which does not follow the /proc link, unless
    # a directory descriptor is given: so the target's folder is given as one.
    folder = os.open(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.link(_PROC_FD / str(fd), target.name, dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def sweep_partial_outputs(directory: PathLike, name: str | None = None) -> list[Path]:
    """Delete temporaries that a killed :func:`private_output` left in ``directory``.

    Those are ``.<name>.opening-<pid>-XXXXXXXX`` files whose writer is no longer running,
    and, for the output ``name`` only, the ``.<name>.partial-XXXXXXXX`` an earlier version
    of ``exchange open`` wrote its plaintext to. Returns what was deleted. Where unnamed
    files are available nothing is ever left to sweep; this is the fallback's cleanup.
    """
    removed: list[Path] = []
    folder = Path(directory)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        opening = _OPENING_RE.fullmatch(path.name)
        legacy = _LEGACY_RE.fullmatch(path.name)
        stale = (opening is not None and not _alive(int(opening["pid"]))) or (
            legacy is not None and legacy["name"] == name
        )
        if stale and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def private_output(path: PathLike, *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Yield a binary file that appears at ``path`` only if the block finishes cleanly.

    For output that must not outlive a failure, such as opened plaintext. Where the system
    allows (Linux, ``O_TMPFILE``), the file has no name while it is written: it lives in
    ``path``'s folder but in no directory entry, so a crash, a kill or a power cut at any
    point leaves nothing behind, and it is linked to ``path`` only once complete and
    synced. Elsewhere it is written to ``.<name>.opening-<pid>-XXXXXXXX`` beside ``path``,
    deleted on any exception; one left by a killed process is deleted by the next call for
    the same folder (:func:`sweep_partial_outputs`), which every call makes first. An
    existing ``path`` is never replaced.
    """
    target = Path(path)
    _refuse_existing(target)
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(2, "no such directory", str(directory))
    sweep_partial_outputs(directory, target.name)
    fd = _open_unnamed(directory)
    if fd is None:
        yield from _named_private_output(target, mode)
        return
    with os.fdopen(fd, "wb") as handle:
        yield handle
        handle.flush()
        os.fchmod(handle.fileno(), mode)  # unnamed files exist only on Linux (O_TMPFILE)
        os.fsync(handle.fileno())
        _link_unnamed(handle.fileno(), target)
    _fsync_directory(directory)


def _named_private_output(target: Path, mode: int) -> Iterator[BinaryIO]:
    """Yield the fallback of :func:`private_output`: a named temporary, deleted on failure."""
    fd, temp_name = tempfile.mkstemp(
        prefix=f".{target.name}{_OPENING}{os.getpid()}-", dir=target.parent
    )
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            set_mode(handle.fileno(), temp, mode)
            os.fsync(handle.fileno())
        _publish(temp, target, overwrite=False)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def rename_durably(source: PathLike, target: PathLike) -> None:
    """Rename ``source`` to ``target`` (replacing it) and sync the folder, so it survives."""
    Path(source).replace(target)
    _fsync_directory(Path(target).parent)


def read_limited(path: PathLike, limit: int, *, what: str = "the input") -> bytes:
    """Return the contents of ``path`` (``-`` for standard input), at most ``limit`` bytes.

    Raise :class:`InputTooLargeError` naming ``what`` if there is more; nothing beyond
    ``limit + 1`` bytes is ever read.
    """
    if _is_stdio(path):
        data = sys.stdin.buffer.read(limit + 1)
    else:
        with Path(path).open("rb") as handle:
            data = handle.read(limit + 1)
    if len(data) > limit:
        raise InputTooLargeError(f"{what} is larger than the limit of {limit:,} bytes")
    return data


def _pieces(stream: BinaryIO) -> Iterator[bytes]:
    while piece := stream.read(PIECE_SIZE):
        yield piece


def open_to_file(
    reader_stream: BinaryIO,
    out_path: PathLike,
    directory: SenderKeys,
    keys: Sequence[OrgKeyPair],
    now: int,
    *,
    stdout: BinaryIO | None = None,
) -> OpenedEnvelope:
    """Open the envelope read from ``reader_stream`` and release its content to ``out_path``.

    The content is written to an unnamed file while it is still quarantined and linked to
    ``out_path`` only after :meth:`Opener.finish_opened` returned (:func:`private_output`:
    a kill part-way leaves nothing); for ``-`` it is spooled to an anonymous temporary file
    (mode 0600, deleted on close) and copied to ``stdout`` (standard output by default) only
    then. An existing ``out_path`` is never replaced.
    """
    opener = Opener(directory, keys, now=now)
    if _is_stdio(out_path):
        sink = stdout if stdout is not None else sys.stdout.buffer
        with tempfile.TemporaryFile(prefix="exchange-open-") as spool:
            opened = _open_into(opener, reader_stream, spool)
            spool.seek(0)
            shutil.copyfileobj(spool, sink, PIECE_SIZE)
            sink.flush()
        return opened
    with private_output(out_path) as handle:
        return _open_into(opener, reader_stream, handle)


def _open_into(opener: Opener, reader_stream: BinaryIO, quarantine: BinaryIO) -> OpenedEnvelope:
    for piece in _pieces(reader_stream):
        quarantine.writelines(opener.feed_pieces(piece))
    return opener.finish_opened()


def seal_file(
    reader_stream: BinaryIO,
    out_path: PathLike,
    sender: OrgKeyPair,
    recipients: Sequence[Recipient],
    *,
    record_kind: str,
    created: int,
    stdout: BinaryIO | None = None,
) -> SealedEnvelope:
    """Seal the content read from ``reader_stream`` into an envelope at ``out_path``.

    A file appears only when the envelope is complete (see :func:`atomic_output`); ``-``
    streams to ``stdout`` (standard output by default). A reader refuses an envelope that
    stops short (rule envelope.truncated), so streaming there exposes nothing.
    """
    sealer = Sealer(sender, recipients, record_kind=record_kind, created=created)
    if _is_stdio(out_path):
        sink = stdout if stdout is not None else sys.stdout.buffer
        sealed = _seal_into(sealer, reader_stream, sink)
        sink.flush()
        return sealed
    with atomic_output(out_path) as handle:
        return _seal_into(sealer, reader_stream, handle)


def _seal_into(sealer: Sealer, reader_stream: BinaryIO, sink: BinaryIO) -> SealedEnvelope:
    sink.write(sealer.start())
    for piece in _pieces(reader_stream):
        sink.writelines(sealer.feed_pieces(piece))
    tail, sealed = sealer.finish()
    sink.write(tail)
    return sealed


def verify_file(reader_stream: BinaryIO, directory: SenderKeys, now: int) -> VerifiedEnvelope:
    """Verify the envelope read from ``reader_stream`` without any private key."""
    verifier = Verifier(directory, now=now)
    for piece in _pieces(reader_stream):
        verifier.feed(piece)
    return verifier.finish()


class FileSource:
    """An open file's bytes as a content source: its size, and the bytes at an offset.

    What the content checks and the record container read a spooled upload through
    (:class:`exchange.records.content_checks.Source`); reads go straight to the file
    (``pread``), so nothing is held and readers in several threads do not disturb each
    other. The caller keeps the file open, and closes it, for as long as this is used.
    """

    __slots__ = ("_fd", "_size")

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._fd = handle.fileno()
        self._size = size

    @property
    def size(self) -> int:
        """The number of bytes of content."""
        return self._size

    def read_at(self, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset`` (fewer only at the end)."""
        count = max(0, min(count, self._size - offset))
        pieces = []
        while count > 0:
            piece = os.pread(self._fd, count, offset)
            if not piece:
                break
            pieces.append(piece)
            offset += len(piece)
            count -= len(piece)
        return b"".join(pieces) if len(pieces) != 1 else pieces[0]
