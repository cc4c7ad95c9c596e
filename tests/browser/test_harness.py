"""The browser harness itself, proved on two tiny pages served from a test-only aiohttp app.

One page is accessible (language, title, skip link, one h1, a labelled input); the other
is broken on purpose (an input without a label, an image without alternative text), so
the accessibility check is seen to fail as well as pass.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.sync_api import Page

from tests.browser.accessibility import AccessibilityError, assert_accessible
from tests.browser.keyboard import is_focused, tab_to
from tests.browser.screenshots import PNG_SIGNATURE, save_screenshot
from tests.browser.server import BackgroundLoop, serve_app

#: A strict policy like the one the product's pages will send: no inline script or style.
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"

ACCESSIBLE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Find a school – Harness test service</title>
  <script src="/enhance.js" defer></script>
</head>
<body>
  <a href="#main">Skip to main content</a>
  <main id="main">
    <h1>Find a school</h1>
    <form method="post" action="/search">
      <label for="school">School name</label>
      <input id="school" name="school" type="text">
      <button type="submit">Search</button>
    </form>
  </main>
</body>
</html>
"""

BROKEN = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Broken – Harness test service</title></head>
<body>
  <main>
    <h1>Broken on purpose</h1>
    <form method="post" action="/search"><input name="school" type="text"></form>
    <img src="/crest.png">
  </main>
</body>
</html>
"""

#: Marks the page as enhanced, as GOV.UK Frontend does, so a test can see whether it ran.
ENHANCE_JS = "document.documentElement.classList.add('js-enabled');\n"

#: A 1 by 1 transparent PNG for the broken page's image.
CREST_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _html(body: str) -> web.Response:
    """Return an HTML page with the strict Content Security Policy."""
    return web.Response(
        text=body, content_type="text/html", headers={"Content-Security-Policy": STRICT_CSP}
    )


async def _accessible(_request: web.Request) -> web.Response:
    return _html(ACCESSIBLE)


async def _broken(_request: web.Request) -> web.Response:
    return _html(BROKEN)


async def _enhance(_request: web.Request) -> web.Response:
    return web.Response(text=ENHANCE_JS, content_type="text/javascript")


async def _crest(_request: web.Request) -> web.Response:
    return web.Response(body=CREST_PNG, content_type="image/png")


async def _search(request: web.Request) -> web.Response:
    # Test-only page: shows the submitted (synthetic) value so a test sees it arrived.
    form = await request.post()
    school = html.escape(str(form.get("school", "")))
    return _html(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Results – Harness test service</title></head><body><main>"
        f'<h1>Results</h1><p id="searched">{school}</p></main></body></html>'
    )


@pytest.fixture
def site(background_loop: BackgroundLoop) -> Iterator[str]:
    """Serve the two pages on 127.0.0.1 and return the base URL."""
    app = web.Application()
    app.router.add_get("/", _accessible)
    app.router.add_get("/broken", _broken)
    app.router.add_get("/enhance.js", _enhance)
    app.router.add_get("/crest.png", _crest)
    app.router.add_post("/search", _search)
    with serve_app(background_loop, app) as base_url:
        yield base_url


def test_browser_tests_are_marked(request: pytest.FixtureRequest, page: Page) -> None:
    """A test that uses the browser is marked browser, network and subprocess."""
    assert page.context.browser is not None
    markers = {mark.name for mark in request.node.iter_markers()}
    assert {"browser", "network", "subprocess"} <= markers


def test_accessible_page_passes(page: Page, site: str) -> None:
    """The accessible page has no WCAG 2.2 AA violations."""
    page.goto(site)
    assert_accessible(page)


def test_broken_page_reports_each_violation(page: Page, site: str) -> None:
    """The broken page fails the check, naming the unlabelled input and the image without alt."""
    page.goto(f"{site}/broken")
    with pytest.raises(AccessibilityError) as failure:
        assert_accessible(page)
    assert {"label", "image-alt"} <= failure.value.rule_ids
    assert {"    input", "    img"} <= set(str(failure.value).splitlines())


def test_broken_page_fails_with_javascript_off(page_nojs: Page, site: str) -> None:
    """The check also runs on a page opened with JavaScript off, and finds the same faults."""
    page_nojs.goto(f"{site}/broken")
    with pytest.raises(AccessibilityError) as failure:
        assert_accessible(page_nojs)
    assert {"label", "image-alt"} <= failure.value.rule_ids


def test_accessible_page_passes_with_javascript_off(page_nojs: Page, site: str) -> None:
    """The accessible page, opened with JavaScript off, has no WCAG 2.2 AA violations."""
    page_nojs.goto(site)
    assert_accessible(page_nojs)


def test_scripts_run_with_javascript_on(page: Page, site: str) -> None:
    """With JavaScript on, the page's own script runs despite the strict policy."""
    page.goto(site)
    page.wait_for_selector("html.js-enabled", state="attached")


def test_form_submits_with_javascript_off(page_nojs: Page, site: str) -> None:
    """With JavaScript off the page's script does not run and the form still submits."""
    page_nojs.goto(site)
    assert page_nojs.locator("html.js-enabled").count() == 0
    page_nojs.get_by_label("School name").fill("Example Primary")
    page_nojs.get_by_role("button", name="Search").click()
    page_nojs.wait_for_url(f"{site}/search")
    assert page_nojs.locator("#searched").inner_text() == "Example Primary"


def test_keyboard_reaches_the_button_and_enter_submits(page: Page, site: str) -> None:
    """Tab moves through the skip link and input to the button, and Enter submits the form."""
    page.goto(site)
    tab_to(page, page.get_by_label("School name"))
    page.keyboard.type("Example Primary")
    button = page.get_by_role("button", name="Search")
    assert tab_to(page, button) == 1
    assert is_focused(button)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site}/search")
    assert page.locator("#searched").inner_text() == "Example Primary"


def test_keyboard_helper_names_where_the_focus_went(page: Page, site: str) -> None:
    """Tabbing to an element that is not in the tab order fails, naming where the focus went."""
    page.goto(site)
    with pytest.raises(AssertionError, match="Skip to main content"):
        tab_to(page, page.get_by_role("heading", name="Find a school"), max_tabs=3)


def test_screenshot_is_a_png(page: Page, site: str, tmp_path: Path) -> None:
    """A screenshot is written into the given folder as a PNG of the page's width."""
    page.goto(site)
    path = save_screenshot(page, tmp_path / "ui", "find-a-school")
    data = path.read_bytes()
    assert path == tmp_path / "ui" / "find-a-school.png"
    assert data.startswith(PNG_SIGNATURE)
    # IHDR, the first chunk, holds the width as a big-endian 32-bit number at byte 16.
    assert int.from_bytes(data[16:20], "big") == 1024
