"""Confirming it's you with a passkey in Chromium, with its virtual authenticator.

The front door's designated lead (who has an authenticator app and adds a passkey) signs
in with the passkey alone and opens a referral. The node's clock then moves past the
step-up window while the record page is in use: the record now leads to "Confirm it's
you", which offers "Confirm with a passkey". With the authenticator failing, the confirm
is refused on a page that says so plainly and shows nothing of the record; with it
working, the person lands back on the record. The confirm page, with its passkey option
shown, and the refusal are checked by axe-core.

WebAuthn will not take an IP address as the relying party's ID, so for the test the front
door's node is named ``https://localhost:<port>`` (as in test_passkeys_journey.py), after
the referral reached it from Hillside.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import pytest
from playwright.sync_api import Browser, CDPSession, Page, expect

from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import (
    FRONT_DOOR,
    ORGS,
    PASSWORD,
    SCHOOL,
    Exchange,
    new_context,
    running_exchange,
)
from tests.browser.test_inbox_journey import _send
from tests.browser.test_passkeys_journey import AUTHENTICATOR
from tests.browser.test_step_up_journey import MOVE, TITLE
from tests.web.synthetic import GIVEN, referral

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

SUFFIX: Final = " – Secure exchange"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start Hillside's and the front door's nodes once for this module."""
    orgs = [spec for spec in ORGS if spec.org in {SCHOOL, FRONT_DOOR}]
    with running_exchange(tmp_path_factory.mktemp("exchange"), orgs) as running:
        yield running


@pytest.fixture
def referral_opened(exchange: Exchange) -> bytes:
    """Hillside refers a child to the front door, which opens it; return its digest."""
    digest = _send(exchange, exchange.user(SCHOOL, "dsl"), referral())
    exchange.run(exchange.service(FRONT_DOOR).open_item(exchange.user(FRONT_DOOR, "dsl"), digest))
    return digest


@pytest.fixture
def localhost(exchange: Exchange, referral_opened: bytes) -> Iterator[str]:
    """Name the front door's node ``localhost`` once the referral is there; return its URL."""
    del referral_opened  # delivered first: peers sign their requests for the node's address
    node = exchange.deployment.node_of(FRONT_DOOR)
    address = node.service.public_url
    base = f"https://localhost:{node.port}"
    node.set_public_url(base)
    yield base
    node.set_public_url(address)


def _checked(page: Page, title: str) -> None:
    """Wait for the page titled ``title`` and check it with axe-core."""
    expect(page).to_have_title(title + SUFFIX)
    assert_accessible(page)


def _sign_in_and_add_a_passkey(exchange: Exchange, page: Page, base: str) -> None:
    """Sign in with the password and the app's code, add a passkey, sign out."""
    account = exchange.account(FRONT_DOOR, "dsl")
    page.goto(base + "/sign-in")
    page.get_by_label("Email address").fill(account.email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Enter your security code").fill(account.next_code())
    page.get_by_role("button", name="Continue").click()
    page.goto(base + "/account/passkeys/add")
    page.get_by_label("Name your passkey").fill("Work laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Your passkey was added")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_title("You have signed out" + SUFFIX)


def _user_verified(cdp: CDPSession, authenticator: str, *, verified: bool) -> None:
    """Make the virtual authenticator pass or fail its user verification (fingerprint)."""
    cdp.send(
        "WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": verified}
    )


def test_a_passkey_confirms_it_s_you_and_returns_to_the_record(
    exchange: Exchange, referral_opened: bytes, localhost: str, browser: Browser
) -> None:
    """Sign in with a passkey, open, wait past the window, refused once, confirm, land back."""
    item = f"{localhost}/inbox/{referral_opened.hex()}"
    context = new_context(browser)
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        found = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
        authenticator = str(found["authenticatorId"])
        _sign_in_and_add_a_passkey(exchange, page, localhost)

        # The passkey alone signs in, at the record asked for.
        page.goto(item)
        expect(page).to_have_title("Sign in" + SUFFIX)
        page.get_by_role("button", name="Sign in with a passkey").click()
        expect(page).to_have_url(item)
        expect(page.locator("main")).to_contain_text(GIVEN)

        with exchange.clocks_moved(FRONT_DOOR, by=MOVE):
            page.reload()
            expect(page.locator("main")).to_contain_text(GIVEN)
        with exchange.clocks_moved(FRONT_DOOR, by=2 * MOVE):
            page.reload()
            _checked(page, "Confirm it's you")
            confirm = page.url
            main = page.locator("main")
            expect(main).not_to_contain_text(GIVEN)
            passkey = page.get_by_role("button", name="Confirm with a passkey")
            expect(passkey).to_be_visible()
            expect(page.get_by_role("heading", name="Confirm with a passkey")).to_be_visible()

            # The fingerprint is not recognised: refused in a sentence, the record not shown.
            _user_verified(cdp, authenticator, verified=False)
            passkey.click()
            _checked(page, "Your passkey was not accepted")
            expect(main).to_contain_text("Your passkey was not")
            expect(main).not_to_contain_text(GIVEN)
            expect(main).not_to_contain_text(TITLE)
            page.goto(item)
            expect(page).to_have_url(confirm)

            _user_verified(cdp, authenticator, verified=True)
            page.get_by_role("button", name="Confirm with a passkey").click()
            expect(page).to_have_url(item)
            _checked(page, TITLE)
            expect(page.locator("main")).to_contain_text(GIVEN)
    finally:
        context.close()
