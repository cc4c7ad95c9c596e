"""No child's details leave a node: not in logs, error answers, or any file it writes."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from exchange import logs
from exchange.demo.loopback import Deployment, start_deployment
from exchange.keys.keyfile import KdfParams
from exchange.records import decode_container
from tests.store_engines import deployment_databases, node_database_bytes

from .conftest import FAST_DELIVERY, LA, NURSES, ORGS, SCHOOL
from .helpers import auth, client, org_pair, sent, signed_headers, until
from .records import lac_submission, referral, referral_submission

pytestmark = pytest.mark.network

NAME = "Tallulah Sentinel-Child"
DOB = "2014-03-09"
UPN = "T356201412345"
NHS = "943 476 5919"
#: Wrong check characters: refused, and never echoed either.
BAD_UPN = "T356201412346"
BAD_NHS = "9434765918"

SENTINEL = {
    "name": {"given_names": "Tallulah", "family_name": "Sentinel-Child"},
    "date_of_birth": DOB,
    "upn": UPN,
    "nhs_number": NHS.replace(" ", ""),
}
NOTE = f"{NAME} disclosed a worry at school."
ATTACHMENT_NAME = f"{NAME} {DOB} notes.txt"
ATTACHMENT = f"Notes about {NAME}, born {DOB}, UPN {UPN}, NHS {NHS}.".encode()


def _lac() -> dict[str, Any]:
    doc = lac_submission(NOTE, [LA, NURSES])
    doc["record"]["child"] = dict(SENTINEL)
    return doc


def _referral() -> dict[str, Any]:
    record = referral(subject=dict(SENTINEL), description=NOTE)
    record["attachments"] = [{"title": f"Notes about {NAME}"}]
    return referral_submission(
        [LA],
        record=record,
        attachments=[
            {
                "name": ATTACHMENT_NAME,
                "content_type": "text/plain",
                "content_base64": base64.b64encode(ATTACHMENT).decode(),
            }
        ],
    )


#: Every form in which the sentinel could escape: its parts, its spellings, its encodings.
NEEDLES = [
    NAME,
    "Tallulah",
    "Sentinel-Child",
    DOB,
    "09/03/2014",
    UPN,
    UPN.lower(),
    BAD_UPN,
    NHS,
    NHS.replace(" ", ""),
    BAD_NHS,
    base64.b64encode(ATTACHMENT).decode(),
    base64.b64encode(NAME.encode()).decode().rstrip("="),
]


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


def _hex_runs(text: bytes) -> str:
    """Return the even-length runs of hex digits of PostgreSQL's text, joined (``bytea``)."""
    runs = re.findall(rb"\\x([0-9a-f]+)", text)
    return "".join(r.decode() for r in runs if len(r) % 2 == 0)


async def _assert_stores_clean(world: Deployment) -> None:
    """Every file the deployment wrote, and every node's database, holds no sentinel."""
    files = [p for p in world.folder.rglob("*") if p.is_file()]
    for path in files:
        _assert_clean(str(path.relative_to(world.folder)), path.read_bytes())
    for node in world.nodes:
        stored = await node_database_bytes(world, node)
        assert stored  # the check reads something: its absence of leaks is meaningful
        _assert_clean(f"the database of {node}", stored)
        if world.nodes[node].config.database.url is not None:
            # PostgreSQL writes bytes out as hex: look for the hex of each secret too.
            _assert_clean(f"the database of {node}", bytes.fromhex(_hex_runs(stored)))
    if world.nodes["school"].config.database.url is None:
        assert any(p.name == "node.sqlite3" for p in files)
        assert any(p.parent.name == "bodies" for p in files)


def _assert_clean(where: str, data: bytes | str) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    for needle in NEEDLES:
        assert needle.encode("utf-8") not in raw, f"{needle!r} found in {where}"


async def _bad_requests(http: aiohttp.ClientSession, world: Deployment, digest: str) -> list[bytes]:
    """Make bad requests carrying the sentinel; return every answer's body."""
    school, la = world.url("school"), world.url("la")
    dsl, la_dsl = auth(world, SCHOOL, "dsl"), auth(world, LA, "dsl")
    dpo = auth(world, SCHOOL, "dpo")
    base = _lac()
    record = base["record"]
    bad_json = [
        {**base, "child_name": NAME, "note": f"{DOB} {UPN} {NHS}"},
        {**base, NAME: DOB},
        {**base, "recipients": [NAME]},
        {**base, "recipients": [f"urn:{UPN.lower()}"]},
        {**base, "recipients": [{"name": NAME}]},
        {**base, "record_kind": NAME},
        {**base, "record_kind": [UPN, NHS]},
        {**base, "purpose": NAME},
        {**base, "categories": [NAME]},
        {**base, "lawful_basis": f"{NAME} {UPN}"},
        {**base, "reason": f"{NAME} is at risk"},
        {**base, "reason": "Tallulah is at risk"},
        {**base, "reason": f"born {DOB}"},
        {**base, "reason": f"UPN {BAD_UPN}"},
        {**base, "reason": f"NHS {NHS}"},
        {**base, "new_school_confirmed": NAME},
        {**base, "record": {**record, "child": {**SENTINEL, "upn": BAD_UPN}}},
        {**base, "record": {**record, "child": {**SENTINEL, "nhs_number": NHS}}},
        {**base, "record": {**record, "child": {**SENTINEL, "nhs_number": BAD_NHS}}},
        {**base, "record": {**record, "child": {**SENTINEL, NAME: UPN}}},
        {**base, "record": {**record, "child": {**SENTINEL, "date_of_birth": NAME}}},
        {**base, "record": {**record, "kind": NAME}},
        {**base, "attachments": [{"name": NAME, "content_type": "text/plain"}]},
        {
            **base,
            "attachments": [
                {"name": NAME, "content_type": "text/plain", "content_base64": f"{NAME} {DOB}"}
            ],
        },
        {
            **_referral(),
            "attachments": [
                {
                    "name": ATTACHMENT_NAME,
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(ATTACHMENT).decode(),
                }
            ],
        },
        {**_referral(), "recipients": [NURSES]},
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
    decision = {
        "purpose": "information-request-reply",
        "recipients": [LA],
        "reason_code": "prejudice-to-investigation",
        "reason": "The police asked us to wait.",
    }
    for path, doc, headers in [
        ("/api/v1/decisions/not-shared", {**decision, "upn": BAD_UPN}, dsl),
        ("/api/v1/decisions/not-shared", {**decision, "nhs_number": NHS}, dsl),
        ("/api/v1/decisions/not-shared", {**decision, "reason": f"{UPN} {NAME}"}, dsl),
        ("/api/v1/decisions/not-shared", {**decision, "reason_code": NAME}, dsl),
        ("/api/v1/decisions/not-shared", {**decision, "purpose": NAME}, dsl),
        ("/api/v1/subject-access", {"upn": BAD_UPN}, dpo),
        ("/api/v1/subject-access", {"nhs_number": NHS}, dpo),
        ("/api/v1/subject-access", {"nhs_number": BAD_NHS}, dpo),
        ("/api/v1/subject-access", {"upn": UPN, "nhs_number": NHS}, dpo),
        ("/api/v1/subject-access", {"upn": UPN}, dsl),
        ("/api/v1/subject-access", {NAME: UPN}, dpo),
    ]:
        async with http.post(school + path, json=doc, headers=headers) as resp:
            assert resp.status >= 400, (path, doc)
            answers.append(await resp.read())
    for query in (f"?from={DOB}x", f"?format={NAME}", f"?{NAME}=1"):
        async with http.get(school + "/api/v1/register" + query, headers=dpo) as resp:
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
    garbage = json.dumps(_referral()).encode() * 3
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


async def _register_views(http: aiohttp.ClientSession, world: Deployment) -> list[bytes]:
    """Return what the DPO and the DSL are shown: exports, SAR reports, the overdue list."""
    school, la = world.url("school"), world.url("la")
    dpo, dsl = auth(world, SCHOOL, "dpo"), auth(world, SCHOOL, "dsl")
    decision = {
        "purpose": "information-request-reply",
        "recipients": [LA],
        "reason_code": "prejudice-to-investigation",
        "reason": "The police asked us to wait before sharing anything further.",
        "upn": UPN,
        "nhs_number": NHS.replace(" ", ""),
    }
    async with http.post(
        school + "/api/v1/decisions/not-shared", json=decision, headers=dsl
    ) as resp:
        assert resp.status == 201, await resp.text()
    views: list[bytes] = []
    for query in ("", "?format=json", "?format=csv"):
        async with http.get(school + "/api/v1/register" + query, headers=dpo) as resp:
            assert resp.status == 200
            views.append(await resp.read())
    rows = json.loads(views[0])
    assert [r["decision"] for r in rows] == ["shared", "shared", "not-shared"]
    assert all(len(r["pupil_identifier_hashes"]) == 2 for r in rows)
    for doc in ({"upn": UPN}, {"nhs_number": NHS.replace(" ", "")}):
        async with http.post(school + "/api/v1/subject-access", json=doc, headers=dpo) as resp:
            assert resp.status == 200
            body = await resp.read()
            report = json.loads(body)
            assert [i["direction"] for i in report["items"]] == ["sent", "sent"]
            assert len(report["decisions_not_to_share"]) == 1
            views.append(body)
    la_dpo = auth(world, LA, "dpo")
    async with http.post(la + "/api/v1/subject-access", json={"upn": UPN}, headers=la_dpo) as resp:
        assert resp.status == 200
        body = await resp.read()
        report = json.loads(body)
        assert [i["direction"] for i in report["items"]] == ["received", "received"]
        views.append(body)
    async with http.get(school + "/api/v1/overdue", headers=dsl) as resp:
        assert resp.status == 200
        views.append(await resp.read())
    # The retention review queues: rules and review dates (never the date of birth).
    for base, headers in ((school, dpo), (la, la_dpo)):
        due_url = base + "/api/v1/retention/due?before=2100-01-01"
        async with http.get(due_url, headers=headers) as resp:
            assert resp.status == 200
            body = await resp.read()
            assert json.loads(body)["items"], due_url
            views.append(body)
    return views


async def test_sentinel_child_never_leaks(
    tmp_path: Path, structured_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """A full exchange of a record about a sentinel child leaves no trace of the child anywhere."""
    caplog.set_level(logging.DEBUG)
    async with deployment_databases(s.node for s in ORGS) as databases:
        world = await start_deployment(
            tmp_path / "leaks",
            ORGS,
            users={SCHOOL: ["dsl", "dpo"], LA: ["staff", "dsl", "dpo"], NURSES: ["staff"]},
            delivery=FAST_DELIVERY,
            kdf=KdfParams.fast_for_tests(),
            databases=databases,
        )
        try:
            async with client(world) as http:
                async with http.post(
                    world.url("school") + "/api/v1/envelopes",
                    json=_lac(),
                    headers=auth(world, SCHOOL, "dsl"),
                ) as resp:
                    assert resp.status == 202, await resp.text()
                    digest = (await resp.json())["digest"]
                async with http.post(
                    world.url("school") + "/api/v1/envelopes",
                    json=_referral(),
                    headers=auth(world, SCHOOL, "dsl"),
                ) as resp:
                    assert resp.status == 202, await resp.text()
                    referral_digest = (await resp.json())["digest"]

                async def delivered() -> bool:
                    items = [await sent(http, world, d) for d in (digest, referral_digest)]
                    return all(
                        r["delivery_state"] == "delivered" for i in items for r in i["recipients"]
                    )

                await until(delivered, what="delivery")
                la = world.url("la")
                for org, decision, doc in [
                    (LA, "acknowledge", {"disposition": "accepted-for-assessment"}),
                    (NURSES, "reject", {"reason": "not-for-us"}),
                ]:
                    user = auth(world, org, "staff")
                    async with http.post(la + f"/api/v1/inbox/{digest}/open", headers=user) as resp:
                        assert resp.status == 200
                        opened = decode_container(await resp.read()).record
                        assert opened.data["child"] == SENTINEL
                    async with http.post(
                        la + f"/api/v1/inbox/{digest}/{decision}", json=doc, headers=user
                    ) as resp:
                        assert resp.status == 200, await resp.text()

                async def answered() -> bool:
                    item = await sent(http, world, digest)
                    return sum(len(r["timeline"]) for r in item["recipients"]) == 6

                await until(answered, what="the receipts back at the school")
                user = auth(world, LA, "staff")
                async with http.post(
                    la + f"/api/v1/inbox/{referral_digest}/open", headers=user
                ) as resp:
                    assert resp.status == 200
                    container = decode_container(await resp.read())
                    assert container.attachments[0].data == ATTACHMENT
                answers = await _bad_requests(http, world, digest)
                views = await _register_views(http, world)
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
        for i, view in enumerate(views):
            _assert_clean(f"register view {i}", view)
        await _assert_stores_clean(world)
