"""Parsing Structured Field Dictionaries (RFC 8941 §3.2) strictly, for the signed headers.

Content-Digest, Signature-Input and Signature are all Dictionaries. RFC 8941 lets the last
of two duplicate keys win; two readers that disagree on which member counts is exactly the
ambiguity a signed header must not have, so a duplicate key, at any level, is refused.
"""

from __future__ import annotations

from typing import Any

import http_sf


def _refuse_duplicate(_key: str, context: str) -> None:
    raise ValueError(f"duplicate {context} key")


def parse_dictionary(value: str) -> dict[str, Any]:
    """Return the Dictionary in ``value``; raise ``ValueError`` if it is not one."""
    try:
        raw = value.encode("ascii")
    except UnicodeError:
        raise ValueError("a structured field is ASCII") from None
    parsed = http_sf.parse(raw, tltype="dictionary", on_duplicate_key=_refuse_duplicate)
    if not isinstance(parsed, dict):  # pragma: no cover - tltype="dictionary" gives a dict
        raise TypeError("not a dictionary")
    return parsed
