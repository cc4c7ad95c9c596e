"""Overdue items are chased once, by a PII-free mail to the sender's staff (real SMTP)."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from exchange.demo.loopback import Deployment, start_deployment
from exchange.keys.keyfile import KdfParams
from exchange.store.rows import outbox_rows
from exchange.workers.chase import Chaser
from tests.connectors.smtp_server import (
    SmtpServer,
    ThrowawayCa,
)

from .conftest import FAST_DELIVERY, LA, ORGS, SCHOOL, smtp_settings
from .helpers import auth, client, sent, until
from .records import NHS, UPN, referral_submission

LONDON = ZoneInfo("Europe/London")
DSL_MAILBOX = "dsl@hillside.example"


@pytest.fixture
async def world(
    tmp_path: Path, smtp: SmtpServer, smtp_ca: ThrowawayCa
) -> AsyncIterator[Deployment]:
    deployment = await start_deployment(
        tmp_path / "world",
        ORGS,
        users={SCHOOL: ["dsl"], LA: ["staff"]},
        delivery=FAST_DELIVERY,
        kdf=KdfParams.fast_for_tests(),
        notify={SCHOOL: (DSL_MAILBOX,)},
        smtp=smtp_settings(
            smtp, smtp_ca, link_template="https://exchange.hillside.example/sent/{envelope_id}"
        ),
    )
    yield deployment
    await deployment.stop()


def _set_clock(world: Deployment, moment: datetime) -> None:
    offset = moment.timestamp() - time.time()
    for node in world.nodes.values():
        node.service.clock = lambda offset=offset: time.time() + offset


def _chases(smtp: SmtpServer) -> list[bytes]:
    return [m.data for m in smtp.handler.received if DSL_MAILBOX in m.rcpt_tos]


async def test_an_unacknowledged_referral_is_chased_once_without_personal_data(
    world: Deployment, smtp: SmtpServer
) -> None:
    _set_clock(world, datetime(2027, 5, 28, 16, 0, tzinfo=LONDON))
    school = world.nodes["school"].service
    chaser = Chaser(school, interval=3600.0)
    async with client(world) as http:
        async with http.post(
            world.url("school") + "/api/v1/envelopes",
            json=referral_submission([LA]),
            headers=auth(world, SCHOOL, "dsl"),
        ) as resp:
            assert resp.status == 202, await resp.text()
            digest = (await resp.json())["digest"]

        async def delivered() -> bool:
            item = await sent(http, world, digest)
            return any(e["status"] == "delivered" for e in item["recipients"][0]["timeline"])

        await until(delivered, timeout=20.0)
        # Due by the end of Tuesday 1 June (Monday 31 May is a bank holiday): not yet late.
        _set_clock(world, datetime(2027, 6, 1, 23, 0, tzinfo=LONDON))
        assert await chaser.chase_once() == 0

        _set_clock(world, datetime(2027, 6, 2, 9, 0, tzinfo=LONDON))
        assert await chaser.chase_once() == 1
        assert await chaser.chase_once() == 0  # queued once, whatever the rounds
        # A chase row runs from the sender to the late recipient: nothing swapped, no via.
        store = world.nodes["school"].service.store
        [chase] = await store._read(lambda db: outbox_rows(db, "kind = 'chase'", ()))
        assert (chase.origin, chase.destination, chase.via) == (SCHOOL, LA, None)

        async def mailed() -> bool:
            return len(_chases(smtp)) == 1

        await until(mailed, timeout=20.0)
    [data] = _chases(smtp)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Subject"] == "Overdue: secure item for Stockport front door"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    body = text.get_content()
    assert "It was due by 2027-06-01, and no 'acknowledged' receipt has come back." in body
    for forbidden in (UPN, NHS, "Testchild", "2015-03-14", "referral"):
        assert forbidden.encode() not in data


async def test_a_met_deadline_is_not_chased(world: Deployment, smtp: SmtpServer) -> None:
    _set_clock(world, datetime(2027, 5, 28, 16, 0, tzinfo=LONDON))
    chaser = Chaser(world.nodes["school"].service, interval=3600.0)
    async with client(world) as http:
        async with http.post(
            world.url("school") + "/api/v1/envelopes",
            json=referral_submission([LA]),
            headers=auth(world, SCHOOL, "dsl"),
        ) as resp:
            digest = (await resp.json())["digest"]

        async def delivered() -> bool:
            item = await sent(http, world, digest)
            return bool(item["recipients"][0]["timeline"])

        await until(delivered, timeout=20.0)
        async with http.post(
            world.url("la") + f"/api/v1/inbox/{digest}/acknowledge",
            json={"disposition": "accepted-for-assessment"},
            headers=auth(world, LA, "staff"),
        ) as resp:
            assert resp.status == 200

        async def acknowledged() -> bool:
            item = await sent(http, world, digest)
            statuses = [e["status"] for e in item["recipients"][0]["timeline"]]
            return "acknowledged" in statuses

        await until(acknowledged, timeout=20.0)
    _set_clock(world, datetime(2027, 6, 3, 9, 0, tzinfo=LONDON))
    assert await chaser.chase_once() == 0
    assert _chases(smtp) == []
