"""A damaged database or body on real nodes: named as damage, never sent, never acknowledged.

Issue 11, finding 5: a damaged database was "internal error (DatabaseError); please report
this as a bug" with no file named; a text value that was not UTF-8 passed integrity_check
but turned every sent view into a 500 while /readyz said 200; a damaged stored body was
found only when opened (a 500) and could still be acknowledged; a damaged queued body was
sent and dead-lettered as "the peer refused with 422". Finding 6: files left by kills were
never cleaned up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from exchange.demo.loopback import Deployment
from exchange.service.body_checks import LOCAL_DAMAGE
from exchange.service.faults import DAMAGED_REFUSAL
from exchange.store import SqliteStore
from tests.full_disk import FullDisk
from tests.stored_bodies import damage

from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import auth, client, sent, submit, until

pytestmark = pytest.mark.network

#: Synthetic content that must never appear in an answer or a log line.
CONTENT = b"synthetic damage test: Jo Testchild"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the school and LA nodes; stop them afterwards."""
    users = {SCHOOL: ["dsl"], LA: ["staff", "dsl"], NURSES: ["staff"]}
    async with deployed(tmp_path / "damage", users) as deployment:
        yield deployment


async def _post(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: object = None
) -> tuple[int, str]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.text()


async def _delivered(http: aiohttp.ClientSession, world: Deployment, digest: str) -> None:
    async def done() -> bool:
        item = await sent(http, world, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(done, what="delivery")


async def test_a_damaged_received_body_cannot_be_decided_or_opened(world: Deployment) -> None:
    """Acknowledging a damaged item is refused (409, in words), and so is opening it."""
    async with client(world) as http:
        digest = (await submit(http, world, CONTENT, [LA]))["digest"]
        await _delivered(http, world, digest)
        la = world.nodes["la"]
        await damage(la.service.store, bytes.fromhex(digest))
        base = world.url("la") + f"/api/v1/inbox/{digest}"
        with capture_logs() as events:
            status, text = await _post(
                http, base + "/acknowledge", auth(world, LA, "dsl"),
                {"disposition": "accepted-for-assessment"},
            )  # fmt: skip
            assert status == 409, text
            assert "stored copy of the item is damaged" in text
            status, text = await _post(http, base + "/open", auth(world, LA, "staff"))
            assert status == 409, text
            assert "stored copy of the item is damaged" in text
        assert "Testchild" not in text
        assert [e["event"] for e in events if e["event"] == "inbox.damaged"] == ["inbox.damaged"]
        assert all("Testchild" not in str(e) for e in events)
        assert await la.service.store.is_damaged(bytes.fromhex(digest))
        # Nothing was acknowledged: the sender sees it delivered, not acknowledged.
        item = await sent(http, world, digest)
        assert [t["status"] for t in item["recipients"][0]["timeline"]] == ["delivered"]


async def test_a_damaged_body_of_our_own_is_never_sent(
    world: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queued body damaged on disk is dead as local damage; the receiver never gets it."""
    la_disk = FullDisk(world.nodes["la"].service.store, monkeypatch)
    async with client(world) as http:
        # The receiver cannot store for now, so the envelope waits in the sender's outbox.
        la_disk.fill()
        digest = (await submit(http, world, CONTENT, [LA]))["digest"]

        async def waiting() -> bool:
            [recipient] = (await sent(http, world, digest))["recipients"]
            return recipient["delivery_state"] == "retry-wait"

        await until(waiting, what="the envelope to wait")
        school = world.nodes["school"]
        await damage(school.service.store, bytes.fromhex(digest))
        la_disk.free()

        async def dead() -> bool:
            [recipient] = (await sent(http, world, digest))["recipients"]
            return recipient["delivery_state"] == "dead"

        await until(dead, what="the damaged envelope to be given up")
        [recipient] = (await sent(http, world, digest))["recipients"]
        assert recipient["last_error"] == LOCAL_DAMAGE
        assert await world.nodes["la"].service.store.inbox_item(LA, bytes.fromhex(digest)) is None


@pytest.mark.sqlite_only("a damaged SQLite value; PostgreSQL checks its own encoding")
async def test_a_value_that_is_not_utf8_is_damage_named_in_readiness(
    world: Deployment,
) -> None:
    """A corrupt text value: answers say the database is damaged, /readyz names the file."""
    async with client(world) as http:
        digest = (await submit(http, world, CONTENT, [LA]))["digest"]
        await _delivered(http, world, digest)
        store = world.nodes["school"].service.store
        assert isinstance(store, SqliteStore)
        # Another connection changes a stored value, as a damaged sector or tool could.
        db = sqlite3.connect(store.path, isolation_level=None)
        try:
            db.execute(
                "UPDATE sent SET submitted_by = CAST(X'4a6fff' AS TEXT) WHERE digest = ?",
                (bytes.fromhex(digest),),
            )
        finally:
            db.close()
        url = world.url("school") + "/api/v1/sent"
        async with http.get(url, headers=auth(world, SCHOOL, "dsl")) as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body["error"]["message"] == DAMAGED_REFUSAL
        async with http.get(world.ops_url("school") + "/readyz") as resp:
            assert resp.status == 503
            message = (await resp.json())["error"]["message"]
        assert "node.sqlite3 is damaged" in message
        assert "submitted_by" in message
        assert "\ufffd" not in message
        assert "Jo" not in message
