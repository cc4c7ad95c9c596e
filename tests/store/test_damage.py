"""A damaged store file is refused at opening, by name; leftovers of killed writes are swept."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from exchange.cli.errors import describe
from exchange.store import SqliteStore
from exchange.store.damage import StoreDamagedError, damage_of, quick_check
from exchange.store.schema import MIGRATIONS
from exchange.store.sql import StoreTooNewError


async def _filled_store(folder: Path) -> Path:
    """Make a store whose database spans many pages; return its file."""
    store = await SqliteStore.open(folder)
    path = store.path
    await store.close()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE filler (n INTEGER PRIMARY KEY, text TEXT)")
    db.execute("CREATE INDEX filler_by_text ON filler (text)")
    db.executemany(
        "INSERT INTO filler (n, text) VALUES (?, ?)", [(i, f"row {i:06d}") for i in range(5000)]
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


async def test_a_damaged_file_is_refused_at_opening_naming_it(tmp_path: Path) -> None:
    """Pages overwritten in the middle: the store will not open, and says which file."""
    path = await _filled_store(tmp_path / "node")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = os.urandom(8192)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreDamagedError) as raised:
        await SqliteStore.open(tmp_path / "node")
    message = str(raised.value)
    assert str(path) in message
    assert "Restoring from a backup" in message
    assert "row 0" not in message
    # The command line says the same on one line, and not "please report this as a bug".
    status, line = describe(raised.value)
    assert status != 0
    assert "please report" not in line
    assert str(path) in line


async def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path: Path) -> None:
    """Any other file in the database's place: refused by name, never read as a database."""
    folder = tmp_path / "node"
    folder.mkdir()
    (folder / "node.sqlite3").write_bytes(b"synthetic: not a database " * 400)
    with pytest.raises(StoreDamagedError) as raised:
        await SqliteStore.open(folder)
    assert "node.sqlite3" in str(raised.value)
    assert "SQLITE_NOTADB" in str(raised.value)


def test_quick_check_findings_name_structure_not_values(tmp_path: Path) -> None:
    """A page header changed: quick_check's finding is kept, bounded, on one line."""
    path = tmp_path / "x.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, secret TEXT)")
    db.execute("CREATE INDEX t_by_secret ON t (secret)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"Testchild {i}") for i in range(50)])
    db.commit()
    # Change the index page's header behind SQLite's back (its count of cells).
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 't_by_secret'").fetchone()
    db.close()
    data = bytearray(path.read_bytes())
    page = 4096
    start = (root[0] - 1) * page
    data[start + 3 : start + 5] = b"\x00\x00"
    path.write_bytes(bytes(data))
    db = sqlite3.connect(path)
    with pytest.raises(StoreDamagedError) as raised:
        quick_check(db, path)
    db.close()
    assert raised.value.what.startswith("quick_check found: *** in database main *** ")
    assert "page 3" in raised.value.what
    assert "Testchild" not in str(raised.value)
    assert "\n" not in str(raised.value)


def test_only_file_damage_is_damage() -> None:
    """A locked or missing table is not damage; a text value that is not UTF-8 is."""
    path = Path("/data/node.sqlite3")
    db = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as raised:
        db.execute("SELECT * FROM nosuch")
    assert damage_of(raised.value, path) is None
    db.execute("CREATE TABLE t (note TEXT)")
    db.execute("INSERT INTO t VALUES (CAST(X'4a6fff20546573746368696c64' AS TEXT))")
    with pytest.raises(sqlite3.OperationalError) as raised:
        db.execute("SELECT note FROM t").fetchall()
    damage = damage_of(raised.value, path)
    assert damage is not None
    assert damage.what == "a stored text value in column note is not UTF-8"
    assert "Testchild" not in str(damage)


async def test_the_nodes_start_sweeps_what_a_kill_left(tmp_path: Path) -> None:
    """A kill between a body's write and its row: the node's next start removes the body."""
    store = await SqliteStore.open(tmp_path / "node")
    (store.blobs.folder / ("ef" * 32)).write_bytes(b"synthetic")
    (store.blobs.folder / ".abc.partial-x").write_bytes(b"synthetic")
    await store.close()
    store = await SqliteStore.open(tmp_path / "node", sweep=True)
    try:
        assert store.leftovers_removed == 2
        assert list(store.blobs.folder.iterdir()) == []
    finally:
        await store.close()


async def test_a_command_beside_a_running_node_leaves_its_writes_alone(tmp_path: Path) -> None:
    """A command opens the store while the node writes a body: the body is not taken."""
    node = await SqliteStore.open(tmp_path / "node", sweep=True)
    writing = node.blobs.folder / ("ef" * 32)
    writing.write_bytes(b"synthetic")
    try:
        command = await SqliteStore.open(tmp_path / "node")
        await command.close()
        assert command.leftovers_removed == 0
        assert writing.exists()
    finally:
        await node.close()


async def test_a_database_from_a_newer_version_is_refused_not_used(tmp_path: Path) -> None:
    """Migrations only go forward: an older node refuses a newer schema, saying what to do."""
    store = await SqliteStore.open(tmp_path / "node")
    path = store.path
    await store.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    db.commit()
    db.close()
    with pytest.raises(StoreTooNewError) as raised:
        await SqliteStore.open(tmp_path / "node")
    assert f"schema version {len(MIGRATIONS) + 1}" in str(raised.value)
    status, line = describe(raised.value)
    assert status != 0
    assert "Before an upgrade" in line
    assert "please report" not in line
