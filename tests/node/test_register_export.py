"""The DPO's register export shows threads, recalls and retention, on real nodes.

A school node and an LA node (serving the front door, the nurses and a second school) over
TLS, as in test_register.py. Each decision in the export names the envelope it replies to
and the one it corrects, when the organisation's copy was destroyed under retention and the
rule; each recipient, the sender's recall of the item (outcome and time). The columns the
CSV had before keep their places, the new ones come after, and the export still carries no
names, dates of birth or pupil identifiers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exchange.cli.main import main
from exchange.demo.loopback import Deployment
from exchange.keys.ids import OrgId
from exchange.model import RegisterEntry, RegisterRecall, RegisterRow
from exchange.service.register_reports import CSV_COLUMNS, iso_time, register_csv, register_json

from .conftest import LA, NURSES, SCHOOL, deployed
from .helpers import auth, sent, submit, until
from .records import CHILD_NAME, DSL, NHS, SOCIAL_WORKER, UPN, lac_submission, referral_submission
from .test_register import NEW_SCHOOL, ORGS, _set_clock
from .test_retention import AFTER_REVIEW, DOB, REVIEWED, _send_cp_file
from .test_threads import _outcome

#: The CSV columns before threads, recalls and retention were added: they keep their places.
FIRST_COLUMNS = (
    "id", "decision", "decided_at", "decided_by", "organisation", "envelope_id", "digest",
    "purpose", "rule", "lawful_basis", "lawful_basis_citation", "record_kind", "categories",
    "reason_code", "reason", "attachments", "pupil_identifier_hashes", "deadline_due",
    "deadline_rule", "recipient", "recipient_kind", "delivered_at", "opened_at",
    "acknowledged_at", "rejected_at", "deadline_status",
)  # fmt: skip
NEW_COLUMNS = (
    "in_reply_to", "corrects", "destroyed_at", "retention_rule", "recall_outcome", "recalled_at",
)  # fmt: skip
#: Personal data the records carry, none of which the register may show.
PERSONAL = (
    UPN,
    NHS,
    CHILD_NAME["family_name"],
    f"{CHILD_NAME['given_names']} {CHILD_NAME['family_name']}",
    DOB,
    "14/03/2015",
    "20150314",
    DSL["name"],
    SOCIAL_WORKER["name"],
    "Vic Head",
)


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the nodes with DSLs, staff and DPOs at every organisation."""
    roles = ["dsl", "staff", "dpo"]
    users = {SCHOOL: roles, LA: roles, NURSES: roles, NEW_SCHOOL: roles}
    async with deployed(tmp_path / "register-export", users, orgs=ORGS) as deployment:
        yield deployment


async def _post(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any, status: int
) -> dict[str, Any]:
    async with http.post(url, json=body, headers=headers) as resp:
        assert resp.status == status, await resp.text()
        return dict(await resp.json())


async def _delivered(
    http: aiohttp.ClientSession, world: Deployment, digest: str, *, base: str | None = None
) -> None:
    async def done() -> bool:
        item = await sent(http, world, digest, base=base)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(done, what="delivery")


async def _open(http: aiohttp.ClientSession, world: Deployment, org: OrgId, digest: str) -> None:
    url = world.url("la") + f"/api/v1/inbox/{digest}/open"
    async with http.post(url, headers=auth(world, org, "dsl")) as resp:
        assert resp.status == 200, await resp.text()


async def _export(
    http: aiohttp.ClientSession, world: Deployment, *, org: OrgId = SCHOOL, node: str = "school"
) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]], str]:
    """Return the DPO's export: JSON rows by digest, CSV lines, and both as text."""
    url = world.url(node) + "/api/v1/register"
    dpo = auth(world, org, "dpo")
    async with http.get(url + "?format=json", headers=dpo) as resp:
        assert resp.status == 200, await resp.text()
        rows = await resp.json()
    async with http.get(url + "?format=csv", headers=dpo) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    header = next(csv.reader(io.StringIO(text)))
    assert tuple(header) == FIRST_COLUMNS + NEW_COLUMNS
    lines = list(csv.DictReader(io.StringIO(text)))
    by_digest = {r["digest"]: r for r in rows if r["digest"] is not None}
    return by_digest, lines, json.dumps(rows) + text


def _no_personal_data(text: str) -> None:
    for needle in PERSONAL:
        assert needle not in text, needle


@pytest.mark.network
async def test_a_reply_and_a_correction_show_their_links(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """The LA's outcome names the referral; the school's correction names the original twice."""
    school, la = office.url("school"), office.url("la")
    dsl, la_dsl = auth(office, SCHOOL, "dsl"), auth(office, LA, "dsl")
    made = await _post(http, school + "/api/v1/envelopes", dsl, referral_submission([LA]), 202)
    referral = made["digest"]
    await _delivered(http, office, referral)
    await _open(http, office, LA, referral)
    reply = _outcome(referral)
    del reply["record"]["in_reply_to"]
    reply["in_reply_to"] = referral
    outcome = (await _post(http, la + "/api/v1/envelopes", la_dsl, reply, 202))["digest"]

    rows, lines, text = await _export(http, office, org=LA, node="la")
    assert set(rows) == {outcome}  # only what the LA decided; the referral is the school's
    assert (rows[outcome]["in_reply_to"], rows[outcome]["corrects"]) == (referral, None)
    [line] = lines
    assert (line["digest"], line["in_reply_to"], line["corrects"]) == (outcome, referral, "")
    _no_personal_data(text)

    original = (await submit(http, office, b"synthetic target", [LA]))["digest"]
    await _delivered(http, office, original)
    await _open(http, office, LA, original)
    body = {
        "record": lac_submission("corrected synthetic target", [LA])["record"],
        "reason": "The PEP target was recorded wrongly.",
    }
    made = await _post(
        http, school + f"/api/v1/sent/{original}/rectify", auth(office, SCHOOL, "dpo"), body, 202
    )
    correction = made["digest"]

    rows, lines, text = await _export(http, office)
    assert list(rows) == [referral, original, correction]
    links = {d: (r["in_reply_to"], r["corrects"]) for d, r in rows.items()}
    assert links == {
        referral: (None, None),
        original: (None, None),
        correction: (original, original),
    }
    assert {line["digest"]: (line["in_reply_to"], line["corrects"]) for line in lines} == {
        referral: ("", ""),
        original: ("", ""),
        correction: (original, original),
    }
    assert rows[correction]["reason"].startswith("Rectification (UK GDPR Art 19): ")
    _no_personal_data(text)


@pytest.mark.network
async def test_a_recalled_recipient_shows_its_recall_outcome(
    office: Deployment, http: aiohttp.ClientSession
) -> None:
    """Withdrawn from the LA before it was opened, too late for the nurses who had opened it."""
    kept = (await submit(http, office, b"synthetic target", [LA]))["digest"]
    digest = (await submit(http, office, b"synthetic target", [LA, NURSES]))["digest"]
    await _delivered(http, office, digest)
    await _open(http, office, NURSES, digest)
    answer = await _post(
        http, office.url("school") + f"/api/v1/sent/{digest}/recall",
        auth(office, SCHOOL, "dsl"), {"reason": "Sent to the wrong team by mistake."}, 200,
    )  # fmt: skip
    asked = {r["organisation"]: iso_time(r["requested_at"]) for r in answer["recipients"]}

    rows, lines, text = await _export(http, office)
    recalls = {r["organisation"]: r["recall"] for r in rows[digest]["recipients"]}
    assert recalls == {
        LA: {"outcome": "recalled", "at": asked[LA]},
        NURSES: {"outcome": "too-late", "at": asked[NURSES]},
    }
    assert [r["recall"] for r in rows[kept]["recipients"]] == [None]
    by_line = {(line["digest"], line["recipient"]): line for line in lines}
    assert len(by_line) == len(lines) == 3  # one line per decision and recipient
    for org, outcome in ((LA, "recalled"), (NURSES, "too-late")):
        line = by_line[(digest, org)]
        assert (line["recall_outcome"], line["recalled_at"]) == (outcome, asked[org])
    assert (by_line[(kept, LA)]["recall_outcome"], by_line[(kept, LA)]["recalled_at"]) == ("", "")
    _no_personal_data(text)


@pytest.mark.network
async def test_a_destroyed_item_shows_when_and_under_which_rule(
    office: Deployment, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the DPO destroys the school's copy, its register row remains, saying so."""
    digest = await _send_cp_file(http, office)
    decision = {
        "purpose": "information-request-reply",
        "recipients": [LA],
        "reason_code": "information-not-held",
        "reason": "The pupil joined this month; we hold no records from before.",
        "upn": UPN,
    }
    url = office.url("school") + "/api/v1/decisions/not-shared"
    await _post(http, url, auth(office, SCHOOL, "dsl"), decision, 201)

    rows, _, _ = await _export(http, office)
    assert (rows[digest]["destroyed_at"], rows[digest]["retention_rule"]) == (
        None,
        "retention.school-cp-file",
    )

    _set_clock(office, AFTER_REVIEW)
    done = await _post(
        http, office.url("school") + f"/api/v1/retention/{digest}/destroy",
        auth(office, SCHOOL, "dpo"), REVIEWED, 200,
    )  # fmt: skip
    rows, lines, text = await _export(http, office)
    row = rows[digest]
    assert row["destroyed_at"] == done["destroyed_at"]
    assert row["destroyed_at"].startswith("2040-03-20")
    assert row["retention_rule"] == "retention.school-cp-file"
    # The row itself remains; only the keyed identifier hashes went with the item.
    assert (row["decision"], row["purpose"], row["pupil_identifier_hashes"]) == (
        "shared",
        "cp-file-transfer",
        [],
    )
    [shared, refused] = lines
    assert (shared["digest"], shared["destroyed_at"], shared["retention_rule"]) == (
        digest,
        done["destroyed_at"],
        "retention.school-cp-file",
    )
    assert (refused["decision"], refused["destroyed_at"], refused["retention_rule"]) == (
        "not-shared",
        "",
        "",
    )
    _no_personal_data(text)

    # The command line reads the same rows from the store.
    out = office.folder / "register.csv"
    config = str(office.folder / "node-school.toml")
    argv = ["register", "export", "--config", config, "--format", "csv", "--out", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    capsys.readouterr()
    cli = list(csv.DictReader(io.StringIO(out.read_text("utf-8"))))
    assert [(c["digest"], c["destroyed_at"], c["retention_rule"]) for c in cli] == [
        (digest, done["destroyed_at"], "retention.school-cp-file"),
        ("", "", ""),
    ]
    _no_personal_data(out.read_text("utf-8"))


def test_new_columns_are_appended_and_protected_against_formulas() -> None:
    """A row without the new fields still exports; every new cell goes through ``_cell``."""
    entry = RegisterEntry(
        org=SCHOOL,
        outcome="shared",
        decided_by=f"{SCHOOL}/dsl",
        decided_at=1_780_000_000.0,
        purpose="lac-health",
        rule="purposes.lac-health",
        reason="Synthetic reason.",
        recipients=((LA, "la"), (NURSES, "nhs")),
        envelope_digest=b"\x01" * 32,
        envelope_id=b"\x02" * 16,
    )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    plain = RegisterRow(1, entry)  # the fields added later all default to empty
    [doc] = register_json([plain], now)
    assert (doc["in_reply_to"], doc["corrects"], doc["destroyed_at"]) == (None, None, None)
    assert [r["recall"] for r in doc["recipients"]] == [None, None]

    hostile = RegisterRow(
        2,
        entry,
        in_reply_to=b"\x03" * 32,
        recalls=(RegisterRecall(NURSES, "=HYPERLINK(1)", 1_780_000_100.0),),
        destroyed_at=1_780_000_200.0,
        retention_rule="@SUM(1)",
    )
    text = register_csv([plain, hostile], now)
    header, *lines = list(csv.reader(io.StringIO(text)))
    assert tuple(header) == CSV_COLUMNS == FIRST_COLUMNS + NEW_COLUMNS
    assert len(lines) == 4
    for line in lines:
        assert len(line) == len(CSV_COLUMNS)
    cells = [dict(zip(CSV_COLUMNS, line, strict=True)) for line in lines]
    assert [c["recipient"] for c in cells] == [LA, NURSES, LA, NURSES]
    assert cells[3]["recall_outcome"] == "'=HYPERLINK(1)"
    assert cells[3]["recalled_at"] == iso_time(1_780_000_100.0)
    assert cells[2]["recall_outcome"] == ""
    assert {c["retention_rule"] for c in cells[2:]} == {"'@SUM(1)"}
    assert {c["in_reply_to"] for c in cells[2:]} == {"03" * 32}
    assert {c["destroyed_at"] for c in cells[2:]} == {iso_time(1_780_000_200.0)}
    assert all(c[name] == "" for c in cells[:2] for name in NEW_COLUMNS)
