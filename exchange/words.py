"""The words people read, wherever they read them: times, deadlines, record kinds, references.

Times are shown in Europe/London, in the GOV.UK style guide's form (``1 June 2026 at
5:04pm``, ``5pm on Monday 1 June 2026``); record kinds by name; an envelope by the short
reference staff quote on the phone. The web pages and the ``exchange`` command both use
these, so a person reads the same words in either. Pure: values in, text out.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

from exchange.model import short_reference
from exchange.policy import LONDON

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


__all__ = [
    "KIND_NAMES",
    "date_words",
    "day_words",
    "deadline_words",
    "kind_name",
    "london_time",
    "short_reference",
]
