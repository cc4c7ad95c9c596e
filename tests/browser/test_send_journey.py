"""Journey 2 in Chromium: a DSL sends a referral with a PDF, and a CP file to a school.

The referral goes from Hillside to Stockport's front door, with JavaScript on and off,
every page (error states included) checked by axe-core; a CP file goes to Moorside, which
collects from its relay mailbox; the send journey is also done with the keyboard alone.
The main pages are saved as screenshots in docs/ui/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from playwright.sync_api import Browser, expect

from exchange.model import short_reference
from exchange.policy import LONDON
from tests.browser.exchange_nodes import FRONT_DOOR, RECEIVING, SCHOOL, Exchange, running_exchange
from tests.browser.send_steps import (
    PDF,
    Keyboard,
    Mouse,
    choose_kind,
    choose_recipient,
    fill_contact,
    fill_date,
    page_done,
    press_continue,
    referral_questions,
    say_why,
    send_record,
    upload,
    wait_for_inbox,
    yes_no,
)

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


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_dsl_sends_a_referral_with_a_pdf_to_the_front_door(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """Kind, questions (and their errors), a PDF, the recipient, why, check, send."""
    shots = javascript
    with exchange.page(browser, SCHOOL, "dsl", javascript=javascript) as page:
        page.goto(exchange.url(SCHOOL) + "/send")
        hands = Mouse()
        choose_kind(hands, page, "Referral", shots=shots)
        referral_questions(hands, page, shots=shots)
        page_done(page, "Add documents")
        upload(page, "virus.exe", b"MZ\x90\x00not a document")
        page_done(page, "Error: Add documents")
        expect(page.locator(".govuk-error-summary")).to_contain_text(
            "The selected file must be a PDF"
        )
        upload(page, "chronology.pdf", PDF)
        page_done(page, "Add documents", shot="send-files" if shots else None)
        expect(page.locator(".govuk-summary-list")).to_contain_text("chronology.pdf")
        press_continue(hands, page)
        choose_recipient(hands, page, "front door", "Stockport children's front door", shots=shots)
        say_why(
            hands,
            page,
            "Referral of a child to children's social care (LA front door / MASH)",
            ["Who the child is: name, date of birth and identifiers", "Safeguarding concerns"],
            shots=shots,
        )
        reference = send_record(hands, page, shots=shots)
        expect(page.get_by_text("They must acknowledge it by 5pm on")).to_be_visible()
        # Back to "Check your answers": the draft was sent, so it is the same confirmation.
        page.go_back()
        expect(page).to_have_title("Record sent – Secure exchange")
        expect(page.locator(".govuk-panel__body strong")).to_have_text(reference)
    wait_for_inbox(exchange, FRONT_DOOR, reference)
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
        choose_kind(hands, page, "Child protection file", shots=False)
        page_done(page, "About the pupil")
        page.get_by_label("Given names").fill("Zebedee")
        page.get_by_label("Family name").fill("Quillfeather")
        fill_date(hands, page, "Date of birth", "14", "3", "2015")
        page.get_by_label("Unique pupil number (UPN)").fill("W356200124001")
        press_continue(hands, page)
        page_done(page, "Your school's URN")
        expect(page.get_by_label("Your school's URN")).to_have_value("106123")
        press_continue(hands, page)
        page_done(page, "The new school's URN")
        page.get_by_label("The new school's URN").fill("106124")
        press_continue(hands, page)
        page_done(page, "Date the pupil left your school")
        today = datetime.now(LONDON).date()
        day, month, year = str(today.day), str(today.month), str(today.year)
        fill_date(hands, page, "Date the pupil left your school", day, month, year)
        press_continue(hands, page)
        page_done(page, "Date the new school was confirmed")
        fill_date(hands, page, "Date the new school was confirmed", day, month, year)
        press_continue(hands, page)
        page_done(page, "The pupil's status")
        for question in (
            "Is the pupil on a child protection plan?",
            "Is the pupil a child in need?",
            "Is the pupil looked after by a local authority?",
            "Does the pupil have an education, health and care plan (EHCP)?",
            "Has the pupil been referred to Channel (the Prevent programme)?",
        ):
            yes_no(hands, page, question, "No")
        press_continue(hands, page)
        page_done(page, "Summary of the file")
        page.get_by_label("Summary of the file").fill("Chronology and notes of concern enclosed.")
        press_continue(hands, page)
        page_done(page, "Your contact details")
        fill_contact(hands, page)
        press_continue(hands, page)
        page_done(page, "Add documents")
        page.get_by_label("Chronology").check()
        upload(page, "chronology.pdf", PDF)
        expect(page.locator(".govuk-summary-list")).to_contain_text("Chronology")
        press_continue(hands, page)
        choose_recipient(hands, page, "106124", "Moorside Primary School", shots=False)
        say_why(
            hands,
            page,
            "Transfer of a child protection file to the pupil's next school",
            ["Who the child is: name, date of birth and identifiers", "Safeguarding concerns"],
            shots=False,
        )
        reference = send_record(hands, page, shots=False)
        expect(page.get_by_text("It must reach the new school by")).to_be_visible()
    wait_for_inbox(exchange, RECEIVING, reference)


def test_the_send_journey_with_the_keyboard_alone(exchange: Exchange, browser: Browser) -> None:
    """Every control reached with Tab and worked with Space or Enter; the record is sent."""
    with exchange.page(browser, SCHOOL, "staff") as page:
        page.goto(exchange.url(SCHOOL) + "/send")
        hands = Keyboard(page)
        choose_kind(hands, page, "Referral", shots=False)
        referral_questions(hands, page, shots=False)
        page_done(page, "Add documents")
        press_continue(hands, page)
        choose_recipient(hands, page, "356", "Stockport children's front door", shots=False)
        say_why(
            hands,
            page,
            "Referral of a child to children's social care (LA front door / MASH)",
            ["Who the child is: name, date of birth and identifiers"],
            shots=False,
        )
        reference = send_record(hands, page, shots=False)
    wait_for_inbox(exchange, FRONT_DOOR, reference)


def test_refusals_in_the_browser_are_plain_and_accessible(
    exchange: Exchange, browser: Browser
) -> None:
    """A decision not to share (with its error state), a form without its token (403)."""
    with exchange.page(browser, SCHOOL, "dsl", javascript=False) as page:
        page.goto(exchange.url(SCHOOL) + "/send/not-shared")
        page_done(page, "Record a decision not to share", shot="send-not-shared")
        page.get_by_role("button", name="Record the decision").click()
        page_done(page, "Error: Record a decision not to share")
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
        page_done(page, "Decision recorded")
    with exchange.page(browser, SCHOOL, "dsl") as page:
        # A form whose token was tampered with: the 403 page, and nothing recorded.
        page.goto(exchange.url(SCHOOL) + "/send")
        page.locator("main input[name=csrf_token]").evaluate("el => el.value = 'tampered'")
        page.get_by_label("Referral", exact=True).check()
        page.get_by_role("button", name="Continue").click()
        page_done(page, "This form has expired")
