"""Whether this test run is CI's: there, a missing tool fails its tests rather than skipping."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """Return whether this run is CI's (``.ci/run`` is started with ``CI=true``)."""
    return os.environ.get("CI", "").lower() == "true"
