"""Consistency bundles of a real node's ledger: the peer endpoint and the two ledger commands.

After a real exchange between the loopback nodes, the school's node answers
``GET /peer/v1/ledger/consistency`` to an unsigned client, ``exchange ledger consistency``
prints the same kind of bundle from the node's data, and ``exchange ledger
check-consistency`` checks it offline with only the verifier key and an older checkpoint or
root; every refusal is one sentence with exit status 1 (2 for a usage error).
"""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest

from exchange.cli.main import main
from exchange.demo.loopback import Deployment
from exchange.ledger.consistency_bundle import CONSISTENCY_HEADER, verify_consistency_bundle
from exchange.ledger.log import log_of
from tests.ledger.helpers import node_signer
from tests.store_engines import node_sql

from .test_exchange import _client
from .test_ledger_cli import _one_delivered_referral

pytestmark = pytest.mark.network


async def _checkpoints(world: Deployment) -> list[tuple[int, bytes]]:
    rows = await node_sql(world, "school", "SELECT size, note FROM checkpoints ORDER BY size")
    return [(int(size), bytes(note)) for size, note in rows]


async def _run(args: list[str]) -> int:
    return await asyncio.to_thread(main, args)


async def test_the_endpoint_answers_bundles_and_refuses_bad_sizes(world: Deployment) -> None:
    """Unsigned GETs get a bundle that verifies from the old root, or a 400 naming the fault."""
    await _one_delivered_referral(world, stop=False)
    ledger = world.nodes["school"].ledger
    await ledger.checkpoint()
    last = ledger.signer.last
    assert last is not None
    assert last.size >= 2
    events = await world.nodes["school"].service.store.ledger_events(0, last.size)
    base = world.url("school") + "/peer/v1/ledger/consistency"
    async with _client(world) as http:
        async with http.get(base, params={"from": "1"}) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/vnd.exchange.consistency-proof"
            bundle = await resp.read()
        old, checkpoint = verify_consistency_bundle(
            bundle, [ledger.note_signer.verifier], ledger.origin, log_of(events[:1]).root()
        )
        assert (old, checkpoint.size) == (1, last.size)
        for query, status, message in [
            ({}, 400, "from is required"),
            ({"from": "01"}, 400, "from must be a tree size"),
            ({"from": "0"}, 400, "from must be a tree size: a decimal from 1"),
            ({"from": "1", "to": "-3"}, 400, "to must be a tree size"),
            ({"from": "1", "size": "3"}, 400, "the only query parameters are from and to"),
            ({"from": "1", "to": str(last.size + 1)}, 422, "larger than the last checkpoint"),
            ({"from": str(last.size + 1)}, 422, f"to the new size \\({last.size}\\)"),
        ]:
            async with http.get(base, params=query) as resp:
                assert resp.status == status, query
                body = await resp.json()
            assert body["error"] == str(status)
            assert re.search(message, body["message"]), (query, body)


async def test_the_commands_print_and_check_a_bundle(
    world: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``consistency`` prints a bundle that ``check-consistency`` accepts, and refuses forgeries."""
    await _one_delivered_referral(world)
    capsys.readouterr()  # the nodes' logs
    config = str(world.folder / "node-school.toml")
    last_size, last_note = (await _checkpoints(world))[-1]
    rows = await node_sql(world, "school", "SELECT event FROM ledger ORDER BY idx")
    old_root = log_of([bytes(event) for (event,) in rows][:1]).root().hex()
    assert last_size >= 2
    assert await _run(["ledger", "consistency", "--config", config, "--from", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{CONSISTENCY_HEADER}\nold 1\n")
    bundle_file = tmp_path / "school.consistency"
    bundle_file.write_text(printed)
    verifier = world.nodes["school"].ledger.note_signer.verifier
    key_file = tmp_path / "school.vkey"
    key_file.write_text(verifier.vkey() + "\n")
    check = ["ledger", "check-consistency", str(bundle_file), "--key"]
    assert await _run([*check, verifier.vkey(), "--old-root", old_root]) == 0
    assert capsys.readouterr().out == (
        f"consistent: the checkpoint of {last_size} events signed by {verifier.name} "
        "extends the tree of 1 events\n"
    )

    # --to a stored checkpoint; the same size gives an empty proof, checked from that note.
    size = str(last_size)
    same = ["ledger", "consistency", "--config", config, "--from", size, "--to", size]
    assert await _run(same) == 0
    empty = capsys.readouterr().out
    assert empty.startswith(f"{CONSISTENCY_HEADER}\nold {size}\n\n")
    (tmp_path / "same").write_text(empty)
    old_file = tmp_path / "old.checkpoint"
    old_file.write_bytes(last_note)
    same_check = ["ledger", "check-consistency", str(tmp_path / "same"), "--key", str(key_file)]
    assert await _run([*same_check, "--old-checkpoint", str(old_file)]) == 0
    assert "consistent" in capsys.readouterr().out

    # Refusals: one sentence each, exit 1 (2 for usage), no traceback.
    wrong_root = bytes(32).hex()
    missing = ["ledger", "check-consistency", str(tmp_path / "missing"), "--key"]
    refusals: list[tuple[list[str], int, str]] = [
        (["ledger", "consistency", "--config", config, "--from", "0"], 1, "not 0"),
        (["ledger", "consistency", "--config", config, "--from", "x"], 2, "invalid int"),
        ([*same[:5], "1", "--to", str(last_size + 1)], 1, "larger than the last checkpoint"),
        ([*check, str(key_file), "--old-root", wrong_root], 1, "does not verify"),
        ([*check, str(key_file), "--old-checkpoint", str(old_file)], 1, "not from the old size"),
        ([*check, str(key_file), "--old-root", "abc"], 2, "--old-root must be 64"),
        ([*check, "not-a-key", "--old-root", old_root], 2, "--key is not a verifier key"),
        ([*missing, str(key_file), "--old-root", old_root], 1, "no such file"),
    ]
    other = node_signer("another key", verifier.name).verifier.vkey()
    refusals.append(([*check, other, "--old-root", old_root], 1, "does not verify"))
    lines = printed.split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()  # the first proof hash, changed
    (tmp_path / "changed").write_text("\n".join(lines))
    changed = ["ledger", "check-consistency", str(tmp_path / "changed"), "--key", str(key_file)]
    refusals.append(([*changed, "--old-root", old_root], 1, "does not verify"))
    for args, status, message in refusals:
        assert await _run(args) == status, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
        assert "Traceback" not in err
        assert err.count("\n") == 1, err
