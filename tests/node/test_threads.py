"""Threads and rectification on real nodes.

A referral from the school and the LA's outcome in reply make one conversation on both
nodes: at the LA from the submission, at the school once the outcome is opened (the link
travels sealed). A reply must name an item the organisation holds; a link naming a
conversation the sender was never part of is not made. A rectification reaches exactly the
organisations that received the original, carries ``corrects`` inside, and shows on the
original's sent view.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import yarl

from exchange.demo.loopback import Deployment
from exchange.ledger.events import EventType, decode_event
from exchange.peerauth import signed_post_headers
from exchange.records import decode_container, encode_container, validate_record

from .conftest import LA, NURSES, SCHOOL
from .helpers import auth, client, get_json, org_pair, seal_for, sent, submit, until
from .records import SOCIAL_WORKER, deep, lac_submission, referral_submission


def _outcome(referral: str, **changes: Any) -> dict[str, Any]:
    record = {
        "kind": "outcome",
        "version": 1,
        "in_reply_to": referral,
        "decision": "no-further-action",
        "decision_date": "2026-11-27",
        "feedback": "Synthetic feedback: no further action at this time.",
        "contact": dict(SOCIAL_WORKER),
    }
    return {
        "recipients": [SCHOOL],
        "purpose": "outcome-feedback",
        "record_kind": "outcome",
        "record": record,
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "The referrer is told the outcome of the referral.",
        **changes,
    }


async def _post(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any, status: int
) -> dict[str, Any]:
    async with http.post(url, json=body, headers=headers) as resp:
        assert resp.status == status, await resp.text()
        return dict(await resp.json())


async def _open(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str], digest: str
) -> bytes:
    async with http.post(base + f"/api/v1/inbox/{digest}/open", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def _delivered(http: aiohttp.ClientSession, world: Deployment, digest: str) -> None:
    async def done() -> bool:
        item = await sent(http, world, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(done, what="delivery")


def _thread(view: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(i["digest"], i["direction"], i["relation"]) for i in view["items"]]


async def test_referral_and_outcome_make_one_thread_on_both_nodes(world: Deployment) -> None:
    school, la = world.url("school"), world.url("la")
    dsl, la_dsl = auth(world, SCHOOL, "dsl"), auth(world, LA, "dsl")
    async with client(world) as http:
        referral = (await _post(
            http, school + "/api/v1/envelopes", dsl, referral_submission([LA]), 202
        ))["digest"]  # fmt: skip
        await _delivered(http, world, referral)
        await _open(http, la, la_dsl, referral)

        # The LA replies; the outcome's own in_reply_to is filled from the submission's.
        doc = _outcome(referral)
        del doc["record"]["in_reply_to"]
        doc["in_reply_to"] = referral
        outcome = (await _post(http, la + "/api/v1/envelopes", la_dsl, doc, 202))["digest"]

        view = await get_json(http, la + f"/api/v1/threads/{outcome}", la_dsl)
        assert view["root"] == referral
        assert _thread(view) == [(referral, "received", None), (outcome, "sent", "reply")]
        assert view["items"][0]["counterparties"] == [SCHOOL]
        assert view["items"][1]["counterparties"] == [SCHOOL]
        assert [r["status"] for r in view["items"][0]["receipts"]] == ["delivered", "opened"]
        la_sent = await get_json(http, la + f"/api/v1/sent/{outcome}", la_dsl)
        assert (la_sent["in_reply_to"], la_sent["corrects"]) == (referral, None)

        # At the school: linked once the outcome is opened (the link is sealed inside).
        async def arrived() -> bool:
            inbox = await get_json(http, school + "/api/v1/inbox", dsl)
            return any(i["digest"] == outcome for i in inbox["items"])

        await until(arrived, what="the outcome at the school")
        before = await get_json(http, school + f"/api/v1/threads/{referral}", dsl)
        assert _thread(before) == [(referral, "sent", None)]
        opened = decode_container(await _open(http, school, dsl, outcome)).record
        assert opened.data["in_reply_to"] == referral
        for name in (referral, outcome):
            view = await get_json(http, school + f"/api/v1/threads/{name}", dsl)
            assert _thread(view) == [(referral, "sent", None), (outcome, "received", "reply")]
        inbox = await get_json(http, school + "/api/v1/inbox", dsl)
        [entry] = [i for i in inbox["items"] if i["digest"] == outcome]
        assert (entry["in_reply_to"], entry["opened_by_role"]) == (referral, "dsl")

        # Another organisation's thread is not found, nor an item nobody holds.
        await get_json(
            http, la + f"/api/v1/threads/{outcome}", auth(world, NURSES, "staff"), status=404
        )
        await get_json(http, school + f"/api/v1/threads/{'0' * 64}", dsl, status=404)
        await get_json(http, school + "/api/v1/threads/NOT-A-DIGEST", dsl, status=400)


async def test_in_reply_to_must_name_an_item_held(world: Deployment) -> None:
    school, la = world.url("school"), world.url("la")
    dsl, la_dsl = auth(world, SCHOOL, "dsl"), auth(world, LA, "dsl")
    async with client(world) as http:
        referral = (await _post(
            http, school + "/api/v1/envelopes", dsl, referral_submission([LA]), 202
        ))["digest"]  # fmt: skip
        await _delivered(http, world, referral)
        url = la + "/api/v1/envelopes"
        unknown = "ab" * 32
        error = await _post(http, url, la_dsl, _outcome(referral, in_reply_to=unknown), 404)
        assert "in_reply_to" in error["error"]["message"]
        error = await _post(http, url, la_dsl, _outcome(referral, in_reply_to="x"), 400)
        # The record's own link must agree with the submission's.
        doc = _outcome(unknown, in_reply_to=referral)
        error = await _post(http, url, la_dsl, doc, 422)
        assert error["error"]["rule"] == "in_reply_to"
        # Only a rectification may say it corrects something.
        doc = _outcome(referral)
        doc["record"]["corrects"] = referral
        error = await _post(http, url, la_dsl, doc, 422)
        assert error["error"]["rule"] == "corrects"
        # The nurses hold nothing: a reply to the referral is refused there too.
        nurses = lac_submission("synthetic", [LA])
        nurses["in_reply_to"] = referral
        await _post(http, url, auth(world, NURSES, "staff"), nurses, 404)
        # An outcome naming, in the record only, an item not held is sent unlinked.
        made = await _post(http, url, la_dsl, _outcome(unknown), 202)
        view = await get_json(http, la + f"/api/v1/threads/{made['digest']}", la_dsl)
        assert _thread(view) == [(made["digest"], "sent", None)]


async def test_a_sender_cannot_join_a_conversation_it_was_not_part_of(world: Deployment) -> None:
    school, dsl = world.url("school"), auth(world, SCHOOL, "dsl")
    async with client(world) as http:
        referral = (await _post(
            http, school + "/api/v1/envelopes", dsl, referral_submission([LA]), 202
        ))["digest"]  # fmt: skip
        await _delivered(http, world, referral)
        # The nurses (never party to the referral) send the school an outcome naming it.
        record = validate_record("outcome", _outcome(referral)["record"])
        envelope = seal_for(world, encode_container(record), [SCHOOL], NURSES)
        url = school + f"/peer/v1/orgs/{SCHOOL}/envelopes"
        headers = signed_post_headers(
            url=url, body=envelope, content_type="application/vnd.exchange.envelope",
            pair=org_pair(world, NURSES), now=int(time.time()),
        )  # fmt: skip
        async with http.post(yarl.URL(url, encoded=True), data=envelope, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        inbox = await get_json(http, school + "/api/v1/inbox", dsl)
        [foreign] = [i["digest"] for i in inbox["items"]]
        await _open(http, school, dsl, foreign)
        view = await get_json(http, school + f"/api/v1/threads/{referral}", dsl)
        assert _thread(view) == [(referral, "sent", None)]


async def test_rectification_reaches_exactly_the_original_receivers(world: Deployment) -> None:
    school, la = world.url("school"), world.url("la")
    dsl, dpo = auth(world, SCHOOL, "dsl"), auth(world, SCHOOL, "dpo")
    async with client(world) as http:
        original = (await submit(http, world, b"synthetic target", [LA, NURSES]))["digest"]
        await _delivered(http, world, original)
        # The LA opened it; it was recalled from the nurses before they did.
        await _open(http, la, auth(world, LA, "staff"), original)
        recalled = await _post(
            http, school + f"/api/v1/sent/{original}/recall", dsl,
            {"reason": "The nurses were not meant to have it."}, 200,
        )  # fmt: skip
        outcomes = {r["organisation"]: r["outcome"] for r in recalled["recipients"]}
        assert outcomes == {LA: "too-late", NURSES: "recalled"}

        corrected = deep(lac_submission("corrected synthetic target", [LA])["record"])
        body = {"record": corrected, "reason": "The PEP target was recorded wrongly."}
        made = await _post(http, school + f"/api/v1/sent/{original}/rectify", dpo, body, 202)
        assert made["corrects"] == original
        assert made["recipients"] == [LA]
        assert made["not_sent"] == [
            {"organisation": NURSES, "reason": "the original was recalled from it"}
        ]
        correction = made["digest"]
        await _delivered(http, world, correction)

        # The LA sees the marker when it opens the correction, and its node links the two.
        la_staff = auth(world, LA, "staff")
        record = decode_container(await _open(http, la, la_staff, correction)).record
        assert record.data["corrects"] == original
        assert record.data["pep"]["targets"][0]["description"] == "corrected synthetic target"
        view = await get_json(http, la + f"/api/v1/threads/{correction}", la_staff)
        assert _thread(view) == [
            (original, "received", None),
            (correction, "received", "correction"),
        ]
        inbox = await get_json(http, la + "/api/v1/inbox", la_staff)
        [entry] = [i for i in inbox["items"] if i["digest"] == correction]
        assert entry["corrects"] == original

        # The sender's views: the original is corrected by the new one.
        item = await sent(http, world, original)
        assert item["corrected_by"] == [correction]
        item = await sent(http, world, correction)
        assert (item["corrects"], item["in_reply_to"]) == (original, original)
        assert [r["organisation"] for r in item["recipients"]] == [LA]

        # Refusals: the kind must be the original's; roles; unknown items.
        wrong = {"record": referral_submission([LA])["record"], "reason": "Wrong kind."}
        error = await _post(http, school + f"/api/v1/sent/{original}/rectify", dsl, wrong, 422)
        assert error["error"]["rule"] == "record_kind"
        await _post(http, la + f"/api/v1/sent/{original}/rectify", la_staff, body, 403)
        await _post(http, school + f"/api/v1/sent/{'0' * 64}/rectify", dsl, body, 404)

    store = world.nodes["school"].service.store
    rows = {r.entry.envelope_digest: r.entry for r in await store.register_rows(SCHOOL)}
    entry = rows[bytes.fromhex(correction)]
    assert entry.purpose == rows[bytes.fromhex(original)].purpose
    assert entry.reason.startswith("Rectification (UK GDPR Art 19): ")
    assert entry.decided_by == f"{SCHOOL}/dpo"
    events = [decode_event(e) for _, e in await store.ledger_events_for(bytes.fromhex(correction))]
    assert (events[0].type, events[0].reason) == (EventType.SUBMITTED, "rectification")


async def test_rectification_needs_a_recipient_that_received_the_original(
    world: Deployment,
) -> None:
    await world.nodes["la"].stop()
    async with client(world) as http:
        original = (await submit(http, world, b"synthetic target", [LA]))["digest"]
        body = {"record": lac_submission("corrected", [LA])["record"], "reason": "Corrected."}
        error = await _post(
            http, world.url("school") + f"/api/v1/sent/{original}/rectify",
            auth(world, SCHOOL, "dsl"), body, 409,
        )  # fmt: skip
        assert "no recipient has received the original" in error["error"]["message"]
