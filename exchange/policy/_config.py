"""Reading configuration values with the setting's path in every error.

The policy, calendar and retention files are TOML text; the loaders turn them into dicts with
:func:`parse_toml` and read each value through the helpers here, which check its type and
raise :class:`PolicyConfigError` naming the setting by its path (``purposes.pep.categories[2]``),
so an operator can find the line to fix without reading code. Nothing here opens a file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

from exchange.policy.errors import PolicyConfigError

#: Names of purposes, rules, holds and the like: lower-case words joined by hyphens, as in
#: ``cp-file-transfer``. They appear in explanations and in the register, so they stay short.
NAME_RE: Final = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_NAME_LEN: Final = 64


def parse_toml(text: str, what: str) -> dict[str, Any]:
    """Parse TOML ``text`` or raise :class:`PolicyConfigError` saying which file it was."""
    if not isinstance(text, str):
        raise TypeError(f"{what} text must be a string")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyConfigError("", f"{what} is not valid TOML: {exc}") from None


def table(value: Any, setting: str) -> Mapping[str, Any]:
    """Return ``value`` if it is a table."""
    if not isinstance(value, Mapping):
        raise PolicyConfigError(setting, "must be a table")
    return value


def array(value: Any, setting: str, *, non_empty: bool = False) -> Sequence[Any]:
    """Return ``value`` if it is an array (optionally a non-empty one)."""
    if not isinstance(value, list):
        raise PolicyConfigError(setting, "must be an array")
    if non_empty and not value:
        raise PolicyConfigError(setting, "must list at least one entry")
    return value


def required(data: Mapping[str, Any], key: str, setting: str) -> Any:
    """Return ``data[key]`` or raise naming the missing setting."""
    if key not in data:
        raise PolicyConfigError(f"{setting}.{key}" if setting else key, "is required")
    return data[key]


def text(value: Any, setting: str, *, max_len: int = 500) -> str:
    """Return ``value`` if it is a non-empty string of at most ``max_len`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise PolicyConfigError(setting, "must be a non-empty string")
    if len(value) > max_len:
        raise PolicyConfigError(setting, f"must be at most {max_len} characters")
    return value


def name(value: Any, setting: str) -> str:
    """Return ``value`` if it is a hyphenated lower-case name such as ``lac-health``."""
    if not isinstance(value, str) or len(value) > MAX_NAME_LEN or not NAME_RE.fullmatch(value):
        raise PolicyConfigError(
            setting, "must be a lower-case name of letters, digits and single hyphens"
        )
    return value


def integer(value: Any, setting: str, *, low: int, high: int) -> int:
    """Return ``value`` if it is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyConfigError(setting, "must be an integer")
    if not low <= value <= high:
        raise PolicyConfigError(setting, f"must be between {low} and {high}")
    return value


def a_date(value: Any, setting: str) -> date:
    """Return ``value`` if it is a TOML local date (``2025-09-01``, not a date-time)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise PolicyConfigError(setting, "must be a date such as 2025-09-01 (no quotes, no time)")
    return value


def choice(value: Any, setting: str, choices: frozenset[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``; the error lists them."""
    if not isinstance(value, str) or value not in choices:
        raise PolicyConfigError(
            setting, f"is not {what} (expected one of: {', '.join(sorted(choices))})"
        )
    return value


def no_unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], setting: str) -> None:
    """Refuse keys the loader does not read, so a misspelt setting is not silently ignored."""
    for key in data:
        if key not in allowed:
            where = f"{setting}.{key}" if setting else key
            raise PolicyConfigError(
                where, f"is not a known setting (expected: {', '.join(sorted(allowed))})"
            )


def version(data: Mapping[str, Any], supported: int) -> None:
    """Check the file's ``version`` setting."""
    value = integer(required(data, "version", ""), "version", low=1, high=1_000_000)
    if value != supported:
        raise PolicyConfigError("version", f"must be {supported} (this release reads only that)")
