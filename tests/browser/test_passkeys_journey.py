"""Passkeys in Chromium, with its virtual authenticator: add, sign in, confirm, remove.

Chromium's DevTools WebAuthn domain gives each test's page a virtual platform authenticator
(CTAP2, internal transport, resident keys, user verification that always succeeds), so the
real ``navigator.credentials`` calls of ``passkeys.js`` run against it. WebAuthn will not
take an IP address as the relying party's ID, so the node's public URL is
``https://localhost:<port>`` and the browser goes there (its certificate names 127.0.0.1
only, and comes from the test's own CA: the context ignores the certificate errors, which
Chromium allows on localhost). Every page is checked by axe-core, and with JavaScript off the
passkey parts stay hidden while the rest works.

The step-up page (``/sign-in/confirm``) is another change's: here the passkey's part of
``sign_in_other_ways.html`` is used for the second step of a sign-in, on the security code
page, which raises the same session as confirming it's you does.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, CDPSession, Page, expect

from exchange.auth.totp import TotpSecret, code_at
from exchange.demo.loopback import OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import User
from exchange.service.node_service import NodeService
from tests.browser.accessibility import NO_JAVASCRIPT, assert_accessible
from tests.browser.conftest import ACTION_TIMEOUT_MS, CONTEXT_OPTIONS
from tests.browser.server import BackgroundLoop

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

SCHOOL = OrgId("urn:106123")
EMAIL = "dsl@hillside.example"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account's password
TITLE = " – Secure exchange"
#: A virtual platform authenticator like a laptop's fingerprint reader.
AUTHENTICATOR: dict[str, Any] = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@dataclass
class School:
    """Hillside's node, named localhost, and a loop to call its service on."""

    base: str
    service: NodeService
    loop: BackgroundLoop


@pytest.fixture
def school(tmp_path: Path) -> Iterator[School]:
    """Start Hillside's node with one DSL account; name it ``localhost``."""
    with BackgroundLoop() as loop:
        deployment = loop.run(
            start_deployment(
                tmp_path / "web",
                [OrgSpec(SCHOOL, "Hillside Primary School", "school", "school")],
                kdf=KdfParams.fast_for_tests(),
            ),
            timeout=120,
        )
        try:
            node = deployment.node_of(SCHOOL)
            user = User(id="web-dsl", org=SCHOOL, name="Designated lead", role="dsl")
            loop.run(
                node.service.accounts.create_user(
                    user, hashlib.sha256(b"unused").digest(), email=EMAIL, password=PASSWORD
                )
            )
            base = f"https://localhost:{node.port}"
            node.set_public_url(base)
            yield School(base, node.service, loop)
        finally:
            loop.run(deployment.stop(), timeout=60)
    gc.collect()


def _page(browser: Browser, *, javascript: bool) -> Iterator[Page]:
    context = browser.new_context(
        java_script_enabled=javascript, ignore_https_errors=True, **CONTEXT_OPTIONS
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    if not javascript:
        NO_JAVASCRIPT.add(context)
    yield context.new_page()
    context.close()


@pytest.fixture
def staff_page(browser: Browser) -> Iterator[Page]:
    """Return a page with JavaScript on (tests name ``school`` first, so it closes first)."""
    yield from _page(browser, javascript=True)


@pytest.fixture
def nojs_page(browser: Browser) -> Iterator[Page]:
    """Return a page with JavaScript off."""
    yield from _page(browser, javascript=False)


def _authenticator(page: Page) -> tuple[CDPSession, str]:
    """Give the page's browser a virtual passkey authenticator; return it."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    found = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return cdp, str(found["authenticatorId"])


def _first_sign_in(page: Page, base: str) -> TotpSecret:
    """Sign in for the first time: the password, then set up the app; land in the inbox."""
    page.goto(base + "/sign-in")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_title("Set up your authenticator app" + TITLE)
    secret = TotpSecret.from_base32(page.locator("main code").inner_text())
    page.get_by_label("Code from your authenticator app").fill(code_at(secret, time.time()))
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_title("Inbox" + TITLE)
    return secret


def _add_passkey(page: Page, name: str) -> None:
    page.get_by_role("link", name="Passkeys").click()
    expect(page).to_have_title("Your passkeys" + TITLE)
    expect(page.get_by_text("You have not added a passkey")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page).to_have_title("Add a passkey" + TITLE)
    expect(page.get_by_text("Your browser cannot add a passkey here")).to_be_hidden()
    assert_accessible(page)
    # No name first: the page says so, and the browser was never asked.
    page.get_by_role("button", name="Add a passkey").click()
    expect(page).to_have_title("Error: Add a passkey" + TITLE)
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter a name for your passkey")
    assert_accessible(page)
    page.get_by_label("Name your passkey").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page).to_have_title("Your passkeys" + TITLE)
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Your passkey was added")
    expect(page.get_by_role("rowheader", name=name)).to_be_visible()
    expect(page.get_by_role("row", name=name)).to_contain_text("Not used yet")
    assert_accessible(page)


def test_add_a_passkey_sign_in_with_it_and_remove_it(school: School, staff_page: Page) -> None:
    """The whole journey in Chromium, every page checked by axe-core."""
    page = staff_page
    cdp, authenticator = _authenticator(page)
    _first_sign_in(page, school.base)
    _add_passkey(page, "Work laptop")
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    (credential,) = credentials["credentials"]
    assert credential["isResidentCredential"]  # discoverable: sign-in needs no address
    assert credential["rpId"] == "localhost"

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_title("You have signed out" + TITLE)

    # Sign in with the passkey alone: no address, no password, no code.
    page.goto(school.base + "/sent")
    expect(page).to_have_title("Sign in" + TITLE)
    passkey = page.get_by_role("button", name="Sign in with a passkey")
    expect(passkey).to_be_visible()
    assert_accessible(page)
    passkey.click()
    expect(page).to_have_title("Sent records" + TITLE)
    page.get_by_role("link", name="Passkeys").click()
    expect(page.get_by_role("row", name="Work laptop")).not_to_contain_text("Not used yet")

    # Remove it, after the confirmation page.
    page.get_by_role("link", name="Remove the passkey Work laptop").click()
    expect(page).to_have_title("Remove a passkey" + TITLE)
    expect(page.get_by_role("heading", level=1)).to_have_text("Remove the passkey Work laptop?")
    assert_accessible(page)
    page.get_by_role("button", name="Remove passkey").click()
    expect(page).to_have_title("Your passkeys" + TITLE)
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Your passkey was removed")
    expect(page.get_by_text("You have not added a passkey")).to_be_visible()
    assert_accessible(page)

    # The authenticator still holds the credential, but the node refuses it now.
    page.get_by_role("button", name="Sign out").click()
    page.goto(school.base + "/sign-in")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_title("Error: Sign in" + TITLE)
    expect(page.locator(".govuk-error-summary")).to_contain_text("Your passkey was not accepted")
    assert_accessible(page)


def test_a_passkey_gives_the_second_step_after_the_password(
    school: School, staff_page: Page
) -> None:
    """After the password, the security code page offers the passkey, which finishes sign-in."""
    page = staff_page
    _authenticator(page)
    _first_sign_in(page, school.base)
    _add_passkey(page, "Phone")
    page.get_by_role("button", name="Sign out").click()
    page.goto(school.base + "/sign-in?to=/overdue")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_title("Enter your security code" + TITLE)
    expect(page.get_by_label("Enter your security code")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_title("Overdue" + TITLE)


def test_a_cancelled_passkey_prompt_says_what_to_do(school: School, staff_page: Page) -> None:
    """With no authenticator answering, the sign-in page says the passkey was not used."""
    page = staff_page
    cdp, authenticator = _authenticator(page)
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    unverified = {**AUTHENTICATOR, "isUserVerified": False}
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": unverified})
    page.goto(school.base + "/sign-in")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_title("Error: Sign in" + TITLE, timeout=3 * ACTION_TIMEOUT_MS)
    expect(page.locator(".govuk-error-summary")).to_contain_text("Your passkey was not")
    assert_accessible(page)


def test_without_javascript_the_passkey_parts_stay_hidden(school: School, nojs_page: Page) -> None:
    """No passkey button shows without JavaScript; signing in and the pages work as before."""
    page = nojs_page
    page.goto(school.base + "/sign-in")
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()
    assert_accessible(page)
    _first_sign_in(page, school.base)
    page.get_by_role("link", name="Passkeys").click()
    expect(page).to_have_title("Your passkeys" + TITLE)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page).to_have_title("Add a passkey" + TITLE)
    expect(page.get_by_text("Your browser cannot add a passkey here")).to_be_visible()
    expect(page.get_by_label("Name your passkey")).to_be_hidden()
    assert_accessible(page)
