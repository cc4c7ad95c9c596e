"""A full disk on real nodes: clear refusals, a node that says it is not ready, and recovery.

Issue 11, finding 1: when a node's data volume filled, its outbox worker and checkpoint
signer died on the first failed write and never came back; submissions got a generic 500
and /readyz stayed 200. Here a :class:`~tests.full_disk.FullDisk` refuses every commit and
every new file of one node's store (as SQLite and the file system do on a full volume) and
gives the space back, with no restart in between.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from exchange.config import TasksConfig
from exchange.demo.loopback import Deployment
from tests.full_disk import FullDisk

from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import auth, client, sent, submission, submit, until

pytestmark = pytest.mark.network

#: Retries within a fifth of a second and a checkpoint every tenth, so recovery is quick.
QUICK_TASKS = TasksConfig(
    backoff_base=0.05, backoff_max=0.2, unready_after=30.0, checkpoint_interval=0.1
)
FULL = "the node's storage is full; nothing was saved"
#: How long recovery may take once space is back: a few back-off steps and checkpoints.
RECOVERY = 5.0


@pytest.fixture
async def full_world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the school and LA nodes with quick task retries; stop them afterwards."""
    users = {SCHOOL: ["dsl"], LA: ["staff"], NURSES: ["staff"]}
    async with deployed(tmp_path / "full", users, tasks=QUICK_TASKS) as deployment:
        yield deployment


async def _ready(http: aiohttp.ClientSession, base: str) -> tuple[int, str]:
    """Return /readyz's status and its message (or status) text."""
    async with http.get(base + "/readyz") as resp:
        body = await resp.json()
        if resp.status == 200:
            return 200, str(body["status"])
        return resp.status, str(body["error"]["message"])


def _failures(metrics: str, task: str, cause: str) -> int:
    pattern = rf'^exchange_task_failures_total\{{task="{task}",cause="{cause}"\}} (\d+)$'
    match = re.search(pattern, metrics, re.MULTILINE)
    return 0 if match is None else int(match.group(1))


async def _metrics(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(base + "/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


def _task_failures(events: list[dict[str, Any]], task: str) -> list[tuple[str, str]]:
    """Return (stage, cause) of each ``task.failed`` line logged for ``task``."""
    return [
        (e["stage"], e["cause"])
        for e in events
        if e["event"] == "task.failed" and e.get("task") == task
    ]


async def test_full_disk_refuses_clearly_and_the_node_recovers_without_restart(
    full_world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fill both nodes' storage, then free it: refusals say so, and everything resumes.

    While full: a submission is 507 with the plain sentence and nothing is kept; the
    receiving node answers the sender's push 503 (retryable), so the envelope waits; both
    /readyz answer 503 naming the full storage and the outbox that cannot make progress;
    the outbox's failure is logged once per cause however often it fails, and counted. Once
    space is back: the waiting envelope and a new one are delivered, a checkpoint covering
    every event is signed, /readyz answers 200 again, all in a few seconds.
    """
    world = full_world
    school, la = world.nodes["school"], world.nodes["la"]
    school_disk = FullDisk(school.service.store, monkeypatch)
    la_disk = FullDisk(la.service.store, monkeypatch)
    async with client(world) as http:
        # The receiver's disk is full: the sender's push is answered 503, and waits.
        la_disk.fill()
        waiting = (await submit(http, world, b"synthetic waiting", [LA]))["digest"]

        async def refused_by_the_full_peer() -> bool:
            [recipient] = (await sent(http, world, waiting))["recipients"]
            return recipient["delivery_state"] == "retry-wait" and "503" in str(
                recipient["last_error"]
            )

        await until(refused_by_the_full_peer, what="the full receiver to answer 503")
        assert (await _ready(http, world.ops_url("la")))[0] == 503
        # Now the sender's disk is full instead (the LA's is freed: the logs below are the
        # school's alone, as they would be in its own process).
        school_disk.fill()
        la_disk.free()
        with capture_logs() as events:
            await _refusals_while_full(world, http)
            # Five failures and more, logged once per distinct cause (stage and kind).
            logged = _task_failures(events, "outbox")
            assert logged
            assert len(logged) == len(set(logged))
            assert {cause for _, cause in logged} == {"storage-full"}
            # Space comes back: no restart.
            school_disk.free()
            await _recovery(world, http, waiting)
        # No generic failure, no message text: only the class and the kind of fault.
        for event in events:
            if event["event"] in {"task.failed", "request.failed"}:
                assert event["cause"] == "storage-full"
                assert "database or disk is full" not in str(event)


async def _refusals_while_full(world: Deployment, http: aiohttp.ClientSession) -> None:
    """While the school's disk is full: 507, /readyz 503 with reasons, failures counted."""
    school = world.nodes["school"]
    base, ops = world.url("school"), world.ops_url("school")
    sent_before = await school.service.store.ledger_size()
    async with http.post(
        base + "/api/v1/envelopes",
        json=submission(b"synthetic refused", [LA]),
        headers=auth(world, SCHOOL, "dsl"),
    ) as resp:
        assert resp.status == 507
        body = await resp.json()
    assert body == {"error": {"status": 507, "message": FULL}}
    assert await school.service.store.ledger_size() == sent_before

    async def outbox_stuck() -> bool:
        status, message = await _ready(http, ops)
        return status == 503 and "the outbox cannot make progress" in message

    await until(outbox_stuck, what="/readyz to name the outbox")
    _, message = await _ready(http, ops)
    assert message.startswith("the node's storage is full")
    assert "the outbox cannot make progress: the node's storage is full" in message

    async def failed_often() -> bool:
        metrics = await _metrics(http, ops)
        return _failures(metrics, "outbox", "storage-full") >= 5

    await until(failed_often, what="the outbox to fail five times")
    assert 'exchange_task_failing{task="outbox"} 1' in await _metrics(http, ops)


async def _recovery(world: Deployment, http: aiohttp.ClientSession, waiting: str) -> None:
    """Once space is back: the waiting and a new envelope delivered, checkpoint, ready."""
    school = world.nodes["school"]
    fresh = (await submit(http, world, b"synthetic after", [LA]))["digest"]

    async def both_delivered() -> bool:
        items = [await sent(http, world, d) for d in (waiting, fresh)]
        return all(r["delivery_state"] == "delivered" for i in items for r in i["recipients"])

    await until(both_delivered, timeout=RECOVERY, what="delivery after space returned")

    async def checkpointed() -> bool:
        store = school.service.store
        saved = await store.checkpoints()
        return bool(saved) and saved[-1][0] == await store.ledger_size()

    await until(checkpointed, timeout=RECOVERY, what="a checkpoint of every event")
    for node in ("school", "la"):

        async def ready(node: str = node) -> bool:
            return (await _ready(http, world.ops_url(node)))[0] == 200

        await until(ready, timeout=RECOVERY, what=f"the {node} node to be ready")
    assert 'exchange_task_failing{task="outbox"} 0' in await _metrics(http, world.ops_url("school"))


@contextlib.contextmanager
def _small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``folder``; skip the test where mounting is not allowed."""
    mount = shutil.which("mount")
    if os.name != "posix" or os.geteuid() != 0 or mount is None:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True)
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.subprocess
@pytest.mark.sqlite_only("SQLite's own file system fills; PostgreSQL's disk is the server's")
async def test_a_real_full_file_system_refuses_and_recovers(tmp_path: Path) -> None:
    """On a real 6 MiB tmpfs filled to the last byte: 507, /readyz 503, then recovery.

    The same path as the fault injection above, with the errors SQLite and the kernel
    really raise (``ENOSPC``); where a tmpfs cannot be mounted (not root), it is skipped.
    """
    root = tmp_path / "real"
    with _small_tmpfs(root / "data-school", "6m") as data:
        users = {SCHOOL: ["dsl"], LA: ["staff"]}
        async with deployed(root, users, tasks=QUICK_TASKS) as world, client(world) as http:
            base, ops = world.url("school"), world.ops_url("school")
            filler = data / "filler"
            with filler.open("wb") as out, contextlib.suppress(OSError):
                while True:
                    out.write(bytes(65536))
                    out.flush()
            async with http.post(
                base + "/api/v1/envelopes",
                json=submission(b"synthetic refused", [LA]),
                headers=auth(world, SCHOOL, "dsl"),
            ) as resp:
                assert resp.status == 507
                assert (await resp.json())["error"]["message"] == FULL
            assert await _ready(http, ops) == (503, "the node's storage is full")
            filler.unlink()

            async def ready() -> bool:
                return (await _ready(http, ops))[0] == 200

            await until(ready, timeout=RECOVERY, what="/readyz after space returned")
            digest = (await submit(http, world, b"synthetic after", [LA]))["digest"]

            async def delivered() -> bool:
                [recipient] = (await sent(http, world, digest))["recipients"]
                return bool(recipient["delivery_state"] == "delivered")

            await until(delivered, timeout=RECOVERY, what="delivery after space returned")
