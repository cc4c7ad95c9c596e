"""Journey 2 in Chromium: a DSL sends a referral with a PDF, and a CP file to a school.

The referral goes from Hillside to Stockport's front door, with JavaScript on and off,
every page (error states included) checked by axe-core; a CP file goes to Moorside, which
collects from its relay mailbox; the send journey is also done with the keyboard alone.
The main pages are saved as screenshots in docs/ui/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Final, Protocol

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from exchange.keys.ids import OrgId
from exchange.policy import LONDON
from exchange.web.words import short_reference
from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import FRONT_DOOR, RECEIVING, SCHOOL, Exchange, running_exchange
from tests.browser.keyboard import MAX_TABS, is_focused, tab_to
from tests.browser.screenshots import SCREENSHOTS, save_screenshot

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

PDF: Final = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
REASON: Final = "Concerns about neglect meet the threshold for a referral to the front door"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("exchange")) as running:
        yield running


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


def _page_done(page: Page, title: str, *, shot: str | None = None) -> None:
    """Check the page's title and accessibility, and save it when it is a main page."""
    expect(page).to_have_title(f"{title} – Secure exchange")
    expect(page.locator("h1")).to_have_count(1)
    assert_accessible(page)
    if shot is not None:
        save_screenshot(page, SCREENSHOTS, shot)


def _continue(hands: Hands, page: Page) -> None:
    hands.press(page.get_by_role("button", name="Continue"))


def _yes_no(hands: Hands, page: Page, question: str, answer: str) -> None:
    hands.choose(page.get_by_role("group", name=question).get_by_label(answer, exact=True))


def _date(hands: Hands, page: Page, question: str, day: str, month: str, year: str) -> None:
    group = page.get_by_role("group", name=question, exact=True)
    hands.fill(group.get_by_label("Day"), day)
    hands.fill(group.get_by_label("Month"), month)
    hands.fill(group.get_by_label("Year"), year)


def _contact(hands: Hands, page: Page) -> None:
    hands.fill(page.get_by_label("Full name"), "Dana Lead")
    hands.fill(page.get_by_label("Role", exact=True), "Designated safeguarding lead")
    hands.fill(page.get_by_label("Email address"), "dsl@hillside.example")


def _choose_kind(hands: Hands, page: Page, kind: str, *, shots: bool) -> None:
    _page_done(page, "What do you want to send?", shot="send-kind" if shots else None)
    hands.choose(page.get_by_label(kind, exact=True))
    _continue(hands, page)


def _referral_questions(hands: Hands, page: Page, *, shots: bool) -> None:
    """Answer the referral's question pages, seeing the errors of one page on the way."""
    _page_done(page, "Your contact details", shot="send-question" if shots else None)
    _contact(hands, page)
    _continue(hands, page)
    _page_done(page, "Consent and telling the family")
    _yes_no(hands, page, "Have the child's parents or carers been told about this referral?", "Yes")
    _yes_no(hands, page, "Have they agreed to the referral?", "Yes")
    _continue(hands, page)
    _page_done(page, "About the child")
    _continue(hands, page)  # nothing answered: the errors, linked to their fields
    _page_done(page, "Error: About the child", shot="send-question-errors" if shots else None)
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Enter given names")
    expect(summary).to_contain_text("Enter either date of birth or expected date of birth")
    hands.fill(page.get_by_label("Given names"), "Zebedee")
    hands.fill(page.get_by_label("Family name"), "Quillfeather")
    _date(hands, page, "Date of birth (optional)", "14", "3", "2015")
    hands.fill(page.get_by_label("Unique pupil number (UPN) (optional)"), "W356200124001")
    _continue(hands, page)
    _page_done(page, "People in the child's household")
    _continue(hands, page)
    _page_done(page, "What are you worried about?")
    hands.choose(page.get_by_label("Neglect"))
    _continue(hands, page)
    _page_done(page, "Your concerns")
    hands.fill(page.get_by_label("Your concerns"), "Arrives hungry most days and is withdrawn.")
    _continue(hands, page)
    _page_done(page, "Early help")
    _yes_no(hands, page, "Has early help been tried?", "No")
    _continue(hands, page)
    _page_done(page, "Level of need")
    hands.choose(page.get_by_label("Level 3: complex needs"))
    _continue(hands, page)
    _page_done(page, "Is the child at immediate risk of harm?")
    hands.choose(page.get_by_label("No", exact=True))
    _continue(hands, page)


def _upload(page: Page, name: str, data: bytes) -> None:
    page.get_by_label("Upload a file").set_input_files(
        {"name": name, "mimeType": "application/octet-stream", "buffer": data}
    )
    page.get_by_role("button", name="Upload file").click()


def _recipient(hands: Hands, page: Page, search: str, name: str, *, shots: bool) -> None:
    _page_done(page, "Who do you want to send it to?")
    hands.fill(page.get_by_label("Find an organisation"), search)
    hands.press(page.get_by_role("button", name="Search"))
    expect(page.get_by_label(name)).to_be_visible()
    _page_done(page, "Who do you want to send it to?", shot="send-recipients" if shots else None)
    hands.choose(page.get_by_label(name))
    hands.press(page.get_by_role("button", name="Add organisation"))
    expect(page.locator(".govuk-summary-list")).to_contain_text(name)
    _continue(hands, page)


def _why(hands: Hands, page: Page, purpose: str, categories: list[str], *, shots: bool) -> None:
    _page_done(page, "Why are you sharing it?")
    hands.choose(page.get_by_label(purpose))
    _continue(hands, page)
    _page_done(page, "What you are sharing, and why")
    for category in categories:
        hands.choose(page.get_by_label(category))
    hands.fill(page.get_by_label("Why is sharing necessary and proportionate?"), REASON)
    if shots:
        save_screenshot(page, SCREENSHOTS, "send-reason")
    _continue(hands, page)


def _send(hands: Hands, page: Page, *, shots: bool) -> str:
    """Send from "Check your answers"; return the reference the panel shows."""
    _page_done(page, "Check your answers before sending", shot="send-check" if shots else None)
    hands.press(page.get_by_role("button", name="Send record"))
    _page_done(page, "Record sent", shot="send-sent" if shots else None)
    reference = page.locator(".govuk-panel__body strong").inner_text()
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", reference)
    return reference


def _wait_for_inbox(exchange: Exchange, org: OrgId, reference: str) -> None:
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


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_dsl_sends_a_referral_with_a_pdf_to_the_front_door(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """Kind, questions (and their errors), a PDF, the recipient, why, check, send."""
    shots = javascript
    with exchange.page(browser, SCHOOL, "dsl", javascript=javascript) as page:
        page.goto(exchange.url(SCHOOL) + "/send")
        hands = Mouse()
        _choose_kind(hands, page, "Referral", shots=shots)
        _referral_questions(hands, page, shots=shots)
        _page_done(page, "Add documents")
        _upload(page, "virus.exe", b"MZ\x90\x00not a document")
        _page_done(page, "Error: Add documents")
        expect(page.locator(".govuk-error-summary")).to_contain_text(
            "The selected file must be a PDF"
        )
        _upload(page, "chronology.pdf", PDF)
        _page_done(page, "Add documents", shot="send-files" if shots else None)
        expect(page.locator(".govuk-summary-list")).to_contain_text("chronology.pdf")
        _continue(hands, page)
        _recipient(hands, page, "front door", "Stockport children's front door", shots=shots)
        _why(
            hands,
            page,
            "Referral of a child to children's social care (LA front door / MASH)",
            ["Who the child is: name, date of birth and identifiers", "Safeguarding concerns"],
            shots=shots,
        )
        reference = _send(hands, page, shots=shots)
        expect(page.get_by_text("They must acknowledge it by 5pm on")).to_be_visible()
        # Back to "Check your answers": the draft was sent, so it is the same confirmation.
        page.go_back()
        expect(page).to_have_title("Record sent – Secure exchange")
        expect(page.locator(".govuk-panel__body strong")).to_have_text(reference)
    _wait_for_inbox(exchange, FRONT_DOOR, reference)
    sent = exchange.run(
        exchange.service(SCHOOL).sent_items(exchange.user(SCHOOL, "dsl"), limit=50, before=None)
    )
    assert [short_reference(v.item.envelope.envelope_id) for v in sent].count(reference) == 1


def test_a_cp_file_reaches_a_school_that_collects_from_its_relay(
    exchange: Exchange, browser: Browser
) -> None:
    """A child protection file with a document, to Moorside through its relay mailbox."""
    with exchange.page(browser, SCHOOL, "dsl") as page:
        page.goto(exchange.url(SCHOOL) + "/send")
        hands = Mouse()
        _choose_kind(hands, page, "Child protection file", shots=False)
        _page_done(page, "About the pupil")
        page.get_by_label("Given names").fill("Zebedee")
        page.get_by_label("Family name").fill("Quillfeather")
        _date(hands, page, "Date of birth", "14", "3", "2015")
        page.get_by_label("Unique pupil number (UPN)").fill("W356200124001")
        _continue(hands, page)
        _page_done(page, "Your school's URN")
        expect(page.get_by_label("Your school's URN")).to_have_value("106123")
        _continue(hands, page)
        _page_done(page, "The new school's URN")
        page.get_by_label("The new school's URN").fill("106124")
        _continue(hands, page)
        _page_done(page, "Date the pupil left your school")
        today = datetime.now(LONDON).date()
        day, month, year = str(today.day), str(today.month), str(today.year)
        _date(hands, page, "Date the pupil left your school", day, month, year)
        _continue(hands, page)
        _page_done(page, "Date the new school was confirmed")
        _date(hands, page, "Date the new school was confirmed", day, month, year)
        _continue(hands, page)
        _page_done(page, "The pupil's status")
        for question in (
            "Is the pupil on a child protection plan?",
            "Is the pupil a child in need?",
            "Is the pupil looked after by a local authority?",
            "Does the pupil have an education, health and care plan (EHCP)?",
            "Has the pupil been referred to Channel (the Prevent programme)?",
        ):
            _yes_no(hands, page, question, "No")
        _continue(hands, page)
        _page_done(page, "Summary of the file")
        page.get_by_label("Summary of the file").fill("Chronology and notes of concern enclosed.")
        _continue(hands, page)
        _page_done(page, "Your contact details")
        _contact(hands, page)
        _continue(hands, page)
        _page_done(page, "Add documents")
        page.get_by_label("Chronology").check()
        _upload(page, "chronology.pdf", PDF)
        expect(page.locator(".govuk-summary-list")).to_contain_text("Chronology")
        _continue(hands, page)
        _recipient(hands, page, "106124", "Moorside Primary School", shots=False)
        _why(
            hands,
            page,
            "Transfer of a child protection file to the pupil's next school",
            ["Who the child is: name, date of birth and identifiers", "Safeguarding concerns"],
            shots=False,
        )
        reference = _send(hands, page, shots=False)
        expect(page.get_by_text("It must reach the new school by")).to_be_visible()
    _wait_for_inbox(exchange, RECEIVING, reference)


def test_the_send_journey_with_the_keyboard_alone(exchange: Exchange, browser: Browser) -> None:
    """Every control reached with Tab and worked with Space or Enter; the record is sent."""
    with exchange.page(browser, SCHOOL, "staff") as page:
        page.goto(exchange.url(SCHOOL) + "/send")
        hands = Keyboard(page)
        _choose_kind(hands, page, "Referral", shots=False)
        _referral_questions(hands, page, shots=False)
        _page_done(page, "Add documents")
        _continue(hands, page)
        _recipient(hands, page, "356", "Stockport children's front door", shots=False)
        _why(
            hands,
            page,
            "Referral of a child to children's social care (LA front door / MASH)",
            ["Who the child is: name, date of birth and identifiers"],
            shots=False,
        )
        reference = _send(hands, page, shots=False)
    _wait_for_inbox(exchange, FRONT_DOOR, reference)


def test_refusals_in_the_browser_are_plain_and_accessible(
    exchange: Exchange, browser: Browser
) -> None:
    """A decision not to share (with its error state), a form without its token (403)."""
    with exchange.page(browser, SCHOOL, "dsl", javascript=False) as page:
        page.goto(exchange.url(SCHOOL) + "/send/not-shared")
        _page_done(page, "Record a decision not to share", shot="send-not-shared")
        page.get_by_role("button", name="Record the decision").click()
        _page_done(page, "Error: Record a decision not to share")
        expect(page.locator(".govuk-error-summary")).to_contain_text(
            "Select why you decided not to share"
        )
        page.get_by_label("Reply to an LA's information request").check()
        page.get_by_label("Which organisation asked, or would have received it?").select_option(
            str(FRONT_DOOR)
        )
        page.get_by_label("The organisation does not hold the information asked for").check()
        page.get_by_label("Your reasons").fill("We hold no records about this family")
        page.get_by_role("button", name="Record the decision").click()
        _page_done(page, "Decision recorded")
    with exchange.page(browser, SCHOOL, "dsl") as page:
        # A form whose token was tampered with: the 403 page, and nothing recorded.
        page.goto(exchange.url(SCHOOL) + "/send")
        page.locator("main input[name=csrf_token]").evaluate("el => el.value = 'tampered'")
        page.get_by_label("Referral", exact=True).check()
        page.get_by_role("button", name="Continue").click()
        _page_done(page, "This form has expired")
