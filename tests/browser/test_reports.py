"""The parts of the browser harness that need no browser: reports, names and messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import chromium
from tests.browser.accessibility import AccessibilityError, format_violations
from tests.browser.screenshots import save_screenshot

VIOLATION = {
    "id": "image-alt",
    "impact": "critical",
    "help": "Images must have alternative text",
    "helpUrl": "https://dequeuniversity.com/rules/axe/4.12/image-alt",
    "nodes": [{"target": ["main > img"]}, {"target": ["#logo"]}],
}


def test_report_lists_rule_impact_help_and_selectors() -> None:
    """A violation is reported with its rule id, impact, help text and each failing selector."""
    report = format_violations([VIOLATION])
    assert report.splitlines() == [
        "1 accessibility violation(s) at WCAG 2.2 AA:",
        "- image-alt (critical): Images must have alternative text",
        "    main > img",
        "    #logo",
        "    see https://dequeuniversity.com/rules/axe/4.12/image-alt",
    ]


def test_error_carries_the_failed_rule_ids() -> None:
    """The error raised for violations says which rules failed."""
    assert AccessibilityError([VIOLATION]).rule_ids == {"image-alt"}


def test_screenshot_name_must_be_a_slug(tmp_path: Path) -> None:
    """A screenshot name that is not lower-case words joined by hyphens is refused."""
    with pytest.raises(ValueError, match="hyphens"):
        save_screenshot(None, tmp_path, "../Inbox page")  # type: ignore[arg-type]


def test_missing_chromium_in_ci_says_ci_should_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """In CI the missing-browser line says .ci/run installs Debian's chromium."""
    monkeypatch.setenv("CI", "true")
    assert ".ci/run" in chromium.missing_message()
    assert "chromium package" in chromium.missing_message()


def test_missing_chromium_on_a_developer_machine_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a developer's machine the missing-browser line gives the apt-get command."""
    monkeypatch.delenv("CI", raising=False)
    assert "apt-get install --no-install-recommends chromium" in chromium.missing_message()
    assert "\n" not in chromium.missing_message()
