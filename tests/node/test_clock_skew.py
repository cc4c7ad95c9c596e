"""Clock skew between real nodes: a receiver whose clock is off, receipts from fast and slow clocks.

A node refuses a signed request whose time is more than five minutes from its own clock.
That refusal says it is about time (``signature.time``), so the sender keeps the item
waiting and tries again instead of giving up, says how far off the receiver's clock is (log,
sent view, /metrics), and delivers once the clocks agree. Receipts are held to the
envelope's own time: one from a slow clock is never dated before the envelope, and one from
a fast clock is taken once it is no longer in the future. The LA node's clock is moved
(``service.clock``); the school's runs true.
"""

from __future__ import annotations

import base64
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from exchange.demo.loopback import Deployment
from exchange.model import User
from exchange.receipts import parse_signed
from exchange.service.register_reports import iso_time
from exchange.web.sent_words import clock_words

from .conftest import LA, SCHOOL
from .helpers import auth, client, get_json, org_pair, sent, signed_headers, submit, until
from .records import referral_submission

pytestmark = pytest.mark.network

SKEW = 400


def _skew_la(world: Deployment, offset: float) -> None:
    """Set the LA node's clock ``offset`` seconds off the true time (it keeps running)."""
    world.nodes["la"].service.clock = lambda: time.time() + offset


def _la_entry(item: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in item["recipients"] if r["organisation"] == LA)


async def _metric_skew(http: aiohttp.ClientSession, world: Deployment) -> int | None:
    async with http.get(world.ops_url("school") + "/metrics") as resp:
        text = await resp.text()
    match = re.search(rf'^exchange_peer_clock_skew_seconds{{peer="{LA}"}} (-?\d+)$', text, re.M)
    return None if match is None else int(match[1])


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["receiver-fast", "receiver-slow"])
async def test_a_receiver_with_a_clock_off_is_waited_for_then_delivered(
    world: Deployment, offset: int
) -> None:
    """The envelope waits (never dead); log, sent view and metrics name the skew; then it goes."""
    _skew_la(world, offset)
    direction = "ahead of" if offset > 0 else "behind"
    async with client(world) as http:
        with capture_logs() as logs:
            submitted = await submit(http, world, b'{"synthetic": "skew"}', [LA])
            digest = submitted["digest"]

            async def waiting() -> bool:
                entry = _la_entry(await sent(http, world, digest))
                return entry["attempts"] >= 3 and entry["clock_skew_seconds"] is not None

            await until(waiting, what="three attempts refused for time")
        entry = _la_entry(await sent(http, world, digest))
        assert entry["delivery_state"] in {"retry-wait", "attempting", "queued"}
        assert abs(entry["clock_skew_seconds"] - offset) <= 2
        said = re.match(r"the receiver's clock is (\d+) seconds off", entry["last_error"])
        assert said is not None, entry["last_error"]
        assert abs(int(said[1]) - SKEW) <= 2
        assert f"seconds off ({direction} this node's clock)" in entry["last_error"]
        skewed = [e for e in logs if e["event"] == "delivery.clock-skew"]
        assert skewed, "the sender's log names the skew"
        assert skewed[0]["recipient"] == LA
        assert abs(skewed[0]["skew_seconds"] - offset) <= 2
        assert "the receiver's clock is" in skewed[0]["error"]
        assert not [e for e in logs if e["event"] == "delivery.dead-letter"]
        skew = await _metric_skew(http, world)
        assert skew is not None
        assert abs(skew - offset) <= 2

        # The web sent page's words for the waiting item, from the same service view.
        school = world.nodes["school"].service
        dsl = User(f"{SCHOOL}/dsl", SCHOOL, "dsl", "dsl")
        view = await school.sent_item(dsl, bytes.fromhex(digest))
        words = clock_words(view.recipients[0])
        assert words is not None
        assert f"seconds {direction} this service's clock" in words
        assert "sent again by itself" in words

        _skew_la(world, 0)

        async def delivered() -> bool:
            return _la_entry(await sent(http, world, digest))["delivery_state"] == "delivered"

        await until(delivered, what="delivery once the clocks agree")
        entry = _la_entry(await sent(http, world, digest))
        assert entry["clock_skew_seconds"] is None
        view = await school.sent_item(dsl, bytes.fromhex(digest))
        assert clock_words(view.recipients[0]) is None
        skew = await _metric_skew(http, world)
        assert skew is not None
        assert abs(skew) <= 2
    inbox = await world.nodes["la"].service.store.inbox(LA, limit=10)
    assert [i.envelope.digest.hex() for i in inbox] == [digest]


async def test_the_refusal_for_time_says_so_with_the_receivers_clock(world: Deployment) -> None:
    """A request signed 400 s off is refused 401 with problem signature.time and a true Date."""
    _skew_la(world, SKEW)
    url = world.url("la") + f"/peer/v1/orgs/{LA}/receipts"
    body = b"not a receipt"
    headers = signed_headers(url, body, org_pair(world, SCHOOL), "application/vnd.exchange.receipt")
    async with client(world) as http, http.post(url, data=body, headers=headers) as resp:
        assert resp.status == 401
        answer = await resp.json()
        date = resp.headers["Date"]
    assert answer["problem"] == "signature.time"
    assert answer["error"] == "created.too-old"
    assert set(answer) == {"error", "problem", "message"}
    assert abs(parsedate_to_datetime(date).timestamp() - (time.time() + SKEW)) <= 2


async def _open_as_la(http: aiohttp.ClientSession, world: Deployment, digest: str) -> None:
    async with http.post(
        world.url("la") + f"/api/v1/inbox/{digest}/open", headers=auth(world, LA, "staff")
    ) as resp:
        assert resp.status == 200


async def test_a_receipt_from_a_fast_clock_is_taken_once_it_is_due(world: Deployment) -> None:
    """An ``opened`` receipt signed 400 s ahead waits at the LA and arrives once it is due."""
    async with client(world) as http:
        submitted = await submit(http, world, b'{"synthetic": "fast receipt"}', [LA])
        digest = submitted["digest"]

        async def delivered() -> bool:
            return _la_entry(await sent(http, world, digest))["delivery_state"] == "delivered"

        await until(delivered, what="delivery")
        with capture_logs() as logs:
            _skew_la(world, SKEW)
            opened_at = time.time() + SKEW
            await _open_as_la(http, world, digest)

            async def refused_for_time() -> bool:
                return any(
                    e["event"] == "delivery.clock-skew" and e["recipient"] == SCHOOL for e in logs
                )

            # The LA's own requests are signed 400 s ahead: the school refuses them for time.
            await until(refused_for_time, what="the receipt refused for time")
            # The LA's clock is put right; the receipt it signed is still dated 400 s ahead.
            _skew_la(world, 0)

            async def early() -> bool:
                return any(e["event"] == "receipt.early" for e in logs)

            await until(early, what="the receipt refused for now as early")
            # The LA's outbox saw its clock go back, and did not wait out the 400 s.
            assert any(e["event"] == "outbox.clock-put-back" for e in logs)
        statuses = [t["status"] for t in _la_entry(await sent(http, world, digest))["timeline"]]
        assert statuses == ["delivered"]
        # Time passes on both nodes until the receipt is no longer in the future.
        for node in world.nodes.values():
            node.service.clock = lambda: time.time() + 120

        async def opened() -> bool:
            timeline = _la_entry(await sent(http, world, digest))["timeline"]
            return [t["status"] for t in timeline] == ["delivered", "opened"]

        await until(opened, what="the opened receipt, once due")
        timeline = _la_entry(await sent(http, world, digest))["timeline"]
        assert abs(timeline[1]["time"] - opened_at) <= 2


async def test_a_slow_clock_never_dates_a_receipt_before_its_envelope(world: Deployment) -> None:
    """Receipts signed 30 s before the envelope existed are kept at the envelope's time."""
    async with client(world) as http:
        _skew_la(world, -30)
        async with http.post(
            world.url("school") + "/api/v1/envelopes",
            json=referral_submission([LA]),
            headers=auth(world, SCHOOL, "dsl"),
        ) as resp:
            assert resp.status == 202, await resp.text()
            digest = (await resp.json())["digest"]

        async def delivered() -> bool:
            return _la_entry(await sent(http, world, digest))["delivery_state"] == "delivered"

        await until(delivered, what="delivery")
        async with http.post(
            world.url("la") + f"/api/v1/inbox/{digest}/acknowledge",
            json={"disposition": "accepted-for-assessment"},
            headers=auth(world, LA, "dsl"),
        ) as resp:
            assert resp.status == 200

        async def acknowledged() -> bool:
            timeline = _la_entry(await sent(http, world, digest))["timeline"]
            return [t["status"] for t in timeline] == ["delivered", "acknowledged"]

        await until(acknowledged, what="the acknowledgement")
        item = await sent(http, world, digest)
        created = item["created"]
        timeline = _la_entry(item)["timeline"]
        assert [t["time"] for t in timeline] == [created, created]
        # The signed receipts keep the LA's own (slow) time, for anyone who checks them.
        receipts = await get_json(
            http,
            world.url("school") + f"/api/v1/envelopes/{digest}/receipts",
            auth(world, SCHOOL, "dsl"),
        )
        for receipt in receipts["receipts"]:
            signed = parse_signed(base64.b64decode(receipt["receipt"]))
            assert signed.receipt.time < created - 20
            assert receipt["time"] == created
        register = world.url("school") + "/api/v1/register?format=json"
        async with http.get(register, headers=auth(world, SCHOOL, "dpo")) as resp:
            assert resp.status == 200
            [row] = await resp.json()
        [recipient] = row["recipients"]
        assert recipient["deadline_status"] == "met"
        sealed_at = iso_time(created)
        assert recipient["deadline_met_at"] == sealed_at
        assert [r["time"] for r in recipient["receipts"]] == [sealed_at, sealed_at]
