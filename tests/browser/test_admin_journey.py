"""The administrator's journey in Chromium, with JavaScript on and off, every page checked by axe.

Hillside's administrator invites a new DSL, who accepts in a browser of their own (password,
authenticator app, recovery codes, inbox); the administrator changes their role, resets
their app and disables and enables the account, and each change ends the DSL's session at
once. The front door's administrator, on a node it shares with the nurses, never sees the
nurses' accounts. A referral whose route refuses it becomes a dead letter on Hillside's node
page, and the administrator requeues it once the route is fixed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from exchange.auth.totp import TotpSecret, code_at
from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.policy import LONDON
from exchange.sharing.prepare import Submission
from exchange.web.words import day_words
from tests.browser.accessibility import assert_accessible
from tests.browser.exchange_nodes import (
    FRONT_DOOR,
    NURSES,
    SCHOOL,
    Exchange,
    new_context,
    running_exchange,
)
from tests.browser.screenshots import SCREENSHOTS, save_screenshot
from tests.node.helpers import adopt_everywhere, next_directory, publish_route
from tests.node.records import referral_submission

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

#: The password the invited DSL chooses.
NEW_PASSWORD: Final = "a long walk to the harbour"  # noqa: S105 - a test account's password
DAY: Final = 24 * 3600


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """Start the nodes once for this module."""
    with running_exchange(tmp_path_factory.mktemp("exchange")) as running:
        yield running


def _set_up_app(page: Page) -> None:
    """Set up the authenticator app on its page, save the recovery codes, continue."""
    expect(page).to_have_title("Set up your authenticator app – Secure exchange")
    secret = TotpSecret.from_base32(page.locator("main code").inner_text())
    page.get_by_label("Code from your authenticator app").fill(code_at(secret, time.time()))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_title("Save your recovery codes – Secure exchange")
    page.get_by_role("button", name="Continue").click()


def _sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(base + "/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Continue").click()


def _invite(admin: Page, base: str, name: str, email: str, *, shots: bool) -> str:
    """Invite a DSL through the pages (an empty form first); return the code shown once."""
    admin.goto(base + "/admin/accounts")
    expect(admin).to_have_title("Staff accounts – Secure exchange")
    assert_accessible(admin)
    if shots:
        save_screenshot(admin, SCREENSHOTS, "admin-accounts")
    admin.get_by_role("button", name="Invite someone").click()
    expect(admin).to_have_title("Invite someone – Secure exchange")
    assert_accessible(admin)
    admin.get_by_role("button", name="Create invitation").click()
    expect(admin).to_have_title("Error: Invite someone – Secure exchange")
    summary = admin.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Enter the person's full name")
    assert_accessible(admin)
    admin.get_by_label("Full name").fill(name)
    admin.get_by_label("Email address").fill(email)
    admin.get_by_label("Designated safeguarding lead").check()
    if shots:
        save_screenshot(admin, SCREENSHOTS, "admin-invite")
    admin.get_by_role("button", name="Create invitation").click()
    expect(admin).to_have_title("Invitation created – Secure exchange")
    assert_accessible(admin)
    if shots:
        save_screenshot(admin, SCREENSHOTS, "admin-invitation-created")
    code = admin.locator("#invitation-code").inner_text()
    assert code not in admin.url
    return code


def _accept(dsl: Page, base: str, email: str, code: str) -> None:
    """Accept the invitation (a wrong code first), set up the app and reach the inbox."""
    dsl.goto(base + "/sign-in/invitation")
    expect(dsl).to_have_title("Set up your account – Secure exchange")
    assert_accessible(dsl)
    for typed in ("K7QM-3XWD-P9FH-2TRC", code):
        dsl.get_by_label("Email address").fill(email)
        dsl.get_by_label("Invitation code").fill(typed)
        dsl.get_by_label("Create a password").fill(NEW_PASSWORD)
        dsl.get_by_label("Confirm your password").fill(NEW_PASSWORD)
        dsl.get_by_role("button", name="Continue").click()
        if typed != code:
            expect(dsl).to_have_title("Error: Set up your account – Secure exchange")
            expect(dsl.locator(".govuk-error-summary a")).to_have_attribute("href", "#code")
            assert_accessible(dsl)
    _set_up_app(dsl)
    expect(dsl).to_have_title("Inbox – Secure exchange")


def _change_role(admin: Page, dsl: Page, base: str, name: str, *, shots: bool) -> None:
    """Change the DSL's role: their session ends at once."""
    admin.goto(base + "/admin/accounts")
    expect(admin.locator("main table")).to_contain_text(name)
    admin.get_by_role("link", name=f"Manage the account of {name}").click()
    expect(admin).to_have_title("Manage an account – Secure exchange")
    assert_accessible(admin)
    if shots:
        save_screenshot(admin, SCREENSHOTS, "admin-account")
    admin.get_by_label("Staff member").check()
    admin.get_by_role("button", name="Change role").click()
    expect(admin.locator(".govuk-notification-banner")).to_contain_text("role was changed")
    assert_accessible(admin)
    dsl.reload()
    expect(dsl).to_have_title("Sign in – Secure exchange")


def _reset_app(admin: Page, dsl: Page, base: str, name: str, email: str) -> None:
    """Reset the DSL's app: their next sign-in sets one up again."""
    admin.get_by_role("link", name=f"Reset authenticator app of {name}").click()
    expect(admin).to_have_title("Reset an authenticator app – Secure exchange")
    assert_accessible(admin)
    admin.get_by_role("button", name="Reset authenticator app").click()
    expect(admin.locator(".govuk-notification-banner")).to_contain_text("was reset")
    _sign_in(dsl, base, email, NEW_PASSWORD)
    _set_up_app(dsl)
    expect(dsl).to_have_title("Inbox – Secure exchange")


def _disable_and_enable(admin: Page, dsl: Page, base: str, name: str, email: str) -> None:
    """Disabled: signed out at once, and refused at sign-in; enabled: back in."""
    admin.get_by_role("link", name=f"Disable account of {name}").click()
    expect(admin).to_have_title("Disable an account – Secure exchange")
    assert_accessible(admin)
    admin.get_by_role("button", name="Disable account").click()
    expect(admin.locator(".govuk-notification-banner")).to_contain_text("was disabled")
    assert_accessible(admin)
    dsl.reload()
    expect(dsl).to_have_title("Sign in – Secure exchange")
    _sign_in(dsl, base, email, NEW_PASSWORD)
    expect(dsl).to_have_title("Error: Sign in – Secure exchange")
    admin.get_by_role("button", name="Enable account").click()
    expect(admin.locator(".govuk-notification-banner")).to_contain_text("was enabled")
    _sign_in(dsl, base, email, NEW_PASSWORD)
    expect(dsl).to_have_title("Enter your security code – Secure exchange")


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_an_admin_invites_a_dsl_then_changes_resets_disables_and_enables_them(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """The whole accounts journey; the DSL's session ends at each change, at once."""
    base = exchange.url(SCHOOL)
    name = "Sam Patel" if javascript else "Alex Jones"
    email = f"{name.split(maxsplit=1)[0].lower()}@hillside.example"
    with exchange.page(browser, SCHOOL, "admin", javascript=javascript) as admin:
        code = _invite(admin, base, name, email, shots=javascript)
        # The new DSL, in their own browser.
        context = new_context(browser, javascript=javascript)
        try:
            dsl = context.new_page()
            _accept(dsl, base, email, code)
            _change_role(admin, dsl, base, name, shots=javascript)
            _reset_app(admin, dsl, base, name, email)
            _disable_and_enable(admin, dsl, base, name, email)
        finally:
            context.close()

        # The last administrator cannot demote themselves: the refusal says why.
        me = exchange.run(exchange.service(SCHOOL).store.account_by_email("admin@hillside.example"))
        assert me is not None
        admin.goto(f"{base}/admin/accounts/{me.id}")
        admin.get_by_label("Staff member").check()
        admin.get_by_role("button", name="Change role").click()
        expect(admin).to_have_title("Error: Manage an account – Secure exchange")
        expect(admin.locator(".govuk-error-summary")).to_contain_text(
            "must keep an administrator who can sign in"
        )
        assert_accessible(admin)


def test_the_front_doors_admin_never_sees_the_nurses_accounts(
    exchange: Exchange, browser: Browser
) -> None:
    """On the node the two share, the nurses' accounts are neither listed nor reachable."""
    nurse = exchange.run(exchange.service(NURSES).store.account_by_email("dsl@nurses.example"))
    assert nurse is not None
    with exchange.page(browser, FRONT_DOOR, "admin") as page:
        base = exchange.url(FRONT_DOOR)
        page.goto(base + "/admin/accounts")
        expect(page.locator("main table")).to_contain_text("dsl@frontdoor.example")
        expect(page.locator("main")).not_to_contain_text("nurses.example")
        page.goto(f"{base}/admin/accounts/{nurse.id}")
        expect(page).to_have_title("Page not found – Secure exchange")
        assert_accessible(page)


async def _publish(exchange: Exchange, org: OrgId, address: str) -> None:
    publish_route(exchange.deployment, org, address)


async def _delivery_states(exchange: Exchange, digest: bytes) -> set[str]:
    view = await exchange.service(SCHOOL).sent_item(exchange.user(SCHOOL, "dsl"), digest)
    return {r.delivery.state for r in view.recipients}


def _wait_for(exchange: Exchange, digest: bytes, state: str) -> None:
    deadline = time.monotonic() + 20
    while exchange.run(_delivery_states(exchange, digest)) != {state}:
        assert time.monotonic() < deadline, f"the item did not become {state}"
        time.sleep(0.05)


def _referral() -> Submission:
    doc: dict[str, Any] = referral_submission([FRONT_DOOR])
    return Submission(
        recipients=(FRONT_DOOR,),
        purpose=doc["purpose"],
        record_kind=doc["record_kind"],
        record=doc["record"],
        categories=tuple(doc["categories"]),
        reason=doc["reason"],
    )


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_dead_letter_is_requeued_from_the_node_page(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """A route that refuses makes a dead letter; once it is fixed, the admin requeues it."""
    school = exchange.service(SCHOOL)
    front_door_url = exchange.url(FRONT_DOOR)
    # The front door's route now leads to Hillside's own node, which refuses the referral.
    exchange.run(_publish(exchange, FRONT_DOOR, exchange.url(SCHOOL)))
    submitted = exchange.run(school.submit(exchange.user(SCHOOL, "dsl"), _referral()))
    _wait_for(exchange, submitted.digest, "dead")
    reference = submitted.digest.hex()[:12]
    with exchange.page(browser, SCHOOL, "admin", javascript=javascript) as page:
        page.goto(exchange.url(SCHOOL) + "/admin/node")
        expect(page).to_have_title("Node – Secure exchange")
        dead = page.locator("main table").filter(has_text=reference)
        expect(dead).to_contain_text("Stockport children's front door")
        expect(page.locator("main")).to_contain_text("Failing")
        assert_accessible(page)
        if javascript:
            save_screenshot(page, SCREENSHOTS, "admin-node")
        exchange.run(_publish(exchange, FRONT_DOOR, front_door_url))
        page.get_by_role("link", name=f"Requeue item {reference}").click()
        expect(page).to_have_title("Requeue dead letters – Secure exchange")
        assert_accessible(page)
        page.get_by_role("button", name="Requeue").click()
        expect(page.locator(".govuk-notification-banner")).to_contain_text(
            "1 dead letter was put back in the queue."
        )
        assert_accessible(page)
        _wait_for(exchange, submitted.digest, "delivered")
        page.goto(exchange.url(SCHOOL) + "/admin/node")
        expect(page.locator("main")).not_to_contain_text(reference)
    # The front door received it once.
    inbox = exchange.run(exchange.service(FRONT_DOOR).store.inbox(FRONT_DOOR, limit=50))
    assert [i.envelope.digest for i in inbox].count(submitted.digest) == 1


async def _adopt_everywhere(exchange: Exchange, directory: Directory, note: bytes) -> None:
    adopt_everywhere(exchange.deployment, directory, note)


def _directory_version(page: Page) -> Locator:
    """Return the value of the node page's directory version row."""
    row = page.locator(".govuk-summary-list__row").filter(
        has=page.locator("dt", has_text="Version")
    )
    return row.locator("dd")


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_an_admin_checks_for_a_new_directory_now(
    exchange: Exchange, browser: Browser, javascript: bool
) -> None:
    """A newer version in the directory file: adopted, and said so; checked again: none newer.

    The authority's newer version is put in the directory file the nodes share (as a node
    fetching it from the authority's address would write it); the others adopt it after.
    """
    deployment = exchange.deployment
    version = exchange.service(SCHOOL).directory.version
    directory, note = next_directory(deployment)
    deployment.node_of(SCHOOL).config.directory_file.write_bytes(note)
    with exchange.page(browser, SCHOOL, "admin", javascript=javascript) as page:
        page.goto(exchange.url(SCHOOL) + "/admin/node")
        expect(_directory_version(page)).to_have_text(str(version))
        page.get_by_role("button", name="Check for a new directory now").click()
        expect(page).to_have_url(exchange.url(SCHOOL) + "/admin/node?directory=adopted")
        expect(page).to_have_title("Node – Secure exchange")
        banner = page.locator(".govuk-notification-banner")
        expect(banner).to_have_count(1)
        expect(banner.locator(".govuk-notification-banner__title")).to_have_text("Success")
        expect(banner).to_contain_text(f"The node now uses directory version {version + 1}.")
        # The answer is in view, with JavaScript (the banner takes the focus) or without.
        expect(banner).to_be_in_viewport()
        expect(_directory_version(page)).to_have_text(str(version + 1))
        assert_accessible(page)
        if javascript:
            save_screenshot(page, SCREENSHOTS, "admin-node-directory-checked")

        page.get_by_role("button", name="Check for a new directory now").click()
        expect(page).to_have_url(exchange.url(SCHOOL) + "/admin/node?directory=unchanged")
        expect(banner).to_have_count(1)
        expect(banner).to_contain_text(
            f"There is no newer directory. The node uses version {version + 1}."
        )
        assert_accessible(page)
        # The banner says what happened once: the page seen again has none.
        page.goto(exchange.url(SCHOOL) + "/admin/node")
        expect(banner).to_have_count(0)
    assert exchange.service(SCHOOL).directory.version == version + 1
    # The other nodes take the same version, so that later directories follow on from it.
    exchange.run(_adopt_everywhere(exchange, directory, note))


@pytest.mark.parametrize(
    ("javascript", "days"), [(True, 30), (False, 7)], ids=["javascript", "no-javascript"]
)
def test_an_admin_is_warned_that_the_keys_expire_soon(
    exchange: Exchange, browser: Browser, javascript: bool, days: int
) -> None:
    """With the front door's keys expiring within 30 (or 7) days, the node page warns.

    It runs last: the LA node's clock is moved on, and a sign-in there uses an app code of
    that time, which later sign-ins at the real time could not follow.
    """
    keys = exchange.service(FRONT_DOOR).directory.organisation(FRONT_DOOR).keys
    expires = max(key.not_after for key in keys)
    on = day_words(datetime.fromtimestamp(expires, UTC).astimezone(LONDON).date())
    with (
        exchange.clocks_moved(FRONT_DOOR, to=expires - days * DAY + 60),
        exchange.page_at_node_time(browser, FRONT_DOOR, "admin", javascript=javascript) as page,
    ):
        page.goto(exchange.url(FRONT_DOOR) + "/admin/node")
        expect(page).to_have_title("Node – Secure exchange")
        warning = page.locator(".govuk-warning-text")
        expect(warning).to_have_count(1)
        expect(warning).to_contain_text(
            f"Warning Your organisation's keys expire in {days - 1} days, on {on}. "
            "Ask the directory's authority to publish a new key before then."
        )
        keys_table = page.get_by_role("table", name="Your organisation's key generations")
        expect(keys_table.locator(".govuk-tag--orange")).to_have_text(f"Expires in {days - 1} days")
        assert_accessible(page)
        if javascript:
            save_screenshot(page, SCREENSHOTS, "admin-node-keys-expiring")
