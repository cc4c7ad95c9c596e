"""Subject access by every identifier at once, records to review, copies and read-back.

A school sends a referral (UPN and NHS number), a CP file (UPN only) and a LAC record (no
identifier): a search by NHS number finds the referral, the CP file too once the UPN is
given, and lists the LAC record as needing review; the sender reads back what it sent; the
DPO's export writes readable copies, 0600 in a 0700 folder, refuses an existing file and
records each copy in the ledger; no identifier reaches the log or the files' names.
"""

from __future__ import annotations

import asyncio
import io
import json
import stat
from pathlib import Path

import aiohttp
import pytest

from exchange.cli.main import main
from exchange.ledger.events import EventType, decode_event
from exchange.records import decode_container
from exchange.service.subject_access import access_reason

from .conftest import SCHOOL
from .helpers import auth
from .records import NHS, UPN, child, cp_file, lac_submission, referral_submission
from .test_register import NEW_SCHOOL, _pdf, _post, _submit, office  # noqa: F401 - a fixture

pytestmark = pytest.mark.network


async def _three(http: aiohttp.ClientSession, world: object) -> tuple[str, str, str]:
    """Send the referral, the CP file and a LAC record without identifiers; return digests."""
    status, referral = await _submit(http, world, referral_submission(["la:356"]))  # type: ignore[arg-type]
    assert status == 202, referral
    cp = {
        "recipients": [NEW_SCHOOL],
        "purpose": "cp-file-transfer",
        "record_kind": "cp-file-transfer",
        "record": cp_file(),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "The pupil has moved to Moorside Academy.",
        "attachments": [_pdf()],
    }
    status, cp_answer = await _submit(http, world, cp)  # type: ignore[arg-type]
    assert status == 202, cp_answer
    lac = lac_submission("Synthetic target", ["la:356"])
    lac["record"]["child"] = child(upn=None, nhs=None)
    status, lac_answer = await _submit(http, world, lac)  # type: ignore[arg-type]
    assert status == 202, lac_answer
    return referral["digest"], cp_answer["digest"], lac_answer["digest"]


async def test_search_by_every_identifier_lists_what_needs_review(
    office: object,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    """NHS number alone finds the referral; with the UPN the CP file too; LAC is to review."""
    referral, cp, lac = await _three(http, office)
    url = office.url("school") + "/api/v1/subject-access"  # type: ignore[attr-defined]
    dpo = auth(office, SCHOOL, "dpo")  # type: ignore[arg-type]
    status, report = await _post(http, url, dpo, {"nhs_number": NHS})
    assert status == 200, report
    assert [(i["digest"], i["matched_by"]) for i in report["items"]] == [(referral, ["nhs-number"])]
    assert any("UPN" in note for note in report["notes"])
    status, report = await _post(http, url, dpo, {"nhs_number": NHS, "upn": UPN})
    assert [(i["digest"], i["matched_by"]) for i in report["items"]] == [
        (referral, ["upn", "nhs-number"]),
        (cp, ["upn"]),
    ]
    assert all(i["copy"] == "kept" for i in report["items"])
    review = report["needs_review"]
    assert review["count"] == 1
    [item] = review["items"]
    assert (item["digest"], item["why"], item["record_kind"]) == (
        lac,
        "no-identifier",
        "lac-record",
    )
    assert item["sender_name"] == "Hillside Primary School"
    assert item["recipient_names"] == ["Stockport front door"]
    assert UPN not in json.dumps(report)
    assert NHS not in json.dumps(report)


async def test_the_sender_reads_back_what_it_sent(
    office: object,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    """A DSL reads back the sent record from the own copy; a DPO may not; each read is logged."""
    referral, _, _ = await _three(http, office)
    url = office.url("school") + f"/api/v1/sent/{referral}/copy"  # type: ignore[attr-defined]
    async with http.post(url, headers=auth(office, SCHOOL, "dsl")) as resp:  # type: ignore[arg-type]
        assert resp.status == 200
        container = decode_container(await resp.read())
    assert container.record.data["child"]["upn"] == UPN
    async with http.post(url, headers=auth(office, SCHOOL, "dpo")) as resp:  # type: ignore[arg-type]
        assert resp.status == 403
    other = office.url("school") + "/api/v1/sent/" + "0" * 64 + "/copy"  # type: ignore[attr-defined]
    async with http.post(other, headers=auth(office, SCHOOL, "dsl")) as resp:  # type: ignore[arg-type]
        assert resp.status == 404


async def test_the_export_writes_readable_copies_and_records_each(
    office: object,  # noqa: F811
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pages and documents 0600 in a 0700 folder; a second run refuses; the ledger has each."""
    referral, cp, lac = await _three(http, office)
    folder: Path = office.folder  # type: ignore[attr-defined]
    config = str(folder / "node-school.toml")
    out = folder / "sar-out"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"upn": UPN, "nhs_number": NHS})))
    assert (
        await asyncio.to_thread(
            main, ["subject-access", "export", "--config", config, "--out", str(out)]
        )
        == 0
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert all(stat.S_IMODE((out / n).stat().st_mode) == 0o600 for n in names)
    assert "index.html" in names
    assert "report.json" in names
    pages = [n for n in names if n.endswith(".html") and n != "index.html"]
    assert len(pages) == 3  # the referral, the CP file and the LAC record to review
    assert any(n.endswith("chronology.pdf") for n in names)
    referral_page = (out / next(n for n in pages if "referral" in n)).read_text("utf-8")
    assert "Testchild" in referral_page
    assert "Referrer" in referral_page
    assert all(UPN not in n and NHS not in n for n in names)
    # Never over an existing file: a second export into the same folder changes nothing.
    before = {n: (out / n).read_bytes() for n in names}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"upn": UPN})))
    assert (
        await asyncio.to_thread(
            main, ["subject-access", "export", "--config", config, "--out", str(out)]
        )
        == 1
    )
    assert {n: (out / n).read_bytes() for n in sorted(p.name for p in out.iterdir())} == before
    err = capsys.readouterr().err
    assert UPN not in err
    assert NHS not in err
    # Each copy is an accessed event naming the purpose and the account, never a person.
    store = office.nodes["school"].service.store  # type: ignore[attr-defined]
    events = [decode_event(e) for e in await store.ledger_events(0, await store.ledger_size())]
    dpo = next(u for u in await store.users_of(SCHOOL) if u.role == "dpo")
    copied = {
        e.envelope_digest.hex()
        for e in events
        if e.type is EventType.ACCESSED and e.reason == access_reason(dpo)
    }
    assert copied == {referral, cp, lac}
