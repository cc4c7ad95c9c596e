"""Validation of records against the JSON Schema of their kind (docs/records.md §2).

:func:`validate_record` is the one way to make a :class:`Record`. It checks the document's
size first, parses JSON strictly (no duplicate keys, no NaN or Infinity), then validates
with ``jsonschema``'s Draft 2020-12 validator and a format checker that knows only this
project's formats: ``date`` (YYYY-MM-DD), ``email`` and the identifiers of
:mod:`exchange.records.identifiers`.

jsonschema's own messages quote the offending value, and a value here may be a child's name
or NHS number, so they are never used: every :class:`Problem` message is built in
:func:`_problems` from the keyword, the path and the schema alone. This module is the only
place that touches jsonschema; its exceptions and errors are translated here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any, Final

# jsonschema ships no type information (no py.typed, and types-jsonschema is not a
# dependency); its few uses here are wrapped so that nothing typed Any leaves this module.
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

from exchange.records.errors import Problem, RecordValidationError
from exchange.records.identifiers import (
    InvalidIdentifierError,
    validate_la_code,
    validate_nhs_number,
    validate_ods_code,
    validate_upn,
    validate_urn,
)
from exchange.records.kinds import kind_spec, load_schema

#: Most problems collected from one record. Twenty is enough for a person to fix a form in
#: one pass and bounds the work (and the error's size) for a hostile document.
MAX_PROBLEMS: Final = 20

_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: A lone surrogate: what a JSON escape can put in a string and no UTF-8 text can hold.
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
#: A pragmatic address check: one @, a local part without spaces or controls, a domain of
#: dot-separated LDH labels ending in a letter label. Delivery is what proves an address.
_EMAIL_RE: Final = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)

#: Human names of the formats, for messages.
FORMAT_NAMES: Final = {
    "date": "date (YYYY-MM-DD)",
    "email": "email address",
    "upn": "UPN",
    "nhs-number": "NHS number",
    "urn": "school URN",
    "la-code": "LA code",
    "ods-code": "ODS code",
}


@dataclass(frozen=True, slots=True)
class Record:
    """A record that passed its kind's schema: kind, schema version and the parsed JSON.

    ``data`` is a private deep copy made during validation; treat it as read-only.
    """

    kind: str
    version: int
    data: dict[str, Any]


def _check_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if _DATE_RE.fullmatch(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_email(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return len(value) <= 254 and _EMAIL_RE.fullmatch(value) is not None


def _identifier_check(check: Callable[[str], str]) -> Callable[[object], bool]:
    def checker(value: object) -> bool:
        if isinstance(value, str):
            check(value)  # raises InvalidIdentifierError, which names the rule
        return True

    return checker


def _format_checker() -> Any:
    """Return a FormatChecker with this project's formats and no others."""
    checker = FormatChecker(formats=())
    checker.checks("date")(_check_date)
    checker.checks("email")(_check_email)
    for name, check in (
        ("upn", validate_upn),
        ("nhs-number", validate_nhs_number),
        ("urn", validate_urn),
        ("la-code", validate_la_code),
        ("ods-code", validate_ods_code),
    ):
        checker.checks(name, raises=InvalidIdentifierError)(_identifier_check(check))
    return checker


@cache
def _validator(kind: str) -> Any:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


def _render_path(parts: Iterator[object] | list[object]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _where(path: str) -> str:
    return path or "the record"


def _listing(values: object) -> str:
    if isinstance(values, list) and len(values) <= 16:
        return ", ".join(json.dumps(v) for v in values)
    return "the values the schema lists"


def _describe_one_of(branches: object) -> str:
    """Describe ``oneOf`` branches that each require one field, the only use in the schemas."""
    if isinstance(branches, list):
        names = [
            b["required"][0]
            for b in branches
            if isinstance(b, dict) and isinstance(b.get("required"), list) and b["required"]
        ]
        if len(names) == len(branches):
            return "exactly one of " + ", ".join(names)
    return "exactly one of the schema's alternatives"


def _message(keyword: str, where: str, schema_value: object, error: Any) -> str:
    """Return the sentence for one error: keyword and schema only, never the instance."""
    messages: dict[str, Callable[[], str]] = {
        "type": lambda: (
            f"{where} must be of type {_listing(schema_value)}"
            if isinstance(schema_value, list)
            else f"{where} must be of type {schema_value}"
        ),
        "enum": lambda: f"{where} must be one of: {_listing(schema_value)}",
        "const": lambda: f"{where} must be exactly {json.dumps(schema_value)}",
        "maxLength": lambda: f"{where} must be at most {schema_value} characters long",
        "minLength": lambda: f"{where} must be at least {schema_value} characters long",
        "pattern": lambda: f"{where} does not have the required form",
        "maximum": lambda: f"{where} must be at most {schema_value}",
        "minimum": lambda: f"{where} must be at least {schema_value}",
        "maxItems": lambda: f"{where} must have at most {schema_value} items",
        "minItems": lambda: f"{where} must have at least {schema_value} item(s)",
        "uniqueItems": lambda: f"{where} must not repeat an item",
        "oneOf": lambda: f"{where} must have {_describe_one_of(schema_value)}",
        "additionalProperties": lambda: f"{where} has a field the schema does not define",
    }
    if keyword == "format":
        name = str(schema_value)
        cause = getattr(error, "cause", None)
        detail = f": it {cause.problem}" if isinstance(cause, InvalidIdentifierError) else ""
        return f"{where} is not a valid {FORMAT_NAMES.get(name, name)}{detail}"
    make = messages.get(keyword)
    if make is None:
        return f"{where} breaks the schema rule {keyword}"
    return make()


def _problems(error: Any) -> list[Problem]:
    """Translate one jsonschema error into problems (``required`` may name several fields)."""
    keyword = str(error.validator)
    path = _render_path(list(error.absolute_path))
    if keyword == "required":
        instance = error.instance
        names = [str(n) for n in error.validator_value]
        missing = [n for n in names if isinstance(instance, dict) and n not in instance]
        return [
            Problem(_join(path, n), "required", f"{_join(path, n)} is required") for n in missing
        ]
    rule = f"format:{error.validator_value}" if keyword == "format" else keyword
    return [Problem(path, rule, _message(keyword, _where(path), error.validator_value, error))]


def _reject_constant(name: str) -> object:
    raise ValueError(f"JSON constant {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("an object repeats a key")
        result[key] = value
    return result


def parse_document(raw: bytes) -> object:
    """Parse strict JSON: UTF-8 without BOM, no duplicate keys, no NaN or Infinity.

    Raises ``ValueError`` with a message that does not quote the input.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the document is not valid UTF-8") from None
    if text.startswith("\ufeff"):
        raise ValueError("the document starts with a byte order mark")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("the document nests too deeply") from None
    except json.JSONDecodeError as exc:
        # The decoder's own message quotes no content, but its position is enough.
        raise ValueError(f"the document is not JSON (at character {exc.pos})") from None
    _refuse_lone_surrogates(data)
    return data


def _refuse_lone_surrogates(data: object) -> None:
    """Refuse a string holding a lone surrogate (from a JSON escape): not Unicode text.

    JSON lets an escaped high or low surrogate stand alone, but no UTF-8 text can hold
    it; it would fail later, when the record is printed or written out.
    """
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE_RE.search(item) is not None:
                raise ValueError("the document holds a lone surrogate escape, not Unicode text")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _document_bytes(doc: object) -> bytes:
    """Return the document's JSON text as UTF-8 bytes."""
    if isinstance(doc, bytes | bytearray | memoryview):
        return bytes(doc)
    if isinstance(doc, str):
        text = doc
    elif isinstance(doc, Mapping):
        try:
            text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError):
            raise TypeError("doc must contain only JSON values") from None
    else:
        raise TypeError("doc must be JSON bytes, a JSON string or a mapping")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the document holds a lone surrogate, not Unicode text") from None


def validate_record(kind: str, doc: object) -> Record:
    """Validate ``doc`` as a record of ``kind`` and return it as a :class:`Record`.

    ``doc`` is the record's JSON text (``bytes`` or ``str``) or an already parsed mapping.
    The size limit of the kind is checked first, on the UTF-8 JSON text (a mapping is
    measured in its compact serialisation). Raises :class:`RecordValidationError` listing
    up to :data:`MAX_PROBLEMS` problems, ``ValueError`` for an unknown ``kind`` and
    ``TypeError`` for a ``doc`` that is not JSON.
    """
    spec = kind_spec(kind)
    try:
        raw = _document_bytes(doc)
    except ValueError as exc:
        raise RecordValidationError(kind, [Problem("", "document.json", str(exc))]) from None
    if len(raw) > spec.max_document:
        raise RecordValidationError(
            kind,
            [
                Problem(
                    "",
                    "document.size",
                    f"the record is {len(raw)} bytes, more than the {spec.max_document} "
                    f"bytes allowed for a {kind} record",
                )
            ],
        )
    try:
        data = parse_document(raw)
    except ValueError as exc:
        raise RecordValidationError(kind, [Problem("", "document.json", str(exc))]) from None
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    truncated = False
    for error in _validator(kind).iter_errors(data):
        for problem in _problems(error):
            if (problem.path, problem.rule) in seen:
                continue
            if len(problems) == MAX_PROBLEMS:
                truncated = True
                break
            seen.add((problem.path, problem.rule))
            problems.append(problem)
        if truncated:
            break
    if problems:
        raise RecordValidationError(kind, problems, truncated=truncated)
    assert isinstance(data, dict)  # the schema's "type": "object" held
    too_large = _manifest_total_problem(kind, data)
    if too_large is not None:
        raise RecordValidationError(kind, [too_large])
    return Record(kind=kind, version=spec.version, data=data)


def _manifest_total_problem(kind: str, data: Mapping[str, Any]) -> Problem | None:
    """Return the problem of a manifest whose sizes add up to more than the kind carries.

    Run once the schema holds, so every entry has an integer ``size``. A schema cannot say
    this (it bounds each entry, not their sum), and a record that declares more than its
    kind carries can never travel: it is refused before any document is read.
    """
    spec = kind_spec(kind)
    if spec.manifest is None:
        return None
    total = sum(int(entry["size"]) for entry in data.get(spec.manifest, []))
    if total <= spec.max_attachments_total:
        return None
    return Problem(
        spec.manifest,
        "manifest.total",
        f"{spec.manifest} lists {total} bytes of documents, more than the "
        f"{spec.max_attachments_total} bytes a {kind} record carries",
    )
