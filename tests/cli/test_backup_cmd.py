"""``exchange backup``: back up real nodes on loopback while they deliver, verify, restore, open."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from exchange.config import config_to_toml, load_config
from exchange.config_database import DatabaseConfig
from exchange.demo.loopback import Deployment
from exchange.node.runtime import Node
from tests.node.conftest import LA, SCHOOL, deployed
from tests.node.helpers import client, sent, submit, until
from tests.node.records import opened_note

from .conftest import assert_refused, run

pytestmark = pytest.mark.network

USERS = {SCHOOL: ["dsl"], LA: ["staff"]}


async def _delivered(world: Deployment, digests: list[str]) -> None:
    async with client(world) as http:

        async def all_delivered() -> bool:
            for digest in digests:
                item = await sent(http, world, digest)
                if item["recipients"][0]["delivery_state"] != "delivered":
                    return False
            return True

        await until(all_delivered, what="deliveries")


async def _exchange_and_back_up(world: Deployment, out: Path) -> tuple[str, Path, Path]:
    """Deliver one item, then back up both nodes while more are being delivered."""
    out.mkdir()
    async with client(world) as http:
        first = str((await submit(http, world, b"synthetic note one", [LA]))["digest"])
        await _delivered(world, [first])
        later = [
            str((await submit(http, world, b"synthetic note %d" % n, [LA]))["digest"])
            for n in range(2, 6)
        ]
    la = await asyncio.to_thread(
        run, "backup", "create", "--config", str(world.folder / "node-la.toml"),
        "--out", str(out / "la"),
    )  # fmt: skip
    assert la.status == 0, la
    # Standard output names the backup (the nodes' own log lines may be there too).
    assert str(out / "la") in la.text.splitlines()
    assert "backup of la written: " in la.err
    # An existing folder: a new, dated backup folder is made inside it.
    (out / "school").mkdir()
    school = await asyncio.to_thread(
        run, "backup", "create", "--config", str(world.folder / "node-school.toml"),
        "--out", str(out / "school"),
    )  # fmt: skip
    assert school.status == 0, school
    [school_backup] = [Path(p) for p in school.text.splitlines() if p.startswith(str(out))]
    assert school_backup.parent == out / "school"
    assert school_backup.name.startswith("exchange-backup-school-")
    await _delivered(world, later)
    return first, out / "la", school_backup


def _restored_config(world: Deployment, folder: Path) -> Path:
    """Write the LA node's configuration with a new, empty data folder; return its path."""
    config = load_config(world.folder / "node-la.toml")
    folder.mkdir()
    path = folder / "la-restored.toml"
    path.write_text(config_to_toml(replace(config, data_dir=folder / "data", port=0)))
    return path


async def test_backup_while_delivering_then_restore_and_open(tmp_path: Path) -> None:
    """The whole story: back up, verify, restore, ledger verify, open the item again."""
    async with deployed(tmp_path / "world", USERS) as world:
        first, la_backup, school_backup = await _exchange_and_back_up(world, tmp_path / "out")
        token = world.tokens[(LA, "staff")]
    for backup in (la_backup, school_backup):
        result = run("backup", "verify", str(backup))
        assert result.status == 0, result
        assert result.err == f"backup verified: {backup}\n"
        manifest = json.loads((backup / "manifest.json").read_text())
        # Never a key file, a passphrase or register.key.
        names = {p.name for p in backup.rglob("*")}
        assert "register.key" not in names
        assert not [n for n in names if n.endswith((".key", ".toml", ".pem"))]
        assert manifest["counts"]["envelopes"] >= 1
    school_manifest = json.loads((school_backup / "manifest.json").read_text())
    assert school_manifest["node"] == "school"
    assert school_manifest["counts"]["sent"] >= 1
    # The sender's own copies (sealed to itself, never sent) are bodies it still needs.
    db = sqlite3.connect(school_backup / "node.sqlite3")
    own = [
        r[0] for r in db.execute("SELECT lower(hex(own_copy)) FROM sent WHERE own_copy IS NOT NULL")
    ]
    db.close()
    assert own
    assert {f"bodies/{d}" for d in own} <= set(school_manifest["files"])
    assert f"bodies/{first}" in json.loads((la_backup / "manifest.json").read_text())["files"]

    config = _restored_config(world, tmp_path / "restored")
    register_key = world.folder / "data-la" / "register.key"
    result = run(
        "backup", "restore", str(la_backup), "--config", str(config),
        "--register-key", str(register_key),
    )  # fmt: skip
    assert result.status == 0, result
    assert "restored into" in result.err
    assert (tmp_path / "restored" / "data" / "register.key").read_bytes() == (
        register_key.read_bytes()
    )
    result = await asyncio.to_thread(run, "ledger", "verify", "--config", str(config))
    assert result.status == 0, result
    assert "ledger verified" in result.err

    node = Node(load_config(config))
    await node.start()
    try:
        async with client(world) as http:
            url = f"https://127.0.0.1:{node.port}/api/v1/inbox/{first}/open"
            async with http.post(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200, await resp.text()
                assert opened_note(await resp.read()) == "synthetic note one"
    finally:
        await node.stop()


def _backup_of_filled_node(tmp_path: Path) -> tuple[Path, Path, str]:
    """Run an LA node that receives one item, stop it, back it up; return config, backup, digest."""

    async def fill() -> str:
        async with deployed(tmp_path / "world", USERS) as world:
            async with client(world) as http:
                digest = str((await submit(http, world, b"synthetic note", [LA]))["digest"])
            await _delivered(world, [digest])
        return digest

    digest = asyncio.run(fill())
    config = tmp_path / "world" / "node-la.toml"
    result = run("backup", "create", "--config", str(config), "--out", str(tmp_path / "b"))
    assert result.status == 0, result
    return config, tmp_path / "b", digest


def test_tampered_backups_fail_verify_and_restore_naming_the_file(tmp_path: Path) -> None:
    """A changed body: verify names it and exits 1; restore refuses and makes nothing."""
    config, backup, digest = _backup_of_filled_node(tmp_path)
    body = backup / "bodies" / digest
    data = bytearray(body.read_bytes())
    data[10] ^= 0x01
    body.write_bytes(bytes(data))
    result = run("backup", "verify", str(backup))
    assert result.status == 1
    changed = f"bodies/{digest}: changed since the backup was made (its SHA-256 differs)"
    assert result.err_lines == [f"exchange: {backup}: {changed}"]
    target = tmp_path / "restored"
    restored = replace(load_config(config), data_dir=target)
    (tmp_path / "restored.toml").write_text(config_to_toml(restored))
    result = run("backup", "restore", str(backup), "--config", str(tmp_path / "restored.toml"))
    assert result.err_lines == [
        f"exchange: the backup {backup} does not verify, so nothing was restored: {changed}"
    ]
    assert result.status == 1
    assert not target.exists()


def test_restore_refuses_the_running_nodes_folder_and_a_bad_register_key(tmp_path: Path) -> None:
    """Into a data folder that holds anything: one line, nothing changed."""
    config, backup, _ = _backup_of_filled_node(tmp_path)
    data = load_config(config).data_dir
    before = sorted(data.iterdir())
    result = run("backup", "restore", str(backup), "--config", str(config))
    assert_refused(result, 1, f"the data folder {data} is not empty")
    assert sorted(data.iterdir()) == before
    (tmp_path / "short.key").write_bytes(b"too short")
    result = run(
        "backup", "restore", str(backup), "--config", str(config),
        "--register-key", str(tmp_path / "short.key"),
    )  # fmt: skip
    assert_refused(result, 1, "must hold exactly 32 bytes")


def test_create_refuses_an_existing_backup_and_a_missing_database(tmp_path: Path) -> None:
    """A backup never replaces anything, and says when there is nothing to back up."""
    config, backup, _ = _backup_of_filled_node(tmp_path)
    (backup / "manifest.json").unlink()
    result = run("backup", "create", "--config", str(config), "--out", str(backup / "x" / "y"))
    assert_refused(result, 1, "does not exist")
    result = run("backup", "verify", str(backup))
    assert result.err_lines == [
        f"exchange: {backup}: manifest.json: missing, so this folder is not a complete backup"
    ]
    empty = replace(load_config(config), data_dir=tmp_path / "empty")
    (tmp_path / "empty.toml").write_text(config_to_toml(empty))
    result = run("backup", "create", "--config", str(tmp_path / "empty.toml"), "--out", "new")
    assert_refused(result, 1, "there is no database")
    assert not Path("new").exists()


def test_a_postgresql_node_is_sent_to_pg_dump_and_nothing_is_written(tmp_path: Path) -> None:
    """`exchange backup` copies SQLite stores; on a PostgreSQL node it names the tools to use."""
    config, backup, _ = _backup_of_filled_node(tmp_path)
    on_postgres = replace(
        load_config(config), database=DatabaseConfig(url="postgresql://exchange@db/exchange")
    )
    (tmp_path / "pg.toml").write_text(config_to_toml(on_postgres))
    for command in (
        ("backup", "create", "--config", str(tmp_path / "pg.toml"), "--out", str(tmp_path / "n")),
        ("backup", "restore", str(backup), "--config", str(tmp_path / "pg.toml")),
    ):
        result = run(*command)
        assert_refused(result, 1, "keeps its store in PostgreSQL")
        assert "pg_dump" in result.err_lines[0]
    assert not (tmp_path / "n").exists()
