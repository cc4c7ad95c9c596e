"""Keys about to expire: a warning at 60, 30 and 7 days, in the log and in /metrics."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from exchange.demo.loopback import Deployment
from exchange.service.key_expiry import WARN_DAYS, seconds_left, warning_days

from .conftest import LA, SCHOOL, deployed
from .helpers import client

DAY = 86400


@given(st.integers(min_value=0, max_value=800 * DAY))
def test_the_warning_is_the_nearest_threshold_reached(seconds: int) -> None:
    """60 days out warns at 60, 29 days at 30, 6 days at 7; more than 60 days: no warning."""
    days = warning_days(seconds)
    if seconds > max(WARN_DAYS) * DAY:
        assert days is None
    else:
        assert days is not None
        assert seconds <= days * DAY
        assert all(seconds > d * DAY for d in WARN_DAYS if d < days)


def test_no_valid_key_is_not_a_warning() -> None:
    """None left (already expired, or unknown): a refusal elsewhere, not a warning here."""
    assert warning_days(None) is None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the school and LA nodes."""
    async with deployed(tmp_path / "keys", {SCHOOL: ["dsl"], LA: ["staff"]}) as deployment:
        yield deployment


@pytest.mark.network
async def test_metrics_and_log_count_down_to_the_keys_expiry(world: Deployment) -> None:
    """The gauge gives the seconds left; 20 days before the end the log warns at 30."""
    school = world.nodes["school"]
    service = school.service
    left = seconds_left(service.directory, SCHOOL, service.now())
    assert left is not None
    assert left > max(WARN_DAYS) * DAY
    async with client(world) as http, http.get(world.ops_url("school") + "/metrics") as resp:
        metrics = await resp.text()
    found = re.search(r'^exchange_key_expires_seconds\{org="urn:106123"\} (\d+)$', metrics, re.M)
    assert found is not None
    assert abs(int(found[1]) - left) <= 5
    with capture_logs() as quiet:
        await school._warn_expiring_keys()
    assert [e for e in quiet if e["event"] == "keys.expiring"] == []
    # Move the school's clock to 20 days before its keys expire.
    offset = left - 20 * DAY
    service.clock = lambda: time.time() + offset
    with capture_logs() as events:
        await school._warn_expiring_keys()
    warned = [(e["org"], e["count"]) for e in events if e["event"] == "keys.expiring"]
    assert warned == [(SCHOOL, 30)]
