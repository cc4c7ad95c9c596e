"""Every web page: security headers, CSRF, error pages, assets, escaping and page structure.

The pages run in an application built as the node builds its own (the node's JSON error
middleware outermost, then the web layer), with a few routes of the tests' own to post
forms to, fail in, and render hostile values with.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exchange.http.common import errors_middleware
from exchange.service.errors import ServiceError
from exchange.web.app import ORGANISATION_NAME, add_web_routes, render
from exchange.web.security import CSRF_TOKEN, MULTIPART, Handler, SignedCookieCsrf, csrf_token
from tests.web.pages import parse

pytestmark = pytest.mark.network

HOSTILE = '<script>alert("x")</script>'
#: Stands in for a child's details in a failing handler's exception.
SENTINEL = "Jane Sentinel 2015-01-31"
STATIC = Path(__file__).resolve().parents[2] / "exchange" / "web" / "static"
SHIPPED = STATIC / "govuk"
NONCE_RE = re.compile(r"script-src 'self' 'nonce-([A-Za-z0-9_-]+)'")
COOKIE = SignedCookieCsrf.COOKIE


class Done:
    """What the tests' POST handlers did."""

    def __init__(self) -> None:
        self.posts = 0


async def _token_page(request: web.Request) -> web.Response:
    return web.Response(text=request[CSRF_TOKEN])


def _post_handler(done: Done) -> Handler:
    async def post(_request: web.Request) -> web.Response:
        done.posts += 1
        return web.Response(text="done")

    return post


async def _upload(request: web.Request) -> web.Response:
    names = []
    reader = request[MULTIPART]
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        names.append(f"{part.name}={(await part.read()).decode()}")
    return web.Response(text=",".join(names))


async def _escaped(request: web.Request) -> web.Response:
    return render(request, "error.html", {"title": HOSTILE, "status": 404, "csrf": False})


async def _crash(_request: web.Request) -> web.Response:
    raise RuntimeError(SENTINEL)


async def _forbidden(_request: web.Request) -> web.Response:
    raise ServiceError("this item belongs to another organisation", status=403)


async def _signed_in(request: web.Request) -> web.Response:
    request[ORGANISATION_NAME] = "Hillside Primary School"
    return render(request, "start.html", {})


async def _api_post(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
def done() -> Done:
    return Done()


@pytest.fixture
async def client(done: Done) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """Serve the pages as the node does, with the tests' own routes beside them."""
    app = web.Application(middlewares=[errors_middleware])
    add_web_routes(app, object())  # type: ignore[arg-type]  # these pages call no service
    app.router.add_get("/test/form", _token_page)
    app.router.add_post("/test/form", _post_handler(done))
    app.router.add_post("/test/upload", _upload)
    app.router.add_get("/test/escaped", _escaped)
    app.router.add_get("/test/crash", _crash)
    app.router.add_get("/test/forbidden", _forbidden)
    app.router.add_get("/test/signed-in", _signed_in)
    app.router.add_post("/api/v1/test", _api_post)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as running:
        yield running


async def _browser(client: TestClient[web.Request, web.Application]) -> tuple[str, str]:
    """Return a fresh browser's CSRF cookie (as a Cookie header) and its form token."""
    response = await client.get("/test/form")
    cookie = SimpleCookie(response.headers["Set-Cookie"])[COOKIE].value
    return f"{COOKIE}={cookie}", await response.text()


def _nonce(response: aiohttp.ClientResponse) -> str:
    match = NONCE_RE.search(response.headers["Content-Security-Policy"])
    assert match is not None
    return match.group(1)


# --- headers ---------------------------------------------------------------------------------


async def test_page_has_the_security_headers(client: TestClient) -> None:
    """The start page carries the CSP, no referrer, nosniff and no-store."""
    response = await client.get("/")
    assert response.status == 200
    csp = response.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


async def test_each_response_has_a_fresh_nonce(client: TestClient) -> None:
    """Two loads of the same page get different CSP nonces."""
    first = _nonce(await client.get("/"))
    second = _nonce(await client.get("/"))
    assert first != second


async def test_every_script_carries_the_responses_nonce(client: TestClient) -> None:
    """Each script element of a page has the nonce of that response's policy."""
    response = await client.get("/")
    scripts = parse(await response.text()).all("script")
    assert len(scripts) == 2  # the JavaScript-enabled marker and GOV.UK Frontend's start
    assert {script.attrs.get("nonce") for script in scripts} == {_nonce(response)}


async def test_page_has_no_inline_style(client: TestClient) -> None:
    """No element has a style attribute and there is no style element."""
    page = parse(await (await client.get("/")).text())
    assert not page.all("style")
    assert not [element for element in page.elements if "style" in element.attrs]


async def test_error_page_has_the_security_headers(client: TestClient) -> None:
    """A 404 page is no-store and carries the CSP too."""
    response = await client.get("/no-such-page")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_api_responses_keep_their_own_headers(client: TestClient) -> None:
    """The staff API's answers get no page policy and no CSRF cookie."""
    response = await client.get("/api/v1/nope")
    assert "Content-Security-Policy" not in response.headers
    assert "Set-Cookie" not in response.headers


# --- CSRF ------------------------------------------------------------------------------------


async def test_csrf_cookie_is_host_only_secure_and_strict(client: TestClient) -> None:
    """The CSRF cookie is __Host- prefixed, Secure, HttpOnly, SameSite=Strict, path /."""
    response = await client.get("/test/form")
    morsel = SimpleCookie(response.headers["Set-Cookie"])[COOKIE]
    assert COOKIE.startswith("__Host-")
    assert morsel["secure"] is True
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert not morsel["domain"]


async def test_post_with_the_token_is_handled(client: TestClient, done: Done) -> None:
    """A form with the browser's token reaches its handler."""
    cookie, token = await _browser(client)
    response = await client.post(
        "/test/form", data={"csrf_token": token}, headers={"Cookie": cookie}
    )
    assert (response.status, await response.text(), done.posts) == (200, "done", 1)


async def test_post_without_a_token_is_refused(client: TestClient, done: Done) -> None:
    """A form without the token gets the 403 page and nothing is done."""
    cookie, _token = await _browser(client)
    response = await client.post("/test/form", data={"x": "1"}, headers={"Cookie": cookie})
    page = parse(await response.text())
    assert response.status == 403
    assert page.title == "This form has expired – Secure exchange"
    assert "sent from elsewhere" in await response.text()
    assert done.posts == 0


async def test_post_with_a_wrong_token_is_refused(client: TestClient, done: Done) -> None:
    """A form whose token is not the browser's gets the 403 page and nothing is done."""
    cookie, token = await _browser(client)
    response = await client.post(
        "/test/form", data={"csrf_token": token[::-1]}, headers={"Cookie": cookie}
    )
    assert (response.status, done.posts) == (403, 0)


async def test_token_of_another_browser_is_refused(client: TestClient, done: Done) -> None:
    """One browser's token does not work with another browser's cookie."""
    cookie, _token = await _browser(client)
    _other_cookie, other_token = await _browser(client)
    response = await client.post(
        "/test/form", data={"csrf_token": other_token}, headers={"Cookie": cookie}
    )
    assert (response.status, done.posts) == (403, 0)


async def test_post_without_a_cookie_is_refused(client: TestClient, done: Done) -> None:
    """A token sent without the cookie it belongs to is refused."""
    _cookie, token = await _browser(client)
    response = await client.post("/test/form", data={"csrf_token": token})
    assert (response.status, done.posts) == (403, 0)


async def test_forged_cookie_is_refused(client: TestClient, done: Done) -> None:
    """A cookie the node did not sign, with the token matching its secret, is refused."""
    secret = bytes(32)
    forged = f"{COOKIE}={'A' * 43}.{'A' * 43}"
    response = await client.post(
        "/test/form", data={"csrf_token": csrf_token(secret)}, headers={"Cookie": forged}
    )
    assert (response.status, done.posts) == (403, 0)
    assert COOKIE in response.headers["Set-Cookie"]  # replaced by one the node signs


async def test_json_post_to_a_page_is_refused(client: TestClient, done: Done) -> None:
    """A page accepts only forms: a JSON body is refused like a form without its token."""
    cookie, token = await _browser(client)
    response = await client.post(
        "/test/form", json={"csrf_token": token}, headers={"Cookie": cookie}
    )
    assert (response.status, done.posts) == (403, 0)


async def test_multipart_form_with_the_token_first_is_handled(client: TestClient) -> None:
    """A file upload form passes with the token first; the handler reads the other parts."""
    cookie, token = await _browser(client)
    form = aiohttp.FormData()
    form.add_field("csrf_token", token)
    form.add_field("note", "hello")
    form.add_field("file", b"%PDF-1.7", filename="a.pdf", content_type="application/pdf")
    response = await client.post("/test/upload", data=form, headers={"Cookie": cookie})
    assert (response.status, await response.text()) == (200, "note=hello,file=%PDF-1.7")


async def test_multipart_form_without_the_token_first_is_refused(client: TestClient) -> None:
    """A file upload form whose first part is not the token is refused."""
    cookie, token = await _browser(client)
    form = aiohttp.FormData()
    form.add_field("note", "hello")
    form.add_field("csrf_token", token)
    form.add_field("file", b"data", filename="a.pdf", content_type="application/pdf")
    response = await client.post("/test/upload", data=form, headers={"Cookie": cookie})
    assert response.status == 403


async def test_api_post_needs_no_csrf_token(client: TestClient) -> None:
    """The staff API, authenticated by bearer tokens, is not asked for a CSRF token."""
    response = await client.post("/api/v1/test", json={})
    assert response.status == 200


# --- error pages -----------------------------------------------------------------------------


async def test_unknown_path_gets_the_404_page(client: TestClient) -> None:
    """An unknown page path answers the GOV.UK style 404 page."""
    response = await client.get("/no-such-page")
    page = parse(await response.text())
    assert response.status == 404
    assert response.content_type == "text/html"
    assert page.title == "Page not found – Secure exchange"
    assert [h1.text for h1 in page.all("h1")] == ["Page not found"]


async def test_unknown_api_path_keeps_the_json_404(client: TestClient) -> None:
    """An unknown staff API path still answers the API's JSON error."""
    response = await client.get("/api/v1/nope")
    assert response.status == 404
    assert await response.json() == {"error": {"status": 404, "message": "Not Found"}}


async def test_unknown_peer_path_keeps_the_protocol_404(client: TestClient) -> None:
    """An unknown peer protocol path still answers the protocol's error shape."""
    response = await client.get("/peer/v1/nope")
    assert response.status == 404
    assert await response.json() == {"error": "404", "message": "Not Found"}


async def test_failing_handler_gets_the_500_page(client: TestClient) -> None:
    """A handler that raises answers the 500 page, without the exception or a traceback."""
    response = await client.get("/test/crash")
    text = await response.text()
    assert response.status == 500
    assert parse(text).title == "Sorry, there is a problem with the service – Secure exchange"
    assert SENTINEL not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text


async def test_service_refusal_gets_its_status_page(client: TestClient) -> None:
    """A service refusal with status 403 answers the 403 page, not the service's sentence."""
    response = await client.get("/test/forbidden")
    text = await response.text()
    assert response.status == 403
    assert parse(text).title == "You cannot see this page – Secure exchange"
    assert "another organisation" not in text


# --- assets ----------------------------------------------------------------------------------


async def test_stylesheet_is_served_with_its_type(client: TestClient) -> None:
    """The GOV.UK stylesheet is served as CSS, byte for byte, and may be cached."""
    response = await client.get("/assets/govuk-frontend.min.css")
    assert response.status == 200
    assert response.content_type == "text/css"
    assert await response.read() == (SHIPPED / "govuk-frontend.min.css").read_bytes()
    assert response.headers["Cache-Control"].startswith("public, max-age=")


async def test_image_is_served_with_its_type(client: TestClient) -> None:
    """An image the stylesheet names is served as image/svg+xml."""
    response = await client.get("/assets/images/govuk-crest.svg")
    assert (response.status, response.content_type) == (200, "image/svg+xml")


def test_no_gov_uk_only_font_or_crown_icon_is_shipped() -> None:
    """GOV.UK-only GDS Transport and crown icons are not shipped; no font face is left."""
    manifest = json.loads((STATIC / "MANIFEST.json").read_text("utf-8"))
    assert not [name for name in manifest["files"] if name.startswith("fonts/")]
    assert not [name for name in manifest["files"] if "favicon" in name or "icon" in name]
    assert "@font-face" not in (SHIPPED / "govuk-frontend.min.css").read_text("utf-8")


async def test_versioned_asset_url_is_cached_for_long(client: TestClient) -> None:
    """An asset URL naming the shipped version may be cached for a year."""
    page = parse(await (await client.get("/")).text())
    href = next(
        link.attrs["href"] for link in page.all("link") if link.attrs["rel"] == "stylesheet"
    )
    assert href is not None
    response = await client.get(href)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


async def test_unchanged_asset_answers_not_modified(client: TestClient) -> None:
    """A request with the asset's ETag answers 304 with no body."""
    first = await client.get("/assets/govuk-frontend.min.js")
    response = await client.get(
        "/assets/govuk-frontend.min.js", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert (response.status, await response.read()) == (304, b"")


async def test_unknown_asset_gets_the_404_page(client: TestClient) -> None:
    """An asset that is not shipped answers the 404 page, the file system untouched."""
    response = await client.get("/assets/../../pyproject.toml")
    assert response.status == 404
    assert "Page not found" in await response.text()


# --- templates -------------------------------------------------------------------------------


async def test_context_values_are_escaped(client: TestClient) -> None:
    """A value with a script tag in it reaches the page as text."""
    text = await (await client.get("/test/escaped")).text()
    assert HOSTILE not in text
    assert "&lt;script&gt;" in text


async def test_page_has_one_h1(client: TestClient) -> None:
    """The start page has exactly one h1."""
    page = parse(await (await client.get("/")).text())
    assert len(page.all("h1")) == 1


async def test_page_opens_with_a_skip_link_to_main(client: TestClient) -> None:
    """The first link of the page skips to the main element."""
    page = parse(await (await client.get("/")).text())
    first_link = page.all("a")[0]
    assert (first_link.attrs["href"], first_link.text) == ("#main-content", "Skip to main content")
    assert [main.attrs["id"] for main in page.all("main")] == ["main-content"]


async def test_title_names_the_page_and_the_service(client: TestClient) -> None:
    """The title is the page's name, then the service's."""
    page = parse(await (await client.get("/")).text())
    assert page.title == "Send and receive safeguarding records – Secure exchange"
    assert page.all("html")[0].attrs["lang"] == "en"


async def test_start_page_links_to_sign_in(client: TestClient) -> None:
    """The start page's button goes to the sign-in page."""
    page = parse(await (await client.get("/")).text())
    assert "/sign-in" in [a.attrs["href"] for a in page.all("a")]


async def test_header_names_the_organisation_when_signed_in(client: TestClient) -> None:
    """When a page knows the user's organisation, the header shows its name."""
    text = await (await client.get("/test/signed-in")).text()
    assert "Hillside Primary School" in text
    assert "Hillside Primary School" not in await (await client.get("/")).text()
