"""Records, policy, the sharing register, deadlines and subject access, on real nodes.

A school node and an LA node (serving the front door, the nurses and a second school) over
TLS. Submissions are checked against the record schemas and the policy before sealing; the
register row is written with the envelope; deadlines follow the calendar; subject access
finds sent and received items by UPN and NHS number.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import sqlite3
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from exchange.cli.main import main
from exchange.demo.loopback import Deployment, OrgSpec
from exchange.keys.ids import OrgId
from exchange.records import decode_container, sanitise_file_name
from exchange.records.content_checks import DOCX
from exchange.service import register_reports

from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import auth, get_json, sent, until
from .records import (
    NHS,
    UPN,
    child,
    cp_file,
    information_request,
    lac_submission,
    referral,
    referral_submission,
)

pytestmark = pytest.mark.network

NEW_SCHOOL = OrgId("urn:106124")
ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
    OrgSpec(NURSES, "School nursing team", "nhs", "la"),
    OrgSpec(NEW_SCHOOL, "Moorside Academy", "school", "la"),
)
LONDON = ZoneInfo("Europe/London")
PDF = b"%PDF-1.7\n% synthetic test document\n%%EOF\n"


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the nodes with DSLs, staff and DPOs at the school and the LA."""
    users = {
        SCHOOL: ["dsl", "staff", "dpo"],
        LA: ["dsl", "staff", "dpo"],
        NURSES: ["staff"],
        NEW_SCHOOL: ["dsl", "dpo"],
    }
    async with deployed(tmp_path / "register", users, orgs=ORGS) as deployment:
        yield deployment


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _post(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any
) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def _submit(
    http: aiohttp.ClientSession,
    world: Deployment,
    body: dict[str, Any],
    *,
    org: OrgId = SCHOOL,
    node: str = "school",
) -> tuple[int, Any]:
    return await _post(http, world.url(node) + "/api/v1/envelopes", auth(world, org, "dsl"), body)


async def _delivered(http: aiohttp.ClientSession, world: Deployment, digest: str) -> None:
    async def done() -> bool:
        item = await sent(http, world, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(done, what="delivery")


def _pdf(name: str = "chronology.pdf", data: bytes = PDF) -> dict[str, str]:
    return {
        "name": name,
        "content_type": "application/pdf",
        "content_base64": base64.b64encode(data).decode(),
    }


def _set_clock(world: Deployment, moment: datetime) -> None:
    """Move every node's clock so that it reads ``moment`` now (the clocks keep running)."""
    offset = moment.timestamp() - time.time()
    for node in world.nodes.values():
        node.service.clock = lambda offset=offset: time.time() + offset


# --- policy and records --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        pytest.param(
            referral_submission([NEW_SCHOOL]),
            "purposes.safeguarding-referral.recipient_kinds",
            id="referral-to-a-school",
        ),
        pytest.param(
            {
                "recipients": [NEW_SCHOOL],
                "purpose": "cp-file-transfer",
                "record_kind": "cp-file-transfer",
                "record": cp_file(),
                "categories": ["identity", "safeguarding-concerns"],
                "lawful_basis": "art6.1.e",
                "reason": "The pupil has moved to Moorside Academy.",
                "attachments": [_pdf()],
            },
            "purposes.cp-file-transfer.lawful_bases",
            id="basis-not-listed",
        ),
        pytest.param(
            {**lac_submission("x", [NEW_SCHOOL]), "categories": ["identity", "health"]},
            "purposes.pep.categories",
            id="category-not-allowed",
        ),
        pytest.param(
            referral_submission([LA], purpose="cp-file-transfer"),
            "purposes.cp-file-transfer.record_kinds",
            id="kind-not-in-purpose",
        ),
        pytest.param(referral_submission([LA], purpose="gossip"), "purposes", id="unknown-purpose"),
        pytest.param(
            referral_submission([LA], categories=["identity", "shoe-size"]),
            "categories-known",
            id="unknown-category",
        ),
        pytest.param(
            referral_submission([LA], reason="Jo Testchild is at risk."),
            "reason.names-subject",
            id="reason-names-child",
        ),
        pytest.param(referral_submission([LA], reason=" "), "reason.length", id="reason-empty"),
        pytest.param(
            referral_submission([LA], reason="x" * 2001), "reason.length", id="reason-long"
        ),
        pytest.param(referral_submission([LA], due="2026-12-04"), "due", id="due-for-a-referral"),
    ],
)
async def test_a_refused_submission_names_the_rule_and_registers_nothing(
    office: Deployment, http: aiohttp.ClientSession, body: dict[str, Any], rule: str
) -> None:
    """A policy or record refusal is 422 naming the rule; nothing is sealed or registered."""
    status, answer = await _submit(http, office, body)
    assert status == 422, answer
    assert answer["error"]["rule"] == rule
    store = office.nodes["school"].service.store
    assert await store.register_rows(SCHOOL) == []
    assert await store.list_sent(SCHOOL, limit=10) == []
    assert list(store.blobs.folder.iterdir()) == []


async def test_a_policy_refusal_explains_itself(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """A referral to a school is refused by the purpose's recipient kinds, with the words."""
    status, answer = await _submit(http, office, referral_submission([NEW_SCHOOL]))
    assert status == 422
    assert answer["error"]["message"] == (
        "purpose 'safeguarding-referral' does not allow sending to an organisation of kind "
        "'school' (urn:106124) (rule purposes.safeguarding-referral.recipient_kinds)"
    )


async def test_an_invalid_record_names_each_field_path_and_rule(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """Field-level problems name the path in the body and the rule, never the value."""
    record = referral(subject=child(nhs="9990000019"))
    del record["description"]
    record["child"]["ethnicity"] = "Tall"
    status, answer = await _submit(http, office, referral_submission([LA], record=record))
    assert status == 422
    error = answer["error"]
    assert error["rule"] == "record"
    problems = {(p["path"], p["rule"]) for p in error["problems"]}
    assert problems == {
        ("record.child.nhs_number", "format:nhs-number"),
        ("record.description", "required"),
        ("record.child.ethnicity", "pattern"),
    }
    text = json.dumps(answer)
    assert "9990000019" not in text
    assert "Tall" not in text


# --- attachments ---------------------------------------------------------------------------


async def test_attachments_are_sealed_with_sanitised_names_and_a_completed_manifest(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """A CP file's documents travel in the container; names are sanitised; manifest filled.

    A Windows device name before the first dot ("aux .plan.pdf") is made safe too.
    """
    tricky = "../../Notes\u202etxt.exe  of concern:2026.pdf"
    body = {
        "recipients": [NEW_SCHOOL],
        "purpose": "cp-file-transfer",
        "record_kind": "cp-file-transfer",
        "record": cp_file(
            documents=[
                {"kind": "chronology", "title": "Chronology"},
                {"kind": "notes-of-concern", "title": "Notes of concern"},
                {"kind": "other", "title": "Plan"},
            ]
        ),
        "categories": ["identity", "safeguarding-concerns", "family"],
        "reason": "The pupil has started at Moorside Academy; KCSIE asks for the CP file.",
        "attachments": [_pdf(), _pdf(tricky, PDF + b"\r\n"), _pdf("aux .plan.pdf", PDF + b" ")],
    }
    status, answer = await _submit(http, office, body)
    assert status == 202, answer
    digest = answer["digest"]
    await _delivered(http, office, digest)
    async with http.post(
        office.url("la") + f"/api/v1/inbox/{digest}/open", headers=auth(office, NEW_SCHOOL, "dsl")
    ) as resp:
        assert resp.status == 200
        container = decode_container(await resp.read())
    names = [a.name for a in container.attachments]
    assert names == ["chronology.pdf", sanitise_file_name(tricky), "_aux .plan.pdf"]
    assert "/" not in names[1]
    assert "\u202e" not in names[1]
    documents = container.record.data["documents"]
    assert documents[1]["sha256"] == container.attachments[1].sha256.hex()
    assert documents[1]["size"] == len(PDF) + 2
    rows = await office.nodes["school"].service.store.register_rows(SCHOOL)
    assert [r.entry.attachments for r in rows] == [3]


def _zip(entries: dict[str, bytes], comment: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in entries.items():
            archive.writestr(name, body)
        archive.comment = comment
    return buffer.getvalue()


def _with_attachments(*attachments: dict[str, str], **changes: Any) -> dict[str, Any]:
    record = referral()
    record["attachments"] = [{"title": f"Document {i}"} for i in range(len(attachments))]
    return referral_submission([LA], record=record, attachments=list(attachments), **changes)


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        pytest.param(
            _with_attachments(_pdf(data=b"not a PDF at all")), "attachment.magic", id="magic"
        ),
        pytest.param(
            _with_attachments(
                {
                    "name": "setup.exe",
                    "content_type": "application/x-msdownload",
                    "content_base64": base64.b64encode(b"MZ\x90\x00").decode(),
                }
            ),
            "attachment.content-type",
            id="content-type",
        ),
        pytest.param(
            _with_attachments(_pdf("Notes.pdf"), _pdf("notes.PDF", PDF + b"\n")),
            "attachment.name-duplicate",
            id="duplicate-name",
        ),
        pytest.param(
            _with_attachments(_pdf(data=b"%PDF-1.7\n1 0 obj << >> endobj\n")),
            "attachment.pdf-eof",
            id="pdf-without-eof",
        ),
        pytest.param(
            _with_attachments(_pdf(data=PDF[:-6] + _zip({"x.html": b"<html>"}, b"\n%%EOF\n"))),
            "attachment.polyglot",
            id="pdf-zip-polyglot",
        ),
        pytest.param(
            _with_attachments(
                {
                    "name": "letter.docx",
                    "content_type": DOCX,
                    "content_base64": base64.b64encode(
                        _zip(
                            {
                                "[Content_Types].xml": b"<Types/>",
                                "word/document.xml": b"\x00" * (4 * 1024 * 1024),
                            }
                        )
                    ).decode(),
                }
            ),
            "attachment.zip-bomb",
            id="docx-zip-bomb",
        ),
        pytest.param(_with_attachments(_pdf("...")), "attachment.name", id="empty-name"),
        pytest.param(_with_attachments(_pdf(data=b"")), "attachment.size", id="empty-file"),
        pytest.param(
            {**lac_submission("x", [LA]), "attachments": [_pdf()]},
            "attachment.count",
            id="kind-without-attachments",
        ),
        pytest.param(
            referral_submission(
                [LA],
                record={**referral(), "attachments": [{"title": "A", "sha256": "0" * 64}]},
                attachments=[_pdf()],
            ),
            "manifest.entry",
            id="manifest-digest",
        ),
        pytest.param(
            referral_submission([LA], attachments=[_pdf()]), "manifest.count", id="no-manifest"
        ),
    ],
)
async def test_attachment_rules(
    office: Deployment, http: aiohttp.ClientSession, body: dict[str, Any], rule: str
) -> None:
    """Content types, magic bytes, names, sizes, counts and manifests are enforced."""
    status, answer = await _submit(http, office, body)
    assert status == 422, answer
    assert answer["error"]["rule"] == rule
    assert await office.nodes["school"].service.store.register_rows(SCHOOL) == []


async def test_attachment_size_limits(office: Deployment, http: aiohttp.ClientSession) -> None:
    """Files over a referral's 50 MiB, or more than 50 files, are refused before sealing.

    (One file may be 1 GiB in the format, and 64 MiB fit in this node's envelopes: the
    referral's own total is the tighter limit.)
    """
    big = PDF + b"\0" * (50 * 1024 * 1024)
    body = io.BytesIO(json.dumps(_with_attachments(_pdf(data=big))).encode())
    async with http.post(
        office.url("school") + "/api/v1/envelopes",
        data=body,
        headers={**auth(office, SCHOOL, "dsl"), "Content-Type": "application/json"},
    ) as resp:
        answer = await resp.json()
    assert (resp.status, answer["error"]["rule"]) == (422, "attachment.total")
    many = [_pdf(f"d{i}.pdf", PDF + b" " * i) for i in range(51)]
    status, answer = await _submit(http, office, _with_attachments(*many))
    assert (status, answer["error"]["rule"]) == (422, "attachment.count")


# --- the register --------------------------------------------------------------------------


async def test_the_register_row_is_written_with_the_submission(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """A disclosure's register row names who, what, to whom, why, and the lawful basis."""
    status, answer = await _submit(http, office, referral_submission([LA]))
    assert status == 202, answer
    assert answer["lawful_basis"] == "art6.1.e+art9.2.g+dpa2018.sch1.para18"
    assert answer["deadline"]["rule"] == "deadlines.referral"
    service = office.nodes["school"].service
    [row] = await service.store.register_rows(SCHOOL)
    entry = row.entry
    assert entry.envelope_digest == bytes.fromhex(answer["digest"])
    assert entry.outcome == "shared"
    assert entry.decided_by == f"{SCHOOL}/dsl"
    assert entry.recipients == ((LA, "la"),)
    assert entry.purpose == "safeguarding-referral"
    assert entry.rule == "purposes.safeguarding-referral"
    assert entry.lawful_basis == answer["lawful_basis"]
    assert entry.citation is not None
    assert "Article 6(1)(e)" in entry.citation
    assert entry.categories == ("identity", "safeguarding-concerns")
    assert entry.reason.startswith("Concerns about neglect")
    assert {(s.kind, s.hash) for s in entry.subjects} == {
        ("upn", service.subject_key("upn", UPN).hash),
        ("nhs-number", service.subject_key("nhs-number", NHS).hash),
    }
    assert await service.store.holds_subject_hashes()
    # The key file is private to the node's user and never a pupil identifier in clear.
    key_file = service.store.folder / "register.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    db = (service.store.folder / "node.sqlite3").read_bytes()
    assert UPN.encode() not in db
    assert NHS.encode() not in db


async def test_a_decision_not_to_share_is_registered(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """Staff register a decision not to share; the DPO sees it in the export."""
    url = office.url("school") + "/api/v1/decisions/not-shared"
    decision = {
        "purpose": "information-request-reply",
        "recipients": [LA],
        "reason_code": "prejudice-to-investigation",
        "reason": "The police asked us to wait until they have spoken to the family.",
        "record_kind": "information-request",
        "nhs_number": NHS,
    }
    status, answer = await _post(http, url, auth(office, SCHOOL, "staff"), decision)
    assert status == 201, answer
    assert answer["rule"] == "not-to-share.prejudice-to-investigation"
    status, answer = await _post(http, url, auth(office, SCHOOL, "dpo"), decision)
    assert status == 403
    status, answer = await _post(
        http, url, auth(office, SCHOOL, "dsl"), {**decision, "reason_code": "busy"}
    )
    assert (status, answer["error"]["rule"]) == (422, "reason_code")
    [row] = await _get(http, office.url("school") + "/api/v1/register", auth(office, SCHOOL, "dpo"))
    assert row["decision"] == "not-shared"
    assert row["reason_code"] == "prejudice-to-investigation"
    assert row["rule"] == "not-to-share.prejudice-to-investigation"
    assert row["recipients"] == [
        {
            "organisation": LA,
            "kind": "la",
            "receipts": [],
            "deadline_status": None,
            "deadline_met_at": None,
            "recall": None,
        }
    ]
    assert (row["in_reply_to"], row["corrects"]) == (None, None)
    assert (row["destroyed_at"], row["retention_rule"]) == (None, None)
    assert [h.split(":")[0] for h in row["pupil_identifier_hashes"]] == ["nhs-number"]
    assert NHS not in json.dumps(row)


async def _acknowledged_referral(http: aiohttp.ClientSession, world: Deployment) -> str:
    status, answer = await _submit(http, world, referral_submission([LA]))
    assert status == 202, answer
    digest = str(answer["digest"])
    await _delivered(http, world, digest)
    la = world.url("la")
    async with http.post(
        la + f"/api/v1/inbox/{digest}/acknowledge",
        json={"disposition": "accepted-for-assessment"},
        headers=auth(world, LA, "dsl"),
    ) as resp:
        assert resp.status == 200

    async def home() -> bool:
        item = await sent(http, world, digest)
        return [t["status"] for t in item["recipients"][0]["timeline"]] == [
            "delivered",
            "acknowledged",
        ]

    await until(home, what="the acknowledgement at the school")
    return digest


async def test_the_export_is_for_the_dpo_only_as_json_or_csv(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """JSON and CSV exports carry receipts per recipient and identifier hashes only."""
    digest = await _acknowledged_referral(http, office)
    school = office.url("school") + "/api/v1/register"
    for role in ("dsl", "staff"):
        async with http.get(school, headers=auth(office, SCHOOL, role)) as resp:
            assert resp.status == 403
    dpo = auth(office, SCHOOL, "dpo")
    [row] = await _get(http, school + "?format=json", dpo)
    assert row["digest"] == digest
    [recipient] = row["recipients"]
    assert [r["status"] for r in recipient["receipts"]] == ["delivered", "acknowledged"]
    assert recipient["deadline_status"] == "met"
    assert row["deadline"]["satisfied_by"] == ["acknowledged"]
    async with http.get(school + "?format=csv", headers=dpo) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        assert resp.headers["Cache-Control"] == "no-store"
        text = await resp.text()
    lines = list(csv.DictReader(io.StringIO(text)))
    assert len(lines) == 1
    assert lines[0]["digest"] == digest
    assert lines[0]["recipient"] == LA
    assert lines[0]["acknowledged_at"].endswith("Z")
    assert lines[0]["deadline_status"] == "met"
    assert lines[0]["pupil_identifier_hashes"].startswith("nhs-number:")
    for forbidden in (UPN, NHS, "Testchild", "2015-03-14"):
        assert forbidden not in text
    today = datetime.now(LONDON).date()
    assert await _get(http, school + f"?from={today}&to={today}", dpo) == [row]
    yesterday = today.fromordinal(today.toordinal() - 1)
    assert await _get(http, school + f"?to={yesterday}", dpo) == []
    async with http.get(school + "?from=yesterday", headers=dpo) as resp:
        assert resp.status == 400


async def test_the_export_is_streamed_a_page_at_a_time_and_cut_if_it_fails(
    office: Deployment, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read two rows at a time, the export is the same; a failure part-way cuts it.

    Cut, not ended: no client takes a partial export for a whole one.
    """
    url = office.url("school") + "/api/v1/decisions/not-shared"
    decision = {
        "purpose": "information-request-reply", "recipients": [LA],
        "reason_code": "prejudice-to-investigation", "reason": "Police investigation.",
    }  # fmt: skip
    for _ in range(5):
        status, answer = await _post(http, url, auth(office, SCHOOL, "staff"), decision)
        assert status == 201, answer
    school = office.url("school") + "/api/v1/register"
    dpo = auth(office, SCHOOL, "dpo")
    whole_json = await _get(http, school + "?format=json", dpo)
    async with http.get(school + "?format=csv", headers=dpo) as resp:
        whole_csv = await resp.text()
    assert len(whole_json) == 5
    store = office.nodes["school"].service.store
    real = store.register_rows
    limits: list[int | None] = []

    async def paged(*args: Any, **kwargs: Any) -> Any:
        limits.append(kwargs.get("limit"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(register_reports, "EXPORT_PAGE", 2)
    monkeypatch.setattr(store, "register_rows", paged)
    assert await _get(http, school + "?format=json", dpo) == whole_json
    async with http.get(school + "?format=csv", headers=dpo) as resp:
        assert await resp.text() == whole_csv
    assert limits == [2, 2, 2, 2, 2, 2]

    async def failing(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("offset"):
            raise sqlite3.OperationalError("disk I/O error")
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "register_rows", failing)
    for form in ("json", "csv"):
        async with http.get(school + f"?format={form}", headers=dpo) as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()


# --- deadlines -----------------------------------------------------------------------------


async def test_a_cp_file_deadline_counts_school_days_across_christmas(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """Confirmed Thursday 17 December 2026: day 1 is the 18th, then the spring term.

    The Christmas holiday, its bank holidays (25 and 28 December, 1 January), the weekends
    and the INSET day of 4 January do not count: days 2-5 are 5-8 January 2027.
    """
    body = {
        "recipients": [NEW_SCHOOL],
        "purpose": "cp-file-transfer",
        "record_kind": "cp-file-transfer",
        "record": cp_file(confirmed="2026-12-17"),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "The pupil moves to Moorside Academy in January.",
        "new_school_confirmed": "2026-12-17",
        "attachments": [_pdf()],
    }
    status, answer = await _submit(http, office, body)
    assert status == 202, answer
    assert answer["deadline"] == {"due": "2027-01-08", "rule": "deadlines.cp-file-transfer"}
    status, answer = await _submit(http, office, {**body, "new_school_confirmed": "2026-12-18"})
    assert (status, answer["error"]["rule"]) == (422, "new_school_confirmed")


async def test_an_information_request_is_due_on_its_date(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """The LA's request carries its due date; the deadline is that date."""
    body = {
        "recipients": [SCHOOL],
        "purpose": "information-request",
        "record_kind": "information-request",
        "record": information_request(due="2026-12-04"),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "Section 47 enquiries have started; we need the school's information.",
    }
    status, answer = await _submit(http, office, body, org=LA, node="la")
    assert status == 202, answer
    assert answer["deadline"] == {"due": "2026-12-04", "rule": "deadlines.information-request"}


async def test_a_referral_before_a_bank_holiday_is_overdue_after_the_next_working_day(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """A referral sent on the Friday before a bank holiday is due on the Tuesday.

    Submitted Friday 28 May 2027 at 16:00: Monday 31 May is a bank holiday, so the
    acknowledgement is due by the end of Tuesday 1 June; on Wednesday it is overdue until
    the LA acknowledges.
    """
    _set_clock(office, datetime(2027, 5, 28, 16, 0, tzinfo=LONDON))
    status, answer = await _submit(http, office, referral_submission([LA]))
    assert status == 202, answer
    assert answer["deadline"] == {"due": "2027-06-01", "rule": "deadlines.referral"}
    digest = answer["digest"]
    await _delivered(http, office, digest)
    service = office.nodes["school"].service
    late_tuesday = datetime(2027, 6, 1, 23, 30, tzinfo=LONDON)
    assert await service.overdue_items(SCHOOL, late_tuesday) == []
    early_wednesday = datetime(2027, 6, 2, 0, 30, tzinfo=LONDON)
    [item] = await service.overdue_items(SCHOOL, early_wednesday)
    assert (item.recipient, item.waiting_for, item.received) == (
        LA,
        ("acknowledged",),
        ("delivered",),
    )
    assert item.due.isoformat() == "2027-06-01"

    _set_clock(office, datetime(2027, 6, 2, 9, 0, tzinfo=LONDON))
    overdue_url = office.url("school") + "/api/v1/overdue"
    for role in ("dsl", "staff", "dpo"):
        listed = await get_json(http, overdue_url, auth(office, SCHOOL, role))
        assert [i["digest"] for i in listed["items"]] == [digest]
    [shown] = listed["items"]
    assert shown["rule"] == "deadlines.referral"
    assert shown["waiting_for"] == ["acknowledged"]
    assert "2027-06-01" in shown["explanation"]
    # PII-free: ids, kinds, dates, rules only.
    assert UPN not in json.dumps(shown)

    async with http.post(
        office.url("la") + f"/api/v1/inbox/{digest}/acknowledge",
        json={},
        headers=auth(office, LA, "staff"),
    ) as resp:
        assert resp.status == 200

    async def cleared() -> bool:
        listed = await get_json(http, overdue_url, auth(office, SCHOOL, "dsl"))
        return listed["items"] == []

    await until(cleared, what="the acknowledgement to clear the overdue item")
    [row] = await _get(http, office.url("school") + "/api/v1/register", auth(office, SCHOOL, "dpo"))
    assert row["recipients"][0]["deadline_status"] == "met-late"


async def test_a_cp_file_is_met_by_delivery(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """A CP file's deadline is met once the new school's node holds it."""
    body = {
        "recipients": [NEW_SCHOOL],
        "purpose": "cp-file-transfer",
        "record_kind": "cp-file-transfer",
        "record": cp_file(confirmed="2026-11-20"),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "The pupil has started at Moorside Academy.",
        "attachments": [_pdf()],
    }
    status, answer = await _submit(http, office, body)
    assert status == 202, answer
    assert answer["deadline"]["due"] == "2026-11-27"  # already passed: sent late
    await _delivered(http, office, answer["digest"])

    async def met() -> bool:
        return await office.nodes["school"].service.overdue_items(SCHOOL) == []

    await until(met, what="the delivered receipt")
    [row] = await _get(http, office.url("school") + "/api/v1/register", auth(office, SCHOOL, "dpo"))
    assert row["recipients"][0]["deadline_status"] == "met-late"


# --- subject access ------------------------------------------------------------------------


async def _both_ways(http: aiohttp.ClientSession, world: Deployment) -> tuple[str, str]:
    """Refer the child to the LA from the school, and ask the school about them from the LA."""
    status, answer = await _submit(http, world, referral_submission([LA]))
    assert status == 202, answer
    referral_digest = str(answer["digest"])
    request = {
        "recipients": [SCHOOL],
        "purpose": "information-request",
        "record_kind": "information-request",
        "record": information_request(),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "Section 47 enquiries have started; we need the school's information.",
    }
    status, answer = await _submit(http, world, request, org=LA, node="la")
    assert status == 202, answer
    request_digest = str(answer["digest"])
    await _delivered(http, world, referral_digest)

    async def arrived() -> bool:
        inbox = await get_json(
            http, world.url("school") + "/api/v1/inbox", auth(world, SCHOOL, "dsl")
        )
        return [i["digest"] for i in inbox["items"]] == [request_digest]

    await until(arrived, what="the information request at the school")
    return referral_digest, request_digest


async def test_subject_access_finds_sent_and_received_items(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """By UPN and NHS number, on both nodes; unopened received items are listed apart."""
    referral_digest, request_digest = await _both_ways(http, office)
    school_sar = office.url("school") + "/api/v1/subject-access"
    la_sar = office.url("la") + "/api/v1/subject-access"
    school_dpo, la_dpo = auth(office, SCHOOL, "dpo"), auth(office, LA, "dpo")

    # Before anyone opens the request, the school cannot know it is about this child.
    status, report = await _post(http, school_sar, school_dpo, {"upn": UPN})
    assert status == 200, report
    assert [(i["direction"], i["digest"]) for i in report["items"]] == [("sent", referral_digest)]
    assert [(r["digest"], r["why"]) for r in report["needs_review"]["items"]] == [
        (request_digest, "never-opened")
    ]
    assert report["needs_review"]["count"] == 1
    assert report["searched"] == ["upn"]
    assert UPN not in json.dumps(report)

    for org, node, digest in ((SCHOOL, "school", request_digest), (LA, "la", referral_digest)):
        async with http.post(
            office.url(node) + f"/api/v1/inbox/{digest}/open", headers=auth(office, org, "dsl")
        ) as resp:
            assert resp.status == 200

    status, report = await _post(http, school_sar, school_dpo, {"upn": UPN})
    assert [(i["direction"], i["digest"]) for i in report["items"]] == [
        ("sent", referral_digest),
        ("received", request_digest),
    ]
    sent_item, received = report["items"]
    assert sent_item["counterparties"] == [LA]
    assert sent_item["purpose"] == "safeguarding-referral"
    assert sent_item["lawful_basis"] == "art6.1.e+art9.2.g+dpa2018.sch1.para18"
    assert received["counterparties"] == [LA]
    assert received["record_kind"] == "information-request"
    assert [r["status"] for r in received["receipts"]] == ["delivered", "opened"]
    assert report["needs_review"]["items"] == []
    assert [i["matched_by"] for i in report["items"]] == [["upn"], ["upn"]]
    # The information request carries no NHS number: only the referral is found by it.
    status, report = await _post(http, school_sar, school_dpo, {"nhs_number": NHS})
    assert [i["digest"] for i in report["items"]] == [referral_digest]

    status, report = await _post(http, la_sar, la_dpo, {"nhs_number": NHS})
    assert [(i["direction"], i["digest"]) for i in report["items"]] == [
        ("received", referral_digest)
    ]
    status, report = await _post(http, la_sar, la_dpo, {"upn": UPN})
    assert {(i["direction"], i["digest"]) for i in report["items"]} == {
        ("received", referral_digest),
        ("sent", request_digest),
    }
    status, report = await _post(http, la_sar, la_dpo, {"upn": "K356200124002"})
    assert (status, report["items"]) == (200, [])


async def test_subject_access_refusals_and_command(
    office: Deployment, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the DPO may search; bad identifiers are refused unechoed; the CLI agrees."""
    referral_digest, request_digest = await _both_ways(http, office)
    school_sar = office.url("school") + "/api/v1/subject-access"
    school_dpo = auth(office, SCHOOL, "dpo")
    status, _ = await _post(http, school_sar, auth(office, SCHOOL, "dsl"), {"upn": UPN})
    assert status == 403
    status, answer = await _post(http, school_sar, school_dpo, {"upn": "X356200124001"})
    assert (status, answer["error"]["rule"]) == (422, "upn.check-letter")
    assert "X356200124001" not in json.dumps(answer)
    status, answer = await _post(http, school_sar, school_dpo, {"nhs_number": "999 000 0018"})
    assert (status, answer["error"]["rule"]) == (422, "nhs-number.format")
    status, _ = await _post(http, school_sar, school_dpo, {})
    assert status == 400

    config = str(office.folder / "node-school.toml")
    out = office.folder / "sar.json"
    argv = ["subject-access", "--config", config, "--upn", UPN, "--out", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    cli_report = json.loads(out.read_text("utf-8"))
    assert [i["digest"] for i in cli_report["items"]] == [referral_digest]
    assert [r["digest"] for r in cli_report["needs_review"]["items"]] == [request_digest]
    status, api_report = await _post(http, school_sar, school_dpo, {"upn": UPN})
    assert cli_report["items"] == api_report["items"]
    argv = ["subject-access", "--config", config, "--nhs-number", "9990000019"]
    assert await asyncio.to_thread(main, argv) == 2
    err = capsys.readouterr().err
    assert "nhs-number.check-digit" in err
    assert "9990000019" not in err


# --- the command line ----------------------------------------------------------------------


async def test_register_export_and_overdue_commands(
    office: Deployment, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """``exchange register export`` and ``exchange overdue`` read the node's store."""
    digest = await _acknowledged_referral(http, office)
    status, answer = await _submit(http, office, referral_submission([LA]))
    assert status == 202
    unacknowledged = answer["digest"]
    await _delivered(http, office, unacknowledged)
    config = str(office.folder / "node-school.toml")

    out = office.folder / "register.csv"
    argv = ["register", "export", "--config", config, "--format", "csv", "--out", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    lines = list(csv.DictReader(io.StringIO(out.read_text("utf-8"))))
    assert [line["digest"] for line in lines] == [digest, unacknowledged]
    assert await asyncio.to_thread(main, argv) == 1  # never over an existing file
    capsys.readouterr()

    out = office.folder / "register.json"
    argv = ["register", "export", "--config", config, "--format", "json", "--out", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    rows = json.loads(out.read_text("utf-8"))
    assert [r["digest"] for r in rows] == [digest, unacknowledged]

    in_a_week = int(time.time()) + 7 * 24 * 3600
    out = office.folder / "overdue.json"
    argv = ["overdue", "--config", config, "--json", "--now", str(in_a_week), "--out", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    listed = json.loads(out.read_text("utf-8"))
    assert [i["digest"] for i in listed] == [unacknowledged]
    capsys.readouterr()
    argv = ["overdue", "--config", config]
    assert await asyncio.to_thread(main, argv) == 0
    assert "0 overdue item(s) for urn:106123" in capsys.readouterr().err

    la_config = str(office.folder / "node-la.toml")
    argv = ["overdue", "--config", la_config]
    assert await asyncio.to_thread(main, argv) == 2
    assert "--org is required" in capsys.readouterr().err
    stamp = datetime.now(UTC).date().isoformat()
    out = office.folder / "la.csv"
    argv = ["register", "export", "--config", la_config, "--org", LA, "--from", stamp]
    assert await asyncio.to_thread(main, [*argv, "--out", str(out)]) == 0
    assert out.read_text("utf-8").startswith("id,decision,decided_at,decided_by")
