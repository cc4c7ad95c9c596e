"""No child's details leave a node: not in logs, error answers, or any file it writes."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog

from exchange import logs
from exchange.node.loopback import Deployment, start_deployment
from keys.keyfile import KdfParams

from .conftest import FAST_DELIVERY, LA, NURSES, ORGS, SCHOOL
from .helpers import auth, client, org_pair, sent, signed_headers, submission, until

NAME = "Tallulah Sentinel-Child"
DOB = "2014-03-09"
UPN = "A123456789012"
NHS = "943 476 5919"

CONTENT = json.dumps(
    {
        "kind": "referral",
        "child": {"name": NAME, "date_of_birth": DOB, "upn": UPN, "nhs_number": NHS},
        "concern": f"{NAME} disclosed a worry at school.",
    }
).encode()

#: Every form in which the sentinel could escape: its parts, its spellings, its encodings.
NEEDLES = [
    NAME,
    "Tallulah",
    "Sentinel-Child",
    DOB,
    "09/03/2014",
    UPN,
    NHS,
    NHS.replace(" ", ""),
    base64.b64encode(CONTENT).decode(),
    base64.b64encode(NAME.encode()).decode().rstrip("="),
]


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


def _assert_clean(where: str, data: bytes | str) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    for needle in NEEDLES:
        assert needle.encode("utf-8") not in raw, f"{needle!r} found in {where}"


async def _bad_requests(http: aiohttp.ClientSession, world: Deployment, digest: str) -> list[bytes]:
    """Make bad requests carrying the sentinel; return every answer's body."""
    school, la = world.url("school"), world.url("la")
    dsl, la_dsl = auth(world, SCHOOL, "dsl"), auth(world, LA, "dsl")
    base = submission(b"synthetic", [LA])
    bad_json = [
        {**base, "child_name": NAME, "note": f"{DOB} {UPN} {NHS}"},
        {**base, NAME: DOB},
        {**base, "recipients": [NAME]},
        {**base, "recipients": [f"urn:{UPN.lower()}"]},
        {**base, "recipients": [{"name": NAME}]},
        {**base, "record_kind": NAME},
        {**base, "record_kind": [UPN, NHS]},
        {**base, "content_base64": f"{NAME} {DOB}"},
    ]
    answers: list[bytes] = []
    for doc in bad_json:
        async with http.post(school + "/api/v1/envelopes", json=doc, headers=dsl) as resp:
            assert resp.status >= 400, doc
            answers.append(await resp.read())
    raw_bodies = [
        f'{{"recipients": ["{NAME}" {DOB}'.encode(),
        f'{{"recipients": ["la:356"], "record_kind": "{NAME}\x01"}}'.encode(),
        NAME.encode("utf-16"),
    ]
    for raw in raw_bodies:
        headers = {**dsl, "Content-Type": "application/json"}
        async with http.post(school + "/api/v1/envelopes", data=raw, headers=headers) as resp:
            assert resp.status == 400
            answers.append(await resp.read())
    for path, doc in [
        (f"/api/v1/inbox/{digest}/reject", {"reason": NAME}),
        (f"/api/v1/inbox/{digest}/reject", {"reason": UPN}),
        (f"/api/v1/inbox/{digest}/acknowledge", {"disposition": f"{DOB} {NHS}"}),
        (f"/api/v1/inbox/{digest}/acknowledge", {"disposition": "x", "comment": NAME}),
        (f"/api/v1/inbox/{NAME}/open", {}),
        (f"/api/v1/{UPN}", {}),
    ]:
        async with http.post(la + path, json=doc, headers=la_dsl) as resp:
            assert resp.status >= 400, path
            answers.append(await resp.read())
    async with http.get(
        la + "/api/v1/inbox", headers={"Authorization": f"Bearer {UPN}{UPN}"}
    ) as resp:
        assert resp.status == 401
        answers.append(await resp.read())
    # The peer protocol: garbage carrying the sentinel, unsigned and signed.
    url = la + f"/peer/v1/orgs/{LA}/envelopes"
    garbage = CONTENT * 3
    async with http.post(url, data=garbage) as resp:
        assert resp.status == 401
        answers.append(await resp.read())
    headers = signed_headers(url, garbage, org_pair(world, SCHOOL))
    async with http.post(url, data=garbage, headers=headers) as resp:
        assert resp.status == 422
        answers.append(await resp.read())
    async with http.post(la + f"/peer/v1/orgs/{NAME}/envelopes", data=garbage) as resp:
        assert resp.status >= 400
        answers.append(await resp.read())
    return answers


async def test_sentinel_child_never_leaks(
    tmp_path: Path, structured_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """A full exchange of a record about a sentinel child leaves no trace of the child anywhere."""
    caplog.set_level(logging.DEBUG)
    world = await start_deployment(
        tmp_path / "leaks",
        ORGS,
        users={SCHOOL: ["dsl"], LA: ["staff", "dsl"], NURSES: ["staff"]},
        delivery=FAST_DELIVERY,
        kdf=KdfParams.fast_for_tests(),
    )
    try:
        async with client(world) as http:
            async with http.post(
                world.url("school") + "/api/v1/envelopes",
                json=submission(CONTENT, [LA, NURSES]),
                headers=auth(world, SCHOOL, "dsl"),
            ) as resp:
                assert resp.status == 202
                digest = (await resp.json())["digest"]

            async def delivered() -> bool:
                item = await sent(http, world, digest)
                return all(r["delivery_state"] == "delivered" for r in item["recipients"])

            await until(delivered, what="delivery")
            la = world.url("la")
            for org, decision, doc in [
                (LA, "acknowledge", {"disposition": "accepted-for-assessment"}),
                (NURSES, "reject", {"reason": "wrong-recipient"}),
            ]:
                user = auth(world, org, "staff")
                async with http.post(la + f"/api/v1/inbox/{digest}/open", headers=user) as resp:
                    assert resp.status == 200
                    assert await resp.read() == CONTENT
                async with http.post(
                    la + f"/api/v1/inbox/{digest}/{decision}", json=doc, headers=user
                ) as resp:
                    assert resp.status == 200, await resp.text()

            async def answered() -> bool:
                item = await sent(http, world, digest)
                return sum(len(r["timeline"]) for r in item["recipients"]) == 6

            await until(answered, what="the receipts back at the school")
            answers = await _bad_requests(http, world, digest)
    finally:
        await world.stop()

    captured = structured_log.getvalue()
    # The capture works: the exchange's own events are there, so their absence is meaningful.
    for event in ("envelope.submitted", "envelope.received", "envelope.opened", "peer.refused"):
        assert f'"{event}"' in captured, event
    _assert_clean("the structured log", captured)
    _assert_clean("Python logging", caplog.text)
    for record in caplog.records:
        _assert_clean(f"log record {record.name}", record.getMessage())
    for i, answer in enumerate(answers):
        _assert_clean(f"error answer {i}", answer)
    files = [p for p in world.folder.rglob("*") if p.is_file()]
    assert any(p.name == "node.sqlite3" for p in files)
    assert any(p.parent.name == "bodies" for p in files)
    for path in files:
        _assert_clean(str(path.relative_to(world.folder)), path.read_bytes())
