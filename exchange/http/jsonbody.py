"""Strict JSON request bodies for the staff API: size limit, known fields, typed values.

Every refusal is a :class:`BadRequestError` whose message names the field and the rule, e.g.
"recipients[1] must be an organisation id" or "unknown field 'note'". Values are never
echoed back, since they may hold personal data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from exchange.service.errors import ServiceError

#: Unknown field names are echoed only when shaped like the API's own field names.
_FIELD_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")


class BadRequestError(ServiceError):
    """The request body is malformed; the message names the problem."""

    status = 400


@dataclass(frozen=True)
class Field:
    """One allowed field: its JSON type and whether it must be present."""

    kind: type
    required: bool = True


def parse_object(raw: bytes, fields: Mapping[str, Field], *, limit: int) -> dict[str, Any]:
    """Decode ``raw`` as a JSON object holding only ``fields``, each of the right type."""
    if len(raw) > limit:
        raise ServiceError(f"the request body is larger than {limit} bytes", status=413)
    if not raw.strip():
        raise BadRequestError("the request body is empty; a JSON object is expected")
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequestError("the request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"the request body is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise BadRequestError("the request body is nested too deeply") from None
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
