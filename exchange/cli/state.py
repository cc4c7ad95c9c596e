"""Rollback protection: the newest directory version accepted from each authority key.

A node that has once accepted version 7 of the directory must not be talked into using
version 6 again (it might still list a key that version 7 revoked). This module keeps, per
authority verifier key, the highest version accepted and a hash of its text, in
``directory-versions.json`` under the state directory; the version is passed to
``load_directory`` as ``min_version``. A different document under an already accepted
version is refused too: the authority never issues two. Updates happen under an exclusive
lock and are written atomically, so two commands running at once cannot lower the record.
The lock is ``flock`` on POSIX and ``msvcrt.locking`` on Windows; neither module is imported
until a lock is taken, so the staff commands import everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from exchange.cli.errors import CliError
from exchange.files import atomic_output, read_limited
from exchange.keys.directory import Directory, directory_text, load_directory
from exchange.keys.errors import DirectoryError
from exchange.keys.notes import NoteVerifier

STATE_FORMAT: Final = "exchange-directory-state/v1"
STATE_FILE: Final = "directory-versions.json"
LOCK_FILE: Final = "directory-versions.lock"
#: The state file holds one short record per trusted authority key; 1 MiB is thousands.
MAX_STATE_LEN: Final = 1024 * 1024


@dataclass(frozen=True)
class Accepted:
    """The newest directory accepted from one authority key."""

    version: int
    text_sha256: str


def state_dir() -> Path:
    """Return the state directory: $EXCHANGE_STATE_DIR, $XDG_STATE_HOME/exchange or default."""
    explicit = os.environ.get("EXCHANGE_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "exchange"


#: The errors ``msvcrt.locking`` raises when another process holds the lock past its retries.
_LOCK_BUSY: Final = frozenset({errno.EDEADLK, errno.EACCES})


def _lock_exclusive(fd: int) -> None:
    """Wait for an exclusive lock on the open lock file ``fd``."""
    if sys.platform == "win32":
        import msvcrt  # noqa: PLC0415 (Windows only)

        while True:  # LK_LOCK tries for about ten seconds, then fails; keep waiting like flock
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            except OSError as error:
                if error.errno not in _LOCK_BUSY:
                    raise
            else:
                return
    else:
        try:
            import fcntl  # noqa: PLC0415 (POSIX only: imported here, so Windows imports the module)
        except ImportError:
            raise CliError(
                "this system offers no file locking (neither fcntl nor msvcrt), so the directory "
                "version record cannot be updated safely"
            ) from None
        fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock(fd: int) -> None:
    """Release the lock before closing (Windows releases a closed file's locks only later)."""
    if sys.platform == "win32":
        import msvcrt  # noqa: PLC0415 (Windows only)

        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _lock_exclusive(fd)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _damaged(path: Path) -> CliError:
    return CliError(
        f"the state file {path} is damaged; repair it, or remove it to restart rollback "
        "protection from the directory you load next"
    )


def _read(path: Path) -> dict[str, Accepted]:
    if not path.exists():
        return {}
    try:
        doc: Any = json.loads(read_limited(path, MAX_STATE_LEN, what="the state file"))
    except ValueError:
        raise _damaged(path) from None
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise _damaged(path)
    entries = doc.get("authorities")
    if not isinstance(entries, dict):
        raise _damaged(path)
    records = {}
    for vkey, entry in entries.items():
        if (
            not isinstance(entry, dict)
            or type(entry.get("version")) is not int
            or not isinstance(entry.get("text_sha256"), str)
        ):
            raise _damaged(path)
        records[vkey] = Accepted(entry["version"], entry["text_sha256"])
    return records


def _write(path: Path, records: dict[str, Accepted]) -> None:
    doc = {
        "format": STATE_FORMAT,
        "authorities": {
            vkey: {"version": rec.version, "text_sha256": rec.text_sha256}
            for vkey, rec in sorted(records.items())
        },
    }
    with atomic_output(path, overwrite=True) as handle:
        handle.write((json.dumps(doc, indent=1) + "\n").encode("utf-8"))


def load_with_rollback_check(
    note: bytes, trusted: Sequence[NoteVerifier], directory: Path | None = None
) -> Directory:
    """Verify and parse a directory, refusing versions older than one already accepted.

    The highest version recorded for any of the ``trusted`` keys is the minimum; on success
    the record of the key(s) that signed it moves forward.
    """
    where = state_dir() if directory is None else directory
    path = where / STATE_FILE
    with _locked(where):
        records = _read(path)
        keys = {verifier.vkey(): verifier for verifier in trusted}
        min_version = max((records[k].version for k in keys if k in records), default=0)
        loaded = load_directory(note, trusted, min_version=min_version)
        digest = hashlib.sha256(directory_text(loaded).encode("utf-8")).hexdigest()
        changed = False
        for vkey, verifier in keys.items():
            if verifier.name != loaded.authority:
                continue
            seen = records.get(vkey)
            if seen is not None and seen.version == loaded.version:
                if seen.text_sha256 != digest:
                    raise DirectoryError(
                        f"the directory is version {loaded.version}, but a different directory "
                        "with that version was accepted before; it is refused"
                    )
            elif seen is None or seen.version < loaded.version:
                records[vkey] = Accepted(loaded.version, digest)
                changed = True
        if changed:
            _write(path, records)
    return loaded
