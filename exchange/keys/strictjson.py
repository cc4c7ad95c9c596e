"""Strict JSON decoding for signed and secret documents (key files, the directory).

Python's ``json`` accepts repeated field names (keeping the last), ``NaN`` and
``Infinity``; other parsers resolve the first two differently, so a document could mean one
thing to the signer and another to a reader. These documents refuse all three.
"""

from __future__ import annotations

import json
from typing import Any


class StrictJsonError(ValueError):
    """The text is not strict JSON; the message says what was wrong, never the values."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise StrictJsonError(f"repeats the field {name!r} in one object")
        obj[name] = value
    return obj


def _refuse_constant(name: str) -> None:
    raise StrictJsonError(f"contains {name}, which is not valid JSON")


def loads_strict(text: str) -> Any:
    """Decode ``text``, raising :class:`StrictJsonError` for anything but strict JSON."""
    try:
        return json.loads(
            text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except StrictJsonError:
        raise
    # ValueError covers malformed JSON and numbers too long to convert; RecursionError
    # covers deeply nested arrays, which a size limit alone does not prevent.
    except (ValueError, RecursionError):
        raise StrictJsonError("is not valid JSON") from None
