"""Screenshots of pages, written by the tests into :data:`SCREENSHOTS`.

By default that is a folder in the system's temporary directory, so a test run leaves the
checkout as it found it (the pages show the time, so every run's pictures differ).
``make screenshots`` sets ``EXCHANGE_SCREENSHOTS=docs/ui`` to refresh the documentation's
pictures (docs/ui.md).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Final

from playwright.sync_api import Page

#: Screenshot names become file names: lower-case words joined by hyphens.
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

#: Where the tests write their screenshots.
SCREENSHOTS: Final = Path(
    os.environ.get("EXCHANGE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "exchange-screenshots"
)

#: The first eight bytes of every PNG file (PNG specification, section 5.2).
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def save_screenshot(page: Page, folder: Path, name: str) -> Path:
    """Write a full-page PNG of the page to ``folder/name.png`` and return its path.

    Animations are stopped and the text caret hidden, so the same page gives the same picture.
    """
    if not _NAME.fullmatch(name):
        raise ValueError("name must be lower-case letters and digits joined by hyphens")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
    return path
