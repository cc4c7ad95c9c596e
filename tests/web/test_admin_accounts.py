"""The staff accounts pages over a running node: invite, accept, role, factor, disable, remove.

Each test has nodes of its own: the pages change the organisation's accounts, and one test
needs the front door to have a single administrator.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from exchange.auth.totp import TotpSecret, code_at
from exchange.keys.ids import OrgId
from tests.web.page_client import PageClient
from tests.web.pages import parse
from tests.web.world import FRONT_DOOR, NURSES, PASSWORD, Account, World

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

NEW_EMAIL = "new.dsl@frontdoor.example"
NEW_PASSWORD = "a long walk to the harbour"  # noqa: S105 - a test account's password
CODE_RE = re.compile(r'<code id="invitation-code">([A-Z0-9-]+)</code>')
SECRET_RE = re.compile(r"<code>([A-Z2-7 ]+)</code>")


@dataclass
class Admins:
    """The nodes, and the front door's and the nurses' administrators (password only)."""

    world: World
    front_door: Account
    nurses: Account

    def admin(self, org: OrgId) -> Account:
        """Return the administrator of ``org``."""
        return self.front_door if org == FRONT_DOOR else self.nurses


@pytest_asyncio.fixture(loop_scope="module")
async def admins(fresh_world: World) -> AsyncIterator[Admins]:
    """Start the test's own nodes, with the front door's and the nurses' administrators."""
    yield Admins(
        fresh_world,
        await fresh_world.account(FRONT_DOOR, "admin", app=False),
        await fresh_world.account(NURSES, "admin", app=False),
    )


def _summary_links(page: str) -> list[str]:
    """Return the links of a page's error summary (every in-page link but the skip link)."""
    hrefs = [a.attrs.get("href") or "" for a in parse(page).all("a")]
    return [h for h in hrefs if h.startswith("#") and h != "#main-content"]


async def _admin(admins: Admins) -> PageClient:
    """Return a client signed in through the pages as the front door's administrator."""
    browser = admins.world.client(FRONT_DOOR)
    await admins.world.sign_in(browser, admins.front_door)
    return browser


async def _dsl(world: World) -> PageClient:
    """Return a client signed in through the pages as a new DSL of the front door."""
    dsl = world.client(FRONT_DOOR)
    await world.sign_in(dsl, await world.account(FRONT_DOOR, "dsl"))
    return dsl


async def _invite(admin: PageClient, name: str, email: str, role: str) -> str:
    """Invite someone through the page; return the code it shows once."""
    _, page, _ = await admin.get("/admin/accounts/invite")
    status, answer, _ = await admin.post(
        "/admin/accounts/invite", {"name": name, "email": email, "role": role}, page
    )
    assert status == 200, answer
    match = CODE_RE.search(answer)
    assert match is not None
    return match.group(1)


async def test_an_invited_dsl_chooses_a_password_sets_up_the_app_and_reaches_the_inbox(
    admins: Admins,
) -> None:
    """The code is shown once, works once, and leads through the app's set-up to the inbox."""
    world = admins.world
    admin = await _admin(admins)
    code = await _invite(admin, "Sam Patel", NEW_EMAIL, "dsl")
    status, page, _ = await admin.get("/admin/accounts")
    assert status == 200
    parsed = parse(page)
    assert parsed.title == "Staff accounts – Secure exchange"
    assert "Sam Patel" in page
    assert "Invited" in page
    assert code not in page

    person = world.client(FRONT_DOOR)
    _, form, _ = await person.get("/sign-in/invitation")
    fields = {"email": NEW_EMAIL, "code": code, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    status, _, headers = await person.post("/sign-in/invitation", fields, form)
    assert (status, headers["Location"]) == (
        303,
        "/sign-in/set-up-authenticator",
    )
    status, page, _ = await person.get("/sign-in/set-up-authenticator")
    match = SECRET_RE.search(page)
    assert match is not None
    secret = TotpSecret.from_base32(match.group(1))
    confirm_status, _, _ = await person.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, page
    )
    assert confirm_status == 200
    status, _, _ = await person.get("/inbox")
    assert status == 200

    # Used once: the same code again is refused with the one answer for every wrong code.
    again = world.client(FRONT_DOOR)
    _, form, _ = await again.get("/sign-in/invitation")
    status, answer, _ = await again.post("/sign-in/invitation", fields, form)
    assert status == 401
    assert parse(answer).title == "Error: Set up your account – Secure exchange"
    assert code not in answer
    # The account now signs in with its password and app, and the list says so.
    _, page, _ = await admin.get("/admin/accounts")
    assert "Active" in page


async def test_invitation_refusals_say_what_is_wrong_and_echo_nothing(admins: Admins) -> None:
    """Missing fields, a short password, a wrong or expired code: plain sentences, linked."""
    world = admins.world
    admin = await _admin(admins)
    code = await _invite(admin, "Sam Patel", NEW_EMAIL, "dsl")
    person = world.client(FRONT_DOOR)
    _, form, _ = await person.get("/sign-in/invitation")

    status, answer, _ = await person.post("/sign-in/invitation", {}, form)
    assert status == 400
    assert _summary_links(answer) == ["#email", "#code", "#password"]

    short = {"email": NEW_EMAIL, "code": code, "password": "too short", "confirm": "too short"}
    status, answer, _ = await person.post("/sign-in/invitation", short, form)
    assert status == 400
    assert "Password must be 12 characters or more" in answer
    assert "too short" not in answer

    mismatch = {**short, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "!"}
    status, answer, _ = await person.post("/sign-in/invitation", mismatch, form)
    assert status == 400
    assert "The passwords you entered do not match" in answer

    wrong = {**mismatch, "code": "K7QM-3XWD-P9FH-2TRC", "confirm": NEW_PASSWORD}
    status, answer, _ = await person.post("/sign-in/invitation", wrong, form)
    unknown = {**wrong, "email": "nobody@frontdoor.example"}
    status2, answer2, _ = await person.post("/sign-in/invitation", unknown, form)
    assert status == status2 == 401
    assert "nobody@frontdoor.example" not in answer2.split("<form")[0]

    # A week later the right code no longer works.
    with world.clock_moved(FRONT_DOOR, by=8 * 24 * 3600):
        right = {**wrong, "code": code}
        status, answer, _ = await person.post("/sign-in/invitation", right, form)
    assert status in {401, 429}
    assert "ask your administrator for a new one" in answer


async def test_the_invite_form_names_each_problem(admins: Admins) -> None:
    """An empty form and a taken address are refused on the form, with the summary's links."""
    admin = await _admin(admins)
    _, page, _ = await admin.get("/admin/accounts/invite")
    status, answer, _ = await admin.post("/admin/accounts/invite", {}, page)
    assert status == 400
    parsed = parse(answer)
    assert parsed.title == "Error: Invite someone – Secure exchange"
    assert _summary_links(answer) == ["#name", "#email", "#role"]
    taken = {"name": "Someone", "email": admins.front_door.email, "role": "staff"}
    status, answer, _ = await admin.post("/admin/accounts/invite", taken, page)
    assert status == 400
    assert "This email address already has an account on this node" in answer
    bad = {"name": "Someone", "email": "not an address", "role": "staff"}
    status, answer, _ = await admin.post("/admin/accounts/invite", bad, page)
    assert status == 400
    assert "Enter an email address in the correct format" in answer


async def test_a_role_change_and_a_disabled_account_end_sessions_at_once(admins: Admins) -> None:
    """The DSL's session ends when their role changes; disabled, they cannot sign in."""
    world = admins.world
    service = world.service(FRONT_DOOR)
    account = await world.account(FRONT_DOOR, "dsl")
    dsl = world.client(FRONT_DOOR)
    await world.sign_in(dsl, account)
    assert (await dsl.get("/inbox"))[0] == 200

    admin = await _admin(admins)
    number = await world.account_number(FRONT_DOOR, account.email)
    _, page, _ = await admin.get(f"/admin/accounts/{number}")
    assert parse(page).title == "Manage an account – Secure exchange"
    status, _, headers = await admin.post(f"/admin/accounts/{number}/role", {"role": "staff"}, page)
    assert (status, headers["Location"]) == (
        303,
        f"/admin/accounts/{number}?done=role",
    )
    status, _, headers = await dsl.get("/inbox")
    assert (status, headers["Location"]) == (303, "/sign-in?to=/inbox")
    stored = await service.store.account_by_id(number)
    assert stored is not None
    assert stored.user.role == "staff"

    _, page, _ = await admin.get(f"/admin/accounts/{number}/disable")
    assert parse(page).title == "Disable an account – Secure exchange"
    assert "Disable the account of DSL of la:356?" in page
    status, _, headers = await admin.post(f"/admin/accounts/{number}/disable", {}, page)
    assert status == 303
    _, page, _ = await dsl.get("/sign-in")
    refused_status, _, _ = await dsl.post(
        "/sign-in", {"email": account.email, "password": PASSWORD}, page
    )
    assert refused_status == 401

    _, page, _ = await admin.get(f"/admin/accounts/{number}")
    status, _, headers = await admin.post(f"/admin/accounts/{number}/enable", {}, page)
    assert status == 303
    stored = await service.store.account_by_id(number)
    assert stored is not None
    assert not stored.disabled


async def test_a_removed_account_is_signed_out_and_cannot_sign_in(admins: Admins) -> None:
    """Removing asks first, ends the session, and the account is gone from the list."""
    world = admins.world
    account = await world.account(FRONT_DOOR, "dsl")
    dsl = world.client(FRONT_DOOR)
    await world.sign_in(dsl, account)
    admin = await _admin(admins)
    number = await world.account_number(FRONT_DOOR, account.email)
    _, page, _ = await admin.get(f"/admin/accounts/{number}")
    assert f'href="/admin/accounts/{number}/remove"' in page
    _, page, _ = await admin.get(f"/admin/accounts/{number}/remove")
    assert parse(page).title == "Remove an account – Secure exchange"
    status, _, headers = await admin.post(f"/admin/accounts/{number}/remove", {}, page)
    assert (status, headers["Location"]) == (303, "/admin/accounts?done=removed")
    _, listing, _ = await admin.get(headers["Location"])
    assert "The account was removed." in listing
    assert account.email not in listing
    assert (await dsl.get("/inbox"))[0] == 303
    fresh = world.client(FRONT_DOOR)
    _, page, _ = await fresh.get("/sign-in")
    status, _, _ = await fresh.post(
        "/sign-in", {"email": account.email, "password": PASSWORD}, page
    )
    assert status == 401
    assert await world.service(FRONT_DOOR).store.account_by_id(number) is None


async def test_a_reset_second_factor_is_set_up_again_at_the_next_sign_in(admins: Admins) -> None:
    """After a reset the person's session ends and sign-in asks them to set up an app."""
    world = admins.world
    account = await world.account(FRONT_DOOR, "dsl")
    dsl = world.client(FRONT_DOOR)
    await world.sign_in(dsl, account)
    admin = await _admin(admins)
    number = await world.account_number(FRONT_DOOR, account.email)
    _, page, _ = await admin.get(f"/admin/accounts/{number}/reset-second-factor")
    status, _, _ = await admin.post(f"/admin/accounts/{number}/reset-second-factor", {}, page)
    assert status == 303
    assert (await dsl.get("/inbox"))[0] == 303
    fresh = world.client(FRONT_DOOR)
    _, page, _ = await fresh.get("/sign-in")
    _, _, step_headers = await fresh.post(
        "/sign-in", {"email": account.email, "password": PASSWORD}, page
    )
    assert step_headers["Location"] == "/sign-in/set-up-authenticator"


async def test_the_last_administrator_cannot_lock_the_organisation_out(admins: Admins) -> None:
    """Demoting, disabling or resetting oneself as the last administrator is refused, saying why."""
    world = admins.world
    admin = await _admin(admins)
    me = await world.account_number(FRONT_DOOR, admins.front_door.email)
    _, page, _ = await admin.get(f"/admin/accounts/{me}")
    status, answer, _ = await admin.post(f"/admin/accounts/{me}/role", {"role": "dsl"}, page)
    assert status == 409
    parsed = parse(answer)
    assert parsed.title == "Error: Manage an account – Secure exchange"
    assert "must keep an administrator who can sign in" in answer
    for action in ("disable", "reset-second-factor", "remove"):
        _, page, _ = await admin.get(f"/admin/accounts/{me}/{action}")
        status, answer, _ = await admin.post(f"/admin/accounts/{me}/{action}", {}, page)
        assert status == 409, action
        assert parse(answer).title.startswith("Error: ")
        assert 'href="#confirm"' in answer
    # Still signed in, still an administrator.
    assert (await admin.get("/admin/accounts"))[0] == 200


async def test_an_administrator_sees_and_touches_only_their_own_organisation(
    admins: Admins,
) -> None:
    """The front door's admin never sees the nurses' accounts, and their numbers are 404."""
    world = admins.world
    admin = await _admin(admins)
    nurse_admin = await world.account_number(NURSES, admins.nurses.email)
    _, page, _ = await admin.get("/admin/accounts")
    assert admins.nurses.email not in page
    for path in ("", "/disable", "/reset-second-factor", "/remove"):
        status, answer, _ = await admin.get(f"/admin/accounts/{nurse_admin}{path}")
        assert status == 404, path
        assert admins.nurses.email not in answer
    _, page, _ = await admin.get("/admin/accounts")
    for path, form in (
        ("/role", {"role": "dsl"}),
        ("/disable", {}),
        ("/enable", {}),
        ("/remove", {}),
    ):
        status, _, _ = await admin.post(f"/admin/accounts/{nurse_admin}{path}", form, page)
        assert status == 404, path
    account = await world.service(NURSES).store.account_by_id(nurse_admin)
    assert account is not None
    assert (account.user.role, account.disabled) == ("admin", False)


async def test_staff_who_are_not_administrators_are_refused(admins: Admins) -> None:
    """A DSL's session gets the 403 page on every administrator's page."""
    world = admins.world
    dsl = await _dsl(world)
    for path in ("/admin/accounts", "/admin/accounts/invite", "/admin/node"):
        status, page, _ = await dsl.get(path)
        assert status == 403, path
        assert parse(page).title == "You cannot see this page – Secure exchange"
