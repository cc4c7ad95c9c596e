"""The staff accounts pages over a running node: invite, accept, role, second factor, disable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.auth.totp import TotpSecret, code_at
from tests.web.admin_world import (
    CODE_RE,
    FRONT_DOOR,
    NURSES,
    PASSWORD,
    SECRET_RE,
    AdminWorld,
    add_account,
    admin_world,
    email_of,
    sign_in,
)
from tests.web.pages import parse
from tests.web.test_sign_in import Browser

pytestmark = pytest.mark.network

NEW_EMAIL = "new.dsl@frontdoor.example"
NEW_PASSWORD = "a long walk to the harbour"  # noqa: S105 - a test account's password


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[AdminWorld]:
    """Start the nodes, with the front door's and the nurses' administrators."""
    async with admin_world(tmp_path / "admin") as running:
        la = running.service(FRONT_DOOR)
        await add_account(la, FRONT_DOOR, "admin", app=False)
        await add_account(la, NURSES, "admin", app=False)
        yield running


def _summary_links(page: str) -> list[str]:
    """Return the links of a page's error summary (every in-page link but the skip link)."""
    hrefs = [a.attrs.get("href") or "" for a in parse(page).all("a")]
    return [h for h in hrefs if h.startswith("#") and h != "#main-content"]


async def _admin(world: AdminWorld, org: str = FRONT_DOOR) -> Browser:
    browser = world.browser(FRONT_DOOR)
    await sign_in(browser, email_of(org, "admin"))  # type: ignore[arg-type]
    return browser


async def _invite(admin: Browser, name: str, email: str, role: str) -> str:
    """Invite someone through the page; return the code it shows once."""
    _, page, _ = await admin.get("/admin/accounts/invite")
    status, answer = await admin.post_text(
        "/admin/accounts/invite", {"name": name, "email": email, "role": role}, page
    )
    assert status == 200, answer
    match = CODE_RE.search(answer)
    assert match is not None
    return match.group(1)


async def test_an_invited_dsl_chooses_a_password_sets_up_the_app_and_reaches_the_inbox(
    world: AdminWorld,
) -> None:
    """The code is shown once, works once, and leads through the app's set-up to the inbox."""
    admin = await _admin(world)
    code = await _invite(admin, "Sam Patel", NEW_EMAIL, "dsl")
    status, page, _ = await admin.get("/admin/accounts")
    assert status == 200
    parsed = parse(page)
    assert parsed.title == "Staff accounts – Secure exchange"
    assert "Sam Patel" in page
    assert "Invited" in page
    assert code not in page

    person = world.browser(FRONT_DOOR)
    _, form, _ = await person.get("/sign-in/invitation")
    fields = {"email": NEW_EMAIL, "code": code, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    response = await person.post("/sign-in/invitation", fields, form)
    assert (response.status, response.headers["Location"]) == (
        303,
        "/sign-in/set-up-authenticator",
    )
    status, page, _ = await person.get("/sign-in/set-up-authenticator")
    match = SECRET_RE.search(page)
    assert match is not None
    secret = TotpSecret.from_base32(match.group(1))
    confirm = await person.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, page
    )
    assert confirm.status == 200
    status, _, _ = await person.get("/inbox")
    assert status == 200

    # Used once: the same code again is refused with the one answer for every wrong code.
    again = world.browser(FRONT_DOOR)
    _, form, _ = await again.get("/sign-in/invitation")
    status, answer = await again.post_text("/sign-in/invitation", fields, form)
    assert status == 401
    assert parse(answer).title == "Error: Set up your account – Secure exchange"
    assert code not in answer
    # The account now signs in with its password and app, and the list says so.
    _, page, _ = await admin.get("/admin/accounts")
    assert "Active" in page


async def test_invitation_refusals_say_what_is_wrong_and_echo_nothing(
    world: AdminWorld,
) -> None:
    """Missing fields, a short password, a wrong or expired code: plain sentences, linked."""
    admin = await _admin(world)
    code = await _invite(admin, "Sam Patel", NEW_EMAIL, "dsl")
    person = world.browser(FRONT_DOOR)
    _, form, _ = await person.get("/sign-in/invitation")

    status, answer = await person.post_text("/sign-in/invitation", {}, form)
    assert status == 400
    assert _summary_links(answer) == ["#email", "#code", "#password"]

    short = {"email": NEW_EMAIL, "code": code, "password": "too short", "confirm": "too short"}
    status, answer = await person.post_text("/sign-in/invitation", short, form)
    assert status == 400
    assert "Password must be 12 characters or more" in answer
    assert "too short" not in answer

    mismatch = {**short, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "!"}
    status, answer = await person.post_text("/sign-in/invitation", mismatch, form)
    assert status == 400
    assert "The passwords you entered do not match" in answer

    wrong = {**mismatch, "code": "K7QM-3XWD-P9FH-2TRC", "confirm": NEW_PASSWORD}
    status, answer = await person.post_text("/sign-in/invitation", wrong, form)
    unknown = {**wrong, "email": "nobody@frontdoor.example"}
    status2, answer2 = await person.post_text("/sign-in/invitation", unknown, form)
    assert status == status2 == 401
    assert "nobody@frontdoor.example" not in answer2.split("<form")[0]

    # A week later the right code no longer works.
    service = world.service(FRONT_DOOR)
    service.clock = lambda: time.time() + 8 * 24 * 3600
    try:
        right = {**wrong, "code": code}
        status, answer = await person.post_text("/sign-in/invitation", right, form)
    finally:
        service.clock = time.time
    assert status in {401, 429}
    assert "ask your administrator for a new one" in answer


async def test_the_invite_form_names_each_problem(world: AdminWorld) -> None:
    """An empty form and a taken address are refused on the form, with the summary's links."""
    admin = await _admin(world)
    _, page, _ = await admin.get("/admin/accounts/invite")
    status, answer = await admin.post_text("/admin/accounts/invite", {}, page)
    assert status == 400
    parsed = parse(answer)
    assert parsed.title == "Error: Invite someone – Secure exchange"
    assert _summary_links(answer) == ["#name", "#email", "#role"]
    taken = {"name": "Someone", "email": email_of(FRONT_DOOR, "admin"), "role": "staff"}
    status, answer = await admin.post_text("/admin/accounts/invite", taken, page)
    assert status == 400
    assert "This email address already has an account on this node" in answer
    bad = {"name": "Someone", "email": "not an address", "role": "staff"}
    status, answer = await admin.post_text("/admin/accounts/invite", bad, page)
    assert status == 400
    assert "Enter an email address in the correct format" in answer


async def test_a_role_change_and_a_disabled_account_end_sessions_at_once(
    world: AdminWorld,
) -> None:
    """The DSL's session ends when their role changes; disabled, they cannot sign in."""
    service = world.service(FRONT_DOOR)
    secret = await add_account(service, FRONT_DOOR, "dsl", app=True)
    dsl = world.browser(FRONT_DOOR)
    await sign_in(dsl, email_of(FRONT_DOOR, "dsl"), secret)
    assert (await dsl.get("/inbox"))[0] == 200

    admin = await _admin(world)
    number = await world.account_id(FRONT_DOOR, email_of(FRONT_DOOR, "dsl"))
    _, page, _ = await admin.get(f"/admin/accounts/{number}")
    assert parse(page).title == "Manage an account – Secure exchange"
    response = await admin.post(f"/admin/accounts/{number}/role", {"role": "staff"}, page)
    assert (response.status, response.headers["Location"]) == (
        303,
        f"/admin/accounts/{number}?done=role",
    )
    status, _, response = await dsl.get("/inbox")
    assert (status, response.headers["Location"]) == (303, "/sign-in?to=/inbox")
    account = await service.store.account_by_id(number)
    assert account is not None
    assert account.user.role == "staff"

    _, page, _ = await admin.get(f"/admin/accounts/{number}/disable")
    assert parse(page).title == "Disable an account – Secure exchange"
    assert "Disable the account of DSL of la:356?" in page
    response = await admin.post(f"/admin/accounts/{number}/disable", {}, page)
    assert response.status == 303
    _, page, _ = await dsl.get("/sign-in")
    refused = await dsl.post(
        "/sign-in", {"email": email_of(FRONT_DOOR, "dsl"), "password": PASSWORD}, page
    )
    assert refused.status == 401

    _, page, _ = await admin.get(f"/admin/accounts/{number}")
    response = await admin.post(f"/admin/accounts/{number}/enable", {}, page)
    assert response.status == 303
    account = await service.store.account_by_id(number)
    assert account is not None
    assert not account.disabled


async def test_a_reset_second_factor_is_set_up_again_at_the_next_sign_in(
    world: AdminWorld,
) -> None:
    """After a reset the person's session ends and sign-in asks them to set up an app."""
    service = world.service(FRONT_DOOR)
    secret = await add_account(service, FRONT_DOOR, "dsl", app=True)
    dsl = world.browser(FRONT_DOOR)
    await sign_in(dsl, email_of(FRONT_DOOR, "dsl"), secret)
    admin = await _admin(world)
    number = await world.account_id(FRONT_DOOR, email_of(FRONT_DOOR, "dsl"))
    _, page, _ = await admin.get(f"/admin/accounts/{number}/reset-second-factor")
    response = await admin.post(f"/admin/accounts/{number}/reset-second-factor", {}, page)
    assert response.status == 303
    assert (await dsl.get("/inbox"))[0] == 303
    fresh = world.browser(FRONT_DOOR)
    _, page, _ = await fresh.get("/sign-in")
    step = await fresh.post(
        "/sign-in", {"email": email_of(FRONT_DOOR, "dsl"), "password": PASSWORD}, page
    )
    assert step.headers["Location"] == "/sign-in/set-up-authenticator"


async def test_the_last_administrator_cannot_lock_the_organisation_out(
    world: AdminWorld,
) -> None:
    """Demoting, disabling or resetting oneself as the last administrator is refused, saying why."""
    admin = await _admin(world)
    me = await world.account_id(FRONT_DOOR, email_of(FRONT_DOOR, "admin"))
    _, page, _ = await admin.get(f"/admin/accounts/{me}")
    status, answer = await admin.post_text(f"/admin/accounts/{me}/role", {"role": "dsl"}, page)
    assert status == 409
    parsed = parse(answer)
    assert parsed.title == "Error: Manage an account – Secure exchange"
    assert "must keep an administrator who can sign in" in answer
    for action in ("disable", "reset-second-factor"):
        _, page, _ = await admin.get(f"/admin/accounts/{me}/{action}")
        status, answer = await admin.post_text(f"/admin/accounts/{me}/{action}", {}, page)
        assert status == 409, action
        assert parse(answer).title.startswith("Error: ")
        assert 'href="#confirm"' in answer
    # Still signed in, still an administrator.
    assert (await admin.get("/admin/accounts"))[0] == 200


async def test_an_administrator_sees_and_touches_only_their_own_organisation(
    world: AdminWorld,
) -> None:
    """The front door's admin never sees the nurses' accounts, and their numbers are 404."""
    admin = await _admin(world)
    nurse_admin = await world.account_id(NURSES, email_of(NURSES, "admin"))
    _, page, _ = await admin.get("/admin/accounts")
    assert email_of(NURSES, "admin") not in page
    for path in ("", "/disable", "/reset-second-factor"):
        status, answer, _ = await admin.get(f"/admin/accounts/{nurse_admin}{path}")
        assert status == 404, path
        assert email_of(NURSES, "admin") not in answer
    _, page, _ = await admin.get("/admin/accounts")
    for path, form in (("/role", {"role": "dsl"}), ("/disable", {}), ("/enable", {})):
        response = await admin.post(f"/admin/accounts/{nurse_admin}{path}", form, page)
        assert response.status == 404, path
    account = await world.service(NURSES).store.account_by_id(nurse_admin)
    assert account is not None
    assert (account.user.role, account.disabled) == ("admin", False)


async def test_staff_who_are_not_administrators_are_refused(world: AdminWorld) -> None:
    """A DSL's session gets the 403 page on every administrator's page."""
    secret = await add_account(world.service(FRONT_DOOR), FRONT_DOOR, "dsl", app=True)
    dsl = world.browser(FRONT_DOOR)
    await sign_in(dsl, email_of(FRONT_DOOR, "dsl"), secret)
    for path in ("/admin/accounts", "/admin/accounts/invite", "/admin/node"):
        status, page, _ = await dsl.get(path)
        assert status == 403, path
        assert parse(page).title == "You cannot see this page – Secure exchange"
