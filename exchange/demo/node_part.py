"""The second half of ``exchange demo``: a referral between two nodes on loopback.

A school node and an LA node (serving Stockport's front door and a school nursing team)
start on 127.0.0.1 over TLS with a private test CA, SQLite storage in a temporary folder and
real key files. The school's DSL submits a synthetic referral through the staff API (the
record is checked against its schema and the sharing policy, the referral form is attached,
and the decision is registered with its lawful basis and deadline); the LA node verifies
and stores it and answers with a signed ``delivered`` receipt; a front-door worker opens it
and acknowledges it; the school's node receives the ``opened`` and ``acknowledged``
receipts, verifies each against the digest it computed when sealing, and the demo prints
the verified timeline and checks a ledger proof offline.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from exchange.config import DeliveryConfig
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.ledger.bundle import verify_bundle
from exchange.receipts import parse_signed
from exchange.records import decode_container

SCHOOL = OrgId("urn:106123")
FRONT_DOOR = OrgId("la:356")
NURSES = OrgId("ods:X26ABC")
ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School (demo)", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door (demo)", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team (demo)", "nhs", "la"),
)
_DELIVERY = DeliveryConfig(backoff_base=0.2, backoff_max=2.0, poll_interval=0.05)


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0
) -> None:
    """Poll ``check`` until it holds; raise ``TimeoutError`` naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


class Staff:
    """A member of staff calling their node's API."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http = http
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """Call the API; return the JSON answer or the bytes; raise on any refusal."""
        async with self.http.request(
            method, self.base + path, json=body, headers=self.headers
        ) as resp:
            if resp.status >= 400:
                # The node's refusals never hold record content (docs/node.md).
                raise RuntimeError(f"{method} {path} answered {resp.status}: {await resp.text()}")
            if resp.content_type == "application/json":
                return await resp.json()
            return await resp.read()


def _record(form: bytes) -> dict[str, Any]:
    """Return a fictional referral record (docs/records.md §1) listing the attached form."""
    return {
        "kind": "referral",
        "version": 1,
        "referrer": {
            "name": "Demo Referrer",
            "role": "Designated Safeguarding Lead",
            "organisation": SCHOOL,
            "email": "dsl@school.example",
        },
        "consent": {"parents_informed": True, "consent_given": "yes"},
        "child": {
            "name": {"given_names": "Demo", "family_name": "Child"},
            "date_of_birth": "2016-01-01",
        },
        "concerns": ["neglect"],
        "description": "Synthetic text for the demonstration only.",
        "threshold_level": "level-3",
        "immediate_risk": False,
        "attachments": [
            {
                "title": "Referral form (synthetic)",
                "content_type": "text/plain",
                "size": len(form),
                "sha256": hashlib.sha256(form).hexdigest(),
            }
        ],
    }


def _submission(content: bytes) -> dict[str, Any]:
    """Return the staff API body: the record, the form attached, purpose, reason."""
    return {
        "recipients": [FRONT_DOOR],
        "purpose": "safeguarding-referral",
        "record_kind": "referral",
        "record": _record(content),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "Neglect concerns meet the threshold for a referral (synthetic).",
        "attachments": [
            {
                "name": "referral-form.txt",
                "content_type": "text/plain",
                "content_base64": base64.b64encode(content).decode("ascii"),
            }
        ],
    }


async def _story(world: Deployment, content: bytes, say: Callable[[str], None]) -> bool:
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        dsl = Staff(http, world.url("school"), world.tokens[(SCHOOL, "dsl")])
        front = Staff(http, world.url("la"), world.tokens[(FRONT_DOOR, "staff")])
        say(f"school node on {world.url('school')}, LA node on {world.url('la')} (TLS, SQLite)")
        for name in ("school", "la"):
            async with http.get(world.ops_url(name) + "/readyz") as answer:
                ready = answer.status == 200
            if not ready:
                say(f"the {name} node is not ready ({world.ops_url(name)}/readyz)")
                return False
        say(
            f"both ready: /readyz and /metrics on their own listeners, "
            f"{world.ops_url('school')} and {world.ops_url('la')}"
        )
        submitted = await dsl.call("POST", "/api/v1/envelopes", _submission(content))
        digest = submitted["digest"]
        say(f"the DSL submitted a referral: 202, envelope {submitted['envelope_id']} stored")
        deadline = submitted["deadline"] or {}
        say(
            f"the policy allowed it (lawful basis {submitted['lawful_basis']}); the register "
            f"holds the decision; acknowledgement due by {deadline.get('due')}"
        )

        async def in_inbox() -> bool:
            inbox = await front.call("GET", "/api/v1/inbox")
            return any(i["digest"] == digest for i in inbox["items"])

        await wait_until(in_inbox, "the LA node received the envelope")
        say("the LA node verified the sender, stored the envelope and signed 'delivered'")
        opened = await front.call("POST", f"/api/v1/inbox/{digest}/open")
        container = decode_container(opened)
        identical = container.record.data == _record(content) and [
            a.data for a in container.attachments
        ] == [content]
        say(
            f"a front-door worker opened it: the record and {len(container.attachments)} "
            f"attachment ({len(opened)} bytes), identical: {identical}"
        )
        await front.call(
            "POST",
            f"/api/v1/inbox/{digest}/acknowledge",
            {"disposition": "accepted-for-assessment"},
        )
        say("and acknowledged it: accepted for assessment")

        async def timeline() -> list[dict[str, Any]]:
            sent = await dsl.call("GET", f"/api/v1/sent/{digest}")
            return list(sent["recipients"][0]["timeline"])

        async def complete() -> bool:
            return len(await timeline()) == 3

        await wait_until(complete, "the receipts came back to the school")
        receipts = await dsl.call("GET", f"/api/v1/envelopes/{digest}/receipts")
        say("the school's node verified each receipt against the digest it sealed:")
        for entry in receipts["receipts"]:
            receipt = parse_signed(base64.b64decode(entry["receipt"])).receipt
            extra = f" ({receipt.disposition})" if receipt.disposition else ""
            say(f"  {receipt.status.value:<13} by {receipt.receipter}{extra}")
        ledger = world.nodes["school"].ledger
        proof = receipts["ledger"]["proofs"][-1]
        event, checkpoint = verify_bundle(
            proof["bundle"].encode("utf-8"), [ledger.note_signer.verifier], ledger.origin
        )
        say(
            f"ledger proof: event {proof['index']} ('{event.type.value}') is in the school "
            f"node's log of {checkpoint.size} events; the signed checkpoint verifies offline"
        )
        return identical and len(receipts["receipts"]) == 3


async def _run(content: bytes, say: Callable[[str], None]) -> bool:
    with tempfile.TemporaryDirectory(prefix="exchange-node-demo-") as tmp:
        world = await start_deployment(
            Path(tmp),
            ORGS,
            users={SCHOOL: ["dsl"], FRONT_DOOR: ["staff"]},
            delivery=_DELIVERY,
        )
        try:
            return await _story(world, content, say)
        finally:
            await world.stop()


def run_node_demo(content: bytes, say: Callable[[str], None]) -> bool:
    """Run the two-node story; return whether every step checked out."""
    return asyncio.run(_run(content, say))
