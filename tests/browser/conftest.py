"""Fixtures for tests in a real browser: Debian's Chromium, driven by Playwright.

One Chromium serves every test under tests/browser/ (:func:`browser`); each test gets a
fresh context, so no cookie or storage passes between tests, and a page in it: :func:`page`
with JavaScript on, :func:`page_nojs` with it off. Contexts use a fixed window size, British
English and London time, so pages and screenshots come out the same on every machine.

The browser is scoped to this package, not the session, because Playwright's synchronous
API leaves its own event loop marked as running on the test thread while the browser is
open: tests here that need an event loop (servers, nodes, service calls) run it on a
:class:`~tests.browser.server.BackgroundLoop`, and once the last browser test ends the
browser closes, so the asyncio tests elsewhere in the suite are not affected.

A test that uses the browser starts a process and talks to a server on loopback, so it is
marked ``browser``, ``network`` and ``subprocess`` here at collection (the guard in
tests/conftest.py fails a test that does either unmarked, and ``make unit`` leaves them out).
A missing Chromium fails every browser test with one line saying what to install, in CI and
on a developer's machine alike, and the run ends with that line once more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.accessibility import NO_JAVASCRIPT
from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS, LAUNCH_TIMEOUT_MS, missing_message
from tests.browser.server import BackgroundLoop
from tests.conftest import _fixtures_used

#: Fixtures whose tests are browser tests; every page and context fixture uses ``browser``.
BROWSER_FIXTURES = frozenset({"tests.browser.conftest.browser"})

#: Context settings shared by every test: a laptop-sized window, British English, London time.
CONTEXT_OPTIONS: dict[str, Any] = {
    "viewport": {"width": 1024, "height": 768},
    "locale": "en-GB",
    "timezone_id": "Europe/London",
}

#: How long one browser action may wait (for an element, a navigation), in milliseconds.
ACTION_TIMEOUT_MS = 10_000

#: Set when a test failed for want of Chromium, so the run ends by saying what to install.
_CHROMIUM_MISSING = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test that uses the browser ``browser``, ``network`` and ``subprocess``."""
    for item in items:
        if _fixtures_used(item) & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.network)
            item.add_marker(pytest.mark.subprocess)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """End a run whose browser tests failed for want of Chromium with what to install."""
    if config.stash.get(_CHROMIUM_MISSING, False):
        terminalreporter.write_line(missing_message())


@pytest.fixture(scope="package")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """Start Debian's Chromium once for tests/browser/, or fail saying how to install it."""
    if not CHROMIUM.exists():
        request.config.stash[_CHROMIUM_MISSING] = True
        pytest.fail(missing_message(), pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=list(LAUNCH_ARGS),
            timeout=LAUNCH_TIMEOUT_MS,
        )
        yield chromium
        chromium.close()


def _context(browser: Browser, *, javascript: bool) -> Iterator[BrowserContext]:
    """Open a fresh context with the shared settings; close it after the test."""
    context = browser.new_context(java_script_enabled=javascript, **CONTEXT_OPTIONS)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    if not javascript:
        NO_JAVASCRIPT.add(context)
    yield context
    context.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """Return a fresh browser context with JavaScript on."""
    yield from _context(browser, javascript=True)


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """Return a new page with JavaScript on."""
    return context.new_page()


@pytest.fixture
def context_nojs(browser: Browser) -> Iterator[BrowserContext]:
    """Return a fresh browser context with JavaScript off."""
    yield from _context(browser, javascript=False)


@pytest.fixture
def page_nojs(context_nojs: BrowserContext) -> Page:
    """Return a new page with JavaScript off, as a visitor whose scripts never load."""
    return context_nojs.new_page()


@pytest.fixture
def background_loop() -> Iterator[BackgroundLoop]:
    """Return an event loop on its own thread, for the servers a test's browser talks to."""
    with BackgroundLoop() as loop:
        yield loop
