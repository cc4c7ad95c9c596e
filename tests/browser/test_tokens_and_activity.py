"""API tokens and account activity in Chromium, with JavaScript on and off, checked by axe.

The front door's administrator makes an API token (an empty form first), sees it once with
the warning to copy it now, finds it listed without its secret, revokes it after a
confirmation, and reads both on the account activity page, filtered to their own account.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import FRONT_DOOR, Exchange, running_exchange

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


def _make_token(admin: Page, base: str, name: str) -> str:
    """Make a token through the pages (an empty form first); return it, shown once."""
    admin.goto(base + "/admin/tokens")
    expect(admin).to_have_title("API tokens – Secure exchange")
    expect(admin.locator("nav[aria-label=Menu]")).to_contain_text("Account activity")
    assert_accessible(admin)
    admin.get_by_role("button", name="Make an API token").click()
    expect(admin).to_have_title("Make an API token – Secure exchange")
    expect(admin.get_by_label("Days until it expires")).to_have_value("90")
    assert_accessible(admin)

    admin.get_by_label("Days until it expires").fill("")
    admin.get_by_role("button", name="Make token").click()
    expect(admin).to_have_title("Error: Make an API token – Secure exchange")
    summary = admin.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Enter a name for the token")
    expect(summary).to_contain_text("Select the token's role")
    expect(summary).to_contain_text("Enter the number of days until the token expires")
    assert_accessible(admin)

    admin.get_by_label("Name").fill(name)
    admin.get_by_label("Staff member").check()
    admin.get_by_label("Days until it expires").fill("30")
    admin.get_by_role("button", name="Make token").click()
    expect(admin).to_have_title("API token made – Secure exchange")
    expect(admin.locator(".govuk-warning-text")).to_contain_text("Copy the token now")
    secret = admin.locator("#api-token").inner_text()
    assert len(secret) == 43
    assert secret not in admin.url
    assert_accessible(admin)
    return secret


def _revoke_token(admin: Page, name: str, secret: str) -> None:
    """From the token's page, find it listed without its secret and revoke it after asking."""
    admin.get_by_role("button", name="Back to API tokens").click()
    expect(admin.locator("main table")).to_contain_text(name)
    expect(admin.locator("main")).not_to_contain_text(secret)
    admin.get_by_role("link", name=f"Revoke the API token {name}").click()
    expect(admin).to_have_title("Revoke an API token – Secure exchange")
    assert_accessible(admin)
    admin.get_by_role("button", name="Revoke token").click()
    expect(admin.locator(".govuk-notification-banner")).to_contain_text("was revoked")
    expect(admin.locator("main table")).to_contain_text("Revoked")
    assert_accessible(admin)


def _read_activity(admin: Page, exchange: Exchange, base: str) -> None:
    """Read both on the activity page, also filtered to the administrator; a bad filter too."""
    admin.goto(base + "/admin/activity")
    expect(admin).to_have_title("Account activity – Secure exchange")
    table = admin.locator("main table")
    expect(table).to_contain_text("Made an API token")
    expect(table).to_contain_text("Revoked an API token")
    expect(table).to_contain_text("Signed in")
    assert_accessible(admin)
    me = exchange.account(FRONT_DOOR, "admin")
    admin.get_by_label("Account").select_option(label=f"admin of la:356 ({me.user_id})")
    admin.get_by_role("button", name="Show activity").click()
    expect(admin).to_have_url(f"{base}/admin/activity?account={_number(exchange, me.email)}")
    expect(admin.locator("main table")).to_contain_text("Revoked an API token")
    assert_accessible(admin)

    admin.goto(base + "/admin/activity?account=someone")
    expect(admin).to_have_title("Error: Account activity – Secure exchange")
    expect(admin.locator(".govuk-error-summary")).to_contain_text("Select an account from the list")
    assert_accessible(admin)


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_an_admin_makes_and_revokes_a_token_and_reads_the_activity(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """Make (shown once), list, revoke after asking; the activity page shows both, by account."""
    base = exchange.url(FRONT_DOOR)
    name = "case-system" if javascript else "mis-export"
    with exchange.page(browser, FRONT_DOOR, "admin", javascript=javascript) as admin:
        secret = _make_token(admin, base, name)
        _revoke_token(admin, name, secret)
        _read_activity(admin, exchange, base)


def _number(exchange: Exchange, email: str) -> int:
    account = exchange.run(exchange.service(FRONT_DOOR).store.account_by_email(email))
    assert account is not None
    return account.id
