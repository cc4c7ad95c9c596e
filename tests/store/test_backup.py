"""Backups of the store: consistent copy, manifest, verify, restore, and the pre-upgrade backup."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from exchange.cli.errors import describe
from exchange.envelope import Recipient, seal
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair
from exchange.model import EnvelopeRecord, NewOutbox, ReceiptRecord
from exchange.relay.store import RelayStore
from exchange.store import SqliteStore, backup
from exchange.store.backup import (
    MANIFEST,
    MISSING,
    NOT_ITS_ENVELOPE,
    BackupError,
    UpgradeBackupError,
    create_backup,
    restore_backup,
    verify_backup,
)
from exchange.store.schema import MIGRATIONS, run_migration
from exchange.store.sql import StoreTooNewError, connect_sqlite

from .conftest import LA, SCHOOL, T0

PAIRS = {org: OrgKeyPair.generate(org) for org in (SCHOOL, LA)}


def _sealed(n: int, sender: OrgId, to: OrgId) -> tuple[EnvelopeRecord, bytes]:
    """Seal a small synthetic record; return its row and its bytes."""
    recipient = Recipient(to, PAIRS[to].encryption.public)
    data, sealed = seal(
        b"synthetic record %d" % n, PAIRS[sender], [recipient], record_kind="referral",
        created=int(T0),
    )  # fmt: skip
    record = EnvelopeRecord(
        sealed.digest, sealed.envelope_id, sender, (to,), "referral", int(T0), len(data)
    )
    return record, data


async def _send(store: SqliteStore, n: int) -> EnvelopeRecord:
    """Store an envelope the school sent to the LA, body first (as the node does)."""
    record, data = _sealed(n, SCHOOL, LA)
    store.blobs.path(record.digest).write_bytes(data)
    outbox = [NewOutbox("envelope", record.digest, SCHOOL, LA)]
    await store.record_submission(
        record, submitted_by="dsl", now=T0, outbox=outbox, ledger_events=[b"submitted %d" % n]
    )
    return record


async def _receive(store: SqliteStore, n: int) -> EnvelopeRecord:
    """Store an envelope the LA received from the school."""
    record, data = _sealed(n, SCHOOL, LA)
    store.blobs.path(record.digest).write_bytes(data)
    signed = b"synthetic receipt %d" % n
    receipt = ReceiptRecord(bytes([n]) * 32, record.digest, LA, "delivered", int(T0), signed)
    await store.record_delivery(
        LA, record, now=T0, receipt=receipt, ledger_events=[b"received %d" % n]
    )
    return record


async def _filled(folder: Path) -> tuple[EnvelopeRecord, EnvelopeRecord]:
    """Fill a data folder with one item sent and one received, and secrets that must stay out."""
    store = await SqliteStore.open(folder)
    try:
        sent = await _send(store, 1)
        received = await _receive(store, 2)
    finally:
        await store.close()
    (folder / "register.key").write_bytes(os.urandom(32))
    (folder / "keys").mkdir()
    (folder / "keys" / "school.key").write_bytes(b"synthetic key file")
    return sent, received


def _manifest(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / MANIFEST).read_bytes()))


async def test_a_backup_holds_the_database_and_bodies_and_never_keys(tmp_path: Path) -> None:
    """The copy names the node, the schema, the counts and every file's hash; no secrets."""
    sent, received = await _filled(tmp_path / "data")
    result = create_backup(tmp_path / "data", tmp_path / "b1", node="hillside", now=T0)
    manifest = _manifest(tmp_path / "b1")
    assert manifest == result.manifest
    assert manifest["node"] == "hillside"
    assert manifest["schema_version"] == len(MIGRATIONS)
    assert manifest["created"] == "2027-01-15T08:00:00+00:00"
    assert manifest["counts"]["envelopes"] == 2
    assert (manifest["counts"]["sent"], manifest["counts"]["inbox"]) == (1, 1)
    assert manifest["counts"]["bodies"] == 2
    assert set(manifest["files"]) == {
        "node.sqlite3", f"bodies/{sent.digest.hex()}", f"bodies/{received.digest.hex()}"
    }  # fmt: skip
    assert manifest["damaged"] == {}
    # Only these files: no register.key, no keys/, no -wal or -journal beside the database.
    on_disk = {p.relative_to(tmp_path / "b1").as_posix() for p in (tmp_path / "b1").rglob("*")}
    assert on_disk == set(manifest["files"]) | {MANIFEST, "bodies"}
    for path in [tmp_path / "b1", *(tmp_path / "b1").rglob("*")]:
        wanted = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == wanted, path
    assert verify_backup(tmp_path / "b1") == []
    # Nothing hidden is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b1", "data"]


async def test_a_backup_never_replaces_anything(tmp_path: Path) -> None:
    """An existing target is refused, and so is a data folder without a database."""
    await _filled(tmp_path / "data")
    (tmp_path / "taken").mkdir()
    with pytest.raises(BackupError, match="already exists"):
        create_backup(tmp_path / "data", tmp_path / "taken", node="hillside")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackupError, match="there is no database"):
        create_backup(tmp_path / "empty", tmp_path / "b1", node="hillside")
    assert not (tmp_path / "b1").exists()


async def test_a_failed_backup_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while the manifest is written (the last step) leaves no folder at all."""
    await _filled(tmp_path / "data")

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device", "manifest.json")

    monkeypatch.setattr(backup, "write_new_file", full)
    with pytest.raises(OSError, match="No space"):
        create_backup(tmp_path / "data", tmp_path / "b1", node="hillside")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


async def test_a_body_deleted_during_the_copy_leaves_a_consistent_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: after the snapshot, a recall commits and its body file is deleted."""
    sent, received = await _filled(tmp_path / "data")
    real = backup._read_snapshot
    calls = []

    def snapshot_then_recall(path: Path, part: Any) -> Any:
        seen = real(path, part)
        if not calls:
            # What the running node does between our snapshot and our copy of the bodies.
            live = sqlite3.connect(tmp_path / "data" / "node.sqlite3")
            live.execute("UPDATE inbox SET state = 'recalled' WHERE digest = ?", (received.digest,))
            live.commit()
            live.close()
            (tmp_path / "data" / "bodies" / received.digest.hex()).unlink()
        calls.append(path)
        return seen

    monkeypatch.setattr(backup, "_read_snapshot", snapshot_then_recall)
    result = create_backup(tmp_path / "data", tmp_path / "b1", node="hillside")
    assert len(calls) == 2  # a second snapshot, which no longer needs the body
    assert f"bodies/{received.digest.hex()}" not in result.manifest["files"]
    assert f"bodies/{sent.digest.hex()}" in result.manifest["files"]
    assert result.damaged == {}
    assert verify_backup(tmp_path / "b1") == []


async def test_bodies_lost_or_damaged_before_the_backup_are_named(tmp_path: Path) -> None:
    """A body already missing, or not the envelope its name says, is listed, not hidden."""
    sent, received = await _filled(tmp_path / "data")
    (tmp_path / "data" / "bodies" / sent.digest.hex()).unlink()
    damaged = tmp_path / "data" / "bodies" / received.digest.hex()
    _tamper_byte(damaged, 100)  # in the header: its digest changes
    result = create_backup(tmp_path / "data", tmp_path / "b1", node="hillside")
    assert result.damaged == {
        f"bodies/{sent.digest.hex()}": MISSING,
        f"bodies/{received.digest.hex()}": NOT_ITS_ENVELOPE,
    }
    # The backup is a faithful copy: it verifies, and says what it lacks.
    assert verify_backup(tmp_path / "b1") == []


def _tamper_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


async def test_tampered_backups_fail_verify_naming_the_file(tmp_path: Path) -> None:
    """A changed byte in the database, a missing body, a changed manifest, an extra file."""
    sent, _ = await _filled(tmp_path / "data")
    body = f"bodies/{sent.digest.hex()}"
    cases: dict[str, Any] = {
        "node.sqlite3": lambda b: _tamper_byte(b / "node.sqlite3", 200),
        body: lambda b: (b / body).unlink(),
        MANIFEST: lambda b: (b / MANIFEST).write_bytes(
            (b / MANIFEST).read_bytes().replace(b'"hillside"', b'"elsewhere"')
        ),
        "stray.txt": lambda b: (b / "stray.txt").write_bytes(b"x"),
    }
    for n, (name, tamper) in enumerate(cases.items()):
        copy = tmp_path / f"b{n}"
        create_backup(tmp_path / "data", copy, node="hillside")
        tamper(copy)
        problems = verify_backup(copy)
        assert problems, name
        assert all("\n" not in p for p in problems)
        assert problems[0].startswith(f"{name}: "), problems


async def test_a_manifest_that_lies_about_counts_or_hashes_is_caught(tmp_path: Path) -> None:
    """Even with its checksum recomputed, a manifest must agree with the files."""
    sent, _ = await _filled(tmp_path / "data")
    create_backup(tmp_path / "data", tmp_path / "b1", node="hillside")
    manifest = _manifest(tmp_path / "b1")
    manifest["counts"]["envelopes"] = 3
    del manifest["files"][f"bodies/{sent.digest.hex()}"]
    (tmp_path / "b1" / f"bodies/{sent.digest.hex()}").unlink()
    manifest["checksum"] = backup._checksum(manifest)
    (tmp_path / "b1" / MANIFEST).write_text(json.dumps(manifest))
    problems = verify_backup(tmp_path / "b1")
    assert f"{MANIFEST}: says counts.envelopes is 3 but node.sqlite3 holds 2" in problems
    assert f"bodies/{sent.digest.hex()}: missing, though node.sqlite3 needs it" in problems


def test_a_folder_without_a_manifest_is_not_a_backup(tmp_path: Path) -> None:
    """What an interrupted backup leaves (no manifest) never verifies."""
    (tmp_path / "half").mkdir()
    assert verify_backup(tmp_path / "half") == [
        f"{MANIFEST}: missing, so this folder is not a complete backup"
    ]
    assert verify_backup(tmp_path / "nowhere") == ["no such backup folder"]
    (tmp_path / "a-file").write_text("not a backup")
    assert verify_backup(tmp_path / "a-file") == ["is a file, not a backup folder"]


async def test_restore_into_a_new_folder_gives_the_same_store(tmp_path: Path) -> None:
    """The restored store holds the same items and bodies, with register.key given apart."""
    sent, received = await _filled(tmp_path / "data")
    create_backup(tmp_path / "data", tmp_path / "b1", node="hillside")
    key = (tmp_path / "data" / "register.key").read_bytes()
    restore_backup(tmp_path / "b1", tmp_path / "new" / "data", extra={"register.key": key})
    restored = tmp_path / "new" / "data"
    assert stat.S_IMODE(restored.stat().st_mode) == 0o700
    assert stat.S_IMODE((restored / "register.key").stat().st_mode) == 0o600
    assert (restored / "register.key").read_bytes() == key
    assert not (restored / "keys").exists()
    store = await SqliteStore.open(restored)
    try:
        assert store.upgrade_backup is None
        item = await store.inbox_item(LA, received.digest)
        assert item is not None
        assert item.envelope == received
        assert await store.sent_item(SCHOOL, sent.digest) is not None
        for record in (sent, received):
            original = (tmp_path / "data" / "bodies" / record.digest.hex()).read_bytes()
            assert store.blobs.path(record.digest).read_bytes() == original
    finally:
        await store.close()


async def test_restore_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    """Into a folder holding anything: refused, nothing changed; an empty folder is fine."""
    await _filled(tmp_path / "data")
    create_backup(tmp_path / "data", tmp_path / "b1", node="hillside")
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    with pytest.raises(BackupError, match="is not empty"):
        restore_backup(tmp_path / "b1", tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before
    (tmp_path / "empty").mkdir()
    restore_backup(tmp_path / "b1", tmp_path / "empty")
    assert (tmp_path / "empty" / "node.sqlite3").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


async def test_restore_refuses_a_backup_that_does_not_verify(tmp_path: Path) -> None:
    """A damaged backup is not restored: the target stays absent."""
    await _filled(tmp_path / "data")
    create_backup(tmp_path / "data", tmp_path / "b1", node="hillside")
    _tamper_byte(tmp_path / "b1" / "node.sqlite3", 300)
    with pytest.raises(BackupError, match=r"does not verify \(node.sqlite3: changed"):
        restore_backup(tmp_path / "b1", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _store_at(folder: Path, version: int) -> None:
    """Make a database at schema ``version`` as that release left it (MIGRATIONS[:version])."""
    folder.mkdir(parents=True)
    (folder / "bodies").mkdir()
    db = connect_sqlite(str(folder / "node.sqlite3"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, statements in enumerate(MIGRATIONS[:version], start=1):
        run_migration(db, statements)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    db.close()


def _version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])
    finally:
        db.close()


async def test_an_upgrade_takes_a_backup_first_that_restores(tmp_path: Path) -> None:
    """Opening an older schema backs it up, then migrates; the backup restores the old one."""
    old = 2
    _store_at(tmp_path / "data", old)
    record, data = _sealed(1, SCHOOL, LA)
    (tmp_path / "data" / "bodies" / record.digest.hex()).write_bytes(data)
    db = sqlite3.connect(tmp_path / "data" / "node.sqlite3")
    db.execute(
        "INSERT INTO envelopes VALUES (?, ?, ?, ?, 'referral', ?, ?, ?)",
        (record.digest, record.envelope_id, SCHOOL, json.dumps([LA]), int(T0), len(data), T0),
    )
    db.execute("INSERT INTO sent VALUES (?, ?, 'dsl', ?)", (record.digest, SCHOOL, T0))
    db.commit()
    db.close()
    store = await SqliteStore.open(tmp_path / "data")
    try:
        taken = store.upgrade_backup
        assert taken is not None
        assert taken.parent == tmp_path / "data" / "backups"
        assert taken.name.startswith(f"pre-upgrade-v{old}-")
        assert taken.name.endswith("Z")
        assert await store.sent_item(SCHOOL, record.digest) is not None
    finally:
        await store.close()
    assert _version(tmp_path / "data" / "node.sqlite3") == len(MIGRATIONS)
    assert verify_backup(taken) == []
    assert _manifest(taken)["schema_version"] == old
    assert f"bodies/{record.digest.hex()}" in _manifest(taken)["files"]
    # Rolling back: restore the pre-upgrade backup; the old schema is back, body and all.
    restore_backup(taken, tmp_path / "rolled-back")
    assert _version(tmp_path / "rolled-back" / "node.sqlite3") == old
    assert (tmp_path / "rolled-back" / "bodies" / record.digest.hex()).read_bytes() == data
    # Opening an up-to-date store takes no backup.
    again = await SqliteStore.open(tmp_path / "data")
    await again.close()
    assert again.upgrade_backup is None
    assert len(list((tmp_path / "data" / "backups").iterdir())) == 1


async def test_an_upgrade_whose_backup_fails_changes_nothing(tmp_path: Path) -> None:
    """The backups folder cannot be made: refused in one line, the store at the old version."""
    old = 3
    _store_at(tmp_path / "data", old)
    (tmp_path / "blocked").write_bytes(b"a file where the backups folder should be")
    with pytest.raises(UpgradeBackupError) as raised:
        await SqliteStore.open(tmp_path / "data", upgrade_backups=tmp_path / "blocked" / "b")
    assert _version(tmp_path / "data" / "node.sqlite3") == old
    status, line = describe(raised.value)
    assert status == 1
    assert f"schema version {old}" in line
    assert f"upgrade it to {len(MIGRATIONS)}" in line
    assert "nothing was changed" in line
    assert "please report" not in line
    assert not [p for p in (tmp_path / "blocked").parent.iterdir() if p.name.startswith(".")]


async def test_a_newer_schema_is_refused_in_one_line_naming_both_versions(tmp_path: Path) -> None:
    """A database from a newer release: no backup, no change, one plain line."""
    _store_at(tmp_path / "data", len(MIGRATIONS))
    db = sqlite3.connect(tmp_path / "data" / "node.sqlite3")
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    db.commit()
    db.close()
    with pytest.raises(StoreTooNewError) as raised:
        await SqliteStore.open(tmp_path / "data")
    status, line = describe(raised.value)
    assert status == 1
    assert f"schema version {len(MIGRATIONS) + 1}" in line
    assert f"versions up to {len(MIGRATIONS)}" in line
    assert line == str(raised.value)  # already one line
    assert not (tmp_path / "data" / "backups").exists()


async def test_a_node_that_keeps_relay_mailboxes_backs_them_up_too(tmp_path: Path) -> None:
    """The relay's database and the bodies of waiting items; a collected item's body is gone."""
    await _filled(tmp_path / "data")
    relay = await RelayStore.open(tmp_path / "data" / "relay")
    try:
        waiting, data = _sealed(7, SCHOOL, LA)
        collected, other = _sealed(8, SCHOOL, LA)
        for record, body in ((waiting, data), (collected, other)):
            await relay.put(
                owner=LA, kind="envelope", digest=record.digest, author=SCHOOL, body=body,
                now=T0, max_items=10,
            )  # fmt: skip
        await relay.collect(LA, "envelope", collected.digest, now=T0)
    finally:
        await relay.close()
    result = create_backup(tmp_path / "data", tmp_path / "b1", node="la")
    files = result.manifest["files"]
    assert result.manifest["relay"] is True
    assert "relay/relay.sqlite" in files
    assert f"relay/bodies/envelope/{waiting.digest.hex()}" in files
    assert f"relay/bodies/envelope/{collected.digest.hex()}" not in files
    assert result.manifest["counts"]["relay_items_waiting"] == 1
    assert verify_backup(tmp_path / "b1") == []
    (tmp_path / "b1" / f"relay/bodies/envelope/{waiting.digest.hex()}").unlink()
    assert verify_backup(tmp_path / "b1")[0].startswith(
        f"relay/bodies/envelope/{waiting.digest.hex()}: missing"
    )
