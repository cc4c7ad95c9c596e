"""The browser journeys' exchange: every role of every organisation can sign in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.exchange_nodes import FRONT_DOOR, SCHOOL, Exchange, running_exchange

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("exchange")) as running:
        yield running


def test_each_role_lands_on_its_first_page_and_stays_signed_in(
    exchange: Exchange, browser: Browser
) -> None:
    """A DSL lands on the inbox and an administrator on accounts; a second page is signed in."""
    with exchange.page(browser, SCHOOL, "dsl") as page:
        page.goto(exchange.url(SCHOOL) + "/sign-in")
        expect(page).to_have_title("Inbox – Secure exchange")
        expect(page.locator("header")).to_contain_text("Hillside Primary School")
        links = page.locator("header nav a")
        expect(links).to_contain_text(["Inbox", "Send a record", "Sent", "Overdue"])
    with exchange.page(browser, SCHOOL, "dsl", javascript=False) as page:
        page.goto(exchange.url(SCHOOL) + "/inbox")
        expect(page).to_have_title("Inbox – Secure exchange")
    with exchange.page(browser, FRONT_DOOR, "admin") as page:
        page.goto(exchange.url(FRONT_DOOR) + "/sign-in")
        expect(page.locator("header")).to_contain_text("Stockport children's front door")
        expect(page.locator("header nav a")).to_contain_text(["Accounts", "Node"])
