"""The inbox in Chromium: the front door, a receiving school and the nurses, JavaScript on and off.

Records are sent through the senders' services (the send pages are another journey's); the
receiving staff do everything else in the browser: find the item, open it, read the record,
download its document, acknowledge or reject it. Each page, in each state, is checked by
axe-core, and the sender's service shows what the receiver did.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from playwright.sync_api import Browser, Page, expect

from exchange.keys.ids import OrgId
from exchange.model import User
from exchange.receipts import parse_signed
from exchange.service.node_service import NodeService
from exchange.service.recall import DEFAULT_REASON_CODE, Recaller
from exchange.sharing.prepare import AttachmentInput, Submission
from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import (
    FRONT_DOOR,
    NURSES,
    RECEIVING,
    SCHOOL,
    Exchange,
    running_exchange,
)
from tests.browser.screenshots import SCREENSHOTS, save_screenshot
from tests.web.synthetic import PDF, PDF_NAME, information_request, referral

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

CHRONOLOGY: Final = b"%PDF-1.7\n% a synthetic chronology\n%%EOF\n"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("exchange")) as running:
        yield running


async def _held(service: NodeService, org: OrgId, digest: bytes) -> None:
    """Wait until ``org`` holds the item (pushed, or collected from its relay mailbox)."""
    deadline = time.monotonic() + 30
    while await service.store.inbox_item(org, digest) is None:
        assert time.monotonic() < deadline, "the item did not arrive"
        await asyncio.sleep(0.05)


def _send(exchange: Exchange, sender: User, submission: Submission) -> bytes:
    """Submit through the sender's service; wait until every recipient holds it."""
    submitted = exchange.run(exchange.service(sender.org).submit(sender, submission))
    for recipient in submission.recipients:
        exchange.run(_held(exchange.service(recipient), recipient, submitted.digest))
    return submitted.digest


async def _final_receipt(
    service: NodeService, sender: User, digest: bytes, recipient: OrgId
) -> tuple[str, str | None]:
    """Wait for the recipient's final receipt in the sender's view; return status and code."""
    deadline = time.monotonic() + 30
    while True:
        view = await service.sent_item(sender, digest)
        for r in view.recipients:
            for receipt in r.receipts if r.delivery.destination == recipient else ():
                if receipt.status in {"acknowledged", "rejected"}:
                    return receipt.status, parse_signed(receipt.signed).receipt.disposition
        assert time.monotonic() < deadline, "the receipt did not reach the sender"
        await asyncio.sleep(0.05)


def _cp_file() -> Submission:
    """Return Hillside's CP-file transfer to Moorside, with its chronology as a PDF."""
    confirmed = time.strftime("%Y-%m-%d")
    return Submission(
        recipients=(RECEIVING,),
        purpose="cp-file-transfer",
        record_kind="cp-file-transfer",
        record={
            "kind": "cp-file-transfer",
            "version": 1,
            "pupil": {
                "name": {"given_names": "Tallulah", "family_name": "Sentinel-Child"},
                "date_of_birth": "2014-03-09",
                "upn": "T356201412345",
            },
            "from_school_urn": "106123",
            "to_school_urn": "106124",
            "date_left": confirmed,
            "date_new_school_confirmed": confirmed,
            "status": {
                "cp_plan": True,
                "child_in_need": False,
                "looked_after": False,
                "ehcp": False,
                "channel": False,
            },
            "documents": [{"kind": "chronology", "title": "Chronology"}],
            "summary": "Synthetic summary of the main concerns.",
            "dsl": {
                "name": "Alex Example",
                "role": "Designated safeguarding lead",
                "organisation": str(SCHOOL),
                "email": "dsl@hillside.example",
            },
        },
        categories=("identity", "education", "safeguarding-concerns"),
        reason="The pupil has moved school; the CP file must follow within 5 school days.",
        attachments=(AttachmentInput("chronology.pdf", "application/pdf", CHRONOLOGY),),
    )


def _checked(page: Page, title: str) -> None:
    """Wait for the page titled ``title`` and check it with axe-core."""
    expect(page).to_have_title(f"{title} – Secure exchange")
    assert_accessible(page)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_front_door_opens_a_referral_downloads_its_letter_and_acknowledges_it(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """Journey (a): open, read, download byte for byte, acknowledge; the school is told."""
    sender = exchange.user(SCHOOL, "dsl")
    digest = _send(exchange, sender, referral(FRONT_DOOR))
    item_path = f"/inbox/{digest.hex()}"
    with exchange.page(browser, FRONT_DOOR, "dsl", javascript=javascript) as page:
        page.goto(exchange.url(FRONT_DOOR) + "/inbox")
        _checked(page, "Inbox")
        row = page.locator(f'a[href="{item_path}"]')
        expect(row).to_contain_text("Referral")
        if javascript:
            save_screenshot(page, SCREENSHOTS, "inbox-list")
        row.click()

        _checked(page, "Referral from Hillside Primary School")
        expect(page.locator("main")).to_contain_text("Acknowledge by 5pm on")
        expect(page.locator("main")).not_to_contain_text("Tallulah")
        if javascript:
            save_screenshot(page, SCREENSHOTS, "inbox-item-before-opening")
        page.get_by_role("button", name="Open record").click()

        expect(page.get_by_role("heading", name="Child", exact=True)).to_be_visible()
        _checked(page, "Referral from Hillside Primary School")
        expect(page.locator("main")).to_contain_text("Tallulah Sentinel-Child")
        if javascript:
            save_screenshot(page, SCREENSHOTS, "inbox-record")
        with page.expect_download() as download_info:
            page.get_by_role(
                "link", name=re.compile("^Download Letter from the school nurse")
            ).click()
        download = download_info.value
        assert download.suggested_filename == PDF_NAME
        assert Path(download.path()).read_bytes() == PDF

        page.get_by_role("button", name="Acknowledge").click()
        _checked(page, "What will your organisation do with this record?")
        page.get_by_role("button", name="Acknowledge record").click()
        _checked(page, "Error: What will your organisation do with this record?")
        expect(page.locator(".govuk-error-summary")).to_contain_text(
            "Select what your organisation will do with this record"
        )
        if javascript:
            save_screenshot(page, SCREENSHOTS, "inbox-acknowledge-error")
        page.get_by_label("Accepted for assessment").check()
        page.get_by_role("button", name="Acknowledge record").click()
        _checked(page, "Record acknowledged")
        if javascript:
            save_screenshot(page, SCREENSHOTS, "inbox-acknowledged")
        page.get_by_role("link", name="Go back to the record").click()
        _checked(page, "Referral from Hillside Primary School")
        expect(page.locator("main")).to_contain_text("Acknowledged")

    status = exchange.run(
        _final_receipt(exchange.service(SCHOOL), sender, digest, FRONT_DOOR), timeout=40
    )
    assert status == ("acknowledged", "accepted-for-assessment")


def test_moorside_opens_a_cp_file_collected_from_its_relay_mailbox(
    exchange: Exchange, browser: Browser
) -> None:
    """Journey (b): the CP file reaches the receiving school, whose DSL opens it."""
    digest = _send(exchange, exchange.user(SCHOOL, "dsl"), _cp_file())
    with exchange.page(browser, RECEIVING, "dsl", javascript=False) as page:
        page.goto(exchange.url(RECEIVING) + "/inbox")
        _checked(page, "Inbox")
        page.locator(f'a[href="/inbox/{digest.hex()}"]').click()
        _checked(page, "Child protection file from Hillside Primary School")
        page.get_by_role("button", name="Open record").click()
        expect(page.get_by_role("heading", name="Pupil", exact=True)).to_be_visible()
        _checked(page, "Child protection file from Hillside Primary School")
        expect(page.locator("main")).to_contain_text("Is the pupil on a child protection plan?")
        with page.expect_download() as download_info:
            page.get_by_role("link", name=re.compile("^Download Chronology")).click()
        assert Path(download_info.value.path()).read_bytes() == CHRONOLOGY
    item = exchange.run(exchange.service(RECEIVING).store.inbox_item(RECEIVING, digest))
    assert item is not None
    assert item.state == "opened"


def test_a_nurse_rejects_a_request_with_a_reason(exchange: Exchange, browser: Browser) -> None:
    """Journey (c): the nursing team's staff rejects the front door's request; it is told why."""
    sender = exchange.user(FRONT_DOOR, "dsl")
    digest = _send(exchange, sender, information_request(NURSES))
    with exchange.page(browser, NURSES, "staff") as page:
        page.goto(exchange.url(NURSES) + f"/inbox/{digest.hex()}")
        _checked(page, "Information request from Stockport children's front door")
        page.get_by_role("button", name="Open record").click()
        expect(page.locator("main")).to_contain_text("Section 47 checks")
        _checked(page, "Information request from Stockport children's front door")
        page.get_by_role("button", name="Reject").click()
        _checked(page, "Why are you rejecting this record?")
        page.get_by_role("button", name="Reject record").click()
        _checked(page, "Error: Why are you rejecting this record?")
        page.get_by_role("link", name="Select why you are rejecting this record").click()
        page.get_by_label("It was not meant for us").check()
        save_screenshot(page, SCREENSHOTS, "inbox-reject")
        page.get_by_role("button", name="Reject record").click()
        _checked(page, "Record rejected")
    status = exchange.run(
        _final_receipt(exchange.service(FRONT_DOOR), sender, digest, NURSES), timeout=40
    )
    assert status == ("rejected", "not-for-us")


def test_tenants_on_one_node_cannot_see_each_others_items(
    exchange: Exchange, browser: Browser
) -> None:
    """Journey (d): the front door's item is not found for the nurses, and the reverse."""
    to_front_door = _send(exchange, exchange.user(SCHOOL, "dsl"), referral(FRONT_DOOR))
    to_nurses = _send(exchange, exchange.user(FRONT_DOOR, "dsl"), information_request(NURSES))
    for org, foreign in ((NURSES, to_front_door), (FRONT_DOOR, to_nurses)):
        with exchange.page(browser, org, "dsl") as page:
            page.goto(exchange.url(org) + f"/inbox/{foreign.hex()}")
            _checked(page, "Page not found")
            expect(page.locator(f'a[href="/inbox/{foreign.hex()}"]')).to_have_count(0)


def test_the_link_in_a_notice_works_after_signing_in(exchange: Exchange, browser: Browser) -> None:
    """Journey (e): ``/inbox/<envelope id>`` asks for sign-in, then leads to the item."""
    digest = _send(exchange, exchange.user(SCHOOL, "dsl"), referral(FRONT_DOOR))
    item = exchange.run(exchange.service(FRONT_DOOR).store.inbox_item(FRONT_DOOR, digest))
    assert item is not None
    link = exchange.url(FRONT_DOOR) + f"/inbox/{item.envelope.envelope_id.hex()}"
    context = browser.new_context(ignore_https_errors=True, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(link)
        expect(page).to_have_title(re.compile("Sign in"))
        exchange.sign_in(page, FRONT_DOOR, "staff")
        page.goto(link)
        _checked(page, "Referral from Hillside Primary School")
        assert page.url.endswith(f"/inbox/{digest.hex()}")
    finally:
        context.close()


def test_a_recalled_referral_offers_nothing_to_open(exchange: Exchange, browser: Browser) -> None:
    """After the school's recall, the front door's item says so and has no Open button."""
    sender = exchange.user(SCHOOL, "dsl")
    digest = _send(exchange, sender, referral(FRONT_DOOR))
    node = exchange.deployment.node_of(SCHOOL)
    recaller = Recaller(node.service, routes=node.routes, timeout=5.0)
    exchange.run(
        recaller.recall(sender, digest, reason="Sent in error", reason_code=DEFAULT_REASON_CODE)
    )
    with exchange.page(browser, FRONT_DOOR, "dsl") as page:
        page.goto(exchange.url(FRONT_DOOR) + f"/inbox/{digest.hex()}")
        _checked(page, "Referral from Hillside Primary School")
        expect(page.locator("main")).to_contain_text("Hillside Primary School recalled this record")
        expect(page.get_by_role("button", name="Open record")).to_have_count(0)
        save_screenshot(page, SCREENSHOTS, "inbox-recalled")
