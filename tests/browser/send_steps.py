"""The send pages, driven as a person does: with the mouse, or with the keyboard alone.

The steps of the send journey (choose the kind, answer the referral's questions, upload a
document, choose the recipient, say why, check and send) as functions over a page, shared
by the send journey's tests and the whole journey across the nodes.
"""

from __future__ import annotations

import re
import time
from typing import Final, Protocol

from playwright.sync_api import Locator, Page, expect

from exchange.keys.ids import OrgId
from exchange.model import short_reference
from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import Exchange
from tests.browser.keyboard import MAX_TABS, is_focused, tab_to
from tests.browser.screenshots import SCREENSHOTS, save_screenshot

PDF: Final = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
REASON: Final = "Concerns about neglect meet the threshold for a referral to the front door"


class Hands(Protocol):
    """How a person works the page: with the mouse, or with the keyboard alone."""

    def fill(self, target: Locator, text: str) -> None:
        """Type ``text`` into a field."""

    def choose(self, target: Locator) -> None:
        """Tick a radio or a checkbox."""

    def press(self, target: Locator) -> None:
        """Press a button or follow a link."""


class Mouse:
    """Click and type, as most people do."""

    def fill(self, target: Locator, text: str) -> None:
        """Type into the field."""
        target.fill(text)

    def choose(self, target: Locator) -> None:
        """Click the radio or checkbox."""
        target.check()

    def press(self, target: Locator) -> None:
        """Click the button or link."""
        target.click()


class Keyboard:
    """Tab to each control, then type, press Space or Enter: no mouse at all."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def fill(self, target: Locator, text: str) -> None:
        """Tab to the field, select what it holds and type over it."""
        tab_to(self.page, target)
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(text)

    def choose(self, target: Locator) -> None:
        """Tab to a checkbox and press Space, or into a radio group and arrow to the radio."""
        if target.get_attribute("type") != "radio":
            tab_to(self.page, target)
            self.page.keyboard.press("Space")
            expect(target).to_be_checked()
            return
        # Tab reaches one radio of a group; the arrow keys move (and choose) within it.
        group = self.page.locator(f'input[type=radio][name="{target.get_attribute("name")}"]')
        for _ in range(MAX_TABS):
            self.page.keyboard.press("Tab")
            if group.evaluate_all("els => els.includes(document.activeElement)"):
                break
        else:
            raise AssertionError(f"Tab did not reach the radios of {target}")
        for _ in range(group.count()):
            if is_focused(target):
                break
            self.page.keyboard.press("ArrowDown")
        if not target.is_checked():
            self.page.keyboard.press("Space")
        expect(target).to_be_checked()

    def press(self, target: Locator) -> None:
        """Tab to the button and press Enter."""
        tab_to(self.page, target)
        self.page.keyboard.press("Enter")


def page_done(page: Page, title: str, *, shot: str | None = None) -> None:
    """Check the page's title and accessibility, and save it when it is a main page."""
    expect(page).to_have_title(f"{title} – Secure exchange")
    expect(page.locator("h1")).to_have_count(1)
    assert_accessible(page)
    if shot is not None:
        save_screenshot(page, SCREENSHOTS, shot)


def press_continue(hands: Hands, page: Page) -> None:
    hands.press(page.get_by_role("button", name="Continue"))


def yes_no(hands: Hands, page: Page, question: str, answer: str) -> None:
    hands.choose(page.get_by_role("group", name=question).get_by_label(answer, exact=True))


def fill_date(hands: Hands, page: Page, question: str, day: str, month: str, year: str) -> None:
    group = page.get_by_role("group", name=question, exact=True)
    hands.fill(group.get_by_label("Day"), day)
    hands.fill(group.get_by_label("Month"), month)
    hands.fill(group.get_by_label("Year"), year)


def fill_contact(hands: Hands, page: Page) -> None:
    hands.fill(page.get_by_label("Full name"), "Dana Lead")
    hands.fill(page.get_by_label("Role", exact=True), "Designated safeguarding lead")
    hands.fill(page.get_by_label("Email address"), "dsl@hillside.example")


def choose_kind(hands: Hands, page: Page, kind: str, *, shots: bool) -> None:
    page_done(page, "What do you want to send?", shot="send-kind" if shots else None)
    hands.choose(page.get_by_label(kind, exact=True))
    press_continue(hands, page)


def referral_questions(hands: Hands, page: Page, *, shots: bool) -> None:
    """Answer the referral's question pages, seeing the errors of one page on the way."""
    page_done(page, "Your contact details", shot="send-question" if shots else None)
    fill_contact(hands, page)
    press_continue(hands, page)
    page_done(page, "Consent and telling the family")
    yes_no(hands, page, "Have the child's parents or carers been told about this referral?", "Yes")
    yes_no(hands, page, "Have they agreed to the referral?", "Yes")
    press_continue(hands, page)
    page_done(page, "About the child")
    press_continue(hands, page)  # nothing answered: the errors, linked to their fields
    page_done(page, "Error: About the child", shot="send-question-errors" if shots else None)
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Enter given names")
    expect(summary).to_contain_text("Enter either date of birth or expected date of birth")
    hands.fill(page.get_by_label("Given names"), "Zebedee")
    hands.fill(page.get_by_label("Family name"), "Quillfeather")
    fill_date(hands, page, "Date of birth (optional)", "14", "3", "2015")
    hands.fill(page.get_by_label("Unique pupil number (UPN) (optional)"), "W356200124001")
    press_continue(hands, page)
    page_done(page, "People in the child's household")
    press_continue(hands, page)
    page_done(page, "What are you worried about?")
    hands.choose(page.get_by_label("Neglect"))
    press_continue(hands, page)
    page_done(page, "Your concerns")
    hands.fill(page.get_by_label("Your concerns"), "Arrives hungry most days and is withdrawn.")
    press_continue(hands, page)
    page_done(page, "Early help")
    yes_no(hands, page, "Has early help been tried?", "No")
    press_continue(hands, page)
    page_done(page, "Level of need")
    hands.choose(page.get_by_label("Level 3: complex needs"))
    press_continue(hands, page)
    page_done(page, "Is the child at immediate risk of harm?")
    hands.choose(page.get_by_label("No", exact=True))
    press_continue(hands, page)


def upload(page: Page, name: str, data: bytes) -> None:
    page.get_by_label("Upload a file").set_input_files(
        {"name": name, "mimeType": "application/octet-stream", "buffer": data}
    )
    page.get_by_role("button", name="Upload file").click()


def choose_recipient(hands: Hands, page: Page, search: str, name: str, *, shots: bool) -> None:
    page_done(page, "Who do you want to send it to?")
    hands.fill(page.get_by_label("Find an organisation"), search)
    hands.press(page.get_by_role("button", name="Search"))
    expect(page.get_by_label(name)).to_be_visible()
    page_done(page, "Who do you want to send it to?", shot="send-recipients" if shots else None)
    hands.choose(page.get_by_label(name))
    hands.press(page.get_by_role("button", name="Add selected organisation"))
    expect(page.locator(".govuk-summary-list")).to_contain_text(name)
    press_continue(hands, page)


def say_why(hands: Hands, page: Page, purpose: str, categories: list[str], *, shots: bool) -> None:
    page_done(page, "Why are you sharing it?")
    hands.choose(page.get_by_label(purpose))
    press_continue(hands, page)
    page_done(page, "What you are sharing, and why")
    for category in categories:
        hands.choose(page.get_by_label(category))
    hands.fill(page.get_by_label("Why is sharing necessary and proportionate?"), REASON)
    if shots:
        save_screenshot(page, SCREENSHOTS, "send-reason")
    press_continue(hands, page)


def send_record(hands: Hands, page: Page, *, shots: bool) -> str:
    """Send from "Check your answers"; return the reference the panel shows."""
    page_done(page, "Check your answers before sending", shot="send-check" if shots else None)
    hands.press(page.get_by_role("button", name="Send record"))
    page_done(page, "Record sent", shot="send-sent" if shots else None)
    reference = page.locator(".govuk-panel__body strong").inner_text()
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", reference)
    return reference


def wait_for_inbox(exchange: Exchange, org: OrgId, reference: str) -> None:
    """Wait until ``org``'s node holds the envelope whose id starts with the reference."""
    service = exchange.service(org)
    user = exchange.user(org, "dsl")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        views = exchange.run(service.inbox_items(user, limit=50, before=None))
        if any(short_reference(v.item.envelope.envelope_id) == reference for v in views):
            return
        time.sleep(0.25)  # the node delivers on its own loop; nothing on a page to wait on
    raise AssertionError(f"{reference} did not reach {org}")
