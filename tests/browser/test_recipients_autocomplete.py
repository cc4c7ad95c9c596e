"""The recipients page in Chromium: GOV.UK's accessible autocomplete, and the plain select.

With JavaScript on, ``recipients.js`` turns the select of organisations into the accessible
autocomplete: typing part of a name or a code ("front door", "356", "X26") finds an
organisation, which is chosen, added and gone on from; axe-core checks the page with the
list of suggestions open and closed, and no Content Security Policy violation happens
(the library sets its styles through the DOM, which the policy allows, and never needs an
inline style or script). With JavaScript off, the same organisation is chosen from the
plain select.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import SCHOOL, Exchange, running_exchange
from tests.browser.send_steps import Mouse, page_done, press_continue

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

TITLE = "Who do you want to send it to?"
FRONT_DOOR_LABEL = "Stockport children's front door (LA 356)"
NURSES_LABEL = "Stockport school nursing team (ODS X26ABC)"
#: Collects the page's CSP violations; Playwright adds it, so the page's policy does not apply.
WATCH_CSP = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("exchange")) as running:
        yield running


def _open_recipients(page: Page, exchange: Exchange, kind: str) -> None:
    """Start a draft of ``kind`` through the kind page, then open its recipients page."""
    page.goto(exchange.url(SCHOOL) + "/send")
    page.get_by_label(kind, exact=True).check()
    press_continue(Mouse(), page)
    expect(page).to_have_url(re.compile(r"/send/[^/]+/questions/"))
    draft = page.url.split("/send/")[1].split("/")[0]
    page.goto(exchange.url(SCHOOL) + f"/send/{draft}/recipients")
    page_done(page, TITLE)


def _violations(page: Page) -> list[Any]:
    return list(page.evaluate("window.cspViolations"))


def test_typing_part_of_a_name_finds_it_and_it_is_added(
    exchange: Exchange, browser: Browser
) -> None:
    """Type "front door", choose the suggestion, add it, go on; accessible open and closed."""
    with exchange.page(browser, SCHOOL, "dsl") as page:
        page.add_init_script(WATCH_CSP)
        _open_recipients(page, exchange, "Referral")
        box = page.get_by_role("combobox", name="Choose an organisation")
        expect(box).to_be_visible()
        expect(page.locator("select#f-org-select")).to_be_hidden()
        assert_accessible(page)  # closed

        box.fill("front door")
        suggestion = page.get_by_role("option", name=FRONT_DOOR_LABEL)
        expect(suggestion).to_be_visible()
        expect(box).to_have_attribute("aria-expanded", "true")
        assert_accessible(page)  # open

        suggestion.click()
        expect(box).to_have_value(FRONT_DOOR_LABEL)
        expect(box).to_have_attribute("aria-expanded", "false")
        assert_accessible(page)  # closed, with a choice
        page.get_by_role("button", name="Add organisation", exact=True).click()
        page_done(page, TITLE)
        expect(page.locator(".govuk-summary-list")).to_contain_text(
            "Stockport children's front door"
        )
        press_continue(Mouse(), page)
        page_done(page, "Why are you sharing it?")
        assert _violations(page) == []
        # The watch does see what the policy blocks: an inline style, here put in on purpose.
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<b style=\"color:red\">')")
        page.wait_for_function("window.cspViolations.length > 0")
        assert _violations(page)[0].startswith("style-src")


def test_codes_find_organisations_and_the_keyboard_chooses(
    exchange: Exchange, browser: Browser
) -> None:
    """Typing "X26" finds the nurses by ODS code; arrows and Enter choose it, with no mouse.

    An information request may go to a school or an NHS organisation.
    """
    with exchange.page(browser, SCHOOL, "dsl") as page:
        page.add_init_script(WATCH_CSP)
        _open_recipients(page, exchange, "Information request")
        box = page.get_by_role("combobox", name="Choose an organisation")
        box.focus()
        page.keyboard.type("X26")
        expect(page.get_by_role("option")).to_have_text([NURSES_LABEL])
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        expect(box).to_have_value(NURSES_LABEL)
        page.keyboard.press("Tab")
        add = page.get_by_role("button", name="Add organisation", exact=True)
        expect(add).to_be_focused()
        page.keyboard.press("Enter")
        page_done(page, TITLE)
        expect(page.locator(".govuk-summary-list")).to_contain_text("Stockport school nursing team")
        assert _violations(page) == []


def test_a_code_finds_the_front_door_and_nothing_found_is_said(
    exchange: Exchange, browser: Browser
) -> None:
    """A code finds its organisation; one in the directory that may not receive it is not found.

    "356" finds the front door; "Hillside" (the sender itself) finds nothing.
    """
    with exchange.page(browser, SCHOOL, "dsl") as page:
        _open_recipients(page, exchange, "Referral")
        box = page.get_by_role("combobox", name="Choose an organisation")
        box.fill("356")
        expect(page.get_by_role("option")).to_have_text([FRONT_DOOR_LABEL])
        box.fill("Hillside")
        expect(page.get_by_role("option")).to_have_text(["No organisation found"])
        assert_accessible(page)


def test_an_emptied_box_adds_nothing_and_the_error_leads_to_it(
    exchange: Exchange, browser: Browser
) -> None:
    """Choosing, then clearing the box, adds nothing: the error summary links to the box."""
    with exchange.page(browser, SCHOOL, "dsl") as page:
        _open_recipients(page, exchange, "Referral")
        box = page.get_by_role("combobox", name="Choose an organisation")
        box.fill("front door")
        page.get_by_role("option", name=FRONT_DOOR_LABEL).click()
        box.fill("")
        page.get_by_role("button", name="Add organisation", exact=True).click()
        page_done(page, f"Error: {TITLE}")
        page.locator(".govuk-error-summary").get_by_role("link").click()
        expect(page.get_by_role("combobox", name="Choose an organisation")).to_be_focused()
        expect(page.locator(".govuk-summary-list")).to_have_count(0)


def test_without_javascript_the_plain_select_chooses(exchange: Exchange, browser: Browser) -> None:
    """No autocomplete: the select is a select, chosen from and added."""
    with exchange.page(browser, SCHOOL, "dsl", javascript=False) as page:
        _open_recipients(page, exchange, "Referral")
        select = page.get_by_label("Choose an organisation")
        expect(select).to_have_js_property("tagName", "SELECT")
        select.select_option(label=FRONT_DOOR_LABEL)
        page.get_by_role("button", name="Add organisation", exact=True).click()
        page_done(page, TITLE)
        expect(page.locator(".govuk-summary-list")).to_contain_text(
            "Stockport children's front door"
        )
        press_continue(Mouse(), page)
        page_done(page, "Why are you sharing it?")
