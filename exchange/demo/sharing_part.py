"""Part 4 of ``exchange demo``: accountable sharing, as a DSL and a DPO see it.

Hillside's node and the LA node (Stockport's front door and the school nursing team):

1. the DSL addresses a referral to another school: the sharing policy refuses it, naming
   the rule (a referral goes to children's social care);
2. the same referral to the front door is accepted, with its lawful basis recorded in the
   register and an acknowledgement deadline of one working day;
3. two working days later (the demo moves the nodes' clocks) it is on the overdue list;
   the front door acknowledges, and it leaves the list;
4. a LAC record sent to the nursing team by mistake is recalled before anyone opened it;
   the nursing team's node honours the signed recall notice;
5. the DPO exports the sharing register and answers a subject access request by the
   child's UPN: every exchange, with its purpose, lawful basis and receipts.

Nothing personal is printed: ids, organisations, rules and counts only.
"""

from __future__ import annotations

import asyncio
import csv
import io
import ssl
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp

from exchange.config import DeliveryConfig
from exchange.demo import records as demo_records
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.demo.node_part import Staff, wait_until
from exchange.demo.records import UPN
from exchange.keys.ids import OrgId

SCHOOL = OrgId("urn:106123")
FRONT_DOOR = OrgId("la:356")
NURSES = OrgId("ods:X26ABC")
OTHER_SCHOOL = OrgId("urn:106124")
ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School (demo)", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door (demo)", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team (demo)", "nhs", "la"),
    OrgSpec(OTHER_SCHOOL, "Moorside Primary School (demo)", "school", "la"),
)
LONDON = ZoneInfo("Europe/London")
_DELIVERY = DeliveryConfig(backoff_base=0.2, backoff_max=2.0, poll_interval=0.05)


def _move_clocks(world: Deployment, moment: datetime) -> None:
    """Make every node's clock read ``moment`` now (and keep running)."""
    offset = moment.timestamp() - time.time()

    def clock() -> float:
        return time.time() + offset

    for node in world.nodes.values():
        node.service.clock = clock


async def _refusal(http: aiohttp.ClientSession, world: Deployment, dsl: Staff) -> str | None:
    """Submit a referral to a school; return the rule the policy refused it under."""
    async with http.post(
        world.url("school") + "/api/v1/envelopes",
        json=demo_records.referral(OTHER_SCHOOL),
        headers=dsl.headers,
    ) as resp:
        answer = await resp.json()
    error = answer.get("error", {})
    return str(error.get("rule")) if resp.status == 422 else None


async def _delivered(dsl: Staff, digest: str) -> None:
    async def check() -> bool:
        item = await dsl.call("GET", f"/api/v1/sent/{digest}")
        return any(e["status"] == "delivered" for e in item["recipients"][0]["timeline"])

    await wait_until(check, "the 'delivered' receipt came back")


async def _story(world: Deployment, say: Callable[[str], None]) -> bool:
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        dsl = Staff(http, world.url("school"), world.tokens[(SCHOOL, "dsl")])
        dpo = Staff(http, world.url("school"), world.tokens[(SCHOOL, "dpo")])
        front = Staff(http, world.url("la"), world.tokens[(FRONT_DOOR, "staff")])
        nurses = Staff(http, world.url("la"), world.tokens[(NURSES, "staff")])

        rule = await _refusal(http, world, dsl)
        refused = rule == "purposes.safeguarding-referral.recipient_kinds"
        say(f"a referral addressed to another school: refused by the sharing policy, rule {rule}")

        # Friday 28 May 2027, 16:00: Monday 31 May is a bank holiday.
        _move_clocks(world, datetime(2027, 5, 28, 16, 0, tzinfo=LONDON))
        sent = await dsl.call("POST", "/api/v1/envelopes", demo_records.referral(FRONT_DOOR))
        digest = sent["digest"]
        say(
            f"the referral to the front door: accepted, lawful basis {sent['lawful_basis']}, "
            f"acknowledgement due by {sent['deadline']['due']} (Friday afternoon; Monday is "
            "a bank holiday)"
        )
        await _delivered(dsl, digest)
        _move_clocks(world, datetime(2027, 6, 2, 9, 0, tzinfo=LONDON))
        overdue = (await dsl.call("GET", "/api/v1/overdue"))["items"]
        listed = [i for i in overdue if i["digest"] == digest]
        for item in listed:
            say(
                f"Wednesday 09:00, the overdue list: {item['record_kind']} to {item['recipient']}, "
                f"due {item['due']}, waiting for {', '.join(item['waiting_for'])}"
            )
        await front.call(
            "POST",
            f"/api/v1/inbox/{digest}/acknowledge",
            {"disposition": "accepted-for-assessment"},
        )

        async def cleared() -> bool:
            items = (await dsl.call("GET", "/api/v1/overdue"))["items"]
            return all(i["digest"] != digest for i in items)

        await wait_until(cleared, "the acknowledgement cleared the overdue item")
        say("the front door acknowledged it: the overdue list is empty again")

        mistake = await dsl.call("POST", "/api/v1/envelopes", demo_records.lac_health(NURSES))
        await _delivered(dsl, mistake["digest"])
        recall = await dsl.call(
            "POST",
            f"/api/v1/sent/{mistake['digest']}/recall",
            {"reason": "Sent to the wrong team (demo)."},
        )
        outcomes = {r["organisation"]: r["outcome"] for r in recall["recipients"]}
        say(f"a LAC record sent to the nursing team by mistake, recalled: {outcomes}")
        async with http.post(
            world.url("la") + f"/api/v1/inbox/{mistake['digest']}/open", headers=nurses.headers
        ) as resp:
            gone = resp.status == 410
        say(f"  the nursing team can no longer open it (410 Gone): {gone}")

        export = await dpo.call("GET", "/api/v1/register?format=csv")
        rows = list(csv.DictReader(io.StringIO(export.decode("utf-8"))))
        bases = sorted({f"{r['purpose']}: {r['lawful_basis']}" for r in rows})
        say(f"the DPO exports the register (CSV): {len(rows)} rows, " + "; ".join(bases))
        sent_digests = {i["digest"] for i in (await dsl.call("GET", "/api/v1/sent"))["items"]}
        complete = sent_digests == {r["digest"] for r in rows}
        say(f"  every envelope the school sent has its register row, and no other: {complete}")
        report = await dpo.call("POST", "/api/v1/subject-access", {"upn": UPN})
        items = report["items"]
        say(
            f"a subject access request by the child's UPN finds {len(items)} exchanges: "
            + "; ".join(
                f"{i['record_kind']} {i['direction']} to {', '.join(i['counterparties'])}"
                for i in items
            )
        )
        ok = refused and bool(listed) and outcomes == {NURSES: "recalled"} and gone and complete
        return ok and len(items) >= 2 and UPN not in export.decode("utf-8")


async def _run(say: Callable[[str], None]) -> bool:
    with tempfile.TemporaryDirectory(prefix="exchange-sharing-demo-") as tmp:
        world = await start_deployment(
            Path(tmp),
            ORGS,
            users={SCHOOL: ["dsl", "dpo"], FRONT_DOOR: ["staff"], NURSES: ["staff"]},
            delivery=_DELIVERY,
        )
        try:
            return await _story(world, say)
        finally:
            await world.stop()


def run_sharing_demo(say: Callable[[str], None]) -> bool:
    """Run the accountable-sharing story; return whether every step checked out."""
    return asyncio.run(_run(say))
