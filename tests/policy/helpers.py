"""Shared fixtures for the policy tests: the shipped config files, loaded once."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from exchange.policy import (
    Policy,
    RetentionPolicy,
    SchoolCalendar,
    load_calendar,
    load_policy,
    load_retention,
)

CONFIG = Path(__file__).resolve().parents[2] / "config"
LONDON = ZoneInfo("Europe/London")


def config_text(name: str) -> str:
    return (CONFIG / name).read_text(encoding="utf-8")


@cache
def policy() -> Policy:
    return load_policy(config_text("policy.toml"))


@cache
def calendar() -> SchoolCalendar:
    return load_calendar(config_text("calendar.toml"))


@cache
def retention() -> RetentionPolicy:
    return load_retention(config_text("retention.toml"), purposes=policy().purposes)


def d(text: str) -> date:
    return date.fromisoformat(text)


def london(text: str) -> datetime:
    """Return an aware datetime for a London wall-clock time such as ``2026-05-22T16:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
