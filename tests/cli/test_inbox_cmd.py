"""``exchange inbox list|open|acknowledge|reject`` as Moorside Academy, against real nodes.

Hillside sends CP files with ``exchange send``; Moorside's DSL lists them (London times,
names), opens one by its short reference into a folder (0700, files 0600, content identical
to what was sent), is refused a second open into the same folder with nothing changed, then
acknowledges one and rejects another. Refusals (an unknown item, a role that may not open,
a wrong token, a CA it cannot verify, a dead address) are one line each and save nothing.
"""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from exchange.demo.loopback import Deployment
from exchange.words import short_reference
from tests.cli.processes import exchange, refused
from tests.cli.schools import MB, NEW_SCHOOL, SCHOOL, delivered, send_cp_file, sha256, staff_env
from tests.node.helpers import auth, client, sent, until

pytestmark = [pytest.mark.network, pytest.mark.subprocess]


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        p.name: (p.stat().st_mode, p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()
    }


async def _received(world: Deployment, folder: Path, size: int) -> tuple[str, str, bytes]:
    """Send a CP file from Hillside; return its digest, its reference and the PDF's bytes."""
    ran, data = await send_cp_file(world, folder, size)
    fields = dict(line.split(None, 1) for line in ran.lines)
    await delivered(world, fields["digest"])
    return fields["digest"], fields["reference"], data


async def test_list_open_then_acknowledge_and_reject(schools: Deployment, tmp_path: Path) -> None:
    """The whole round: list, open by reference, refuse a second open, acknowledge, reject."""
    digest, ref, data = await _received(schools, tmp_path / "first", 6 * MB)
    other, other_ref, _ = await _received(schools, tmp_path / "second", 20_000)
    token = schools.tokens[(NEW_SCHOOL, "dsl")]
    env = staff_env(schools, NEW_SCHOOL, token=False)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    with_file = ("--token-file", str(token_file))

    ran = await exchange("inbox", "list", *with_file, env=env, secrets=(token,))
    assert ran.status == 0, ran
    heading, *rows = ran.lines
    assert heading.split() == ["REFERENCE", "RECEIVED", "FROM", "KIND", "DEADLINE", "STATUS"]
    mine = next(row for row in rows if row.startswith(ref))
    assert "Hillside Primary School (urn:106123)" in mine
    assert "Child protection file" in mine
    assert " at " in mine  # a London time in words, e.g. "7 December 2026 at 3:09pm"
    assert mine.endswith("delivered")
    assert len(rows) == 2
    listed = json.loads((await exchange("inbox", "list", "--json", *with_file, env=env)).out)
    assert {i["digest"] for i in listed["items"]} == {digest, other}

    out = tmp_path / "received"
    ran = await exchange("inbox", "open", ref, "--out", str(out), "--token-stdin", env=env,
                         stdin=token.encode() + b"\n", secrets=(token,))  # fmt: skip
    assert ran.status == 0, ran
    assert ran.lines == [f"opened {digest}", f"saved in {out}: record.json, chronology.pdf"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {
        "record.json": 0o600,
        "chronology.pdf": 0o600,
    }
    assert (out / "chronology.pdf").read_bytes() == data
    record = json.loads((out / "record.json").read_text("utf-8"))
    sent_record = json.loads((tmp_path / "first" / "cp-file.json").read_text())
    assert record["pupil"] == sent_record["pupil"]
    assert record["documents"][0]["sha256"] == sha256(data)

    before = _snapshot(out)
    ran = await exchange("inbox", "open", digest, "--out", str(out), *with_file, env=env)
    refused(ran, 1, f"{out / 'record.json'} already exists; refusing to overwrite it")
    assert _snapshot(out) == before

    env["EXCHANGE_TOKEN"] = token
    ran = await exchange("inbox", "acknowledge", digest, "--outcome", "accepted-for-assessment",
                         env=env)  # fmt: skip
    assert ran.status == 0, ran
    assert ran.lines[0].startswith(f"acknowledged {digest} (receipt ")
    refused(await exchange("inbox", "acknowledge", digest, env=env), 1, "the node refused: ")
    ran = await exchange("inbox", "reject", other_ref.lower().replace("-", ""), "--reason",
                         "duplicate", env=env)  # fmt: skip
    assert ran.status == 0, ran
    assert ran.lines[0].startswith(f"rejected {other} (receipt ")

    # The sender's node holds both signed answers.
    async with client(schools) as http:

        async def answered() -> bool:
            statuses = [
                {t["status"] for t in (await sent(http, schools, d))["recipients"][0]["timeline"]}
                for d in (digest, other)
            ]
            return "acknowledged" in statuses[0] and "rejected" in statuses[1]

        await until(answered, what="the receipts")


async def test_refusals_are_one_line_and_save_nothing(schools: Deployment, tmp_path: Path) -> None:
    """Unknown items, the DPO opening, a bad token, a wrong CA, a dead node: one line each."""
    digest, ref, _ = await _received(schools, tmp_path / "sent", 20_000)
    env = staff_env(schools, NEW_SCHOOL)
    out = tmp_path / "out"

    unknown = "ab" * 32
    refused(await exchange("inbox", "open", unknown, "--out", str(out), env=env), 1,
            "the node refused: ")  # fmt: skip
    missing_ref = "FFFF-FFFF" if not ref.startswith("FFFF") else "0000-0000"
    refused(await exchange("inbox", "open", missing_ref, "--out", str(out), env=env), 1,
            f"no item in your organisation's inbox has the reference {missing_ref}")  # fmt: skip
    refused(await exchange("inbox", "open", "not-an-id", "--out", str(out), env=env), 2,
            "digest (64 hexadecimal characters) or its reference")  # fmt: skip
    dpo = staff_env(schools, NEW_SCHOOL, "dpo")
    refused(await exchange("inbox", "open", digest, "--out", str(out), env=dpo), 1,
            "the node refused: ")  # fmt: skip
    wrong = {**env, "EXCHANGE_TOKEN": "not-the-token-of-anyone-0123456789"}
    refused(await exchange("inbox", "list", env=wrong), 1,
            "the node refused: the bearer token is not valid")  # fmt: skip
    no_ca = {k: v for k, v in env.items() if k != "EXCHANGE_CACERT"}
    refused(await exchange("inbox", "list", env=no_ca), 1,
            f"could not verify the TLS certificate of {schools.url('la')}")  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{sock.getsockname()[1]}"
    refused(await exchange("inbox", "reject", digest, "--reason", "duplicate", "--node", dead,
                           env=env), 1, f"could not connect to {dead}")  # fmt: skip
    refused(await exchange("inbox", "reject", digest, "--reason", "because", env=env), 2,
            "--reason")  # fmt: skip
    assert not out.exists()

    # Nothing above opened or decided the item.
    async with (
        client(schools) as http,
        http.get(
            schools.url("la") + "/api/v1/inbox", headers=auth(schools, NEW_SCHOOL, "dsl")
        ) as r,
    ):
        items = (await r.json())["items"]
    assert [(i["digest"], i["state"]) for i in items] == [(digest, "delivered")]
    assert short_reference(bytes.fromhex(items[0]["envelope_id"])) == ref
    assert items[0]["sender"] == SCHOOL
