"""Sending a record through the pages of a running node: every page, rule and refusal.

The tests share the module's nodes. Each signs in a person of its own, so its drafts are
its session's alone (:func:`_own_drafts`), and it counts only what it sent itself.
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio

from exchange.auth.session import session_id_hash
from exchange.model import short_reference
from exchange.sharing.limits import node_limits
from exchange.web.send.drafts import DraftStore, sweep_drafts
from tests.web.page_client import PageClient
from tests.web.pages import parse
from tests.web.send_filling import REASON_CHOICES
from tests.web.send_filling import answer as _answer
from tests.web.send_filling import fill_referral as _fill_referral
from tests.web.send_filling import fill_to_reason as _fill_to_reason
from tests.web.send_filling import start as _start
from tests.web.synthetic import (
    BAD_NHS,
    BAD_UPN,
    FAMILY,
    GIVEN,
    NEEDLES,
    PDF,
    REFERRAL_ANSWERS,
    UPN,
)
from tests.web.world import FRONT_DOOR, SCHOOL, World, actor, running_world

MIB: Final = 1024 * 1024

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


def _summary(page: str) -> list[tuple[str, str]]:
    """Return the error summary's links: (href, text)."""
    parsed = parse(page)
    return [
        (str(a.attrs.get("href")), " ".join(a.text.split()))
        for a in parsed.all("a")
        if str(a.attrs.get("href", "")).startswith("#f-")
    ]


def _own_drafts(client: PageClient) -> bytes:
    """Return the session id hash that names the drafts of ``client``'s session."""
    token = client.session_token()
    assert token is not None
    id_hash = session_id_hash(token)
    assert id_hash is not None
    return id_hash


async def _files(world: World, owner: bytes) -> list[str]:
    """Return the ids of the uploaded files the store keeps for a session's drafts."""
    return await world.service(SCHOOL).drafts_store.draft_file_ids(owner)


async def _stored(world: World, owner: bytes) -> bytes:
    """Return every byte the store keeps for a session's drafts: states and file pieces."""
    store = world.service(SCHOOL).drafts_store
    stored = b""
    for draft_id in await store.draft_ids(owner):
        stored += await store.draft_state(owner, draft_id) or b""
        for upload_id in await store.draft_file_ids(owner):
            stored += b"".join(await store.draft_pieces(owner, draft_id, upload_id, 0, 10**6))
    return stored


async def _sent(world: World) -> list[bytes]:
    """Return the digests of what Hillside sent, newest first."""
    items = await world.service(SCHOOL).sent_items(actor(SCHOOL, "dsl"), limit=100, before=None)
    return [item.item.envelope.digest for item in items]


async def test_a_dsl_sends_a_referral_with_a_pdf_and_sees_the_reference_and_deadline(
    world: World,
) -> None:
    """Every page in turn, then the panel: reference and deadline; the service recorded it."""
    before = await _sent(world)
    client = await world.person(SCHOOL, "dsl")
    check = await _fill_referral(client)
    status, page, _ = await client.get(check)
    assert status == 200
    assert parse(page).title == "Check your answers before sending – Secure exchange"
    assert "Stockport children&#39;s front door" in page
    assert "Chronology (chronology.pdf, PDF)" in page
    status, _, headers = await client.post(check.replace("/check", "/send"), {}, page)
    where = headers["Location"]
    assert (status, where) == (303, check.replace("/check", "/sent"))
    status, page, _ = await client.get(where)
    assert status == 200
    parsed = parse(page)
    assert parsed.title == "Record sent – Secure exchange"
    (digest,) = [d for d in await _sent(world) if d not in before]
    sent = await world.service(SCHOOL).sent_item(actor(SCHOOL, "dsl"), digest)
    reference = short_reference(sent.item.envelope.envelope_id)
    panel = next(e for e in parsed.all("div") if "govuk-panel__body" in str(e.attrs.get("class")))
    assert reference in panel.text
    assert re.search(r"must acknowledge it by 5pm on \w+day \d+ \w+ \d{4}\.", page)
    assert [r.delivery.destination for r in sent.recipients] == [FRONT_DOOR]
    # The draft's answers and files are gone; only the confirmation's facts are kept.
    assert not await _files(world, _own_drafts(client))


async def test_a_question_page_shows_errors_from_the_schema_linked_to_their_fields(
    world: World,
) -> None:
    """Missing and wrong answers: the summary names each, in words, linked to its field."""
    client = await world.person(SCHOOL, "dsl")
    first = await _start(client)
    child = first.replace("/referrer", "/child")
    _, page, _ = await client.get(child)
    form = {
        "child.name.given_names": GIVEN,
        "child.date_of_birth-day": "31",
        "child.date_of_birth-month": "2",
        "child.date_of_birth-year": "2015",
        "child.upn": "Q123",
    }
    status, page, _ = await client.post(child, form, page)
    assert status == 400
    assert parse(page).title == "Error: About the child – Secure exchange"
    assert _summary(page) == [
        ("#f-child-name-family_name", "Enter family name"),
        ("#f-child-date_of_birth-day", "Date of birth must be a real date"),
        (
            "#f-child-upn",
            (
                "Enter a real unique pupil number (UPN) (13 characters: a check letter, then 11 "
                "digits, then a digit or a letter)"
            ),
        ),
    ]
    ids = {e.attrs.get("id") for e in parse(page).elements}
    assert {"f-child-name-family_name", "f-child-date_of_birth-day", "f-child-upn"} <= ids
    # What was typed comes back, so the person can correct it; the error never quotes it.
    assert f'value="{GIVEN}"' in page
    assert "Q123" not in " ".join(text for _, text in _summary(page))


async def test_add_another_works_without_javascript(world: World) -> None:
    """A household member is added, filled in and removed by sending the page."""
    client = await world.person(SCHOOL, "dsl")
    first = await _start(client)
    household = first.replace("/referrer", "/household")
    _, page, _ = await client.get(household)
    assert "Add a household member" in page
    status, _, headers = await client.post(household, {"action": "add:household"}, page)
    assert (status, headers["Location"]) == (303, household + "#f-household-0-item")
    _, page, _ = await client.get(household)
    assert "Household member 1" in page
    member = {
        "household[0].name.given_names": "Pat",
        "household[0].name.family_name": "Carer",
        "household[0].relationship": "carer",
    }
    status, page, _ = await client.post(household, {**member, "action": "add:household"}, page)
    _, page, _ = await client.get(household)
    assert 'value="Pat"' in page
    assert "Household member 2" in page
    status, _, _ = await client.post(household, {**member, "action": "remove:household[0]"}, page)
    _, page, _ = await client.get(household)
    assert 'value="Pat"' not in page
    assert "Household member 1" in page
    assert "Household member 2" not in page


async def test_a_tampered_or_missing_field_changes_nothing(world: World) -> None:
    """A choice the schema does not list, or a field it does not have, is not kept."""
    client = await world.person(SCHOOL, "dsl")
    first = await _start(client)
    level = first.replace("/referrer", "/threshold_level")
    _, page, _ = await client.get(level)
    status, page, _ = await client.post(
        level, {"threshold_level": "level-9", "child.upn": UPN, "kind": "outcome"}, page
    )
    assert status == 400
    assert _summary(page) == [("#f-threshold_level", "Select level of need")]
    assert "checked" not in page.split('id="f-threshold_level"')[1].split(">")[0]
    where = await _answer(client, level, {"threshold_level": "level-2"})
    assert where.endswith("/immediate_risk")
    # A draft of another session, or a made-up one, is not found.
    fake = re.sub(r"/send/[0-9a-f]{32}/", "/send/" + "0" * 32 + "/", level)
    status, _, _ = await client.get(fake)
    assert status == 404
    other = await world.person(SCHOOL, "staff")
    status, page, _ = await other.get(level)
    assert status == 404
    assert "Page not found" in page


async def test_a_form_without_its_csrf_token_is_refused(world: World) -> None:
    """The 403 page, and nothing kept."""
    client = await world.person(SCHOOL, "dsl")
    first = await _start(client)
    status, page, _ = await client.post_without_token(first, {"referrer.name": "x"})
    assert status == 403
    assert "This form has expired" in page
    _, page, _ = await client.get(first)
    assert 'value="x"' not in page


async def test_an_oversized_or_wrong_type_file_is_refused_and_nothing_is_kept(
    world: World,
) -> None:
    """The limit and the types are said before; a refused file leaves nothing on disk."""
    client = await world.person(SCHOOL, "dsl")
    where = await _start(client)
    drafts = _own_drafts(client)
    files = re.sub(r"/questions/.*", "/files", where)
    status, page, _ = await client.get(files)
    assert status == 200
    # A referral carries 50 MiB in all, less than fits in the node's 64 MiB envelopes.
    limits = node_limits(world.service(SCHOOL).max_envelope_bytes).attachments("referral")
    assert limits.per_file == limits.total == 50 * MIB
    assert "smaller than 50 MB" in page
    assert "PDF, PNG, JPEG, Word document (DOCX), OpenDocument text (ODT) or plain text" in page
    big = b"%PDF-1.4\n" + b"0" * limits.per_file
    status, answered, _ = await client.upload(files, page, name="big.pdf", data=big)
    assert status == 400
    assert _summary(answered) == [("#f-file", "The selected file must be smaller than 50 MB")]
    status, answered, _ = await client.upload(
        files, page, name="run.exe", data=b"MZ\x90\x00\x03\x00\x00\x00"
    )
    assert status == 400
    assert _summary(answered)[0][1].startswith("The selected file must be a PDF")
    status, answered, _ = await client.upload(files, page, name="fake.pdf", data=b"")
    assert _summary(answered) == [("#f-file", "The selected file is empty")]
    assert not await _files(world, drafts)
    status, _, _ = await client.upload(files, page, name="notes.pdf", data=PDF)
    assert status == 303
    assert len(await _files(world, drafts)) == 1
    _, page, _ = await client.get(files)
    upload_id = re.search(r'name="file" value="([0-9a-f]{32})"', page)
    assert upload_id is not None
    await client.post(files + "/remove", {"file": upload_id.group(1)}, page)
    assert not await _files(world, drafts)


@pytest_asyncio.fixture(loop_scope="module")
async def small_node(tmp_path: Path) -> Any:
    """Start the nodes with ``[limits] max_envelope_bytes`` of 4 MiB."""
    async with running_world(tmp_path / "world", max_envelope_bytes=4 * MIB) as running:
        yield running


def _pdf_of(size: int) -> bytes:
    """Return a synthetic PDF of exactly ``size`` bytes."""
    return b"%PDF-1.4\n" + b"0" * (size - 16) + b"\n%%EOF\n"


async def test_the_files_page_says_and_keeps_the_nodes_own_limit(small_node: World) -> None:
    """A CP file may carry 2 GiB, but a node of 4 MiB envelopes takes what fits: 3 MB."""
    limits = node_limits(4 * MIB).attachments("cp-file-transfer")
    assert 3 * MIB < limits.per_file == limits.total < 4 * MIB
    client = await small_node.person(SCHOOL, "dsl")
    files = re.sub(r"/questions/.*", "/files", await _start(client, "cp-file-transfer"))
    _, page, _ = await client.get(files)
    assert "smaller than 3 MB" in page
    assert "up to 3 MB in total" in page
    form = {"title": "Chronology", "document_kind": "chronology"}
    status, answered, _ = await client.upload(
        files, page, name="big.pdf", data=_pdf_of(limits.per_file + 1), fields=form
    )
    assert status == 400
    assert _summary(answered) == [("#f-file", "The selected file must be smaller than 3 MB")]
    assert not await _files(small_node, _own_drafts(client))
    status, _, _ = await client.upload(
        files, page, name="whole.pdf", data=_pdf_of(limits.per_file - 1), fields=form
    )
    assert status == 303
    status, answered, _ = await client.upload(
        files, page, name="more.pdf", data=_pdf_of(20), fields=form
    )
    assert status == 400
    assert _summary(answered) == [("#f-file", "The files must be smaller than 3 MB in total")]
    # Far larger than the limit: read up to as much again, then refused without reading on.
    status, answered, _ = await client.upload(
        files, page, name="huge.pdf", data=_pdf_of(3 * limits.per_file), fields=form
    )
    assert status == 413
    assert len(await _files(small_node, _own_drafts(client))) == 1


async def test_sending_twice_makes_one_envelope(world: World) -> None:
    """Two sends of one draft (a double click, a second tab, back and send): one envelope."""
    before = await _sent(world)
    client = await world.person(SCHOOL, "dsl")
    check = await _fill_referral(client)
    _, page, _ = await client.get(check)
    send = check.replace("/check", "/send")
    first, second = await asyncio.gather(client.post(send, {}, page), client.post(send, {}, page))
    third = await client.post(send, {}, page)
    status, _, headers = await client.get(check)
    sent = check.replace("/check", "/sent")
    assert {first[2]["Location"], second[2]["Location"], third[2]["Location"]} == {sent}
    assert (status, headers["Location"]) == (303, sent)
    assert len([d for d in await _sent(world) if d not in before]) == 1


async def test_a_send_lost_before_its_confirmation_was_kept_makes_one_envelope(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node fails after sealing, before keeping the confirmation; the resend seals nothing."""
    real = DraftStore.forget_content
    failed: list[bool] = []

    async def fail_once(self: DraftStore, *args: Any) -> None:
        if not failed:
            failed.append(True)
            raise OSError("the disk went away")
        await real(self, *args)

    monkeypatch.setattr(DraftStore, "forget_content", fail_once)
    before = await _sent(world)
    client = await world.person(SCHOOL, "dsl")
    check = await _fill_referral(client)
    _, page, _ = await client.get(check)
    send = check.replace("/check", "/send")
    status, _, _ = await client.post(send, {}, page)
    assert status == 500
    assert len([d for d in await _sent(world) if d not in before]) == 1
    status, _, where = await client.post(send, {}, page)
    assert (status, where["Location"]) == (303, check.replace("/check", "/sent"))
    assert len([d for d in await _sent(world) if d not in before]) == 1


async def test_an_ended_session_mid_form_says_so_and_keeps_nothing(world: World) -> None:
    """The sign-in page with a plain message; the draft is swept with the session.

    The other tests' sessions are still going, so the sweep finds this one only.
    """
    client = await world.person(SCHOOL, "dsl")
    first = await _start(client)
    drafts = _own_drafts(client)
    assert await world.service(SCHOOL).drafts_store.draft_ids(drafts)
    _, page, _ = await client.get(first)
    token = client.session_token()
    assert token is not None
    await world.service(SCHOOL).end_session(token)
    status, answered, _ = await client.post(first, {"referrer.name": "Dana"}, page)
    assert status == 401
    assert "Your session has ended, so what you sent was not saved. Sign in again." in answered
    service = world.service(SCHOOL)
    assert await sweep_drafts(DraftStore(service.drafts_store)) == 1
    assert not await service.drafts_store.draft_ids(drafts)


def _zip_bomb_docx() -> bytes:
    """Return a small DOCX whose document unpacks to 4 MiB of zeros (over 100 times its size)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\x00" * (4 * 1024 * 1024))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("letter.docx", _zip_bomb_docx(), "the archive unpacks to more than 100 times"),
        ("scan.pdf", b"%PDF-1.7\n<html><script>x</script>\n%%EOF\n", "holds HTML or script"),
        ("cut.pdf", b"%PDF-1.7\n1 0 obj << >> endobj\n", "a PDF must end with %%EOF"),
    ],
    ids=["zip-bomb", "polyglot", "truncated-pdf"],
)
async def test_a_hostile_or_damaged_upload_is_refused_by_its_rule_and_not_kept(
    world: World, name: str, data: bytes, words: str
) -> None:
    """The whole file is checked on upload: the page names what is wrong; nothing stays."""
    client = await world.person(SCHOOL, "dsl")
    where = await _start(client)
    files = re.sub(r"/questions/.*", "/files", where)
    _, page, _ = await client.get(files)
    status, answered, _ = await client.upload(files, page, name=name, data=data)
    assert status == 400
    [(href, text)] = _summary(answered)
    assert href == "#f-file"
    assert text.startswith("The selected file cannot be sent: ")
    assert words in text
    assert not await _files(world, _own_drafts(client))


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (f"{FAMILY.lower()} is hungry and withdrawn", "Remove the child&#39;s name"),
        (
            "UPN w\u0663\u0665\u0666 2001\u200d24001 at risk",
            "Remove the UPN or NHS number from your reason",
        ),
        ("Born 14.3.15, at risk", "Remove the date from your reason"),
    ],
    ids=["name-lower-case", "upn-arabic-indic-digits", "date-of-birth"],
)
async def test_a_reason_naming_the_child_is_refused_in_plain_words(
    world: World, reason: str, words: str
) -> None:
    """The reason page refuses the child's details however spelt, and nothing is sent."""
    before = await _sent(world)
    client = await world.person(SCHOOL, "dsl")
    where = await _fill_to_reason(client)
    _, page, _ = await client.get(where)
    status, answered, _ = await client.post(where, [*REASON_CHOICES, ("reason", reason)], page)
    assert status == 400
    assert parse(answered).title.startswith("Error:")
    summary = answered.split('class="govuk-error-summary"')[1].split("</div>\n</div>")[0]
    assert words in summary
    assert reason not in summary
    assert await _sent(world) == before


async def test_roles_and_other_organisations_items(world: World) -> None:
    """A DPO may not send; a reply or correction of another organisation's item is 404."""
    dpo = await world.person(SCHOOL, "dpo")
    status, page, _ = await dpo.get("/send")
    assert status == 403
    client = await world.person(SCHOOL, "dsl")
    check = await _fill_referral(client)
    _, page, _ = await client.get(check)
    await client.post(check.replace("/check", "/send"), {}, page)
    digest = (await _sent(world))[0].hex()
    la = await world.person(FRONT_DOOR, "dsl")
    status, _, _ = await la.get(f"/send/correct/{digest}")
    assert status == 404
    status, _, _ = await client.get(f"/send/reply/{digest}")
    assert status == 404
    status, page, _ = await client.get(f"/send/correct/{digest}")
    assert status == 200
    status, _, headers = await client.post(f"/send/correct/{digest}", {}, page)
    assert status == 303
    assert headers["Location"].endswith("/questions/referrer")


async def test_a_decision_not_to_share_is_recorded(world: World) -> None:
    """Its own short form; a bad UPN is refused without being shown back."""
    dpo = actor(SCHOOL, "dpo")
    school = world.service(SCHOOL)
    before = await school.register_export(dpo, since=None, until=None, form="json")
    assert isinstance(before, list)
    client = await world.person(SCHOOL, "dsl")
    status, page, _ = await client.get("/send/not-shared")
    assert status == 200
    form = {
        "purpose": "information-request-reply",
        "recipient": str(FRONT_DOOR),
        "reason_code": "information-not-held",
        "reason": "We hold no records about this family",
        "upn": BAD_UPN,
    }
    status, answered, _ = await client.post("/send/not-shared", form, page)
    assert status == 400
    assert _summary(answered) == [
        ("#f-upn", "Enter a real unique pupil number (UPN), or leave it empty")
    ]
    assert BAD_UPN not in answered
    status, _, headers = await client.post("/send/not-shared", {**form, "upn": UPN}, page)
    assert (status, headers["Location"]) == (303, "/send/not-shared/recorded")
    rows = await school.register_export(dpo, since=None, until=None, form="json")
    assert isinstance(rows, list)
    known = {r["id"] for r in before}  # the module's other decisions (a row's receipts change)
    assert [r["decision"] for r in rows if r["id"] not in known] == ["not-shared"]


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("No records for w 3562 0012 4001", "Remove the UPN or NHS number from your reason"),
        ("No records for 999\u200b000\u200d0018", "Remove the UPN or NHS number from your reason"),
        ("Born \u0661\u0664/\u0660\u0663/\u0662\u0660\u0661\u0665", "Remove the date"),
    ],
    ids=["upn-spaced", "nhs-zero-width", "dob-arabic-indic"],
)
async def test_a_decision_not_to_share_refuses_child_details_in_its_reasons(
    world: World, reason: str, words: str
) -> None:
    """The form's reasons are checked like a submission's: 400, words, nothing registered."""
    school = world.service(SCHOOL)
    dpo = actor(SCHOOL, "dpo")
    before = await school.register_export(dpo, since=None, until=None, form="json")
    client = await world.person(SCHOOL, "dsl")
    _, page, _ = await client.get("/send/not-shared")
    form = {
        "purpose": "information-request-reply",
        "recipient": str(FRONT_DOOR),
        "reason_code": "information-not-held",
        "reason": reason,
    }
    status, answered, _ = await client.post("/send/not-shared", form, page)
    assert status == 400
    [(href, text)] = _summary(answered)
    assert href == "#f-reason"
    assert text.startswith(words)
    after = await school.register_export(dpo, since=None, until=None, form="json")
    assert isinstance(before, list)
    assert isinstance(after, list)
    assert len(after) == len(before)


async def test_no_child_details_in_urls_titles_logs_or_drafts(
    world: World, structured_log: io.StringIO
) -> None:
    """The synthetic child's details are typed in, sent and refused: they never leak."""
    logged_before = len(structured_log.getvalue())
    titles = []
    client = await world.person(SCHOOL, "dsl")
    check = await _fill_referral(client)
    stored = await _stored(world, _own_drafts(client))
    assert stored  # the draft's answers and its file are there, encrypted
    for path in list(client.visited):
        status, page, _ = await client.get(path)
        if status == 200:
            found = re.search(r"<title>(.*?)</title>", page, re.DOTALL)
            assert found is not None
            titles.append(found.group(1))
    child = check.replace("/check", "/questions/child")
    _, page, _ = await client.get(child)
    bad = dict(REFERRAL_ANSWERS["child"])
    bad["child.nhs_number"] = BAD_NHS
    await client.post(child, bad, page)
    await _answer(client, child, REFERRAL_ANSWERS["child"])
    _, page, _ = await client.get(check)
    await client.post(check.replace("/check", "/send"), {}, page)
    visited = list(client.visited)
    logged = structured_log.getvalue()[logged_before:]
    for needle in NEEDLES:
        assert needle.encode() not in stored, needle
        assert all(needle not in path for path in visited), needle
        assert all(needle not in title for title in titles), needle
        assert needle not in logged, needle
    assert BAD_NHS not in logged
