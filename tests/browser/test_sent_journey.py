"""Journeys 3 and 5 in Chromium: sent items, their timelines, recall, and the overdue page.

Hillside's DSL follows a referral to the front door from queued (the front door's node
refusing it for a while) to delivered and opened; recalls another before anyone opens it;
narrows the list to the overdue and sees, on the overdue page, a referral past its deadline,
which the front door sees as owed. Every page, in every state, is checked with axe-core;
the main journey runs with JavaScript on and off. Another organisation's item in the address
is "Page not found", even for a tenant of the same node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import pytest
from playwright.sync_api import Browser, expect

from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType, decode_event
from exchange.service.errors import ServiceError
from exchange.service.views import SentView
from exchange.sharing.prepare import Submission
from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import (
    FRONT_DOOR,
    NURSES,
    SCHOOL,
    Exchange,
    running_exchange,
)
from tests.browser.screenshots import SCREENSHOTS, save_screenshot
from tests.node.records import information_request, referral
from tests.web import synthetic

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

#: Where the documentation's screenshots live.
FRONT_DOOR_NAME: Final = "Stockport children's front door"
#: Five days on: past a referral's one working day, whatever day the test runs.
DAYS_ON: Final = 5 * 86400


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("sent")) as running:
        yield running


def _referral() -> Submission:
    return Submission(
        recipients=(FRONT_DOOR,),
        purpose="safeguarding-referral",
        record_kind="referral",
        record=referral(),
        categories=("identity", "safeguarding-concerns"),
        reason="Concerns about neglect meet the threshold for a referral.",
    )


def _refer(exchange: Exchange) -> bytes:
    """Submit a referral from Hillside's DSL to the front door; return its digest."""
    service = exchange.service(SCHOOL)
    return exchange.run(service.submit(exchange.user(SCHOOL, "dsl"), _referral())).digest


def _until(exchange: Exchange, org: OrgId, digest: bytes, status: str) -> SentView:
    """Wait until the sent item's first recipient has ``status``; return the item."""
    service = exchange.service(org)

    async def poll() -> SentView:
        deadline = time.monotonic() + 20
        while True:
            view = await service.sent_item(exchange.user(org, "dsl"), digest)
            if view.recipients[0].status == status:
                return view
            assert time.monotonic() < deadline, f"never {status}: {view.recipients[0]}"
            await asyncio.sleep(0.05)

    return exchange.run(poll())


@contextmanager
def front_door_refusing(exchange: Exchange) -> Iterator[None]:
    """Make the LA node answer every pushed envelope with a 503 until the block ends."""
    service = exchange.service(FRONT_DOOR)

    async def refuse(*_: object) -> bytes:
        raise ServiceError("the node is busy", status=503)

    service.receive_envelope = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        del service.receive_envelope


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_referral_is_queued_then_delivered_then_opened(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """The list's tag and the item's timeline follow the referral across the two nodes."""
    with exchange.page(browser, SCHOOL, "dsl", javascript=javascript) as page:
        with front_door_refusing(exchange):
            digest = _refer(exchange)
            exchange.run(_attempted(exchange, digest))
            page.goto(exchange.url(SCHOOL) + "/sent")
            expect(page).to_have_title("Sent records – Secure exchange")
            row = page.get_by_role("row").filter(
                has=page.locator(f'a[href="/sent/{digest.hex()}"]')
            )
            expect(row).to_contain_text(f"{FRONT_DOOR_NAME} Queued")
            assert_accessible(page)
        _until(exchange, SCHOOL, digest, "delivered")
        page.reload()
        expect(row).to_contain_text(f"{FRONT_DOOR_NAME} Delivered")
        if javascript:
            save_screenshot(page, SCREENSHOTS, "sent-list")

        exchange.run(
            exchange.service(FRONT_DOOR).open_item(exchange.user(FRONT_DOOR, "dsl"), digest)
        )
        _until(exchange, SCHOOL, digest, "opened")
        page.locator(f'a[href="/sent/{digest.hex()}"]').click()
        expect(page).to_have_title("Sent referral – Secure exchange")
        expect(page.get_by_role("heading", level=2, name=FRONT_DOOR_NAME)).to_contain_text("Opened")
        timeline = page.get_by_role("table", name=f"What happened with {FRONT_DOOR_NAME}")
        expect(timeline).to_contain_text("Sent by your organisation")
        expect(timeline).to_contain_text(
            "Could not be delivered over the direct connection to their node; "
            "it will be tried again"
        )
        expect(timeline).to_contain_text("Received by their node")
        expect(timeline).to_contain_text("Opened by a member of their staff")
        expect(page.get_by_role("button", name="Correct this record")).to_have_attribute(
            "href", f"/send/correct/{digest.hex()}"
        )
        assert_accessible(page)
        if javascript:
            save_screenshot(page, SCREENSHOTS, "sent-item")


async def _attempted(exchange: Exchange, digest: bytes) -> None:
    """Wait until the school's node has tried and failed to deliver ``digest`` once."""
    school = exchange.service(SCHOOL)
    deadline = time.monotonic() + 20
    while True:
        view = await school.sent_item(exchange.user(SCHOOL, "dsl"), digest)
        if view.recipients[0].delivery.attempts >= 1:
            return
        assert time.monotonic() < deadline, "the school's node never tried to deliver it"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_referral_is_recalled_before_it_is_opened(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """Recall asks why (an error if nothing is chosen), then shows each recipient's outcome."""
    digest = _refer(exchange)
    _until(exchange, SCHOOL, digest, "delivered")
    with exchange.page(browser, SCHOOL, "dsl", javascript=javascript) as page:
        page.goto(exchange.url(SCHOOL) + f"/sent/{digest.hex()}")
        page.get_by_role("button", name="Recall this record").click()
        expect(page).to_have_title("Recall this record – Secure exchange")
        assert_accessible(page)
        if javascript:
            save_screenshot(page, SCREENSHOTS, "sent-recall")
        page.get_by_role("button", name="Recall this record").click()
        expect(page).to_have_title("Error: Recall this record – Secure exchange")
        expect(page.locator(".govuk-error-summary")).to_contain_text(
            "Select why you are recalling this record"
        )
        assert_accessible(page)
        page.get_by_label("It was sent by mistake").check()
        page.get_by_role("button", name="Recall this record").click()
        expect(page).to_have_title("Recall result – Secure exchange")
        expect(page.get_by_role("heading", level=1)).to_have_text("Record recalled")
        expect(page.get_by_role("row").filter(has_text=FRONT_DOOR_NAME)).to_contain_text(
            "Recalled before anyone opened it"
        )
        assert_accessible(page)
        if javascript:
            save_screenshot(page, SCREENSHOTS, "sent-recalled")
    item = exchange.run(exchange.service(FRONT_DOOR).store.inbox_item(FRONT_DOOR, digest))
    assert item is not None
    assert item.state == "recalled"


async def _read_backs(exchange: Exchange, digest: bytes) -> list[str]:
    """Return the reasons of the ``accessed`` ledger events of Hillside's sent item."""
    store = exchange.service(SCHOOL).store
    events = [decode_event(raw) for _, raw in await store.ledger_events_for(digest)]
    return [e.reason for e in events if e.type is EventType.ACCESSED]


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_dsl_shows_what_was_sent(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """The button reads the record back from the node's own copy; each reading is recorded."""
    digest = exchange.run(
        exchange.service(SCHOOL).submit(exchange.user(SCHOOL, "dsl"), synthetic.referral())
    ).digest
    with exchange.page(browser, SCHOOL, "dsl", javascript=javascript) as page:
        page.goto(exchange.url(SCHOOL) + f"/sent/{digest.hex()}")
        expect(page).to_have_title("Sent referral – Secure exchange")
        caption = page.locator(".govuk-caption-l").inner_text()
        assert caption.startswith("Sent record ")
        page.get_by_role("button", name="Show what we sent").click()
        expect(page).to_have_title("What we sent: Referral – Secure exchange")
        expect(page.locator(".govuk-caption-l")).to_have_text(caption)
        # A POST: nothing about the record is in the address.
        assert page.url == exchange.url(SCHOOL) + f"/sent/{digest.hex()}/copy"
        main = page.locator("main")
        expect(main.get_by_role("heading", level=1)).to_have_text("What we sent: Referral")
        expect(main.get_by_role("heading", level=2, name="Child")).to_be_visible()
        expect(main).to_contain_text(synthetic.FAMILY)
        expect(main).to_contain_text(synthetic.DOB_WORDS)
        documents = main.get_by_role("heading", level=2, name="Documents sent with it")
        expect(documents).to_be_visible()
        expect(main.get_by_role("listitem").filter(has_text=synthetic.PDF_NAME)).to_have_count(1)
        assert_accessible(page)
        if javascript:
            save_screenshot(page, SCREENSHOTS, "sent-copy")
        page.get_by_role("link", name="Back").click()
        expect(page).to_have_title("Sent referral – Secure exchange")
    assert exchange.run(_read_backs(exchange, digest)) == ["sent-copy:dsl"]


def test_another_organisations_item_is_not_found(exchange: Exchange, browser: Browser) -> None:
    """The nursing team, on the front door's node, cannot open the front door's sent item."""
    service = exchange.service(FRONT_DOOR)
    request = Submission(
        recipients=(SCHOOL,),
        purpose="information-request",
        record_kind="information-request",
        record=information_request(due="2027-03-01"),
        categories=("identity", "safeguarding-concerns"),
        reason="Section 47 enquiries have started; we need the school's information.",
    )
    digest = exchange.run(service.submit(exchange.user(FRONT_DOOR, "dsl"), request)).digest
    with exchange.page(browser, NURSES, "dsl") as page:
        for path in (f"/sent/{digest.hex()}", f"/sent/{digest.hex()}/recall", "/sent/Zebracorn"):
            page.goto(exchange.url(NURSES) + path)
            expect(page).to_have_title("Page not found – Secure exchange")
            expect(page.locator("main")).not_to_contain_text("Zebracorn")
        assert_accessible(page)
        page.goto(exchange.url(NURSES) + "/sent?show=Zebracorn")
        expect(page).to_have_title("There is a problem with your request – Secure exchange")
        expect(page.locator("body")).not_to_contain_text("Zebracorn")
        assert_accessible(page)
    with exchange.page(browser, FRONT_DOOR, "dsl") as page:
        page.goto(exchange.url(FRONT_DOOR) + f"/sent/{digest.hex()}")
        expect(page).to_have_title("Sent information request – Secure exchange")


def test_the_overdue_filter_and_page_show_a_referral_past_its_deadline(
    exchange: Exchange, browser: Browser
) -> None:
    """Five days on, an unacknowledged referral is overdue for the school and owed by the LA.

    It runs last: with the clocks moved on, the sessions signed in earlier have timed out.
    """
    digest = _refer(exchange)
    _until(exchange, SCHOOL, digest, "delivered")
    with exchange.clocks_moved(SCHOOL, FRONT_DOOR, by=DAYS_ON):
        with exchange.page_at_node_time(browser, SCHOOL, "dsl") as page:
            page.goto(exchange.url(SCHOOL) + "/sent")
            page.get_by_label("Overdue").check()
            page.get_by_role("button", name="Show records").click()
            expect(page).to_have_url(exchange.url(SCHOOL) + "/sent?show=overdue")
            row = page.get_by_role("row").filter(
                has=page.locator(f'a[href="/sent/{digest.hex()}"]')
            )
            expect(row).to_contain_text(f"{FRONT_DOOR_NAME} Overdue")
            assert_accessible(page)

            page.get_by_role("link", name="Overdue", exact=True).click()
            expect(page).to_have_title("Overdue – Secure exchange")
            waiting = page.get_by_role("row").filter(
                has=page.locator(f'a[href="/sent/{digest.hex()}"]')
            )
            expect(waiting).to_contain_text("Was due by 5pm on")
            expect(waiting).to_contain_text("Their acknowledgement")
            assert_accessible(page)
            save_screenshot(page, SCREENSHOTS, "overdue")
        with exchange.page_at_node_time(browser, FRONT_DOOR, "staff") as page:
            page.goto(exchange.url(FRONT_DOOR) + "/overdue")
            owed = page.get_by_role("row").filter(
                has=page.locator(f'a[href="/inbox/{digest.hex()}"]')
            )
            expect(owed).to_contain_text("Hillside Primary School")
            expect(owed).to_contain_text("Overdue Was due by 5pm on")
            assert_accessible(page)
