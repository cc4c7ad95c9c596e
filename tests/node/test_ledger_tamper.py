"""A changed ledger row under a running `exchange serve`: noticed, reported, and a clean stop.

Issue 11, finding 3: a node started on a ledger whose stored event was changed reported
ready, answered receipts with a generic 500, and its graceful stop exited 1 with "please
report this as a bug". Now the checkpoint signer's failure is logged once as a ledger
integrity failure and counted, /readyz answers 503 "the ledger does not verify", receipts
answer 503 saying so, and SIGTERM stops the node with status 0, logging the failed final
checkpoint. (The start-up self-check is another issue's.)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exchange.config import TasksConfig
from exchange.demo.loopback import Deployment
from exchange.ledger.events import decode_event, encode_event
from tests.store_engines import node_sql

from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import auth, client, get_json, sent, served_ops_url, submit, until

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

EXCHANGE = Path(sys.executable).with_name("exchange")
QUICK_TASKS = TasksConfig(
    backoff_base=0.05, backoff_max=0.2, unready_after=30.0, checkpoint_interval=0.1
)
LEDGER_REASON = "the checkpoint signer cannot make progress: the ledger does not verify"


@pytest.fixture
async def tampered(tmp_path: Path) -> AsyncIterator[tuple[Deployment, str]]:
    """Deliver one referral, stop the school's node and change the time of its first event."""
    users = {SCHOOL: ["dsl"], LA: ["staff"], NURSES: ["staff"]}
    async with deployed(tmp_path / "tamper", users, tasks=QUICK_TASKS) as world:
        async with client(world) as http:
            digest = str((await submit(http, world, b"synthetic referral", [LA]))["digest"])

            async def delivered() -> bool:
                [recipient] = (await sent(http, world, digest))["recipients"]
                return bool(recipient["delivery_state"] == "delivered")

            await until(delivered)
        await world.nodes["school"].stop()
        [(event,)] = await node_sql(world, "school", "SELECT event FROM ledger WHERE idx = 0")
        # A well-formed event with another time: the row still reads, the log's root differs.
        stored = decode_event(bytes(event))
        forged = encode_event(replace(stored, time=stored.time - 3600))
        await node_sql(world, "school", "UPDATE ledger SET event = ? WHERE idx = 0", [forged])
        yield world, digest


async def _readyz(http: aiohttp.ClientSession, base: str) -> tuple[int, Any]:
    try:
        async with http.get(base + "/readyz") as resp:
            return resp.status, await resp.json()
    except aiohttp.ClientError:
        return 0, None


def _lines(log: Path) -> list[dict[str, Any]]:
    """Return the JSON log lines of a run (anything else on standard error is kept as text)."""
    found = []
    for line in log.read_text("utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            found.append({"event": "text", "text": line})
    return found


async def test_tampered_ledger_is_reported_and_the_node_stops_cleanly(
    tampered: tuple[Deployment, str],
) -> None:
    """The node notices, says so in /readyz, /metrics, receipts and one log line; stops with 0."""
    world, digest = tampered
    log = world.folder / "school-tampered.log"
    base = world.url("school")
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(EXCHANGE), "serve", "--config", str(world.folder / "node-school.toml"),
            stdout=out, stderr=out, env=dict(os.environ),
        )  # fmt: skip
    try:
        async with client(world) as http:

            async def unready() -> bool:
                assert proc.returncode is None, "exchange serve exited"
                ops = served_ops_url(log)
                if ops is None:
                    return False
                status, body = await _readyz(http, ops)
                return status == 503 and LEDGER_REASON in body["error"]["message"]

            await until(unready, timeout=30.0, what="/readyz to say the ledger does not verify")

            ops = served_ops_url(log)

            async def failed_often() -> bool:
                async with http.get(f"{ops}/metrics") as resp:
                    text = await resp.text()
                line = 'exchange_task_failures_total{task="checkpoints",cause="ledger-integrity"} '
                counts = [int(x.split()[-1]) for x in text.splitlines() if x.startswith(line)]
                return bool(counts) and counts[0] >= 3

            await until(failed_often, what="the checkpoint signer to fail three times")

            # Receipts need a proof under a fresh checkpoint: a plain refusal, not a 500.
            url = f"{base}/api/v1/envelopes/{digest}/receipts"
            body = await get_json(http, url, auth(world, SCHOOL, "dsl"), status=503)
            assert body["error"]["message"].startswith("the node's ledger does not verify")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30.0) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = _lines(log)
    text = log.read_text("utf-8")
    assert "please report this as a bug" not in text
    assert "Traceback" not in text
    failed = [e for e in lines if e["event"] == "task.failed"]
    # Logged once, however often the signer tried again.
    assert [(e["task"], e["stage"], e["cause"]) for e in failed] == [
        ("checkpoints", "checkpoint", "ledger-integrity")
    ]
    assert failed[0]["error_class"] == "InconsistentCheckpointError"
    final = [e for e in lines if e["event"] == "node.final-checkpoint-failed"]
    assert [e["cause"] for e in final] == ["ledger-integrity"]
    assert lines[-1]["event"] == "node.stopped"
