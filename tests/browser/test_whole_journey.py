"""The whole journey across the nodes, every step in a browser page: send, open, answer, see.

Hillside's DSL sends a referral with a PDF through the send pages; the front door's DSL finds
it in the inbox, opens it, downloads the PDF (byte for byte what was sent) and acknowledges
it; Hillside's DSL sees "Acknowledged" on the sent record's page, with the receipts that came
back; and Hillside's DPO finds the referral by the child's UPN. Nothing is set up through
the service: each step is a person on a page, with JavaScript on and then off, and each page
is checked by axe-core. The child's details (typed on the question pages) never appear in an
address or a title along the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import FRONT_DOOR, SCHOOL, Exchange, running_exchange
from tests.browser.send_steps import (
    PDF,
    Mouse,
    choose_kind,
    choose_recipient,
    page_done,
    press_continue,
    referral_questions,
    say_why,
    send_record,
    upload,
    wait_for_inbox,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

#: The child's details the referral's question pages are given (send_steps).
CHILD: tuple[str, ...] = ("Zebedee", "Quillfeather", "W356200124001", "2015-03-14")


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("exchange")) as running:
        yield running


def _watch_addresses(page: Page, seen: list[str]) -> None:
    """Keep every address the page goes to (redirects included) and every title shown."""
    page.on("framenavigated", lambda frame: seen.append(frame.url))
    page.on("load", lambda loaded: seen.append(loaded.title()))


def _send(exchange: Exchange, page: Page) -> str:
    """Send the referral with its PDF to the front door; return the reference."""
    hands = Mouse()
    page.goto(exchange.url(SCHOOL) + "/send")
    choose_kind(hands, page, "Referral", shots=False)
    referral_questions(hands, page, shots=False)
    page_done(page, "Add documents")
    upload(page, "chronology.pdf", PDF)
    expect(page.locator(".govuk-summary-list")).to_contain_text("chronology.pdf")
    press_continue(hands, page)
    choose_recipient(hands, page, "356", "Stockport children's front door", shots=False)
    say_why(
        hands,
        page,
        "Referral of a child to children's social care (LA front door / MASH)",
        ["Who the child is: name, date of birth and identifiers", "Safeguarding concerns"],
        shots=False,
    )
    return send_record(hands, page, shots=False)


def _open_download_acknowledge(exchange: Exchange, page: Page, reference: str) -> None:
    """Find the referral in the inbox, open it, download the PDF and acknowledge it."""
    page.goto(exchange.url(FRONT_DOOR) + "/inbox")
    page_done(page, "Inbox")
    page.get_by_role("link", name="Referral from Hillside Primary School").first.click()
    expect(page.locator("main")).to_contain_text(reference)
    assert_accessible(page)
    page.get_by_role("button", name="Open record").click()
    expect(page.locator("main")).to_contain_text("Quillfeather")
    assert_accessible(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").first.click()
    path = download.value.path()
    assert path is not None
    assert Path(path).read_bytes() == PDF
    page.get_by_role("button", name="Acknowledge").click()
    page_done(page, "What will your organisation do with this record?")
    page.get_by_label("Accepted for assessment").check()
    page.get_by_role("button", name="Acknowledge record").click()
    page_done(page, "Record acknowledged")


def _sender_sees_acknowledged(exchange: Exchange, page: Page, reference: str) -> None:
    """Wait for the sent record's page to say "Acknowledged", once the receipt is back."""
    page.goto(exchange.url(SCHOOL) + "/sent")
    page_done(page, "Sent records")
    row = page.locator("tbody tr", has_text=f"Reference {reference}")
    row.get_by_role("link", name="Referral").click()
    tag = page.locator("main .govuk-tag", has_text="Acknowledged")
    for _ in range(40):  # the receipt travels back on the nodes' own loop
        if tag.count():
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(tag.first).to_be_visible()
    expect(page.locator("main")).to_contain_text("Acknowledged")
    assert_accessible(page)


def _dpo_finds_it(exchange: Exchange, page: Page) -> None:
    """Subject access by the child's UPN finds the referral sent to the front door."""
    page.goto(exchange.url(SCHOOL) + "/subject-access")
    page_done(page, "Subject access")
    page.get_by_label("UPN (if known)").fill(CHILD[2])
    page.get_by_role("button", name="Search").click()
    page_done(page, "Subject access results")
    expect(page.locator("main")).to_contain_text("Stockport children's front door")
    expect(page.locator("main")).not_to_contain_text(CHILD[2])


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_referral_goes_from_the_send_pages_to_an_acknowledged_receipt(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """Send, open, download, acknowledge, see the receipt, find it by UPN: all on pages."""
    seen: list[str] = []
    with exchange.page(browser, SCHOOL, "dsl", javascript=javascript) as page:
        _watch_addresses(page, seen)
        reference = _send(exchange, page)
    wait_for_inbox(exchange, FRONT_DOOR, reference)
    with exchange.page(browser, FRONT_DOOR, "dsl", javascript=javascript) as page:
        _watch_addresses(page, seen)
        _open_download_acknowledge(exchange, page, reference)
    with exchange.page(browser, SCHOOL, "dsl", javascript=javascript) as page:
        _watch_addresses(page, seen)
        _sender_sees_acknowledged(exchange, page, reference)
    with exchange.page(browser, SCHOOL, "dpo", javascript=javascript) as page:
        _watch_addresses(page, seen)
        _dpo_finds_it(exchange, page)
    assert seen
    leaks = [(value, where) for where in seen for value in CHILD if value in where]
    assert leaks == []
