"""Sending a record through the pages of a running node: every page, rule and refusal."""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from exchange import logs
from exchange.records import MAX_ATTACHMENT_SIZE
from exchange.web.words import short_reference
from tests.web.pages import parse
from tests.web.send_client import (
    FRONT_DOOR,
    PDF,
    REASON_CHOICES,
    REFERRAL,
    SCHOOL,
    SENTINELS,
    UPN,
    SendExchange,
    answer,
    fill_referral,
    fill_to_reason,
    send_exchange,
    start,
)

pytestmark = pytest.mark.network


@pytest.fixture
async def exchange(tmp_path: Path) -> AsyncIterator[SendExchange]:
    """Start a school node and an LA node, with signed-up staff."""
    async with send_exchange(tmp_path / "nodes") as running:
        yield running


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


def _summary(page: str) -> list[tuple[str, str]]:
    """Return the error summary's links: (href, text)."""
    parsed = parse(page)
    return [
        (str(a.attrs.get("href")), " ".join(a.text.split()))
        for a in parsed.all("a")
        if str(a.attrs.get("href", "")).startswith("#f-")
    ]


def _drafts(exchange: SendExchange) -> Path:
    return exchange.service(SCHOOL).drafts_folder


async def _sent_count(exchange: SendExchange) -> int:
    user = exchange.user(SCHOOL, "dsl")
    return len(await exchange.service(SCHOOL).sent_items(user, limit=100, before=None))


async def test_a_dsl_sends_a_referral_with_a_pdf_and_sees_the_reference_and_deadline(
    exchange: SendExchange,
) -> None:
    """Every page in turn, then the panel: reference and deadline; the service recorded it."""
    async with exchange.client(SCHOOL, "dsl") as client:
        check = await fill_referral(client)
        status, page, _ = await client.get(check)
        assert status == 200
        assert parse(page).title == "Check your answers before sending – Secure exchange"
        assert "Stockport children&#39;s front door" in page
        assert "Chronology (chronology.pdf, PDF)" in page
        status, _, where = await client.post(check.replace("/check", "/send"), {}, page)
        assert (status, where) == (303, check.replace("/check", "/sent"))
        status, page, _ = await client.get(where)
    assert status == 200
    parsed = parse(page)
    assert parsed.title == "Record sent – Secure exchange"
    (sent,) = await exchange.service(SCHOOL).sent_items(
        exchange.user(SCHOOL, "dsl"), limit=10, before=None
    )
    reference = short_reference(sent.item.envelope.envelope_id)
    panel = next(e for e in parsed.all("div") if "govuk-panel__body" in str(e.attrs.get("class")))
    assert reference in panel.text
    assert re.search(r"must acknowledge it by 5pm on \w+day \d+ \w+ \d{4}\.", page)
    assert [r.delivery.destination for r in sent.recipients] == [FRONT_DOOR]
    # The draft's answers and files are gone; only the confirmation's facts are kept.
    assert not list(_drafts(exchange).rglob("files/*"))


async def test_a_question_page_shows_errors_from_the_schema_linked_to_their_fields(
    exchange: SendExchange,
) -> None:
    """Missing and wrong answers: the summary names each, in words, linked to its field."""
    async with exchange.client(SCHOOL, "dsl") as client:
        first = await start(client)
        child = first.replace("/referrer", "/child")
        _, page, _ = await client.get(child)
        form = {
            "child.name.given_names": "Zebedee",
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
    assert 'value="Zebedee"' in page
    assert "Q123" not in " ".join(text for _, text in _summary(page))


async def test_add_another_works_without_javascript(exchange: SendExchange) -> None:
    """A household member is added, filled in and removed by sending the page."""
    async with exchange.client(SCHOOL, "dsl") as client:
        first = await start(client)
        household = first.replace("/referrer", "/household")
        _, page, _ = await client.get(household)
        assert "Add a household member" in page
        status, _, where = await client.post(household, {"action": "add:household"}, page)
        assert (status, where) == (303, household + "#f-household-0-item")
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
        status, _, _ = await client.post(
            household, {**member, "action": "remove:household[0]"}, page
        )
        _, page, _ = await client.get(household)
    assert 'value="Pat"' not in page
    assert "Household member 1" in page
    assert "Household member 2" not in page


async def test_a_tampered_or_missing_field_changes_nothing(exchange: SendExchange) -> None:
    """A choice the schema does not list, or a field it does not have, is not kept."""
    async with exchange.client(SCHOOL, "dsl") as client:
        first = await start(client)
        level = first.replace("/referrer", "/threshold_level")
        _, page, _ = await client.get(level)
        status, page, _ = await client.post(
            level, {"threshold_level": "level-9", "child.upn": UPN, "kind": "outcome"}, page
        )
        assert status == 400
        assert _summary(page) == [("#f-threshold_level", "Select level of need")]
        assert "checked" not in page.split('id="f-threshold_level"')[1].split(">")[0]
        where = await answer(client, level, {"threshold_level": "level-2"})
        assert where.endswith("/immediate_risk")
        # A draft of another session, or a made-up one, is not found.
        fake = re.sub(r"/send/[0-9a-f]{32}/", "/send/" + "0" * 32 + "/", level)
        status, _, _ = await client.get(fake)
        assert status == 404
    async with exchange.client(SCHOOL, "staff") as other:
        status, page, _ = await other.get(level)
    assert status == 404
    assert "Page not found" in page


async def test_a_form_without_its_csrf_token_is_refused(exchange: SendExchange) -> None:
    """The 403 page, and nothing kept."""
    async with exchange.client(SCHOOL, "dsl") as client:
        first = await start(client)
        async with client.http.post(
            client.base + first, data={"referrer.name": "x"}, allow_redirects=False
        ) as response:
            assert response.status == 403
            assert "This form has expired" in await response.text()
        _, page, _ = await client.get(first)
    assert 'value="x"' not in page


async def test_an_oversized_or_wrong_type_file_is_refused_and_nothing_is_kept(
    exchange: SendExchange,
) -> None:
    """The limit and the types are said before; a refused file leaves nothing on disk."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await start(client)
        files = re.sub(r"/questions/.*", "/files", where)
        status, page, _ = await client.get(files)
        assert status == 200
        assert "smaller than 20 MB" in page
        assert "PDF, PNG, JPEG, Word document (DOCX), OpenDocument text (ODT) or plain text" in page
        big = b"%PDF-1.4\n" + b"0" * MAX_ATTACHMENT_SIZE
        status, answered, _ = await client.upload(files, page, name="big.pdf", data=big)
        assert status == 400
        assert _summary(answered) == [("#f-file", "The selected file must be smaller than 20 MB")]
        status, answered, _ = await client.upload(
            files, page, name="run.exe", data=b"MZ\x90\x00\x03\x00\x00\x00"
        )
        assert status == 400
        assert _summary(answered)[0][1].startswith("The selected file must be a PDF")
        status, answered, _ = await client.upload(files, page, name="fake.pdf", data=b"")
        assert _summary(answered) == [("#f-file", "The selected file is empty")]
        assert not [p for p in _drafts(exchange).rglob("files/*") if p.is_file()]
        status, _, _ = await client.upload(files, page, name="notes.pdf", data=PDF)
        assert status == 303
        assert len([p for p in _drafts(exchange).rglob("files/*") if p.is_file()]) == 1
        _, page, _ = await client.get(files)
        upload_id = re.search(r'name="file" value="([0-9a-f]{32})"', page)
        assert upload_id is not None
        await client.post(files + "/remove", {"file": upload_id.group(1)}, page)
    assert not [p for p in _drafts(exchange).rglob("files/*") if p.is_file()]


async def test_sending_twice_makes_one_envelope(exchange: SendExchange) -> None:
    """Two sends of one draft (a double click, a second tab, back and send): one envelope."""
    async with exchange.client(SCHOOL, "dsl") as client:
        check = await fill_referral(client)
        _, page, _ = await client.get(check)
        send = check.replace("/check", "/send")
        import asyncio

        first, second = await asyncio.gather(
            client.post(send, {}, page), client.post(send, {}, page)
        )
        third = await client.post(send, {}, page)
        status, _, where = await client.get(check)
    assert {first[2], second[2], third[2]} == {check.replace("/check", "/sent")}
    assert (status, where) == (303, check.replace("/check", "/sent"))
    assert await _sent_count(exchange) == 1


async def test_an_ended_session_mid_form_says_so_and_keeps_nothing(
    exchange: SendExchange,
) -> None:
    """The sign-in page with a plain message; the draft is swept with the session."""
    async with exchange.client(SCHOOL, "dsl") as client:
        first = await start(client)
        _, page, _ = await client.get(first)
        await exchange.service(SCHOOL).end_session(client.session_token())
        status, answered, _ = await client.post(first, {"referrer.name": "Dana"}, page)
    assert status == 401
    assert "Your session has ended, so what you sent was not saved. Sign in again." in answered
    drafts = exchange.service(SCHOOL)
    from exchange.web.send.drafts import DraftStore, sweep_drafts

    assert await sweep_drafts(DraftStore(drafts.drafts_folder), drafts.session_exists) == 1
    assert not list(drafts.drafts_folder.iterdir())


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
    exchange: SendExchange, name: str, data: bytes, words: str
) -> None:
    """The whole file is checked on upload: the page names what is wrong; nothing stays."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await start(client)
        files = re.sub(r"/questions/.*", "/files", where)
        _, page, _ = await client.get(files)
        status, answered, _ = await client.upload(files, page, name=name, data=data)
    assert status == 400
    [(href, text)] = _summary(answered)
    assert href == "#f-file"
    assert text.startswith("The selected file cannot be sent: ")
    assert words in text
    assert not [p for p in _drafts(exchange).rglob("files/*") if p.is_file()]


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("quillfeather is hungry and withdrawn", "Remove the child&#39;s name"),
        (
            "UPN w\u0663\u0665\u0666 2001\u200d24001 at risk",
            "Remove the UPN or NHS number from your reason",
        ),
        ("Born 14.3.15, at risk", "Remove the date from your reason"),
    ],
    ids=["name-lower-case", "upn-arabic-indic-digits", "date-of-birth"],
)
async def test_a_reason_naming_the_child_is_refused_in_plain_words(
    exchange: SendExchange, reason: str, words: str
) -> None:
    """The reason page refuses the child's details however spelt, and nothing is sent."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await fill_to_reason(client)
        _, page, _ = await client.get(where)
        status, answered, _ = await client.post(where, [*REASON_CHOICES, ("reason", reason)], page)
    assert status == 400
    assert parse(answered).title.startswith("Error:")
    summary = answered.split('class="govuk-error-summary"')[1].split("</div>\n</div>")[0]
    assert words in summary
    assert reason not in summary
    assert await _sent_count(exchange) == 0


async def test_roles_and_other_organisations_items(exchange: SendExchange) -> None:
    """A DPO may not send; a reply or correction of another organisation's item is 404."""
    async with exchange.client(SCHOOL, "dpo") as dpo:
        status, page, _ = await dpo.get("/send")
        assert status == 403
    async with exchange.client(SCHOOL, "dsl") as client:
        check = await fill_referral(client)
        _, page, _ = await client.get(check)
        await client.post(check.replace("/check", "/send"), {}, page)
    (sent,) = await exchange.service(SCHOOL).sent_items(
        exchange.user(SCHOOL, "dsl"), limit=1, before=None
    )
    digest = sent.item.envelope.digest.hex()
    async with exchange.client(FRONT_DOOR, "dsl") as la:
        status, _, _ = await la.get(f"/send/correct/{digest}")
        assert status == 404
    async with exchange.client(SCHOOL, "dsl") as client:
        status, _, _ = await client.get(f"/send/reply/{digest}")
        assert status == 404
        status, page, _ = await client.get(f"/send/correct/{digest}")
        assert status == 200
        status, _, where = await client.post(f"/send/correct/{digest}", {}, page)
        assert status == 303
        assert where.endswith("/questions/referrer")


async def test_a_decision_not_to_share_is_recorded(exchange: SendExchange) -> None:
    """Its own short form; a bad UPN is refused without being shown back."""
    async with exchange.client(SCHOOL, "dsl") as client:
        status, page, _ = await client.get("/send/not-shared")
        assert status == 200
        form = {
            "purpose": "information-request-reply",
            "recipient": str(FRONT_DOOR),
            "reason_code": "information-not-held",
            "reason": "We hold no records about this family",
            "upn": "W356200124009",
        }
        status, answered, _ = await client.post("/send/not-shared", form, page)
        assert status == 400
        assert _summary(answered) == [
            ("#f-upn", "Enter a real unique pupil number (UPN), or leave it empty")
        ]
        assert "W356200124009" not in answered
        status, _, where = await client.post("/send/not-shared", {**form, "upn": UPN}, page)
        assert (status, where) == (303, "/send/not-shared/recorded")
    dpo = exchange.user(SCHOOL, "dpo")
    rows = await exchange.service(SCHOOL).register_export(dpo, since=None, until=None, form="json")
    assert isinstance(rows, list)
    assert [r["decision"] for r in rows] == ["not-shared"]


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
    exchange: SendExchange, reason: str, words: str
) -> None:
    """The form's reasons are checked like a submission's: 400, words, nothing registered."""
    async with exchange.client(SCHOOL, "dsl") as client:
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
    dpo = exchange.user(SCHOOL, "dpo")
    rows = await exchange.service(SCHOOL).register_export(dpo, since=None, until=None, form="json")
    assert rows == []


async def test_no_child_details_in_urls_titles_logs_or_drafts(
    exchange: SendExchange, structured_log: io.StringIO
) -> None:
    """The sentinel child's details are typed in, sent and refused: they never leak."""
    titles = []
    async with exchange.client(SCHOOL, "dsl") as client:
        check = await fill_referral(client)
        drafts = _drafts(exchange)
        stored = b"".join(p.read_bytes() for p in drafts.rglob("*") if p.is_file())
        for path in list(client.visited):
            status, page, _ = await client.get(path)
            if status == 200:
                found = re.search(r"<title>(.*?)</title>", page, re.DOTALL)
                assert found is not None
                titles.append(found.group(1))
        child = check.replace("/check", "/questions/child")
        _, page, _ = await client.get(child)
        bad = dict(REFERRAL["child"])  # type: ignore[arg-type]
        bad["child.nhs_number"] = "9990000019"
        await client.post(child, bad, page)
        await answer(client, child, REFERRAL["child"])
        _, page, _ = await client.get(check)
        await client.post(check.replace("/check", "/send"), {}, page)
        visited = list(client.visited)
    for needle in SENTINELS:
        assert needle.encode() not in stored, needle
        assert all(needle not in path for path in visited), needle
        assert all(needle not in title for title in titles), needle
        assert needle not in structured_log.getvalue(), needle
    assert "9990000019" not in structured_log.getvalue()
