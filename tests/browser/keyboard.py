"""Keyboard-only driving: move the focus with Tab as a person without a mouse does."""

from __future__ import annotations

from playwright.sync_api import Locator, Page

#: Tab presses before :func:`tab_to` gives up; a page's tab order is far shorter than this.
MAX_TABS = 60

_DESCRIBE_FOCUS = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return "the page itself";
    const name = el.getAttribute("aria-label") || el.textContent.trim().slice(0, 40);
    return `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${name}"`;
}"""


def is_focused(target: Locator) -> bool:
    """Return whether the element the locator finds has the keyboard focus."""
    return bool(target.evaluate("el => el === document.activeElement"))


def focused(page: Page) -> str:
    """Return a short description of the element that has the focus, for failure messages."""
    return str(page.evaluate(_DESCRIBE_FOCUS))


def tab_to(page: Page, target: Locator, *, max_tabs: int = MAX_TABS) -> int:
    """Press Tab until the target has the focus; return the presses it took.

    Fails, naming the elements the focus passed through, if the target is not reached
    within ``max_tabs`` presses: it is not in the tab order, or is hidden from the keyboard.
    """
    passed: list[str] = []
    for presses in range(1, max_tabs + 1):
        page.keyboard.press("Tab")
        if is_focused(target):
            return presses
        passed.append(focused(page))
    raise AssertionError(
        f"Tab did not reach {target} in {max_tabs} presses; the focus went to: "
        + ", ".join(dict.fromkeys(passed))
    )
