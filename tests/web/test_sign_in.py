"""Signing in to a running node's pages: password, authenticator app, recovery code, sign out.

Each test signs in, for the first time, an account of its own (a DSL with no second factor
yet) on the module's nodes.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest
import pytest_asyncio

from exchange.auth.totp import TotpSecret, code_at
from exchange.web.accounts import SESSION_COOKIE
from tests.web.page_client import Answer, PageClient
from tests.web.world import PASSWORD, SCHOOL, Account, World

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

SECRET_RE = re.compile(r"<code>([A-Z2-7 ]+)</code>")
RECOVERY_RE = re.compile(r"<code>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</code>")


@pytest_asyncio.fixture(loop_scope="module")
async def dsl(world: World) -> Account:
    """Make a new DSL account of Hillside's, with no second factor yet."""
    return await world.account(SCHOOL, "dsl", app=False)


@pytest_asyncio.fixture(loop_scope="module")
async def browser(world: World) -> PageClient:
    """Return a client of Hillside's node with no session."""
    return world.client(SCHOOL)


async def _password_step(browser: PageClient, dsl: Account, password: str = PASSWORD) -> Answer:
    _, page, _ = await browser.get("/sign-in")
    return await browser.post("/sign-in", {"email": dsl.email, "password": password}, page)


async def _enrol(browser: PageClient, dsl: Account) -> TotpSecret:
    """Sign in for the first time: password, then set up the app; return the app's secret."""
    status, _, headers = await _password_step(browser, dsl)
    assert (status, headers["Location"]) == (303, "/sign-in/set-up-authenticator")
    status, page, _ = await browser.get("/sign-in/set-up-authenticator")
    assert status == 200
    match = SECRET_RE.search(page)
    assert match is not None
    secret = TotpSecret.from_base32(match.group(1))
    status, _, _ = await browser.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, page
    )
    assert status == 200
    return secret


async def test_pages_need_a_session(browser: PageClient) -> None:
    """Without a session the inbox sends the person to the sign-in page."""
    status, _, headers = await browser.get("/inbox")
    assert (status, headers["Location"]) == (303, "/sign-in?to=/inbox")


async def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(
    browser: PageClient, dsl: Account
) -> None:
    """The refusal never says whether an account exists, and no session is started."""
    _, page, _ = await browser.get("/sign-in")
    wrong, _, _ = await browser.post(
        "/sign-in", {"email": dsl.email, "password": "not the password"}, page
    )
    _, page, _ = await browser.get("/sign-in")
    unknown, _, _ = await browser.post(
        "/sign-in", {"email": "nobody@hillside.example", "password": PASSWORD}, page
    )
    assert wrong == unknown == 401
    assert browser.session_token() is None


async def test_first_sign_in_sets_up_the_app_and_shows_recovery_codes(
    browser: PageClient, dsl: Account
) -> None:
    """A DSL sets up an authenticator app, sees ten recovery codes once and reaches the inbox."""
    await _password_step(browser, dsl)
    status, page, _ = await browser.get("/sign-in/set-up-authenticator")
    assert status == 200
    assert "<svg" in page
    match = SECRET_RE.search(page)
    assert match is not None
    secret = TotpSecret.from_base32(match.group(1))
    password_token = browser.session_token()
    status, _, _ = await browser.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, page
    )
    assert status == 200
    upgraded = browser.session_token()
    assert upgraded is not None
    assert upgraded != password_token
    status, page, _ = await browser.get("/inbox")
    assert status == 200
    assert "Hillside Primary School" in page
    assert "Sign out" in page


async def test_the_recovery_codes_page_lists_ten_single_use_codes(
    browser: PageClient, dsl: Account
) -> None:
    """The page after setting up the app shows ten codes, and a code then signs in once."""
    await _password_step(browser, dsl)
    _, page, _ = await browser.get("/sign-in/set-up-authenticator")
    match = SECRET_RE.search(page)
    assert match is not None
    secret = TotpSecret.from_base32(match.group(1))
    _, answer, _ = await browser.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, page
    )
    codes = RECOVERY_RE.findall(answer)
    assert len(codes) == 10
    # Sign out, then in again with a recovery code instead of the app.
    _, inbox, _ = await browser.get("/inbox")
    status, _, headers = await browser.post("/sign-out", {}, inbox)
    assert (status, headers["Location"]) == (303, "/signed-out")
    _, _, headers = await _password_step(browser, dsl)
    assert headers["Location"] == "/sign-in/security-code"
    _, page, _ = await browser.get("/sign-in/security-code")
    status, _, headers = await browser.post("/sign-in/security-code", {"code": codes[0]}, page)
    assert (status, headers["Location"]) == (303, "/inbox")
    _, inbox, _ = await browser.get("/inbox")
    await browser.post("/sign-out", {}, inbox)
    await _password_step(browser, dsl)
    _, page, _ = await browser.get("/sign-in/security-code")
    again, _, _ = await browser.post("/sign-in/security-code", {"code": codes[0]}, page)
    assert again == 400


async def test_sign_out_ends_the_session(browser: PageClient, dsl: Account) -> None:
    """After signing out, the old session token opens nothing."""
    await _enrol(browser, dsl)
    token = browser.session_token()
    _, inbox, _ = await browser.get("/inbox")
    await browser.post("/sign-out", {}, inbox)
    assert browser.session_token() is None
    assert token is not None
    async with browser.http.get(
        browser.base + "/inbox",
        cookies={SESSION_COOKIE: token},
        allow_redirects=False,
    ) as response:
        assert (response.status, response.headers["Location"]) == (303, "/sign-in?to=/inbox")


async def test_the_session_cookie_is_host_only_secure_httponly_and_strict(
    browser: PageClient, dsl: Account
) -> None:
    """The cookie that holds the session cannot be read by script or sent cross-site."""
    _, _, headers = await _password_step(browser, dsl)
    header = next(v for v in headers.getall("Set-Cookie") if v.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)


async def test_a_form_sent_after_the_session_ended_says_so(
    world: World, browser: PageClient, dsl: Account
) -> None:
    """A signed-in form posted with an ended session gets the sign-in page and a message."""
    await _enrol(browser, dsl)
    _, inbox, _ = await browser.get("/inbox")
    token = browser.session_token()
    assert token is not None
    await world.service(SCHOOL).accounts.end_session(token)
    status, page, _ = await browser.post("/sign-out", {}, inbox)
    assert status == 401
    assert "Your session has ended, so what you sent was not saved" in page


async def test_a_mistyped_code_or_a_reload_shows_the_same_key(
    browser: PageClient, dsl: Account
) -> None:
    """Setting up the app keeps its key across a reload and a wrong code, then accepts it."""
    await _password_step(browser, dsl)
    _, first, _ = await browser.get("/sign-in/set-up-authenticator")
    _, reloaded, _ = await browser.get("/sign-in/set-up-authenticator")
    key = SECRET_RE.search(first)
    assert key is not None
    assert SECRET_RE.search(reloaded) is not None
    assert SECRET_RE.findall(reloaded) == [key.group(1)]
    secret = TotpSecret.from_base32(key.group(1))
    # A wrong code for sure: the right one with its last digit changed.
    right = code_at(secret, time.time())
    wrong = right[:-1] + str((int(right[-1]) + 5) % 10)
    status, again, _ = await browser.post(
        "/sign-in/set-up-authenticator", {"code": wrong}, reloaded
    )
    assert status == 400
    assert SECRET_RE.findall(again) == [key.group(1)]
    status, _, _ = await browser.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, again
    )
    assert status == 200


async def test_a_link_followed_while_signed_out_is_the_page_reached_after_sign_in(
    browser: PageClient, dsl: Account
) -> None:
    """A notice email's item link comes back after the password and code steps."""
    secret = await _enrol(browser, dsl)
    _, page, _ = await browser.get("/inbox")
    await browser.post("/sign-out", {}, page)
    link = "/inbox/" + "ab" * 16
    status, _, headers = await browser.get(link)
    sign_in = headers["Location"]
    assert (status, sign_in) == (303, "/sign-in?to=" + link)
    _, page, _ = await browser.get(sign_in)
    _, _, headers = await browser.post(sign_in, {"email": dsl.email, "password": PASSWORD}, page)
    code_step = headers["Location"]
    assert code_step == "/sign-in/security-code?to=" + link
    _, page, _ = await browser.get(code_step)
    assert 'action="/sign-in/security-code?to=%2Finbox%2F' in page
    # The step after the one enrolment used: a code is accepted once.
    code = code_at(secret, time.time() + 30)
    status, _, headers = await browser.post(code_step, {"code": code}, page)
    assert (status, headers["Location"]) == (303, link)


@pytest.mark.parametrize(
    "to",
    ["//evil.example/inbox", "https://evil.example/", "/sign-in/security-code", "/inbox?x=1",
     "/assets/govuk-frontend.min.js", "inbox", "/" + "a" * 201, "/inbox/\\evil"],
)  # fmt: skip
async def test_a_return_address_elsewhere_is_ignored(
    browser: PageClient, dsl: Account, to: str
) -> None:
    """Only a plain page path of this node is returned to; anything else lands on home."""
    await _enrol(browser, dsl)
    _, page, _ = await browser.get("/inbox")
    await browser.post("/sign-out", {}, page)
    query = "/sign-in?" + urlencode({"to": to})
    _, page, _ = await browser.get(query)
    assert "to=" not in page.split('action="/sign-in', 1)[1].split('"', 1)[0]
    _, _, headers = await browser.post(query, {"email": dsl.email, "password": PASSWORD}, page)
    assert headers["Location"] == "/sign-in/security-code"
