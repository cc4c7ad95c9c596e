"""Two real nodes on 127.0.0.1 over TLS: submit, deliver, open, acknowledge, receipts back."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp

from exchange.demo.loopback import Deployment
from exchange.keys.ids import OrgId

from .conftest import LA, NURSES, SCHOOL
from .records import lac_submission, opened_note


def _client(world: Deployment) -> aiohttp.ClientSession:
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


def _auth(world: Deployment, org: OrgId, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[(org, role)]}"}


async def _submit(
    http: aiohttp.ClientSession, world: Deployment, content: bytes, to: list[str]
) -> dict[str, Any]:
    async with http.post(
        world.url("school") + "/api/v1/envelopes",
        json=lac_submission(content.decode(), to),
        headers=_auth(world, SCHOOL, "dsl"),
    ) as resp:
        assert resp.status == 202, await resp.text()
        return dict(await resp.json())


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _sent(http: aiohttp.ClientSession, world: Deployment, digest: str) -> dict[str, Any]:
    async with http.get(
        world.url("school") + f"/api/v1/sent/{digest}", headers=_auth(world, SCHOOL, "dsl")
    ) as resp:
        assert resp.status == 200
        return dict(await resp.json())


async def test_referral_round_trip_with_receipts(world: Deployment) -> None:
    """A record reaches both recipients, is opened and acknowledged, and receipts come back."""
    content = b'{"kind": "referral", "synthetic": true}'
    async with _client(world) as http:
        submitted = await _submit(http, world, content, [LA, NURSES])
        digest = submitted["digest"]

        async def delivered() -> bool:
            sent = await _sent(http, world, digest)
            return all(r["delivery_state"] == "delivered" for r in sent["recipients"])

        await _until(delivered)

        la = world.url("la")
        async with http.get(la + "/api/v1/inbox", headers=_auth(world, LA, "staff")) as resp:
            inbox = await resp.json()
        assert [i["digest"] for i in inbox["items"]] == [digest]
        async with http.post(
            la + f"/api/v1/inbox/{digest}/open", headers=_auth(world, LA, "staff")
        ) as resp:
            assert resp.status == 200
            assert opened_note(await resp.read()) == content.decode()
        async with http.post(
            la + f"/api/v1/inbox/{digest}/acknowledge",
            json={"disposition": "accepted-for-assessment"},
            headers=_auth(world, LA, "dsl"),
        ) as resp:
            assert resp.status == 200, await resp.text()

        async def timeline_complete() -> bool:
            sent = await _sent(http, world, digest)
            la_entry = next(r for r in sent["recipients"] if r["organisation"] == LA)
            return [t["status"] for t in la_entry["timeline"]] == [
                "delivered",
                "opened",
                "acknowledged",
            ]

        await _until(timeline_complete)
        sent = await _sent(http, world, digest)
        nurses = next(r for r in sent["recipients"] if r["organisation"] == NURSES)
        assert [t["status"] for t in nurses["timeline"]] == ["delivered"]
        async with http.get(world.ops_url("school") + "/metrics") as resp:
            metrics = await resp.text()
        # The school holds the two delivered receipts and the LA's opened and acknowledged.
        assert 'exchange_receipts{status="delivered"} 2' in metrics
        assert 'exchange_receipts{status="acknowledged"} 1' in metrics
        assert 'exchange_outbox_items{state="delivered"} 2' in metrics


async def test_receipts_come_with_ledger_proofs_that_verify(world: Deployment) -> None:
    """The receipts endpoint returns proof bundles that verify offline against the node key."""
    from exchange.ledger.bundle import verify_bundle

    async with _client(world) as http:
        submitted = await _submit(http, world, b"synthetic", [LA])
        digest = submitted["digest"]

        async def delivered() -> bool:
            sent = await _sent(http, world, digest)
            return sent["recipients"][0]["delivery_state"] == "delivered"

        await _until(delivered)
        async with http.get(
            world.url("school") + f"/api/v1/envelopes/{digest}/receipts",
            headers=_auth(world, SCHOOL, "dsl"),
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
    assert [r["status"] for r in body["receipts"]] == ["delivered"]
    ledger = world.nodes["school"].ledger
    kinds = []
    for proof in body["ledger"]["proofs"]:
        event, checkpoint = verify_bundle(
            proof["bundle"].encode("utf-8"), [ledger.note_signer.verifier], ledger.origin
        )
        assert event.envelope_digest.hex() == digest
        assert checkpoint.size > proof["index"]
        kinds.append(event.type.value)
    assert kinds == ["submitted", "delivered"]
