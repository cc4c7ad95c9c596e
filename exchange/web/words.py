"""The words pages use for times, record kinds and organisations (GOV.UK style).

Times are shown in Europe/London, in the GOV.UK style guide's form (``1 June 2026 at
5:04pm``, ``5pm on Monday 1 June 2026``); record kinds and organisations by name, never by
identifier when a name is known.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

from aiohttp import web

from exchange.keys.errors import KeysError
from exchange.keys.ids import OrgId
from exchange.policy import LONDON
from exchange.web.app import web_service

#: Record kinds in words, as the pages name them.
KIND_NAMES: Final = {
    "referral": "Referral",
    "cp-file-transfer": "Child protection file",
    "lac-record": "Looked-after child record",
    "outcome": "Outcome",
    "information-request": "Information request",
}


def kind_name(kind: str) -> str:
    """Return a record kind in words (the kind itself if it has no name here)."""
    return KIND_NAMES.get(kind, kind)


def _clock(local: datetime) -> str:
    """``5pm``, ``5:04pm``, ``12am`` (midnight) and ``12pm`` (midday), as GOV.UK writes them."""
    hour = local.hour % 12 or 12
    suffix = "am" if local.hour < 12 else "pm"
    minutes = "" if local.minute == 0 else f":{local:%M}"
    return f"{hour}{minutes}{suffix}"


def london_time(moment: float) -> str:
    """Return a moment as GOV.UK style words in Europe/London: ``1 June 2026 at 5:04pm``."""
    local = datetime.fromtimestamp(moment, UTC).astimezone(LONDON)
    return f"{local.day} {local:%B %Y} at {_clock(local)}"


def date_words(day: date) -> str:
    """Return a date as GOV.UK writes it: ``14 March 2015``."""
    return f"{day.day} {day:%B %Y}"


def day_words(day: date) -> str:
    """Return a date as ``Monday 1 June 2026``."""
    return f"{day:%A} {date_words(day)}"


def deadline_words(due: date, *, close: str = "5pm") -> str:
    """Return a deadline day in words: ``by 5pm on Monday 1 June 2026``."""
    return f"by {close} on {day_words(due)}"


def organisation_name(request: web.Request, org: OrgId) -> str:
    """Return the directory's name of an organisation (its id if the directory has none)."""
    try:
        return web_service(request).directory.organisation(org).name
    except KeysError:
        return org
