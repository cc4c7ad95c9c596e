"""``exchange ledger verify`` and ``prove`` on a node's data after a real exchange."""

from __future__ import annotations

import asyncio

import pytest

from exchange.cli.main import main
from exchange.demo.loopback import Deployment
from exchange.ledger.bundle import BUNDLE_HEADER, verify_bundle
from tests.store_engines import node_sql

from .conftest import LA, SCHOOL
from .test_exchange import _client, _sent, _submit, _until


async def _one_delivered_referral(world: Deployment, *, stop: bool = True) -> str:
    """Send one referral from the school to the LA until delivered; then stop the nodes."""
    async with _client(world) as http:
        submitted = await _submit(http, world, b"synthetic referral", [LA])
        digest = str(submitted["digest"])

        async def delivered() -> bool:
            sent = await _sent(http, world, digest)
            return bool(sent["recipients"][0]["delivery_state"] == "delivered")

        await _until(delivered)
    if stop:
        await world.stop()
    return digest


async def test_ledger_verifies_and_proves(
    world: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """After an exchange the school's ledger verifies and proves the envelope's events."""
    digest = await _one_delivered_referral(world)
    config = str(world.folder / "node-school.toml")
    assert await asyncio.to_thread(main, ["ledger", "verify", "--config", config]) == 0
    assert "ledger verified" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["ledger", "prove", "--config", config, digest]) == 0
    out = capsys.readouterr().out
    # Bundles are printed one after another, each followed by a blank line.
    bundles = [BUNDLE_HEADER + part.rstrip("\n") + "\n" for part in out.split(BUNDLE_HEADER)[1:]]
    ledger = world.nodes["school"].ledger
    kinds = []
    for bundle in bundles:
        event, _ = verify_bundle(
            bundle.encode("utf-8"), [ledger.note_signer.verifier], ledger.origin
        )
        assert event.envelope_digest.hex() == digest
        kinds.append(event.type.value)
    assert kinds == ["submitted", "delivered"]
    assert event.org == SCHOOL


async def test_tampered_ledger_row_is_detected(
    world: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Changing one stored ledger event makes ``ledger verify`` fail with one plain line."""
    await _one_delivered_referral(world)
    [(event,)] = await node_sql(world, "school", "SELECT event FROM ledger WHERE idx = 0")
    forged = bytearray(event)
    forged[-1] ^= 0x01
    await node_sql(world, "school", "UPDATE ledger SET event = ? WHERE idx = 0", [bytes(forged)])
    assert (
        await asyncio.to_thread(
            main, ["ledger", "verify", "--config", str(world.folder / "node-school.toml")]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("exchange: the ledger does not verify")
    assert "Traceback" not in err


async def test_tampered_stored_tree_is_detected(
    world: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Changing a stored subtree hash (events untouched) makes ``ledger verify`` say which."""
    await _one_delivered_referral(world)
    await node_sql(
        world, "school", "UPDATE ledger_nodes SET hash = ? WHERE level = 1 AND idx = 0", [bytes(32)]
    )
    config = str(world.folder / "node-school.toml")
    assert await asyncio.to_thread(main, ["ledger", "verify", "--config", config]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "exchange: the ledger does not verify: the stored hash at level 1, index 0 does not "
        "match events 0 to 1"
    )
    assert "Traceback" not in err
