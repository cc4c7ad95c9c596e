"""Recall, threads and corrections leak no child's details: not in logs, answers or files.

The sentinel approach of ``test_no_leaks``: a record about a sentinel child is sent,
corrected, recalled and followed in its thread, and bad requests carrying the sentinel are
made to every new endpoint; no trace of the child may appear anywhere.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
import yarl

from exchange import logs
from exchange.demo.loopback import Deployment, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.peerauth import signed_post_headers

from .conftest import FAST_DELIVERY, LA, NURSES, ORGS, SCHOOL
from .helpers import auth, client, org_pair, sent, until
from .test_no_leaks import BAD_UPN, DOB, NAME, NHS, SENTINEL, UPN, _assert_clean, _lac

pytestmark = pytest.mark.network


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, answers: list[bytes], **kwargs: Any
) -> tuple[int, bytes]:
    async with http.request(method, url, **kwargs) as resp:
        body = await resp.read()
        answers.append(body)
        return resp.status, body


async def _peer_notice(
    http: aiohttp.ClientSession, world: Deployment, signer: OrgId, body: bytes, answers: list[bytes]
) -> int:
    url = world.url("la") + f"/peer/v1/orgs/{LA}/recalls"
    headers = signed_post_headers(
        url=url, body=body, content_type="application/json", pair=org_pair(world, signer),
        now=int(time.time()),
    )  # fmt: skip
    status, _ = await _call(
        http, "POST", str(yarl.URL(url, encoded=True)), answers, data=body, headers=headers
    )
    return status


async def _exercise(http: aiohttp.ClientSession, world: Deployment) -> list[bytes]:
    """Send, open, misuse, correct, follow and recall a record about the sentinel child."""
    school, la = world.url("school"), world.url("la")
    dsl, la_staff = auth(world, SCHOOL, "dsl"), auth(world, LA, "staff")
    answers: list[bytes] = []
    status, body = await _call(
        http, "POST", school + "/api/v1/envelopes", answers, json=_lac(), headers=dsl
    )
    assert status == 202, body
    digest = json.loads(body)["digest"]

    async def delivered() -> bool:
        item = await sent(http, world, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(delivered, what="delivery")
    status, _ = await _call(http, "POST", la + f"/api/v1/inbox/{digest}/open", [], headers=la_staff)
    assert status == 200

    recall = school + f"/api/v1/sent/{digest}/recall"
    rectify = school + f"/api/v1/sent/{digest}/rectify"
    corrected = _lac()["record"]
    bad_calls: list[tuple[str, dict[str, Any]]] = [
        (recall, {"reason": f"UPN {UPN}"}),
        (recall, {"reason": f"NHS {NHS}"}),
        (recall, {"reason": f"{BAD_UPN} {DOB}"}),
        (recall, {"reason": "Sent in error.", "reason_code": NAME}),
        (recall, {"reason": "Sent in error.", NAME: DOB}),
        (school + f"/api/v1/sent/{UPN}/recall", {"reason": "Sent in error."}),
        (rectify, {"record": {**corrected, "child": {**SENTINEL, "upn": BAD_UPN}}, "reason": "x"}),
        (rectify, {"record": corrected, "reason": f"{NAME} was misdescribed"}),
        (rectify, {"record": corrected, "reason": "Tallulah was misdescribed"}),
        (rectify, {"record": {**corrected, "corrects": NAME}, "reason": "Corrected."}),
        (rectify, {"record": {**corrected, "kind": NAME}, "reason": "Corrected."}),
        (school + "/api/v1/envelopes", {**_lac(), "in_reply_to": NAME}),
        (school + "/api/v1/envelopes", {**_lac(), "in_reply_to": UPN.lower() * 5}),
        (school + "/api/v1/envelopes", {**_lac(), "in_reply_to": "ab" * 32}),
    ]
    for url, doc in bad_calls:
        status, _ = await _call(http, "POST", url, answers, json=doc, headers=dsl)
        assert status >= 400, (url, doc)
    for path in (f"/api/v1/threads/{NAME}", f"/api/v1/threads/{UPN}"):
        status, _ = await _call(http, "GET", school + path, answers, headers=dsl)
        assert status >= 400
    # Recall notices: garbage carrying the sentinel, a forged signer, a bad reason code.
    envelope = await world.nodes["school"].service.store.envelope(bytes.fromhex(digest))
    assert envelope is not None
    notice = {
        "envelope_digest": digest,
        "envelope_id": envelope.envelope_id.hex(),
        "reason_code": "sent-in-error",
        "time": int(time.time()),
    }
    garbage = json.dumps({"child": SENTINEL, "note": f"{NAME} {DOB} {UPN}"})[:1000].encode()
    assert await _peer_notice(http, world, SCHOOL, garbage, answers) == 400
    assert await _peer_notice(http, world, LA, json.dumps(notice).encode(), answers) == 404
    doc = {**notice, "reason_code": NAME}
    assert await _peer_notice(http, world, SCHOOL, json.dumps(doc).encode(), answers) == 400
    doc = {**notice, "envelope_digest": UPN}
    assert await _peer_notice(http, world, SCHOOL, json.dumps(doc).encode(), answers) == 400

    # What works: a correction, the thread on both sides, a recall.
    status, body = await _call(
        http, "POST", rectify, answers, headers=dsl,
        json={"record": corrected, "reason": "The placement was recorded wrongly."},
    )  # fmt: skip
    assert status == 202, body
    correction = json.loads(body)["digest"]

    async def corrected_delivered() -> bool:
        item = await sent(http, world, correction)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(corrected_delivered, what="the correction's delivery")
    await _call(http, "POST", la + f"/api/v1/inbox/{correction}/open", [], headers=la_staff)
    for base, headers in ((school, dsl), (la, la_staff)):
        status, _ = await _call(
            http, "GET", base + f"/api/v1/threads/{correction}", answers, headers=headers
        )
        assert status == 200
    status, _ = await _call(
        http, "POST", school + f"/api/v1/sent/{correction}/recall", answers, headers=dsl,
        json={"reason": "Sent to the nurses in error.", "reason_code": "wrong-recipient"},
    )  # fmt: skip
    assert status == 200
    for path in (f"/api/v1/sent/{digest}", f"/api/v1/sent/{correction}", "/api/v1/sent"):
        await _call(http, "GET", school + path, answers, headers=dsl)
    for org, role in ((LA, "staff"), (NURSES, "staff")):
        await _call(http, "GET", la + "/api/v1/inbox", answers, headers=auth(world, org, role))
    return answers


async def test_recall_threads_and_corrections_never_leak(
    tmp_path: Path, structured_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = await start_deployment(
        tmp_path / "leaks",
        ORGS,
        users={SCHOOL: ["dsl"], LA: ["staff"], NURSES: ["staff"]},
        delivery=FAST_DELIVERY,
        kdf=KdfParams.fast_for_tests(),
    )
    try:
        async with client(world) as http:
            answers = await _exercise(http, world)
    finally:
        await world.stop()
    captured = structured_log.getvalue()
    for event in ("envelope.recall", "envelope.recalled", "envelope.rectified", "recall.refused"):
        assert f'"{event}"' in captured, event
    _assert_clean("the structured log", captured)
    _assert_clean("Python logging", caplog.text)
    for i, answer in enumerate(answers):
        _assert_clean(f"answer {i}", answer)
    for path in (p for p in world.folder.rglob("*") if p.is_file()):
        _assert_clean(str(path.relative_to(world.folder)), path.read_bytes())
