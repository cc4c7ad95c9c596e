"""Journey 6 in Chromium: Hillside's DPO works the register, subject access and retention.

Hillside's DSL sends a referral to the front door, a looked-after child record that carries
no identifier, and records a decision not to share (through the service). Hillside's DPO
then filters the sharing register and downloads it; searches by the child's UPN and NHS
number at once, sees the referral (found by both) and the looked-after child record to
review, and downloads the readable copies as a zip file; places and lifts a hold; and, once
the node's clock has passed the referral's retention, destroys it after the "Are you sure"
page, with JavaScript on and off. Every page in every state is checked with axe. The child's
identifiers are sentinels: they never appear in an address, a page or a log line (only in
the copies, which are the answer to the request).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from playwright.sync_api import Browser, Page, expect

from exchange import logs
from exchange.policy import LONDON
from exchange.service.node_service import NodeService
from exchange.sharing.prepare import Submission
from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import FRONT_DOOR, SCHOOL, Exchange, running_exchange
from tests.browser.screenshots import SCREENSHOTS, save_screenshot
from tests.node import records
from tests.web.synthetic import not_shared, referral_to_front_door, the_child

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

#: The sentinel child's identifiers (valid check characters), as a DPO might type them.
UPN = "T356201412345"
NHS = "943 476 5919"
NEEDLES = (UPN, UPN.lower(), NHS, NHS.replace(" ", ""), "Sentinel")
#: After the referral's review date (born 14 March 2015, kept 25 years, then reviewed): a
#: day of its own for each run, so that each signs in with a code no run has used.
REVIEW_PASSED = {
    True: datetime(2041, 6, 1, 12, tzinfo=UTC),
    False: datetime(2041, 6, 2, 12, tzinfo=UTC),
}
FRONT_DOOR_NAME = "Stockport children's front door"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("exchange")) as running:
        yield running


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


class Watched:
    """Every address a page asked for, and each page's HTML, to search for the sentinels."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.pages: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))

    def keep(self, page: Page) -> None:
        """Keep the page's HTML and title."""
        self.pages.append(page.title() + "\n" + page.content())

    def assert_clean(self, *logs: str) -> None:
        """Fail if a sentinel is in an address, a page, a title or a log."""
        for where, texts in (("an address", self.urls), ("a page", self.pages), ("a log", logs)):
            for text in texts:
                for needle in NEEDLES:
                    assert needle not in text, f"{needle!r} found in {where}"


def _check(page: Page, watched: Watched, title: str, screenshot: str | None = None) -> None:
    """Expect the page's title, check it with axe, keep its HTML, maybe photograph it."""
    expect(page).to_have_title(f"{title} – Secure exchange")
    assert_accessible(page)
    watched.keep(page)
    if screenshot is not None:
        save_screenshot(page, SCREENSHOTS, screenshot)


async def _delivered(service: NodeService, digest: bytes) -> None:
    """Wait until every delivery of the envelope has finished."""
    for _ in range(1000):
        if set((await service.store.outbox_states(SCHOOL, digest)).values()) == {"delivered"}:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the referral was not delivered")


def _looked_after_without_identifiers() -> Submission:
    """Return a looked-after child record about the child with neither UPN nor NHS number."""
    doc = records.lac_submission("Synthetic target", [FRONT_DOOR])
    doc["record"]["child"] = the_child(upn=None, nhs=None)
    return Submission(
        recipients=(FRONT_DOOR,),
        purpose=doc["purpose"],
        record_kind=doc["record_kind"],
        record=doc["record"],
        categories=tuple(doc["categories"]),
        reason=doc["reason"],
    )


def _send_and_decide(exchange: Exchange) -> bytes:
    """Send the referral and a record without identifiers, decide not to share; the digest."""
    service = exchange.service(SCHOOL)
    dsl = exchange.user(SCHOOL, "dsl")
    submission = referral_to_front_door(upn=UPN, nhs=NHS.replace(" ", ""))
    submitted = exchange.run(service.submit(dsl, submission))
    exchange.run(service.submit(dsl, _looked_after_without_identifiers()))
    exchange.run(not_shared(service, SCHOOL, upn=UPN))
    exchange.run(_delivered(service, submitted.digest))
    return submitted.digest


def _register(page: Page, watched: Watched, base: str, *, shots: bool) -> None:
    """Filter the register: a bad date first, then today's decisions not to share."""
    page.goto(base + "/register")
    _check(page, watched, "Sharing register", "dpo-register" if shots else None)
    start = page.get_by_role("group", name="Start date")
    start.get_by_label("Day").fill("31")
    start.get_by_label("Month").fill("2")
    start.get_by_label("Year").fill("2026")
    page.get_by_role("button", name="Apply filters").click()
    _check(page, watched, "Error: Sharing register")
    summary = page.locator(".govuk-error-summary")
    expect(summary.get_by_role("link", name="Start date must be a real date")).to_have_attribute(
        "href", "#from-day"
    )
    today = datetime.now(LONDON)
    start.get_by_label("Day").fill(str(today.day))
    start.get_by_label("Month").fill(str(today.month))
    start.get_by_label("Year").fill(str(today.year))
    page.get_by_label("Purpose").select_option("safeguarding-referral")
    page.get_by_label("Not shared", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    _check(page, watched, "Sharing register")
    expect(page.get_by_role("heading", name=re.compile("match the filter"))).to_be_visible()
    rows = page.locator("tbody tr")
    expect(rows.first).to_contain_text("Not shared")
    expect(rows.first).to_contain_text("Sharing would not be proportionate to the need")
    expect(rows.first).to_contain_text(FRONT_DOOR_NAME)
    expect(rows.filter(has_not_text="Not shared")).to_have_count(0)
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("as a spreadsheet")).click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    watched.pages.append(text)
    found = list(csv.DictReader(io.StringIO(text)))
    assert found
    assert {(r["decision"], r["purpose"], r["recipient"]) for r in found} == {
        ("not-shared", "safeguarding-referral", FRONT_DOOR)
    }
    assert {r["reason_code"] for r in found} == {"not-proportionate"}
    assert download.value.suggested_filename == "sharing-register-urn-106123.csv"


def _search(page: Page, base: str, upn: str = "", nhs: str = "") -> None:
    """Fill in the subject access form afresh (nothing typed is filled back in)."""
    page.goto(base + "/subject-access")
    page.get_by_label("UPN (if known)").fill(upn)
    page.get_by_label("NHS number (if known)").fill(nhs)


def _subject_access(page: Page, watched: Watched, base: str, *, shots: bool) -> None:
    """Search with nothing, then a wrong UPN, then by both identifiers; see what was found."""
    page.goto(base + "/subject-access")
    _check(page, watched, "Subject access", "dpo-subject-access" if shots else None)
    page.get_by_role("button", name="Search").click()
    _check(page, watched, "Error: Subject access")
    summary = page.locator(".govuk-error-summary")
    expect(
        summary.get_by_role("link", name="Enter the child's UPN, NHS number or both")
    ).to_have_attribute("href", "#upn")
    _search(page, base, UPN[:-1] + "6", NHS)
    page.get_by_role("button", name="Search").click()
    _check(page, watched, "Error: Subject access", "dpo-subject-access-error" if shots else None)
    expect(summary).to_contain_text("Enter a real UPN: the first letter does not match the digits")
    expect(page.get_by_label("UPN (if known)")).to_have_value("")
    expect(page.get_by_label("NHS number (if known)")).to_have_value("")
    expect(page.get_by_label("UPN (if known)")).to_have_attribute(
        "aria-describedby", "upn-hint upn-error"
    )

    _search(page, base, UPN.lower(), NHS)
    page.get_by_role("button", name="Search").click()
    _check(page, watched, "Subject access results", "dpo-subject-access-results" if shots else None)
    expect(page.locator("main")).to_contain_text("Searched by UPN and NHS number")
    found = page.get_by_role("table", name="Records about this child, oldest first")
    referral = found.locator("tr", has_text="Referral").first
    expect(referral).to_contain_text(FRONT_DOOR_NAME)
    expect(referral).to_contain_text("Shared")
    expect(referral).to_contain_text("UPN and NHS number")
    review = page.get_by_role("table", name="Records to review")
    looked_after = review.locator("tr", has_text="Looked-after child record").first
    expect(looked_after).to_contain_text("Hillside Primary School")
    expect(looked_after).to_contain_text(FRONT_DOOR_NAME)
    expect(looked_after).to_contain_text("The record has no UPN or NHS number")


def _download_copies(page: Page, watched: Watched, base: str) -> None:
    """Download the copies: a zip of readable pages, the identifiers only in the records."""
    _search(page, base, UPN, NHS)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download copies").click()
    assert download.value.suggested_filename == "subject-access.zip"
    watched.urls.append(download.value.url)
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
        contents = {name: archive.read(name) for name in names}
    assert names[:2] == ["index.html", "report.json"]
    copies = [n for n in names if n.endswith(".html") and n != "index.html"]
    assert any(re.fullmatch(r"\d{3}-sent-referral-[0-9A-F-]+\.html", n) for n in copies), names
    assert any(re.fullmatch(r"\d{3}-sent-lac-record-[0-9A-F-]+\.html", n) for n in copies), names
    # The names, the index and the report are as clean as a page; the copies are readable.
    watched.pages += [*names, contents["index.html"].decode(), contents["report.json"].decode()]
    index = contents["index.html"].decode()
    assert "Subject access response" in index
    assert "Searched by UPN and NHS number" in index
    for name in copies:
        assert f'<a href="{name}">' in index
    referral = next(contents[n].decode() for n in copies if "-referral-" in n)
    assert "Sentinel-Child" in referral
    assert "Found by</dt><dd>UPN and NHS number" in referral
    # The form answered with a download: the browser is still on the form, not a new page.
    expect(page).to_have_title("Subject access – Secure exchange")


def _hold_and_lift(page: Page, watched: Watched, base: str, reference: str) -> None:
    """Place a hold on every record (with an error first), see it, and lift it."""
    page.goto(base + "/retention")
    _check(page, watched, "Retention")
    page.get_by_role("button", name="Place a hold on every record").click()
    _check(page, watched, "Place a hold")
    page.get_by_role("button", name="Place hold").click()
    _check(page, watched, "Error: Place a hold")
    expect(page.locator(".govuk-error-summary")).to_contain_text("Select why the hold is needed")
    page.get_by_label("A subject access request").check()
    page.get_by_label("Reference").fill(reference)
    page.get_by_role("button", name="Place hold").click()
    _check(page, watched, "Retention")
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Hold placed")
    held = page.locator("tr", has_text=reference)
    expect(held).to_contain_text("A subject access request")
    expect(held).to_contain_text("Every record")
    page.get_by_role("button", name=f"Lift the hold, reference {reference}").click()
    _check(page, watched, "Retention")
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Hold lifted")
    expect(page.get_by_role("button", name=f"Lift the hold, reference {reference}")).to_have_count(
        0
    )


def _destroy(
    page: Page, watched: Watched, base: str, digest: bytes, *, when: datetime, shots: bool
) -> None:
    """Destroy the referral, due for review, through the confirmation page."""
    page.goto(base + "/retention")
    _check(page, watched, "Retention", "dpo-retention" if shots else None)
    due = page.locator("tr", has=page.locator(f'a[href="/retention/{digest.hex()}/destroy"]'))
    expect(due).to_contain_text("Review due")
    due.get_by_role("link", name=f"Destroy referral, sent to {FRONT_DOOR_NAME}").click()
    _check(
        page,
        watched,
        "Are you sure you want to destroy this record?",
        "dpo-destroy" if shots else None,
    )
    expect(page.locator(".govuk-warning-text")).to_contain_text("You cannot undo this.")
    page.get_by_role("button", name="Yes, destroy this record").click()
    _check(page, watched, "Record destroyed", "dpo-destroyed" if shots else None)
    expect(page.locator(".govuk-panel")).to_contain_text("Record destroyed")
    expect(page.locator("main")).to_contain_text(f"was destroyed on {when.day} June 2041")


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_the_dpo_works_the_register_subject_access_and_retention(
    exchange: Exchange,
    browser: Browser,
    structured_log: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    javascript: bool,
) -> None:
    """The whole journey, with the service recording what the pages did."""
    caplog.set_level(logging.DEBUG)
    digest = _send_and_decide(exchange)
    base = exchange.url(SCHOOL)
    service = exchange.service(SCHOOL)
    dpo = exchange.user(SCHOOL, "dpo")
    reference = "SAR-2026-" + ("JS" if javascript else "HTML")
    with exchange.page(browser, SCHOOL, "dpo", javascript=javascript) as page:
        watched = Watched(page)
        _register(page, watched, base, shots=javascript)
        _subject_access(page, watched, base, shots=javascript)
        _download_copies(page, watched, base)
        _hold_and_lift(page, watched, base, reference)
    holds = exchange.run(service.retention_holds(dpo))["holds"]
    [placed] = [h for h in holds if h["reference"] == reference]
    assert placed["reason"] == "A subject access request"
    assert placed["lifted_at"] is not None

    when = REVIEW_PASSED[javascript]
    with exchange.clocks_moved(SCHOOL, to=when.timestamp()):
        with exchange.page_at_node_time(browser, SCHOOL, "dpo", javascript=javascript) as page:
            later = Watched(page)
            _destroy(page, later, base, digest, when=when, shots=javascript)
        item = exchange.run(service.retention_item(dpo, digest))
        assert item["state"] == "destroyed"
    watched.assert_clean(structured_log.getvalue(), caplog.text)
    later.assert_clean()


def test_other_roles_get_the_403_page_and_the_front_door_sees_nothing_of_hillsides(
    exchange: Exchange, browser: Browser
) -> None:
    """A DSL and an administrator are refused each DPO page; another DPO sees its own only."""
    exchange.run(not_shared(exchange.service(SCHOOL), SCHOOL))
    for role in ("dsl", "admin"):
        with exchange.page(browser, SCHOOL, role) as page:  # type: ignore[arg-type]
            for path in ("/register", "/subject-access", "/retention"):
                page.goto(exchange.url(SCHOOL) + path)
                expect(page).to_have_title("You cannot see this page – Secure exchange")
                expect(page.locator("h1")).to_have_text("You cannot see this page")
            assert_accessible(page)
    with exchange.page(browser, FRONT_DOOR, "dpo") as page:
        page.goto(exchange.url(FRONT_DOOR) + "/register")
        expect(page).to_have_title("Sharing register – Secure exchange")
        expect(page.locator("main")).not_to_contain_text("Hillside")
        expect(page.locator("main h2").nth(1)).to_have_text("No decisions")
