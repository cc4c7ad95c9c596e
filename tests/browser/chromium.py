"""Where the browser tests find Chromium and how they start it.

The tests drive Debian's Chromium (package ``chromium``), never a browser that Playwright
downloads: no download is possible on the project's machines, and ``.ci/run`` installs the
Debian package when it is missing. In CI a missing browser is a failure, never a skip; on a
developer's machine the tests fail too, and the run ends with one line saying what to install.
"""

from __future__ import annotations

from pathlib import Path

from tests.ci import in_ci

#: The executable that Debian's ``chromium`` package installs.
CHROMIUM = Path("/usr/bin/chromium")

#: Headless, no sandbox (the tests run as root), and none of Chromium's own traffic: the
#: machines' network is closed, and without the background-networking flags Chromium's
#: many refused connections slow every start. Playwright adds a fresh, empty user-data
#: directory to every launch.
LAUNCH_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: How long one launch may take before the test fails, in milliseconds.
LAUNCH_TIMEOUT_MS = 30_000


def missing_message() -> str:
    """Return the one line that says Chromium is missing and how to install it."""
    if in_ci():
        return (
            f"Chromium is not installed at {CHROMIUM}: .ci/run should have installed Debian's "
            "chromium package; check the start of its output."
        )
    return (
        f"The browser tests need Chromium at {CHROMIUM}: install Debian's chromium package "
        "(as root: apt-get install --no-install-recommends chromium)."
    )
