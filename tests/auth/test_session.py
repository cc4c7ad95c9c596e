"""The session policy, levels, tokens and CSRF tokens, and the node's ``[web]`` settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.auth.errors import InvalidCsrfTokenError
from exchange.auth.session import (
    SessionPolicy,
    check_csrf_token,
    csrf_token,
    new_session_token,
    required_level,
    session_id_hash,
)
from exchange.config import ConfigError, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "node.example.toml"
POLICY = SessionPolicy()
T0 = 1_800_000_000


def test_defaults_are_15_minutes_idle_and_8_hours_absolute() -> None:
    """The default policy is the one the issue names."""
    assert (POLICY.idle_timeout, POLICY.absolute_timeout) == (900, 28_800)


def test_active_until_idle_timeout() -> None:
    """A session used 14:59 ago is active; 15:00 ago it has timed out idle."""
    assert POLICY.state(created=T0, last_seen=T0, now=T0 + 899) == "active"
    assert POLICY.state(created=T0, last_seen=T0, now=T0 + 900) == "idle"


def test_absolute_timeout_wins_over_recent_use() -> None:
    """A session used a second ago is expired once 8 hours have passed since it began."""
    now = T0 + 28_800
    assert POLICY.state(created=T0, last_seen=now - 1, now=now) == "expired"


@given(st.integers(0, 40_000), st.integers(0, 40_000))
def test_state_agrees_with_expires_at(used_after: int, now_after: int) -> None:
    """A session is active exactly while ``now`` is before its expiry time."""
    last_seen = T0 + min(used_after, now_after)
    now = T0 + now_after
    active = POLICY.state(created=T0, last_seen=last_seen, now=now) == "active"
    assert active == (now < POLICY.expires_at(created=T0, last_seen=last_seen))


@pytest.mark.parametrize(
    ("idle", "absolute", "message"),
    [
        (10, 28_800, "idle_timeout must be a whole number of seconds from 60"),
        (900, 10**7, "absolute_timeout must be a whole number of seconds from 300"),
        (3600, 1800, "idle_timeout must not be longer than absolute_timeout"),
    ],
)
def test_policy_bounds_name_the_setting(idle: int, absolute: int, message: str) -> None:
    """Out-of-bounds timeouts are refused naming the setting."""
    with pytest.raises(ValueError, match=message):
        SessionPolicy(idle_timeout=idle, absolute_timeout=absolute)


def test_roles_that_read_records_need_a_second_factor() -> None:
    """DSL, staff and DPO need a second factor; an administrator once enrolled."""
    for role in ("dsl", "staff", "dpo"):
        assert required_level(role, has_second_factor=False) == "second-factor"
    assert required_level("admin", has_second_factor=False) == "password"
    assert required_level("admin", has_second_factor=True) == "second-factor"


def test_token_names_its_session_by_hash() -> None:
    """The token maps to the hash that was stored; a changed token maps elsewhere."""
    token, id_hash = new_session_token(lambda n: b"\x05" * n)
    assert len(token) == 43
    assert session_id_hash(token) == id_hash
    assert session_id_hash(token[:-1] + ("A" if token[-1] != "A" else "B")) != id_hash


@pytest.mark.parametrize("token", ["", "x" * 42, "x" * 44, "é" * 43, "!" * 43])
def test_malformed_tokens_name_no_session(token: str) -> None:
    """Text that is not a 32-byte token names no session."""
    assert session_id_hash(token) is None


def test_csrf_token_matches_only_its_session() -> None:
    """A form's token passes with its session's secret and fails with another's."""
    token = csrf_token(b"\x01" * 32)
    check_csrf_token(b"\x01" * 32, token)
    with pytest.raises(InvalidCsrfTokenError):
        check_csrf_token(b"\x02" * 32, token)
    with pytest.raises(InvalidCsrfTokenError):
        check_csrf_token(b"\x01" * 32, "")


def test_node_configuration_sets_the_timeouts() -> None:
    """The ``[web]`` table of the node configuration sets both timeouts."""
    text = EXAMPLE.read_text().replace("idle_timeout = 900", "idle_timeout = 600")
    config = parse_config(text, EXAMPLE.parent)
    assert config.web == SessionPolicy(idle_timeout=600, absolute_timeout=28_800)


def test_node_configuration_without_web_uses_the_defaults() -> None:
    """Leaving ``[web]`` out keeps 15 minutes and 8 hours."""
    text = EXAMPLE.read_text().replace("[web]", "[webx]").replace("[webx]\n", "")
    text = text.replace("idle_timeout = 900", "").replace("absolute_timeout = 28800", "")
    assert parse_config(text, EXAMPLE.parent).web == SessionPolicy()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("idle_timeout = 900", "idle_timeout = 5", "web.idle_timeout must be"),
        (
            "idle_timeout = 900",
            'idle_timeout = "soon"',
            "web.idle_timeout must be a whole number of seconds from 60",
        ),
        ("absolute_timeout = 28800", "absolute_timeout = 60", "web.absolute_timeout must be"),
        ("idle_timeout = 900", "idle = 900", "web.idle is not a known setting"),
    ],
)
def test_node_configuration_errors_name_the_setting(old: str, new: str, message: str) -> None:
    """A bad ``[web]`` value is refused naming ``web.<setting>``."""
    with pytest.raises(ConfigError, match=message):
        parse_config(EXAMPLE.read_text().replace(old, new), EXAMPLE.parent)
