"""The send journey in Chromium while the school's outbox is behind: the busy page.

A DSL fills a referral, presses Send while the node is busy and sees "The service is busy"
(checked by axe-core, with JavaScript on and off), goes back to the answers, and sends it
once the outbox has caught up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

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
)
from tests.held_outbox import outbox_held
from tests.web.synthetic import referral

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


async def _caught_up(exchange: Exchange) -> None:
    store = exchange.service(SCHOOL).store
    deadline = time.monotonic() + 20
    while store.outbox_backlog:
        assert time.monotonic() < deadline, "the outbox did not catch up"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_send_while_busy_says_so_and_sends_once_caught_up(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """Busy page (accessible, no script needed), back to the answers, then sent."""
    node = exchange.deployment.node_of(SCHOOL)
    with exchange.page(browser, SCHOOL, "dsl", javascript=javascript) as page:
        page.goto(exchange.url(SCHOOL) + "/send")
        hands = Mouse()
        choose_kind(hands, page, "Referral", shots=False)
        referral_questions(hands, page, shots=False)
        page_done(page, "Add documents")
        upload(page, "chronology.pdf", PDF)
        page_done(page, "Add documents")
        press_continue(hands, page)
        choose_recipient(hands, page, "front door", "Stockport children's front door", shots=False)
        say_why(
            hands,
            page,
            "Referral of a child to children's social care (LA front door / MASH)",
            ["Who the child is: name, date of birth and identifiers", "Safeguarding concerns"],
            shots=False,
        )
        page_done(page, "Check your answers before sending")
        with outbox_held(node, max_backlog=1):
            exchange.run(node.service.submit(exchange.user(SCHOOL, "dsl"), referral(FRONT_DOOR)))
            with page.expect_response(lambda r: r.url.endswith("/send")) as answer:
                hands.press(page.get_by_role("button", name="Send record"))
            assert answer.value.status == 503
            page_done(page, "The service is busy")
            expect(page.get_by_text("Try again in a minute.")).to_be_visible()
            hands.press(page.get_by_role("button", name="Go back to your answers"))
            page_done(page, "Check your answers before sending")
        exchange.run(_caught_up(exchange))
        send_record(hands, page, shots=False)
