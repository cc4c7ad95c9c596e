"""Signing in to a running node's pages: password, authenticator app, recovery code, sign out."""

from __future__ import annotations

import hashlib
import html
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from exchange.auth.totp import TotpSecret, code_at
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import User
from exchange.web.accounts import SESSION_COOKIE

pytestmark = pytest.mark.network

SCHOOL = OrgId("urn:106123")
EMAIL = "dsl@hillside.example"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account's password
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET_RE = re.compile(r"<code>([A-Z2-7 ]+)</code>")
RECOVERY_RE = re.compile(r"<code>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</code>")


def _with_token(form: dict[str, str], page: str) -> dict[str, str]:
    """Return ``form`` with the CSRF token of the page the form came from."""
    match = CSRF_RE.search(page)
    assert match is not None, "the page has no form token"
    return {"csrf_token": html.unescape(match.group(1)), **form}


@dataclass
class Browser:
    """A client with a cookie jar, talking to one node's pages."""

    http: aiohttp.ClientSession
    base: str

    async def get(self, path: str) -> tuple[int, str, aiohttp.ClientResponse]:
        """GET a page without following redirects: its status, text and response."""
        async with self.http.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text(), response

    async def post(self, path: str, form: dict[str, str], page: str) -> aiohttp.ClientResponse:
        """POST ``form`` with the CSRF token of the page the form came from."""
        async with self.http.post(
            self.base + path, data=_with_token(form, page), allow_redirects=False
        ) as response:
            await response.read()
            return response

    async def post_text(self, path: str, form: dict[str, str], page: str) -> tuple[int, str]:
        """POST ``form`` as :meth:`post` does; return the status and the page answered."""
        async with self.http.post(
            self.base + path, data=_with_token(form, page), allow_redirects=False
        ) as response:
            return response.status, await response.text()

    def session_token(self) -> str | None:
        """Return the session cookie the browser holds, if any."""
        for cookie in self.http.cookie_jar:
            if cookie.key == SESSION_COOKIE:
                return cookie.value
        return None


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[Deployment, Browser]]:
    """Start a school node with one DSL account (no second factor yet), and a browser."""
    deployment = await start_deployment(
        tmp_path / "web",
        [OrgSpec(SCHOOL, "Hillside Primary School", "school", "school")],
        kdf=KdfParams.fast_for_tests(),
    )
    service = deployment.node_of(SCHOOL).service
    user = User(id="web-dsl", org=SCHOOL, name="Designated lead", role="dsl")
    await service.accounts.create_user(
        user, hashlib.sha256(b"unused api token").digest(), email=EMAIL, password=PASSWORD
    )
    assert deployment.ca_file is not None
    context = ssl.create_default_context(cafile=str(deployment.ca_file))
    try:
        # unsafe=True: the jar keeps cookies of an IP address host (127.0.0.1), as browsers do.
        jar = aiohttp.CookieJar(unsafe=True)
        connector = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
            yield deployment, Browser(http, deployment.url("school"))
    finally:
        await deployment.stop()


async def _password_step(browser: Browser, password: str = PASSWORD) -> aiohttp.ClientResponse:
    _, page, _ = await browser.get("/sign-in")
    return await browser.post("/sign-in", {"email": EMAIL, "password": password}, page)


async def _enrol(browser: Browser) -> TotpSecret:
    """Sign in for the first time: password, then set up the app; return the app's secret."""
    response = await _password_step(browser)
    assert (response.status, response.headers["Location"]) == (
        303,
        "/sign-in/set-up-authenticator",
    )
    status, page, _ = await browser.get("/sign-in/set-up-authenticator")
    assert status == 200
    match = SECRET_RE.search(page)
    assert match is not None
    secret = TotpSecret.from_base32(match.group(1))
    confirm = await browser.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, page
    )
    assert confirm.status == 200
    return secret


async def test_pages_need_a_session(node: tuple[Deployment, Browser]) -> None:
    """Without a session the inbox sends the person to the sign-in page."""
    _, browser = node
    status, _, response = await browser.get("/inbox")
    assert (status, response.headers["Location"]) == (303, "/sign-in?to=/inbox")


async def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(
    node: tuple[Deployment, Browser],
) -> None:
    """The refusal never says whether an account exists, and no session is started."""
    _, browser = node
    _, page, _ = await browser.get("/sign-in")
    wrong = await browser.post("/sign-in", {"email": EMAIL, "password": "not the password"}, page)
    _, page, _ = await browser.get("/sign-in")
    unknown = await browser.post(
        "/sign-in", {"email": "nobody@hillside.example", "password": PASSWORD}, page
    )
    assert wrong.status == unknown.status == 401
    assert browser.session_token() is None


async def test_first_sign_in_sets_up_the_app_and_shows_recovery_codes(
    node: tuple[Deployment, Browser],
) -> None:
    """A DSL sets up an authenticator app, sees ten recovery codes once and reaches the inbox."""
    _, browser = node
    await _password_step(browser)
    status, page, _ = await browser.get("/sign-in/set-up-authenticator")
    assert status == 200
    assert "<svg" in page
    match = SECRET_RE.search(page)
    assert match is not None
    secret = TotpSecret.from_base32(match.group(1))
    password_token = browser.session_token()
    confirm = await browser.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, page
    )
    assert confirm.status == 200
    upgraded = browser.session_token()
    assert upgraded is not None
    assert upgraded != password_token
    status, page, _ = await browser.get("/inbox")
    assert status == 200
    assert "Hillside Primary School" in page
    assert "Sign out" in page


async def test_the_recovery_codes_page_lists_ten_single_use_codes(
    node: tuple[Deployment, Browser],
) -> None:
    """The page after setting up the app shows ten codes, and a code then signs in once."""
    _, browser = node
    await _password_step(browser)
    _, page, _ = await browser.get("/sign-in/set-up-authenticator")
    match = SECRET_RE.search(page)
    assert match is not None
    secret = TotpSecret.from_base32(match.group(1))
    _, answer = await browser.post_text(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, page
    )
    codes = RECOVERY_RE.findall(answer)
    assert len(codes) == 10
    # Sign out, then in again with a recovery code instead of the app.
    _, inbox, _ = await browser.get("/inbox")
    out = await browser.post("/sign-out", {}, inbox)
    assert (out.status, out.headers["Location"]) == (303, "/signed-out")
    response = await _password_step(browser)
    assert response.headers["Location"] == "/sign-in/security-code"
    _, page, _ = await browser.get("/sign-in/security-code")
    used = await browser.post("/sign-in/security-code", {"code": codes[0]}, page)
    assert (used.status, used.headers["Location"]) == (303, "/inbox")
    _, inbox, _ = await browser.get("/inbox")
    await browser.post("/sign-out", {}, inbox)
    await _password_step(browser)
    _, page, _ = await browser.get("/sign-in/security-code")
    again = await browser.post("/sign-in/security-code", {"code": codes[0]}, page)
    assert again.status == 400


async def test_sign_out_ends_the_session(node: tuple[Deployment, Browser]) -> None:
    """After signing out, the old session token opens nothing."""
    _, browser = node
    await _enrol(browser)
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
    node: tuple[Deployment, Browser],
) -> None:
    """The cookie that holds the session cannot be read by script or sent cross-site."""
    _, browser = node
    response = await _password_step(browser)
    header = next(
        v for v in response.headers.getall("Set-Cookie") if v.startswith(SESSION_COOKIE + "=")
    )
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)


async def test_a_form_sent_after_the_session_ended_says_so(
    node: tuple[Deployment, Browser],
) -> None:
    """A signed-in form posted with an ended session gets the sign-in page and a message."""
    _, browser = node
    await _enrol(browser)
    _, inbox, _ = await browser.get("/inbox")
    token = browser.session_token()
    assert token is not None
    await node[0].node_of(SCHOOL).service.accounts.end_session(token)
    status, page = await browser.post_text("/sign-out", {}, inbox)
    assert status == 401
    assert "Your session has ended, so what you sent was not saved" in page


async def test_a_mistyped_code_or_a_reload_shows_the_same_key(
    node: tuple[Deployment, Browser],
) -> None:
    """Setting up the app keeps its key across a reload and a wrong code, then accepts it."""
    _, browser = node
    await _password_step(browser)
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
    status, again = await browser.post_text(
        "/sign-in/set-up-authenticator", {"code": wrong}, reloaded
    )
    assert status == 400
    assert SECRET_RE.findall(again) == [key.group(1)]
    confirm = await browser.post(
        "/sign-in/set-up-authenticator", {"code": code_at(secret, time.time())}, again
    )
    assert confirm.status == 200


async def test_a_link_followed_while_signed_out_is_the_page_reached_after_sign_in(
    node: tuple[Deployment, Browser],
) -> None:
    """A notice email's item link comes back after the password and code steps."""
    _, browser = node
    secret = await _enrol(browser)
    _, page, _ = await browser.get("/inbox")
    await browser.post("/sign-out", {}, page)
    link = "/inbox/" + "ab" * 16
    status, _, response = await browser.get(link)
    sign_in = response.headers["Location"]
    assert (status, sign_in) == (303, "/sign-in?to=" + link)
    _, page, _ = await browser.get(sign_in)
    password = await browser.post(sign_in, {"email": EMAIL, "password": PASSWORD}, page)
    code_step = password.headers["Location"]
    assert code_step == "/sign-in/security-code?to=" + link
    _, page, _ = await browser.get(code_step)
    assert 'action="/sign-in/security-code?to=%2Finbox%2F' in page
    # The step after the one enrolment used: a code is accepted once.
    code = code_at(secret, time.time() + 30)
    done = await browser.post(code_step, {"code": code}, page)
    assert (done.status, done.headers["Location"]) == (303, link)


@pytest.mark.parametrize(
    "to",
    ["//evil.example/inbox", "https://evil.example/", "/sign-in/security-code", "/inbox?x=1",
     "/assets/govuk-frontend.min.js", "inbox", "/" + "a" * 201, "/inbox/\\evil"],
)  # fmt: skip
async def test_a_return_address_elsewhere_is_ignored(
    node: tuple[Deployment, Browser], to: str
) -> None:
    """Only a plain page path of this node is returned to; anything else lands on home."""
    _, browser = node
    await _enrol(browser)
    _, page, _ = await browser.get("/inbox")
    await browser.post("/sign-out", {}, page)
    query = "/sign-in?" + urlencode({"to": to})
    _, page, _ = await browser.get(query)
    assert "to=" not in page.split('action="/sign-in', 1)[1].split('"', 1)[0]
    password = await browser.post(query, {"email": EMAIL, "password": PASSWORD}, page)
    assert password.headers["Location"] == "/sign-in/security-code"
