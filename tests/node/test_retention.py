"""Retention on real nodes: review dates, the DPO's queue, inquiry holds and destruction.

A school node and an LA node (serving the front door, the nurses and a second school) over
TLS. The clocks are moved (as in test_register.py) to the day a review falls due; the
items themselves are sent, delivered and opened at the real time, while keys are valid.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from exchange import logs
from exchange.cli.main import main
from exchange.demo.loopback import Deployment
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType, decode_event
from exchange.node.runtime import Node

from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import auth, get_json, sent, until
from .records import CHILD_NAME, UPN, cp_file, lac_submission
from .test_register import LONDON, NEW_SCHOOL, ORGS, _pdf, _set_clock

pytestmark = pytest.mark.network

DOB = "2015-03-14"  # the pupil's date of birth in records.cp_file and records.child
REVIEW = "2040-03-14"  # DOB + 25 years: the school CP file rule
LAC_REVIEW = "2090-03-14"  # the 75th birthday: LA and NHS looked-after child rules
AFTER_REVIEW = datetime(2040, 3, 20, 10, 0, tzinfo=LONDON)
AFTER_LAC_REVIEW = datetime(2090, 3, 20, 10, 0, tzinfo=LONDON)
INQUIRY = {
    "reason": "Independent inquiry into child sexual abuse: do not destroy",
    "reference": "IICSA/2040/17",
}


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the nodes with DSLs, staff and DPOs at every organisation."""
    roles = ["dsl", "staff", "dpo"]
    users = {SCHOOL: roles, LA: roles, NURSES: ["staff", "dpo"], NEW_SCHOOL: roles}
    async with deployed(tmp_path / "retention", users, orgs=ORGS) as deployment:
        yield deployment


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any = None,
) -> tuple[int, Any]:
    async with http.request(method, url, json=body, headers=headers) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.read()


def _now_clock(world: Deployment) -> None:
    for node in world.nodes.values():
        node.service.clock = time.time


async def _send_cp_file(http: aiohttp.ClientSession, world: Deployment) -> str:
    """Transfer the CP file to the new school; return its digest once delivered."""
    body = {
        "recipients": [NEW_SCHOOL],
        "purpose": "cp-file-transfer",
        "record_kind": "cp-file-transfer",
        "record": cp_file(confirmed="2026-11-20"),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "The pupil has started at Moorside Academy.",
        "attachments": [_pdf()],
    }
    status, answer = await _call(
        http, "POST", world.url("school") + "/api/v1/envelopes", auth(world, SCHOOL, "dsl"), body
    )
    assert status == 202, answer
    digest = str(answer["digest"])

    async def delivered() -> bool:
        item = await sent(http, world, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(delivered, what="delivery")
    return digest


async def _open(
    http: aiohttp.ClientSession, world: Deployment, org: OrgId, digest: str, status: int = 200
) -> Any:
    code, body = await _call(
        http, "POST", world.url("la") + f"/api/v1/inbox/{digest}/open", auth(world, org, "dsl")
    )
    assert code == status, body
    return body


async def _due(
    http: aiohttp.ClientSession, world: Deployment, org: OrgId, node: str, query: str = ""
) -> dict[str, Any]:
    return await get_json(
        http, world.url(node) + "/api/v1/retention/due" + query, auth(world, org, "dpo")
    )


async def _opened_at_school(http: aiohttp.ClientSession, world: Deployment, digest: str) -> None:
    async def home() -> bool:
        item = await sent(http, world, digest)
        return [t["status"] for t in item["recipients"][0]["timeline"]] == ["delivered", "opened"]

    await until(home, what="the opened receipt at the school")


def _db_bytes(world: Deployment, node: str) -> bytes:
    folder = world.nodes[node].service.store.folder
    return b"".join(
        p.read_bytes() for p in folder.glob("node.sqlite3*") if p.suffix != "-shm" and p.is_file()
    )


# --- review dates ----------------------------------------------------------------------------


async def test_a_cp_file_is_reviewed_at_birth_plus_25_years_by_both_schools(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """The sending school's date is set at submission; the new school's when it opens it."""
    digest = await _send_cp_file(http, office)
    school_due = await _due(http, office, SCHOOL, "school", "?before=2040-03-15")
    [item] = school_due["items"]
    assert item["digest"] == digest
    assert item["direction"] == "sent"
    assert item["purpose"] == "cp-file-transfer"
    assert item["counterparties"] == [NEW_SCHOOL]
    assert item["holder_kind"] == "school"
    assert item["rule"] == "retention.school-cp-file"
    assert item["review_date"] == REVIEW
    assert item["action"] == "review"
    assert item["source"].startswith("IRMS Information Management Toolkit for Schools: ")
    assert (item["state"], item["holds"]) == ("retained", [])
    assert (await _due(http, office, SCHOOL, "school", "?before=2040-03-14"))["items"] == []
    # The default window ends tomorrow: nothing is due for years.
    assert (await _due(http, office, SCHOOL, "school"))["items"] == []
    view = await sent(http, office, digest)
    assert view["retention"] == {
        "state": "retained",
        "rule": "retention.school-cp-file",
        "review_date": REVIEW,
        "destroyed_at": None,
    }

    # Received and not yet opened: the date of birth is not readable, so there is no date.
    new_school = await _due(http, office, NEW_SCHOOL, "la", "?before=2041-01-01")
    assert new_school["items"] == []
    [waiting] = new_school["unscheduled"]
    assert (waiting["digest"], waiting["direction"], waiting["why"]) == (
        digest,
        "received",
        "not-opened",
    )
    status, refused = await _call(
        http,
        "POST",
        office.url("la") + f"/api/v1/retention/{digest}/destroy",
        auth(office, NEW_SCHOOL, "dpo"),
        {"reason": "Reviewed: no longer needed."},
    )
    assert (status, refused["error"]["rule"]) == (422, "retention.unscheduled")
    inbox = await get_json(
        http, office.url("la") + "/api/v1/inbox", auth(office, NEW_SCHOOL, "dsl")
    )
    assert inbox["items"][0]["retention"]["state"] == "unscheduled"

    await _open(http, office, NEW_SCHOOL, digest)
    new_school = await _due(http, office, NEW_SCHOOL, "la", "?before=2041-01-01")
    [held] = new_school["items"]
    assert (held["digest"], held["direction"], held["purpose"]) == (digest, "received", None)
    assert (held["rule"], held["review_date"]) == ("retention.school-cp-file", REVIEW)
    assert held["counterparties"] == [SCHOOL]
    assert new_school["unscheduled"] == []
    inbox = await get_json(
        http, office.url("la") + "/api/v1/inbox", auth(office, NEW_SCHOOL, "dsl")
    )
    assert inbox["items"][0]["retention"]["review_date"] == REVIEW

    # Only the computed date is kept: never the date of birth.
    for node in ("school", "la"):
        assert DOB.encode() not in _db_bytes(office, node)


async def test_a_received_lac_record_follows_the_holders_own_rule(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """The LA keeps its looked-after child record to the 75th birthday; the school, DOB + 25."""
    body = lac_submission("Synthetic PEP target", [LA])
    status, answer = await _call(
        http, "POST", office.url("school") + "/api/v1/envelopes", auth(office, SCHOOL, "dsl"), body
    )
    assert status == 202, answer
    digest = answer["digest"]

    async def delivered() -> bool:
        item = await sent(http, office, digest)
        return item["recipients"][0]["delivery_state"] == "delivered"

    await until(delivered, what="delivery")
    [mine] = (await _due(http, office, SCHOOL, "school", "?before=2100-01-01"))["items"]
    assert (mine["rule"], mine["review_date"]) == ("retention.school-lac-record-copy", REVIEW)
    await _open(http, office, LA, digest)
    [theirs] = (await _due(http, office, LA, "la", "?before=2100-01-01"))["items"]
    assert (theirs["rule"], theirs["review_date"]) == (
        "retention.la-looked-after-child",
        LAC_REVIEW,
    )


# --- holds and destruction --------------------------------------------------------------------


REVIEWED = {"reason": "Reviewed by the DPO: the retention period has ended."}


async def _hold_then_lift(
    http: aiohttp.ClientSession, world: Deployment, digest: str, answers: list[Any]
) -> None:
    """Hold the item and everything; each hold blocks destruction (409) until lifted."""
    school = world.url("school")
    dpo = auth(world, SCHOOL, "dpo")
    destroy_url = school + f"/api/v1/retention/{digest}/destroy"
    status, hold = await _call(
        http, "POST", school + "/api/v1/retention/holds", dpo, {"digest": digest, **INQUIRY}
    )
    assert status == 201, hold
    assert (hold["scope"], hold["rule"], hold["placed_by"]) == (
        "item",
        f"holds.{hold['id']}",
        f"{SCHOOL}/dpo",
    )
    litigation = {"reason": "Litigation: keep every record", "reference": "Claim HC-2040-000123"}
    status, everything = await _call(
        http, "POST", school + "/api/v1/retention/holds", dpo, litigation
    )
    assert (status, everything["scope"], everything["digest"]) == (201, "organisation", None)
    due = await _due(http, world, SCHOOL, "school")
    [item] = due["items"]
    assert (item["state"], item["holds"]) == ("held", [hold["id"], everything["id"]])
    assert {h["id"] for h in due["holds"]} == {hold["id"], everything["id"]}

    status, refused = await _call(http, "POST", destroy_url, dpo, REVIEWED)
    assert (status, refused["error"]["rule"]) == (409, f"holds.{hold['id']}")
    assert INQUIRY["reason"] in refused["error"]["message"]
    answers.append(refused)
    status, lifted = await _call(
        http, "DELETE", school + f"/api/v1/retention/holds/{hold['id']}", dpo
    )
    assert status == 200
    assert (lifted["lifted_by"], lifted["lifted_at"] is not None) == (f"{SCHOOL}/dpo", True)
    # The organisation-wide hold still blocks it.
    status, refused = await _call(http, "POST", destroy_url, dpo, REVIEWED)
    assert (status, refused["error"]["rule"]) == (409, f"holds.{everything['id']}")
    status, _ = await _call(
        http, "DELETE", school + f"/api/v1/retention/holds/{everything['id']}", dpo
    )
    assert status == 200
    listed = await get_json(http, school + "/api/v1/retention/holds", dpo)
    assert [h["lifted_at"] is not None for h in listed["holds"]] == [True, True]


async def _school_destroys(http: aiohttp.ClientSession, world: Deployment, digest: str) -> None:
    """Destroy the school's copy: body gone, tombstone logged, hashes deleted."""
    school = world.url("school")
    dpo = auth(world, SCHOOL, "dpo")
    destroy_url = school + f"/api/v1/retention/{digest}/destroy"
    service = world.nodes["school"].service
    body_file = service.store.blobs.path(bytes.fromhex(digest))
    assert body_file.exists()
    status, done = await _call(http, "POST", destroy_url, dpo, REVIEWED)
    assert status == 200, done
    assert (done["state"], done["rule"], done["destroyed_by"]) == (
        "destroyed",
        "retention.school-cp-file",
        f"{SCHOOL}/dpo",
    )
    assert not body_file.exists()
    status, again = await _call(http, "POST", destroy_url, dpo, REVIEWED)
    assert (status, again["error"]["rule"]) == (409, "retention.destroyed")
    assert (await _due(http, world, SCHOOL, "school"))["items"] == []
    view = await sent(http, world, digest)
    assert view["retention"]["state"] == "destroyed"
    assert view["retention"]["destroyed_at"].startswith("2040-03-20")
    assert [r["status"] for r in view["recipients"][0]["timeline"]] == ["delivered", "opened"]

    # The tombstone: the last event of the envelope at the school, with the rule.
    store = service.store
    events = [decode_event(e) for _, e in await store.ledger_events_for(bytes.fromhex(digest))]
    assert (events[-1].type, events[-1].org, events[-1].reason) == (
        EventType.DESTROYED,
        SCHOOL,
        "retention.school-cp-file",
    )
    rows, _ = await store.subject_matches(SCHOOL, [service.subject_key("upn", UPN).hash])
    assert rows == []  # the keyed hashes went with it; the register row itself remains
    assert [r.entry.envelope_digest for r in await store.register_rows(SCHOOL)] == [
        bytes.fromhex(digest)
    ]


async def _new_school_destroys(
    http: aiohttp.ClientSession, world: Deployment, digest: str, answers: list[Any]
) -> None:
    """Destroy the new school's own copy: then it is gone (410) for its staff."""
    la = world.url("la")
    status, done = await _call(
        http, "POST", la + f"/api/v1/retention/{digest}/destroy", auth(world, NEW_SCHOOL, "dpo"),
        REVIEWED,
    )  # fmt: skip
    assert status == 200, done
    gone = await _open(http, world, NEW_SCHOOL, digest, status=410)
    assert "destroyed" in gone["error"]["message"]
    answers.append(gone)
    status, _ = await _call(
        http, "POST", la + f"/api/v1/inbox/{digest}/acknowledge", auth(world, NEW_SCHOOL, "dsl"),
        {},
    )  # fmt: skip
    assert status == 410
    inbox = await get_json(http, la + "/api/v1/inbox", auth(world, NEW_SCHOOL, "dsl"))
    assert inbox["items"][0]["retention"]["state"] == "destroyed"
    status, report = await _call(
        http, "POST", la + "/api/v1/subject-access", auth(world, NEW_SCHOOL, "dpo"), {"upn": UPN}
    )
    assert status == 200, report
    assert report["items"] == []
    assert report["needs_review"]["items"] == []
    assert [(d["digest"], d["direction"], d["rule"]) for d in report["destroyed"]] == [
        (digest, "received", "retention.school-cp-file")
    ]
    answers.append(report)
    assert not world.nodes["la"].service.store.blobs.path(bytes.fromhex(digest)).exists()


async def test_holds_block_destruction_until_lifted_then_the_tombstone_remains(
    office: Deployment,
    http: aiohttp.ClientSession,
    structured_log: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Review due, held (409 naming the hold), lifted, destroyed: 410 after, ledger verifies."""
    digest = await _send_cp_file(http, office)
    await _open(http, office, NEW_SCHOOL, digest)
    await _opened_at_school(http, office, digest)
    dpo = auth(office, SCHOOL, "dpo")
    destroy_url = office.url("school") + f"/api/v1/retention/{digest}/destroy"
    answers: list[Any] = []

    # Before the review date the rule keeps it.
    status, refused = await _call(http, "POST", destroy_url, dpo, REVIEWED)
    assert (status, refused["error"]["rule"]) == (422, "retention.school-cp-file")
    assert REVIEW in refused["error"]["message"]
    answers.append(refused)

    _set_clock(office, AFTER_REVIEW)
    due = await _due(http, office, SCHOOL, "school")
    assert [(i["digest"], i["state"]) for i in due["items"]] == [(digest, "review-due")]
    answers.append(due)
    await _hold_then_lift(http, office, digest, answers)
    await _school_destroys(http, office, digest)
    await _new_school_destroys(http, office, digest, answers)

    # No personal data in what the DPO was shown, in the refusals or in the logs.
    text = json.dumps(answers) + structured_log.getvalue()
    for needle in (DOB, "14/03/2015", UPN, CHILD_NAME["family_name"]):
        assert needle not in text, needle
    for event in ("retention.destroyed", "retention.hold-placed", "retention.scheduled"):
        assert f'"{event}"' in structured_log.getvalue(), event

    # Both ledgers still verify, destroyed events included.
    await office.stop()
    for node in ("school", "la"):
        config = str(office.folder / f"node-{node}.toml")
        assert await asyncio.to_thread(main, ["ledger", "verify", "--config", config]) == 0
    assert "ledger verified" in capsys.readouterr().err


async def test_only_the_dpo_may_review_hold_or_destroy(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """Other roles are 403; malformed requests 400; unknown items and holds 404."""
    digest = await _send_cp_file(http, office)
    school = office.url("school")
    calls = [
        ("GET", "/api/v1/retention/due", None),
        ("GET", "/api/v1/retention/holds", None),
        ("POST", "/api/v1/retention/holds", {"digest": digest, **INQUIRY}),
        ("DELETE", "/api/v1/retention/holds/1", None),
        ("POST", f"/api/v1/retention/{digest}/destroy", {"reason": "Reviewed."}),
    ]
    for role in ("dsl", "staff"):
        for method, path, body in calls:
            status, answer = await _call(
                http, method, school + path, auth(office, SCHOOL, role), body
            )
            assert status == 403, (role, method, path, answer)
    dpo = auth(office, SCHOOL, "dpo")
    for method, path, body, expected in [
        ("GET", "/api/v1/retention/due?before=next-week", None, 400),
        ("GET", "/api/v1/retention/due?after=2040-01-01", None, 400),
        ("POST", "/api/v1/retention/holds", {"digest": "00", **INQUIRY}, 400),
        ("POST", "/api/v1/retention/holds", {"digest": "0" * 64, **INQUIRY}, 404),
        ("POST", "/api/v1/retention/holds", {**INQUIRY, "note": "x"}, 400),
        ("DELETE", "/api/v1/retention/holds/0", None, 400),
        ("DELETE", "/api/v1/retention/holds/99", None, 404),
        ("POST", f"/api/v1/retention/{'0' * 64}/destroy", {"reason": "Reviewed."}, 404),
        ("POST", "/api/v1/retention/NOT-A-DIGEST/destroy", {"reason": "Reviewed."}, 400),
    ]:
        status, answer = await _call(http, method, school + path, dpo, body)
        assert status == expected, (method, path, answer)
    status, answer = await _call(
        http, "POST", school + "/api/v1/retention/holds", dpo,
        {"digest": digest, "reason": f"About UPN {UPN}", "reference": "X"},
    )  # fmt: skip
    assert (status, answer["error"]["rule"]) == (422, "reason.identifier")
    assert UPN not in json.dumps(answer)
    # The NEW school's DPO on the other node cannot touch the school's item (not held there).
    status, _ = await _call(
        http, "POST", office.url("la") + f"/api/v1/retention/{digest}/destroy",
        auth(office, LA, "dpo"), {"reason": "Reviewed."},
    )  # fmt: skip
    assert status == 404


async def test_a_body_shared_by_two_tenants_is_deleted_when_the_last_destroys_it(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """The LA and the nurses share one stored body: it goes only when both have destroyed it."""
    body = lac_submission("Synthetic PEP target", [LA, NURSES])
    status, answer = await _call(
        http, "POST", office.url("school") + "/api/v1/envelopes", auth(office, SCHOOL, "dsl"), body
    )
    assert status == 202, answer
    digest = answer["digest"]

    async def delivered() -> bool:
        item = await sent(http, office, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(delivered, what="delivery")
    la = office.url("la")
    for org in (LA, NURSES):
        status, _ = await _call(
            http, "POST", la + f"/api/v1/inbox/{digest}/open", auth(office, org, "staff")
        )
        assert status == 200
    body_file = office.nodes["la"].service.store.blobs.path(bytes.fromhex(digest))
    reviewed = {"reason": "Reviewed: the 75-year period has ended."}

    _set_clock(office, AFTER_LAC_REVIEW)
    status, done = await _call(
        http, "POST", la + f"/api/v1/retention/{digest}/destroy", auth(office, NURSES, "dpo"),
        reviewed,
    )  # fmt: skip
    assert (status, done["rule"]) == (200, "retention.nhs-lac-health"), done
    assert body_file.exists()
    status, _ = await _call(
        http, "POST", la + f"/api/v1/inbox/{digest}/open", auth(office, NURSES, "staff")
    )
    assert status == 410
    _now_clock(office)  # the keys are valid now, not in 2090
    status, _ = await _call(
        http, "POST", la + f"/api/v1/inbox/{digest}/open", auth(office, LA, "staff")
    )
    assert status == 200
    _set_clock(office, AFTER_LAC_REVIEW)
    status, done = await _call(
        http, "POST", la + f"/api/v1/retention/{digest}/destroy", auth(office, LA, "dpo"), reviewed
    )
    assert (status, done["rule"]) == (200, "retention.la-looked-after-child"), done
    assert not body_file.exists()


async def test_a_restart_finishes_an_interrupted_destruction(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """A body left behind after the destruction committed is deleted when the node starts."""
    destroyed = await _send_cp_file(http, office)
    kept = await _send_cp_file(http, office)
    store = office.nodes["school"].service.store
    _set_clock(office, AFTER_REVIEW)
    status, done = await _call(
        http, "POST", office.url("school") + f"/api/v1/retention/{destroyed}/destroy",
        auth(office, SCHOOL, "dpo"), {"reason": "Reviewed: the period has ended."},
    )  # fmt: skip
    assert status == 200, done
    leftover = store.blobs.path(bytes.fromhex(destroyed))
    kept_file = store.blobs.path(bytes.fromhex(kept))
    # As if the node had stopped between the commit and the file's deletion.
    leftover.write_bytes(kept_file.read_bytes())

    old = office.nodes["school"]
    await old.stop()
    node = Node(old.config)
    await node.start()
    office.nodes["school"] = node
    assert not leftover.exists()
    assert kept_file.exists()
    _set_clock(office, AFTER_REVIEW)
    due = await _due(http, office, SCHOOL, "school")
    assert [i["digest"] for i in due["items"]] == [kept]
    view = await sent(http, office, destroyed)
    assert view["retention"]["state"] == "destroyed"


async def test_the_retention_due_command(
    office: Deployment, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """``exchange retention due`` reads the store and agrees with the API."""
    digest = await _send_cp_file(http, office)
    config = str(office.folder / "node-school.toml")
    capsys.readouterr()
    out_file = office.folder / "due.json"
    argv = ["retention", "due", "--config", config, "--before", "2040-03-15", "--json"]
    assert await asyncio.to_thread(main, [*argv, "--out", str(out_file)]) == 0
    cli = json.loads(out_file.read_text("utf-8"))
    api = await _due(http, office, SCHOOL, "school", "?before=2040-03-15")
    assert cli["items"] == api["items"]
    assert [i["digest"] for i in cli["items"]] == [digest]

    later = str(int(AFTER_REVIEW.timestamp()))
    out_file = office.folder / "due.txt"
    argv = ["retention", "due", "--config", config, "--now", later, "--out", str(out_file)]
    assert await asyncio.to_thread(main, argv) == 0
    err = capsys.readouterr().err
    out = out_file.read_text("utf-8")
    assert out_file.stat().st_mode & 0o777 == 0o600
    assert out.startswith(f"{REVIEW}  review-due retention.school-cp-file")
    assert digest in out
    assert "1 item(s) for review before 2040-03-21 for urn:106123" in err
    assert DOB not in out + err

    la_config = str(office.folder / "node-la.toml")
    assert await asyncio.to_thread(main, ["retention", "due", "--config", la_config]) == 2
    assert "--org is required" in capsys.readouterr().err
    out_file = office.folder / "due-new-school.txt"
    argv = ["retention", "due", "--config", la_config, "--org", NEW_SCHOOL, "--out", str(out_file)]
    assert await asyncio.to_thread(main, argv) == 0
    assert out_file.read_text("utf-8").startswith("unscheduled not-opened")
