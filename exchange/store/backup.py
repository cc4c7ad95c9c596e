"""Backups of a node's store: an online, consistent copy, its check, and its restore.

A backup is a folder laid out like the data folder it copies, so a restore is a copy:

    manifest.json                      what the backup holds; written last
    node.sqlite3                       the database: one consistent snapshot
    bodies/<digest>                    every envelope body that snapshot needs
    relay/relay.sqlite                 the relay store (only on a node that keeps one)
    relay/bodies/<kind>/<digest>       every body a waiting relay item needs

**Consistent while the node runs.** Each database is copied with SQLite's online backup API
in one step, which reads one snapshot while the node goes on writing (WAL). Bodies are copied
after it. A body written after the snapshot is not needed by it and is not copied. A body is
deleted (retention destruction, recall, a relay item collected) only after the commit that
made it unneeded, so a needed body found missing was deleted after the snapshot: a fresh
snapshot, which no longer needs it, is taken and the copy completed. A body missing before a
snapshot that still needs it was lost from the data folder earlier: it is listed in the
manifest under ``damaged``, like a body whose bytes are not the envelope its name says, so the
backup says what it is and the operator is told.

**Never in a backup:** key files, passphrases, the configuration and ``register.key``; only
the files above are copied, whatever else the data folder holds (``backups/`` included).

**All or nothing.** A backup is written in ``.NAME.partial-XXXX`` beside its final place, the
manifest last; every file is synced, then the folder is renamed. A backup that fails is
removed; one that is killed leaves only the hidden ``.partial`` folder. Files are 0600 and
folders 0700. A restore is written the same way, into a data folder that is empty or new.

The manifest names the node, the schema version, the creation time (UTC), counts of what
the databases hold and the SHA-256 of every file; its ``checksum`` (SHA-256 of the rest)
shows a manifest changed by accident or by a careless hand. It is not a signature: keep
backups where they cannot be changed, and after a restore run ``exchange ledger verify``,
whose signed checkpoints show any change to the ledger.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Final
from urllib.parse import quote

from exchange.envelope.errors import OpenError
from exchange.envelope.reader import EnvelopeReader, TrailerRead
from exchange.files import set_mode, write_new_file
from exchange.store.damage import StoreDamagedError, quick_check
from exchange.store.schema import MIGRATIONS

FORMAT: Final = "exchange-backup/1"
MANIFEST: Final = "manifest.json"
NODE_DB: Final = "node.sqlite3"
RELAY_DB: Final = "relay/relay.sqlite"

#: Snapshots taken at most while bodies keep being deleted under the copy.
MAX_ROUNDS: Final = 5
#: Bytes read at a time: files are streamed, whatever their size.
_PIECE: Final = 1 << 20

MISSING: Final = "missing from the data folder"
NOT_ITS_ENVELOPE: Final = "not the envelope its name says"


class BackupError(Exception):
    """A backup could not be made, checked or restored; the message is one plain sentence."""


class UpgradeBackupError(BackupError):
    """The backup taken before a schema upgrade failed, so the upgrade was not made."""


@dataclass(frozen=True)
class _Part:
    """One database of the data folder and the bodies it needs."""

    db: str
    bodies_prefix: str
    bodies: Callable[[sqlite3.Connection], list[str]]
    counts: Callable[[sqlite3.Connection], dict[str, int]]


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def schema_version(db: sqlite3.Connection) -> int:
    """Return the store's schema version (0: a new, empty database)."""
    if "schema_version" not in _tables(db):
        return 0
    return int(db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)


def _node_bodies(db: sqlite3.Connection) -> list[str]:
    """Return the bodies some organisation on the node still holds.

    Those are the bodies of items sent (and the sender's own copies of them), or received
    and not recalled, and not destroyed under retention: the files the node may still read.
    """
    holdings = (
        "SELECT sender AS org, digest FROM sent "
        "UNION ALL SELECT owner AS org, digest FROM inbox WHERE state != 'recalled'"
    )
    if "own_copy" in {r[1] for r in db.execute("PRAGMA table_info(sent)")}:
        # The sender's own copies (sealed to itself, never sent); null once destroyed.
        holdings += " UNION ALL SELECT sender AS org, own_copy AS digest FROM sent"
        holdings += " WHERE own_copy IS NOT NULL"
    kept = ""
    if "retention" in _tables(db):  # older schemas have no retention table
        kept = (
            " WHERE NOT EXISTS (SELECT 1 FROM retention r WHERE r.org = h.org "
            "AND r.digest = h.digest AND r.destroyed_at IS NOT NULL)"
        )
    rows = db.execute(f"SELECT DISTINCT lower(hex(h.digest)) FROM ({holdings}) h{kept} ORDER BY 1")
    return [f"bodies/{r[0]}" for r in rows]


def _node_counts(db: sqlite3.Connection) -> dict[str, int]:
    tables = _tables(db)
    named = {"envelopes": "envelopes", "sent": "sent", "inbox": "inbox", "ledger_events": "ledger"}
    named |= {"checkpoints": "checkpoints", "users": "users"}
    return {
        name: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        for name, table in named.items()
        if table in tables
    }


def _relay_bodies(db: sqlite3.Connection) -> list[str]:
    rows = db.execute(
        "SELECT DISTINCT kind, lower(hex(id)) FROM items WHERE state = 'waiting' ORDER BY 1, 2"
    )
    return [f"relay/bodies/{kind}/{name}" for kind, name in rows]


def _relay_counts(db: sqlite3.Connection) -> dict[str, int]:
    rows = db.execute("SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'waiting') FROM items")
    total, waiting = rows.fetchone()
    return {"relay_items": int(total), "relay_items_waiting": int(waiting)}


NODE: Final = _Part(NODE_DB, "bodies/", _node_bodies, _node_counts)
RELAY: Final = _Part(RELAY_DB, "relay/bodies/", _relay_bodies, _relay_counts)


# --- files ----------------------------------------------------------------------------------


def _is_envelope_body(rel: str) -> bool:
    return rel.startswith(("bodies/", "relay/bodies/envelope/"))


def _read_facts(source: Path, rel: str, sink: BinaryIO | None = None) -> tuple[str, bool]:
    """Stream ``source`` (into ``sink`` if given); return its SHA-256 and whether it is right.

    "Right" means, for an envelope body, that its bytes are the envelope its name (the
    digest) says: the digest is recomputed from the bytes alone, with no key. Other files
    are always right; the manifest's hash is their check.
    """
    hasher = hashlib.sha256()
    reader: EnvelopeReader | None = EnvelopeReader() if _is_envelope_body(rel) else None
    found: bytes | None = None
    with source.open("rb") as handle:
        while block := handle.read(_PIECE):
            hasher.update(block)
            if sink is not None:
                sink.write(block)
            if reader is None:
                continue
            try:
                reader.receive(block)
                while (event := reader.next_event()) is not None:
                    if isinstance(event, TrailerRead):
                        found = event.digest
            except OpenError:
                reader, found = None, None
    if reader is not None:
        try:
            reader.close()
        except OpenError:
            found = None
    right = not _is_envelope_body(rel) or (found is not None and found.hex() == source.name)
    return hasher.hexdigest(), right


@contextlib.contextmanager
def _new_file(path: Path) -> Iterator[BinaryIO]:
    """Create ``path`` (0600, never replacing a file), yield it, and sync it when done."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    set_mode(fd, path, 0o600)
    with os.fdopen(fd, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def _sync(path: Path) -> None:
    """Sync a file or folder so it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) * path.is_dir())
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folders(top: Path) -> None:
    """Sync every folder under ``top`` (deepest first), then ``top``."""
    for folder, _, _ in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
        _sync(Path(folder))


def _staging(final: Path, kind: str) -> Path:
    """Make the hidden 0700 folder that becomes ``final`` once it is complete."""
    if final.exists() or final.is_symlink():
        raise BackupError(f"{final} already exists; a backup never replaces anything")
    if not final.parent.is_dir():
        if final.parent.exists():
            raise BackupError(f"{final.parent} is not a folder")
        raise BackupError(f"the folder {final.parent} does not exist")
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.{kind}-", dir=final.parent))


def _publish(staging: Path, final: Path) -> None:
    """Rename the complete ``staging`` folder to ``final`` (an empty folder there is replaced)."""
    _sync_folders(staging)
    if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
        final.rmdir()
    if final.exists() or final.is_symlink():
        raise BackupError(f"{final} appeared while the copy was made; nothing was replaced")
    staging.rename(final)
    _sync(final.parent)


# --- making a backup -------------------------------------------------------------------------


@dataclass
class BackupResult:
    """What a backup holds: its folder, its manifest, and the bodies that were damaged."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def damaged(self) -> dict[str, str]:
        """Bodies that were missing or damaged in the data folder, and what was wrong."""
        return dict(self.manifest.get("damaged", {}))


@dataclass
class _Copy:
    files: dict[str, str] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _connect(path: Path) -> sqlite3.Connection:
    """Open an existing database for reading beside a running node (never creating it)."""
    if not path.is_file():
        raise BackupError(f"there is no database {path}; is the data folder right?")
    db = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, isolation_level=None)
    db.execute("PRAGMA busy_timeout=5000")
    return db


def _snapshot(source: sqlite3.Connection, target: Path) -> None:
    """Copy ``source`` to ``target`` in one step (one consistent snapshot), as one file."""
    target.unlink(missing_ok=True)
    with _new_file(target):
        pass  # created 0600 first: SQLite keeps an existing file's mode
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)  # pages=-1: every page in one step, under one read transaction
        dest.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
    finally:
        dest.close()
    _sync(target)


def _read_snapshot(path: Path, part: _Part) -> tuple[list[str], dict[str, int], int]:
    db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        return part.bodies(db), part.counts(db), schema_version(db)
    finally:
        db.close()


def _copy_part(
    part: _Part, data_dir: Path, out: Path, copy: _Copy, source: sqlite3.Connection
) -> int:
    """Snapshot one database and copy the bodies it needs; return its schema version."""
    missing_before: set[str] = set()
    needed: list[str] = []
    version = 0
    for _ in range(MAX_ROUNDS):
        _snapshot(source, out / part.db)
        needed, counts, version = _read_snapshot(out / part.db, part)
        copy.counts.update(counts)
        missing: set[str] = set()
        for rel in needed:
            if rel in copy.files:
                continue  # copied under an earlier snapshot: a body never changes
            try:
                with _new_file(out / rel) as sink:
                    copy.files[rel], right = _read_facts(data_dir / rel, rel, sink)
            except FileNotFoundError:
                (out / rel).unlink(missing_ok=True)
                missing.add(rel)
                continue
            if not right:
                copy.damaged[rel] = NOT_ITS_ENVELOPE
        if missing <= missing_before:
            break  # each was missing before this snapshot: lost earlier, not deleted under us
        missing_before = missing
    wanted = set(needed)
    for rel in missing_before & wanted:
        if rel not in copy.files:
            copy.damaged[rel] = MISSING
    for rel in [r for r in copy.files if r.startswith(part.bodies_prefix) and r not in wanted]:
        (out / rel).unlink()  # needed by an earlier snapshot only (destroyed meanwhile)
        del copy.files[rel]
        copy.damaged.pop(rel, None)
    copy.files[part.db], _ = _read_facts(out / part.db, part.db)
    return version


def _checksum(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def utc_stamp(moment: float) -> str:
    """Return ``moment`` as a UTC time for a folder name: ``20270115T093000Z``."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%SZ")


def _refuse_newer(version: int) -> None:
    if version > len(MIGRATIONS):
        raise BackupError(
            f"the database is at schema version {version}, made by a newer version of the "
            f"node (this one knows versions up to {len(MIGRATIONS)}); back it up with that "
            "version"
        )


def create_backup(
    data_dir: Path,
    target: Path,
    *,
    node: str | None,
    source: sqlite3.Connection | None = None,
    now: float | None = None,
) -> BackupResult:
    """Back up the store in ``data_dir`` into the new folder ``target``.

    ``source`` is an open connection to the node's database to copy from (the store's own,
    before a migration); without it the database is opened beside the running node.
    """
    moment = time.time() if now is None else now
    staging = _staging(target, "partial")
    try:
        copy = _Copy()
        own = source is None
        db = _connect(data_dir / NODE_DB) if source is None else source
        try:
            version = _copy_part(NODE, data_dir, staging, copy, db)
        finally:
            if own:
                db.close()
        _refuse_newer(version)
        (staging / "bodies").mkdir(exist_ok=True, mode=0o700)
        relay = (data_dir / RELAY_DB).is_file()
        if relay:
            relay_db = _connect(data_dir / RELAY_DB)
            try:
                _copy_part(RELAY, data_dir, staging, copy, relay_db)
            finally:
                relay_db.close()
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "node": node,
            "created": datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds"),
            "schema_version": version,
            "relay": relay,
            "counts": copy.counts | {"bodies": sum(_is_envelope_body(r) for r in copy.files)},
            "damaged": dict(sorted(copy.damaged.items())),
            "files": dict(sorted(copy.files.items())),
        }
        manifest["checksum"] = _checksum(manifest)
        data = json.dumps(manifest, indent=1, sort_keys=True).encode("ascii") + b"\n"
        write_new_file(staging / MANIFEST, data, mode=0o600)
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BackupResult(target, manifest)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else "a file"
        return f"{name}: {(exc.strerror or type(exc).__name__).lower()}"
    if isinstance(exc, sqlite3.Error):
        return f"SQLite: {exc.sqlite_errorname if hasattr(exc, 'sqlite_errorname') else 'error'}"
    return str(exc)


def pre_upgrade_backup(
    db: sqlite3.Connection, data_dir: Path, folder: Path, old: int, *, now: float | None = None
) -> Path:
    """Back up the store at schema version ``old`` before it is migrated; return where.

    Raises :class:`UpgradeBackupError` (and changes nothing in the store) if it fails.
    """
    moment = time.time() if now is None else now
    target = folder / f"pre-upgrade-v{old}-{utc_stamp(moment)}"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_backup(data_dir, target, node=None, source=db, now=moment)
    except (OSError, sqlite3.Error, BackupError) as exc:
        raise UpgradeBackupError(
            f"the database is at schema version {old} and this version of the node would "
            f"upgrade it to {len(MIGRATIONS)}, but the backup it takes first failed "
            f"({_reason(exc)}), so nothing was changed; make room or fix the folder "
            f"{folder} (setting node.upgrade_backups) and try again"
        ) from None
    return target


# --- checking a backup -----------------------------------------------------------------------


def _safe(rel: str) -> bool:
    """Whether a manifest's file name stays inside the backup."""
    path = PurePosixPath(rel)
    return (
        bool(rel)
        and "\\" not in rel
        and not path.is_absolute()
        and ".." not in path.parts
        and str(path) == rel
    )


def _is_hex_digest(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef")


def _manifest_problem(manifest: Any) -> str | None:
    """Return what is wrong with the shape of a manifest, or None."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return f"it is not a backup manifest of this kind ({FORMAT})"
    checks: dict[str, Callable[[Any], bool]] = {
        "files": lambda v: isinstance(v, dict) and all(_is_hex_digest(h) for h in v.values()),
        "damaged": lambda v: isinstance(v, dict) and all(isinstance(w, str) for w in v.values()),
        "counts": lambda v: isinstance(v, dict) and all(isinstance(n, int) for n in v.values()),
        "schema_version": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "created": lambda v: isinstance(v, str),
        "node": lambda v: v is None or isinstance(v, str),
        "relay": lambda v: isinstance(v, bool),
        "checksum": _is_hex_digest,
    }
    for name, check in checks.items():
        if name not in manifest or not check(manifest[name]):
            return f"its field {name} is missing or malformed"
    return None


def read_manifest(backup: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """Return the backup's manifest (None if unusable) and the problems found in it."""
    path = backup / MANIFEST
    # Each problem is said of the backup (the caller names it), so none repeats its path.
    if not backup.is_dir():
        return None, [
            "is a file, not a backup folder" if backup.exists() else "no such backup folder"
        ]
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, [f"{MANIFEST}: missing, so this folder is not a complete backup"]
    except OSError as exc:
        return None, [f"{MANIFEST}: cannot be read ({_reason(exc)})"]
    except (UnicodeError, json.JSONDecodeError):
        return None, [f"{MANIFEST}: is not valid JSON"]
    shape = _manifest_problem(manifest)
    if shape is not None:
        return None, [f"{MANIFEST}: {shape}"]
    problems = []
    if manifest["checksum"] != _checksum(manifest):
        problems.append(f"{MANIFEST}: changed since the backup was made (its checksum differs)")
    return manifest, problems


def _files_on_disk(backup: Path) -> dict[str, bool]:
    """Every entry that is not a folder under ``backup``, by its name, and whether it is a link."""
    found = {}
    for folder, dirs, names in os.walk(backup):
        base = Path(folder)
        for name in names + [d for d in dirs if (base / d).is_symlink()]:
            rel = (base / name).relative_to(backup).as_posix()
            found[rel] = (base / name).is_symlink()
    return found


def _check_files(backup: Path, manifest: Mapping[str, Any]) -> list[str]:
    files: dict[str, str] = manifest["files"]
    damaged: dict[str, str] = manifest["damaged"]
    on_disk = _files_on_disk(backup)
    problems = []
    for rel, expected in sorted(files.items()):
        if not _safe(rel):
            problems.append(f"{MANIFEST}: names a file outside the backup ({json.dumps(rel)})")
            continue
        if on_disk.get(rel):
            problems.append(f"{rel}: is a link, not a file")
            continue
        try:
            digest, right = _read_facts(backup / rel, rel)
        except FileNotFoundError:
            problems.append(f"{rel}: missing")
            continue
        except OSError as exc:
            problems.append(f"{rel}: cannot be read ({_reason(exc)})")
            continue
        if digest != expected:
            problems.append(f"{rel}: changed since the backup was made (its SHA-256 differs)")
        elif not right and rel not in damaged:
            problems.append(f"{rel}: is {NOT_ITS_ENVELOPE}")
    unlisted = sorted(set(on_disk) - set(files) - {MANIFEST})
    problems += [f"{rel}: is not listed in the manifest" for rel in unlisted]
    return problems


def _check_database(backup: Path, part: _Part, manifest: Mapping[str, Any]) -> list[str]:
    path = backup / part.db
    if not path.is_file():
        return []  # reported as missing already
    db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True)
    try:
        quick_check(db, path)
        needed, counts, version = part.bodies(db), part.counts(db), schema_version(db)
    except StoreDamagedError as exc:
        return [f"{part.db}: is damaged ({exc.what})"]
    except sqlite3.Error:
        return [f"{part.db}: is not a database this version of the node can read"]
    finally:
        db.close()
    problems = []
    if part is NODE and version != manifest["schema_version"]:
        problems.append(
            f"{MANIFEST}: says schema version {manifest['schema_version']} but {part.db} is at "
            f"version {version}"
        )
    if part is NODE and version > len(MIGRATIONS):
        problems.append(
            f"{part.db}: is at schema version {version}, made by a newer version of the node "
            f"(this one knows versions up to {len(MIGRATIONS)})"
        )
    for name, count in sorted(counts.items()):
        if manifest["counts"].get(name) != count:
            problems.append(
                f"{MANIFEST}: says counts.{name} is {manifest['counts'].get(name)} but "
                f"{part.db} holds {count}"
            )
    absent = [r for r in needed if r not in manifest["files"] and r not in manifest["damaged"]]
    problems += [f"{rel}: missing, though {part.db} needs it" for rel in absent]
    return problems


def verify_backup(backup: Path) -> list[str]:
    """Check a backup; return one line per problem, each naming the file (none: it is sound).

    The manifest's checksum, every file's SHA-256, every envelope body against its digest,
    each database with ``PRAGMA quick_check``, its counts and schema version against the
    manifest, and every body each database needs present.
    """
    manifest, problems = read_manifest(backup)
    if manifest is None:
        return problems
    problems += _check_files(backup, manifest)
    problems += _check_database(backup, NODE, manifest)
    if manifest["relay"]:
        problems += _check_database(backup, RELAY, manifest)
    return problems


# --- restoring a backup ----------------------------------------------------------------------


def _refuse_nonempty(data_dir: Path) -> None:
    if data_dir.is_symlink() or (data_dir.exists() and not data_dir.is_dir()):
        raise BackupError(f"{data_dir} is not a folder; restore only into an empty or new folder")
    if data_dir.is_dir() and any(data_dir.iterdir()):
        raise BackupError(
            f"the data folder {data_dir} is not empty; a backup is restored only into an empty "
            "or new folder (move the old one aside first)"
        )


def _restore_file(backup: Path, staging: Path, rel: str, expected: str) -> None:
    with _new_file(staging / rel) as sink:
        digest, _ = _read_facts(backup / rel, rel, sink)
    if digest != expected:
        raise BackupError(f"{rel} changed while it was being restored; nothing was restored")


def restore_backup(
    backup: Path, data_dir: Path, *, extra: Mapping[str, bytes] | None = None
) -> dict[str, Any]:
    """Restore ``backup`` into ``data_dir`` (empty or new); return the backup's manifest.

    The backup is verified first; a backup with any problem is refused, and so is a data
    folder that is not empty, with nothing changed. ``extra`` are further files to put in
    the data folder (mode 0600), e.g. ``register.key`` from where the keys are kept.
    """
    _refuse_nonempty(data_dir)
    problems = verify_backup(backup)
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise BackupError(
            f"the backup {backup} does not verify ({problems[0]}{more}); nothing was restored"
        )
    manifest, _ = read_manifest(backup)
    assert manifest is not None  # verified just above
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
    try:
        for rel, expected in manifest["files"].items():
            _restore_file(backup, staging, rel, expected)
        for name, data in (extra or {}).items():
            write_new_file(staging / name, data, mode=0o600)
        (staging / "bodies").mkdir(exist_ok=True, mode=0o700)
        _refuse_nonempty(data_dir)
        _publish(staging, data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
