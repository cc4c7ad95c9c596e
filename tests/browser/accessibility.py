"""Accessibility checks with axe-core, to WCAG 2.2 level AA.

:func:`assert_accessible` injects axe-core (bundled by the ``axe-playwright-python`` package)
into a page, runs the rules tagged for WCAG 2.0, 2.1 and 2.2 levels A and AA, and fails with
one readable entry per violation: the rule id, its impact, what it asks for and the elements
that break it. axe-core is JavaScript; Playwright injects it through the DevTools protocol,
so a page's Content Security Policy does not stop it. A page whose context has JavaScript
turned off cannot run it, so such a page is checked as its served HTML re-rendered in a
context where its own scripts are blocked: the same DOM, as a visitor without JavaScript
gets it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import BrowserContext, Page, Route

#: The axe-core tags for WCAG 2.2 level AA: every A and AA rule of 2.0, 2.1 and 2.2.
WCAG_22_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")

#: Contexts opened with JavaScript turned off (the ``page_nojs`` fixture registers them);
#: Playwright does not say whether a context has JavaScript.
NO_JAVASCRIPT: weakref.WeakSet[BrowserContext] = weakref.WeakSet()

_AXE = Axe()
_OPTIONS = {"runOnly": {"type": "tag", "values": list(WCAG_22_AA)}, "resultTypes": ["violations"]}


class AccessibilityError(AssertionError):
    """axe-core found WCAG 2.2 AA violations on a page."""

    def __init__(self, violations: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(format_violations(violations))
        #: axe-core's violation objects, for tests that check which rules failed.
        self.violations = tuple(violations)

    @property
    def rule_ids(self) -> frozenset[str]:
        """Return the ids of the axe-core rules that failed."""
        return frozenset(str(violation["id"]) for violation in self.violations)


def assert_accessible(page: Page) -> None:
    """Fail with a readable list of violations unless the page meets WCAG 2.2 AA."""
    violations = find_violations(page)
    if violations:
        raise AccessibilityError(violations)


def find_violations(page: Page) -> list[Mapping[str, Any]]:
    """Return axe-core's WCAG 2.2 AA violations on the page, as axe-core reports them."""
    if page.context in NO_JAVASCRIPT:
        return _violations_without_javascript(page)
    return list(_AXE.run(page, options=_OPTIONS).response["violations"])


def format_violations(violations: Sequence[Mapping[str, Any]]) -> str:
    """Return one paragraph per violation: rule, impact, what it asks and the failing elements."""
    lines = [f"{len(violations)} accessibility violation(s) at WCAG 2.2 AA:"]
    for violation in violations:
        lines.append(
            f"- {violation['id']} ({violation.get('impact') or 'no impact given'}): "
            f"{violation['help']}"
        )
        lines.extend(
            f"    {' '.join(str(part) for part in node['target'])}"
            for node in violation.get("nodes", ())
        )
        if violation.get("helpUrl"):
            lines.append(f"    see {violation['helpUrl']}")
    return "\n".join(lines)


def _violations_without_javascript(page: Page) -> list[Mapping[str, Any]]:
    """Check a JavaScript-off page as its DOM re-rendered with the page's own scripts blocked."""
    browser = page.context.browser
    if browser is None:
        raise ValueError("the page's context has no browser to open a checking context in")
    html = page.content()
    url = page.url

    def serve_snapshot(route: Route) -> None:
        # script-src 'none' keeps the page's scripts from running, as with JavaScript off,
        # while axe-core, injected through the DevTools protocol, still runs.
        route.fulfill(
            body=html,
            headers={
                "content-type": "text/html; charset=utf-8",
                "content-security-policy": "script-src 'none'",
            },
        )

    # The snapshot loads the page's stylesheet from the same (test CA) server as the page.
    checking = browser.new_context(ignore_https_errors=True)
    try:
        checking.route(url, serve_snapshot)
        snapshot = checking.new_page()
        snapshot.goto(url)
        return list(_AXE.run(snapshot, options=_OPTIONS).response["violations"])
    finally:
        checking.close()
