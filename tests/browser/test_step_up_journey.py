"""Step-up in Chromium: a record left open past the window asks "Confirm it's you" again.

The front door's member of staff signs in through the pages and opens a referral. The
node's clock then moves past the step-up window (15 minutes) while the record page is in
use: the document's link now leads to the confirm page, which refuses a wrong code and
takes the app's code, then returns to the record, whose document downloads. Every page,
the error state included, is checked by axe-core, with JavaScript on and off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from playwright.sync_api import Browser, Page, expect

from exchange.auth.totp import code_at
from exchange.model import Role
from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import FRONT_DOOR, SCHOOL, Exchange, new_context, running_exchange
from tests.browser.screenshots import SCREENSHOTS, save_screenshot
from tests.browser.test_inbox_journey import _send
from tests.web.synthetic import PDF, PDF_NAME, referral

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

#: Each of the two clock moves: together past the 15-minute window, each within the
#: 15-minute idle timeout, the record page reloaded in between.
MOVE: Final = 600
TITLE: Final = "Referral from Hillside Primary School"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("exchange")) as running:
        yield running


def _checked(page: Page, title: str) -> None:
    """Wait for the page titled ``title`` and check it with axe-core."""
    expect(page).to_have_title(f"{title} – Secure exchange")
    assert_accessible(page)


@pytest.mark.parametrize(
    ("javascript", "role"), [(True, "dsl"), (False, "staff")], ids=["js", "no-js"]
)
def test_a_record_left_open_asks_again_then_opens(
    exchange: Exchange, browser: Browser, javascript: bool, role: Role
) -> None:
    """Sign in, open, wait past the window, confirm with the app's code, land on the record."""
    service = exchange.service(FRONT_DOOR)
    digest = _send(exchange, exchange.user(SCHOOL, "dsl"), referral())
    exchange.run(service.open_item(exchange.user(FRONT_DOOR, "dsl"), digest))
    item = exchange.url(FRONT_DOOR) + f"/inbox/{digest.hex()}"
    context = new_context(browser, javascript=javascript)
    try:
        page = context.new_page()
        exchange.sign_in(page, FRONT_DOOR, role)
        page.goto(item)
        _checked(page, TITLE)
        expect(page.locator("main")).to_contain_text("Tallulah Sentinel-Child")

        with exchange.clocks_moved(FRONT_DOOR, by=MOVE):
            page.reload()
            expect(page.locator("main")).to_contain_text("Tallulah Sentinel-Child")
        with exchange.clocks_moved(FRONT_DOOR, by=2 * MOVE):
            page.get_by_role(
                "link", name=re.compile("^Download Letter from the school nurse")
            ).click()
            _checked(page, "Confirm it's you")
            main = page.locator("main")
            expect(main).to_contain_text(
                "You need to confirm it's you before you open this record. "
                "We ask again after 15 minutes."
            )
            expect(main).not_to_contain_text("Tallulah")
            if javascript:
                save_screenshot(page, SCREENSHOTS, "confirm")

            page.get_by_label("Security code").fill("1234567")
            page.get_by_role("button", name="Continue").click()
            _checked(page, "Error: Confirm it's you")
            summary = page.locator(".govuk-error-summary")
            expect(summary).to_contain_text("Enter a correct code from your authenticator app")
            expect(summary.get_by_role("link")).to_have_attribute("href", "#code")

            secret = exchange.account(FRONT_DOOR, role).secret
            page.get_by_label("Security code").fill(code_at(secret, service.clock()))
            page.get_by_role("button", name="Continue").click()
            expect(page).to_have_url(item)
            _checked(page, TITLE)
            expect(page.locator("main")).to_contain_text("Tallulah Sentinel-Child")
            with page.expect_download() as download_info:
                page.get_by_role(
                    "link", name=re.compile("^Download Letter from the school nurse")
                ).click()
            download = download_info.value
            assert download.suggested_filename == PDF_NAME
            assert Path(download.path()).read_bytes() == PDF
    finally:
        context.close()
