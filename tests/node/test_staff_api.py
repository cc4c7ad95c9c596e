"""The staff API: tenancy isolation, roles, strict request bodies, state conflicts, operations."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exchange.config import DeliveryConfig
from exchange.demo.loopback import Deployment
from exchange.ledger.events import decode_event

from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import auth, get_json, publish_route, sent, slow, stand_in_peer, until
from .records import lac_submission

pytestmark = pytest.mark.network

API_DELIVERY = DeliveryConfig(
    batch=32, concurrency=8, timeout=2.0, backoff_base=0.05, backoff_max=0.2, poll_interval=0.02
)


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a deployment where the LA also has a data protection officer."""
    users = {SCHOOL: ["dsl", "dpo"], LA: ["staff", "dsl", "dpo"], NURSES: ["staff"]}
    async with deployed(tmp_path / "office", users, delivery=API_DELIVERY) as deployment:
        yield deployment


def _body(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = lac_submission('{"synthetic": true}', [LA])
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


async def _error(resp: aiohttp.ClientResponse) -> str:
    """Return the sentence of a JSON error answer."""
    doc = await resp.json()
    error = doc["error"]
    return str(error["message"] if isinstance(error, dict) else doc["message"])


async def _post(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    *,
    json_body: Any = None,
    data: bytes | None = None,
) -> tuple[int, str]:
    """POST and return the status and, for an error, its message."""
    kwargs: dict[str, Any] = {"headers": headers}
    if data is not None:
        kwargs["data"] = data
        kwargs["headers"] = {**headers, "Content-Type": "application/json"}
    elif json_body is not None:
        kwargs["json"] = json_body
    async with http.post(url, **kwargs) as resp:
        message = await _error(resp) if resp.status >= 400 else ""
        return resp.status, message


async def _delivered_to_la(http: aiohttp.ClientSession, world: Deployment) -> str:
    """Submit a referral to the LA only and wait until it is delivered; return its digest."""
    status, _ = await _post(
        http,
        world.url("school") + "/api/v1/envelopes",
        auth(world, SCHOOL, "dsl"),
        json_body=_body(),
    )
    assert status == 202
    items = await get_json(http, world.url("school") + "/api/v1/sent", auth(world, SCHOOL, "dsl"))
    digest = str(items["items"][0]["digest"])

    async def delivered() -> bool:
        item = await sent(http, world, digest)
        return item["recipients"][0]["delivery_state"] == "delivered"

    await until(delivered, what="delivery to the LA")
    return digest


async def _receipts_home(
    http: aiohttp.ClientSession, world: Deployment, digest: str, org: str, statuses: list[str]
) -> None:
    """Wait until the school holds ``org``'s receipts ``statuses``, so the test ends quiescent."""

    async def home() -> bool:
        item = await sent(http, world, digest)
        entry = next(r for r in item["recipients"] if r["organisation"] == org)
        return [t["status"] for t in entry["timeline"]] == statuses

    await until(home, what=f"{org}'s receipts at the school")


async def test_other_tenant_cannot_see_or_act_on_items(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """The nurses' user gets 404 for the LA's item on their shared node, whatever the action."""
    world = office
    digest = await _delivered_to_la(http, world)
    la, nurse = world.url("la"), auth(world, NURSES, "staff")

    inbox = await get_json(http, la + "/api/v1/inbox", nurse)
    assert inbox["items"] == []
    for action in ("open", "acknowledge"):
        status, _ = await _post(http, la + f"/api/v1/inbox/{digest}/{action}", nurse)
        assert status == 404, action
    status, _ = await _post(
        http, la + f"/api/v1/inbox/{digest}/reject", nurse, json_body={"reason": "not-ours"}
    )
    assert status == 404
    await get_json(http, la + f"/api/v1/envelopes/{digest}/receipts", nurse, status=404)
    await get_json(http, la + f"/api/v1/sent/{digest}", nurse, status=404)

    # The LA's own staff see it, and it is untouched by the attempts above.
    (item,) = (await get_json(http, la + "/api/v1/inbox", auth(world, LA, "staff")))["items"]
    assert item["digest"] == digest
    assert item["state"] == "delivered"


async def test_co_recipient_does_not_see_the_other_recipients_receipts(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """On a shared node, the LA sees only its own receipts for an item also sent to the nurses."""
    world = office
    status, _ = await _post(
        http,
        world.url("school") + "/api/v1/envelopes",
        auth(world, SCHOOL, "dsl"),
        json_body=_body(recipients=[LA, NURSES]),
    )
    assert status == 202
    items = await get_json(http, world.url("school") + "/api/v1/sent", auth(world, SCHOOL, "dsl"))
    digest = str(items["items"][0]["digest"])

    async def delivered() -> bool:
        item = await sent(http, world, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(delivered, what="delivery to both")
    la = world.url("la")
    status, _ = await _post(
        http,
        la + f"/api/v1/inbox/{digest}/acknowledge",
        auth(world, NURSES, "staff"),
        json_body={"disposition": "accepted-for-assessment"},
    )
    assert status == 200
    held = await get_json(
        http, la + f"/api/v1/envelopes/{digest}/receipts", auth(world, LA, "staff")
    )
    assert {r["organisation"] for r in held["receipts"]} == {LA}
    await _receipts_home(http, world, digest, NURSES, ["delivered", "acknowledged"])


async def test_co_recipient_does_not_see_the_other_recipients_ledger_events(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """On a shared node, the proofs the LA gets for an item name only the LA's own events."""
    world = office
    status, _ = await _post(
        http,
        world.url("school") + "/api/v1/envelopes",
        auth(world, SCHOOL, "dsl"),
        json_body=_body(recipients=[LA, NURSES]),
    )
    assert status == 202
    items = await get_json(http, world.url("school") + "/api/v1/sent", auth(world, SCHOOL, "dsl"))
    digest = str(items["items"][0]["digest"])

    async def delivered() -> bool:
        item = await sent(http, world, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(delivered, what="delivery to both")
    la = world.url("la")
    status, _ = await _post(http, la + f"/api/v1/inbox/{digest}/open", auth(world, NURSES, "staff"))
    assert status == 200
    held = await get_json(
        http, la + f"/api/v1/envelopes/{digest}/receipts", auth(world, LA, "staff")
    )
    orgs = set()
    for proof in held["ledger"]["proofs"]:
        extra = next(x for x in proof["bundle"].splitlines() if x.startswith("extra "))
        orgs.add(decode_event(base64.b64decode(extra.removeprefix("extra "))).org)
    assert orgs == {LA}
    await _receipts_home(http, world, digest, NURSES, ["delivered", "opened"])


async def test_dpo_may_not_open_or_decide(office: Deployment, http: aiohttp.ClientSession) -> None:
    """A data protection officer of the receiving organisation is refused 403 to open or decide."""
    world = office
    digest = await _delivered_to_la(http, world)
    la, dpo = world.url("la"), auth(world, LA, "dpo")
    status, message = await _post(http, la + f"/api/v1/inbox/{digest}/open", dpo)
    assert status == 403
    assert "dpo" in message
    status, _ = await _post(http, la + f"/api/v1/inbox/{digest}/acknowledge", dpo)
    assert status == 403
    status, _ = await _post(
        http,
        world.url("school") + "/api/v1/envelopes",
        auth(world, SCHOOL, "dpo"),
        json_body=_body(),
    )
    assert status == 403


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer " + "A" * 43, "Basic dXNlcjpwYXNz", "bearer " + "A" * 43],
    ids=["none", "empty", "unknown", "basic", "lower-case-scheme"],
)
async def test_missing_or_bad_token_is_401(
    office: Deployment, http: aiohttp.ClientSession, authorization: str | None
) -> None:
    """Every staff endpoint answers 401 without a valid bearer token."""
    world = office
    headers = {} if authorization is None else {"Authorization": authorization}
    digest = "0" * 64
    for method, path in [
        ("GET", "/api/v1/inbox"),
        ("GET", "/api/v1/sent"),
        ("GET", f"/api/v1/sent/{digest}"),
        ("POST", "/api/v1/envelopes"),
        ("POST", f"/api/v1/inbox/{digest}/open"),
        ("POST", f"/api/v1/inbox/{digest}/acknowledge"),
        ("GET", f"/api/v1/envelopes/{digest}/receipts"),
    ]:
        async with http.request(method, world.url("la") + path, headers=headers) as resp:
            assert resp.status == 401, (method, path)
            assert "token" in await _error(resp)


@pytest.mark.parametrize(
    ("raw", "status", "pattern"),
    [
        pytest.param(
            b'{"recipients": [', 400, r"not valid JSON \(line 1, column 17", id="malformed"
        ),
        pytest.param(b"", 400, r"empty", id="empty"),
        pytest.param(b'["a list"]', 400, r"JSON object", id="not-an-object"),
        pytest.param(b'{"note": "\xff"}', 400, r"UTF-8", id="not-utf8"),
        pytest.param(json.dumps(_body(note="x")).encode(), 400, r"'note'", id="unknown-field"),
        pytest.param(json.dumps(_body(record_kind=5)).encode(), 400, r"'record_kind'", id="type"),
        pytest.param(
            json.dumps(_body(recipients="la:356")).encode(), 400, r"'recipients'", id="type2"
        ),
        pytest.param(
            json.dumps(_body(recipients=[5])).encode(), 400, r"recipients\[0\]", id="item"
        ),
        pytest.param(
            json.dumps(_body(recipients=["LA 356"])).encode(), 400, r"recipients\[0\]", id="org-id"
        ),
        pytest.param(json.dumps(_body(reason=...)).encode(), 400, r"'reason'", id="missing"),
        pytest.param(
            json.dumps(
                _body(
                    attachments=[
                        {"name": "a.pdf", "content_type": "application/pdf", "content_base64": "!"}
                    ]
                )
            ).encode(),
            400,
            r"attachments\[0\]\.content_base64 is not valid base64",
            id="base64",
        ),
        pytest.param(
            json.dumps(_body(recipients=["urn:999999"])).encode(),
            422,
            r"recipients\[0\] is not an organisation in the directory",
            id="unknown-org",
        ),
        pytest.param(
            json.dumps(_body(record_kind="Not A Kind")).encode(), 422, r"record_kind", id="kind"
        ),
    ],
)
async def test_submission_errors_name_the_problem(
    office: Deployment, http: aiohttp.ClientSession, raw: bytes, status: int, pattern: str
) -> None:
    """A bad submission is refused with a status and a sentence naming the field or position."""
    world = office
    got, message = await _post(
        http, world.url("school") + "/api/v1/envelopes", auth(world, SCHOOL, "dsl"), data=raw
    )
    assert got == status, message
    assert re.search(pattern, message), message
    items = await get_json(http, world.url("school") + "/api/v1/sent", auth(world, SCHOOL, "dsl"))
    assert items["items"] == []


@pytest.mark.parametrize("bad", ["ABCDEF", "0" * 63, "0" * 65, "A" * 64, "g" * 64])
async def test_bad_digest_in_path_is_400(
    office: Deployment, http: aiohttp.ClientSession, bad: str
) -> None:
    """A path digest that is not 64 lower-case hex characters is refused 400."""
    world = office
    la, staff = world.url("la"), auth(world, LA, "staff")
    status, message = await _post(http, la + f"/api/v1/inbox/{bad}/open", staff)
    assert status == 400
    assert "digest" in message
    async with http.get(la + f"/api/v1/envelopes/{bad}/receipts", headers=staff) as resp:
        assert resp.status == 400


async def test_acknowledging_twice_is_409(office: Deployment, http: aiohttp.ClientSession) -> None:
    """A second acknowledgement of the same item is a conflict."""
    world = office
    digest = await _delivered_to_la(http, world)
    url = world.url("la") + f"/api/v1/inbox/{digest}/acknowledge"
    status, _ = await _post(http, url, auth(world, LA, "dsl"), json_body={"disposition": "query"})
    assert status == 200
    status, message = await _post(http, url, auth(world, LA, "staff"))
    assert status == 409
    assert "acknowledged" in message
    await _receipts_home(http, world, digest, LA, ["delivered", "acknowledged"])


async def test_reject_then_acknowledge_is_409(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """An item rejected with a reason code cannot be acknowledged afterwards."""
    world = office
    digest = await _delivered_to_la(http, world)
    la, dsl = world.url("la"), auth(world, LA, "dsl")
    status, message = await _post(
        http, la + f"/api/v1/inbox/{digest}/reject", dsl, json_body={"reason": "not-for-us"}
    )
    assert status == 200, message
    status, message = await _post(http, la + f"/api/v1/inbox/{digest}/acknowledge", dsl)
    assert status == 409
    assert "rejected" in message
    (item,) = (await get_json(http, la + "/api/v1/inbox", dsl))["items"]
    assert item["state"] == "rejected"
    await _receipts_home(http, world, digest, LA, ["delivered", "rejected"])


async def test_free_text_reject_reason_is_400(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """A reject reason must be a code: free text with spaces is refused and changes nothing."""
    world = office
    digest = await _delivered_to_la(http, world)
    la, dsl = world.url("la"), auth(world, LA, "dsl")
    status, message = await _post(
        http,
        la + f"/api/v1/inbox/{digest}/reject",
        dsl,
        json_body={"reason": "we do not think this is for us"},
    )
    assert status == 400
    assert "code" in message
    (item,) = (await get_json(http, la + "/api/v1/inbox", dsl))["items"]
    assert item["state"] == "delivered"
    status, _ = await _post(http, la + f"/api/v1/inbox/{digest}/acknowledge", dsl)
    assert status == 200
    await _receipts_home(http, world, digest, LA, ["delivered", "acknowledged"])


async def test_health_and_metrics(office: Deployment, http: aiohttp.ClientSession) -> None:
    """/healthz and /readyz answer 200; /metrics is Prometheus text with the outbox gauges.

    All three on the operations listener (tests/node/test_ops_listener.py: not the main one).
    """
    world = office
    await _delivered_to_la(http, world)
    base = world.ops_url("school")
    assert (await get_json(http, base + "/healthz", {}))["status"] == "ok"
    assert (await get_json(http, base + "/readyz", {}))["status"] == "ready"
    async with http.get(base + "/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    assert text.endswith("\n")
    sample = re.compile(
        r"[a-zA-Z_:][a-zA-Z0-9_:]*"
        r'(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})?'
        r" -?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?"
    )
    typed: dict[str, str] = {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"gauge", "counter", "summary", "histogram", "untyped"}
            typed[name] = kind
        elif line.startswith("# HELP "):
            continue
        else:
            assert sample.fullmatch(line), line
            name, value = line.rsplit(" ", 1)
            family = re.sub(r"(_sum|_count)$", "", name.split("{")[0])
            assert family in typed or name.split("{")[0] in typed, line
            values[name] = float(value)
    assert typed["exchange_outbox_items"] == "gauge"
    for state in ("queued", "attempting", "retry-wait", "delivered", "dead"):
        assert f'exchange_outbox_items{{state="{state}"}}' in values
    assert values['exchange_outbox_items{state="delivered"}'] == 1
    assert values["exchange_ledger_events"] >= 2


async def test_readyz_is_503_while_shutting_down(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """While a node drains an in-flight delivery during shutdown, /readyz answers 503."""
    world = office
    async with stand_in_peer(world, slow(30.0)) as address:
        publish_route(world, NURSES, address)
        status, _ = await _post(
            http,
            world.url("school") + "/api/v1/envelopes",
            auth(world, SCHOOL, "dsl"),
            json_body=_body(recipients=[NURSES]),
        )
        assert status == 202
        items = await get_json(
            http, world.url("school") + "/api/v1/sent", auth(world, SCHOOL, "dsl")
        )
        digest = str(items["items"][0]["digest"])

        async def attempting() -> bool:
            item = await sent(http, world, digest)
            return bool(item["recipients"][0]["delivery_state"] == "attempting")

        await until(attempting, what="an attempt in flight")
        base = world.ops_url("school")
        stopping = asyncio.create_task(world.nodes["school"].stop())
        try:

            async def not_ready() -> bool:
                async with http.get(base + "/readyz") as resp:
                    return resp.status == 503

            await until(not_ready, timeout=10.0, what="/readyz to answer 503")
            assert (await get_json(http, base + "/healthz", {}))["status"] == "ok"
        finally:
            await stopping
