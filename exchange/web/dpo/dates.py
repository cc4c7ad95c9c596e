"""GOV.UK date inputs: a date typed as day, month and year, checked as the pattern says.

A date input named ``from`` sends ``from-day``, ``from-month`` and ``from-year``. All three
empty means no date; otherwise each must be there and together they must make a real date.
An error names the date by its words (``Start date must include a month``) and never quotes
what was typed; the page fills the inputs back in only when they made a real date.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final

PARTS: Final = ("day", "month", "year")
#: Longest text read from one part: anything longer cannot be a day, month or year.
MAX_PART_LEN: Final = 4
#: The years a date input accepts (the register began long after 2000).
FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2999
YEAR_DIGITS: Final = 4


@dataclass(frozen=True)
class DateField:
    """What a date input held: its date (or None), its error, and the values to show again."""

    name: str
    day: date | None = None
    error: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def href(self) -> str:
        """Where the error summary links to: the first input of the date."""
        return f"#{self.name}-day"


def _problem(typed: Mapping[str, str], words: str) -> str | None:
    """Return what is wrong with a date typed in full, or None if it is a real date."""
    real = f"{words} must be a real date"
    if any(len(t) > MAX_PART_LEN or not (t.isascii() and t.isdigit()) for t in typed.values()):
        return real
    if len(typed["year"]) != YEAR_DIGITS:
        return f"{words} must include a year with 4 numbers, like 2026"
    year = int(typed["year"])
    if not FIRST_YEAR <= year <= LAST_YEAR:
        return real
    try:
        date(year, int(typed["month"]), int(typed["day"]))
    except ValueError:
        return real
    return None


def read_date(query: Mapping[str, str], name: str, words: str) -> DateField:
    """Read the date input ``name`` from a form or query; ``words`` names it in errors."""
    typed = {part: query.get(f"{name}-{part}", "").strip() for part in PARTS}
    if not any(typed.values()):
        return DateField(name)
    missing = [part for part in PARTS if not typed[part]]
    if missing:
        return DateField(name, error=f"{words} must include a {' and a '.join(missing)}")
    problem = _problem(typed, words)
    if problem is not None:
        return DateField(name, error=problem)
    found = date(int(typed["year"]), int(typed["month"]), int(typed["day"]))
    values = {"day": str(found.day), "month": str(found.month), "year": str(found.year)}
    return DateField(name, found, None, values)
