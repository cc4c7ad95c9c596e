r"""Strict JSON request bodies for the staff API: size limit, known fields, typed values.

Every refusal is a :class:`BadRequestError` whose message names the field and the rule, e.g.
"recipients[1] must be an organisation id" or "unknown field 'note'". Values are never
echoed back, since they may hold personal data.

Before a value reaches a handler the body is held to what the rest of the node can carry:
UTF-8 text, nesting at most :data:`MAX_DEPTH` deep, integers that fit in 64 bits (an
integer of thousands of digits is never converted), finite numbers, and strings of Unicode
characters: no lone surrogate escape (``"\ud800"``), which no UTF-8 store or log can write,
and no non-character. A refusal names the rule and the JSON path where it broke.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from exchange.service.errors import ServiceError

#: Unknown field names are echoed only when shaped like the API's own field names.
_FIELD_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")

#: The deepest nesting of arrays and objects a body may have. The deepest body the API
#: takes (a record's list of objects inside the submission) nests six levels; the bound
#: leaves room and keeps every later walk over the document far from the recursion limit.
MAX_DEPTH: Final = 32
#: The longest integer a body may hold: 19 digits, as a signed 64-bit integer has.
MAX_DIGITS: Final = 19
_INT64: Final = range(-(2**63), 2**63)
#: Characters no text may hold: lone surrogates (from escapes) and the non-characters.
NOT_TEXT_RE: Final = re.compile(r"[\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
#: How much of a JSON path a refusal shows.
_MAX_PATH: Final = 80


class BadRequestError(ServiceError):
    """The request body is malformed; the message names the problem."""

    status = 400


@dataclass(frozen=True)
class _Refused:
    """What the parse hooks put in place of a number the body may not hold: the rule."""

    rule: str


@dataclass(frozen=True)
class Field:
    """One allowed field: its JSON type and whether it must be present."""

    kind: type
    required: bool = True


def parse_object(raw: bytes, fields: Mapping[str, Field], *, limit: int | None) -> dict[str, Any]:
    """Decode ``raw`` as a JSON object holding only ``fields``, each of the right type.

    ``limit`` is the longest body taken (413 beyond it); None when ``raw`` was already read
    within its own limit (a submission, :mod:`exchange.http.submissions`).
    """
    if limit is not None and len(raw) > limit:
        raise ServiceError(f"the request body is larger than {limit} bytes", status=413)
    doc = parse_json(raw)
    if not isinstance(doc, dict):
        raise BadRequestError("the request body must be a JSON object")
    for name in doc:
        if name not in fields:
            raise _unknown_field(name, fields)
    for name, spec in fields.items():
        if name not in doc:
            if spec.required:
                raise BadRequestError(f"the field {name!r} is missing")
            continue
        value = doc[name]
        if not isinstance(value, spec.kind) or (spec.kind is int and isinstance(value, bool)):
            raise BadRequestError(f"the field {name!r} must be a JSON {_json_type(spec.kind)}")
    return doc


def parse_json(raw: bytes) -> Any:
    """Decode ``raw`` as UTF-8 JSON within the bounds above, or refuse it naming the rule."""
    if not raw or raw.isspace():  # (not strip(), which would copy a large body)
        raise BadRequestError("the request body is empty; a JSON object is expected")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"the request body is not UTF-8 (at byte {exc.start})") from None
    try:
        # The hooks leave a marker for a number the body may not hold, so that the walk
        # below can say where it is; an overlong integer is never converted at all.
        doc = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"the request body is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise BadRequestError(
            f"the request body is nested more than {MAX_DEPTH} levels deep"
        ) from None
    fault = _fault(doc, text=_may_hold_bad_text(text))
    if fault is not None:
        raise BadRequestError(fault)
    return doc


# --- the bounds ------------------------------------------------------------------------------


def _parse_int(text: str) -> int | _Refused:
    value = int(text) if len(text.lstrip("-")) <= MAX_DIGITS else None
    if value is None or value not in _INT64:
        return _Refused("is an integer outside the signed 64-bit range")
    return value


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    if not math.isfinite(value):
        return _Refused("is a number too large to be finite")
    return value


def _parse_constant(_name: str) -> _Refused:
    return _Refused("is NaN or Infinity, which JSON does not allow")


def _may_hold_bad_text(text: str) -> bool:
    """Say whether any string of the document could hold a character no text may hold."""
    # A lone surrogate comes only from an escape (UTF-8 cannot carry one); a non-character
    # comes from an escape or as itself. Most bodies have neither, and skip the search;
    # an ASCII body (known at once) cannot hold a non-character itself.
    return "\\u" in text or (not text.isascii() and NOT_TEXT_RE.search(text) is not None)


#: Where a value is in the document: its parent's place and its key or index (None: the top).
_Place = tuple["_Place", str | int] | None


def _fault(doc: Any, *, text: bool) -> str | None:
    """Return the refusal of the first value that breaks a bound, naming its JSON path.

    An iterative walk with no recursion of its own: it checks the nesting depth, the numbers
    the hooks refused and (when ``text``) every string and key for characters no text may
    hold. Paths are built only for the refusal, so a large body costs one pass.
    """
    stack: list[tuple[Any, _Place, int]] = [(doc, None, 0)]
    while stack:
        value, place, depth = stack.pop()
        problem = _scalar_fault(value, text=text)
        if problem is not None:
            return f"{_path(place)} {problem}"
        items: Any
        if isinstance(value, dict):
            if text:
                for key in value:
                    found = NOT_TEXT_RE.search(key)
                    if found is not None:
                        return f"a key of {_path(place)} {_bad_char(found[0])}"
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth >= MAX_DEPTH:
            return f"{_path(place)} is nested more than {MAX_DEPTH} levels deep"
        for key, item in items:
            if isinstance(item, dict | list):
                stack.append((item, (place, key), depth + 1))
                continue
            problem = _scalar_fault(item, text=text)
            if problem is not None:
                return f"{_path((place, key))} {problem}"
    return None


def _scalar_fault(value: Any, *, text: bool) -> str | None:
    if isinstance(value, _Refused):
        return value.rule
    if text and isinstance(value, str):
        found = NOT_TEXT_RE.search(value)
        if found is not None:
            return _bad_char(found[0])
    return None


def _path(place: _Place) -> str:
    """Return ``place`` as a JSON path such as ``record.child.name`` or ``recipients[1]``."""
    parts: list[str] = []
    while place is not None:
        place, key = place
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            # A key not shaped like a field name may be data in the wrong place: not echoed.
            name = key if _FIELD_NAME_RE.fullmatch(key) else "(a key)"
            parts.append(f".{name}")
    path = "".join(reversed(parts)).removeprefix(".")
    if not path:
        return "the request body"
    return path if len(path) <= _MAX_PATH else path[:_MAX_PATH] + "…"


def _bad_char(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        return (
            "holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape); "
            "text must be Unicode characters"
        )
    return (
        "holds a Unicode non-character (U+FDD0-U+FDEF, U+FFFE or U+FFFF); "
        "text must be Unicode characters"
    )


def _unknown_field(name: str, fields: Mapping[str, Field]) -> BadRequestError:
    if _FIELD_NAME_RE.fullmatch(name) is None:
        # A name not shaped like a field may be data put in the wrong place (a child's name
        # as a key); answers never repeat data, so it is not echoed.
        return BadRequestError(
            "unknown field (a name that is not a lower-case identifier); the fields are "
            + ", ".join(fields)
        )
    return BadRequestError(f"unknown field {name!r}")


def _json_type(kind: type) -> str:
    return {str: "string", list: "array", dict: "object", int: "integer", bool: "boolean"}.get(
        kind, kind.__name__
    )
