"""validate_record: size first, strict JSON, problems that name field and rule, never values."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.records import (
    KINDS,
    MAX_PROBLEMS,
    Problem,
    RecordError,
    RecordValidationError,
    validate_record,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "records"
SENTINEL = "Zz9SENTINELqQ"


def _valid(kind: str) -> dict[str, Any]:
    path = sorted((VECTORS / kind / "valid").glob("*.json"))[0]
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _replace_leaves(node: Any, value: Any) -> Any:
    """Return ``node`` with every string leaf replaced by ``value`` (keys kept)."""
    if isinstance(node, dict):
        return {k: _replace_leaves(v, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_leaves(v, value) for v in node]
    if isinstance(node, str):
        return value
    return node


def _messages(error: RecordValidationError) -> str:
    return str(error) + "\n".join(p.message + p.path + p.rule for p in error.problems)


@pytest.mark.parametrize("kind", list(KINDS))
def test_sentinel_in_every_string_never_appears_in_messages(kind: str) -> None:
    """With every string value a sentinel, no problem, path or message contains it."""
    doc = _replace_leaves(_valid(kind), SENTINEL)
    with pytest.raises(RecordValidationError) as caught:
        validate_record(kind, doc)
    assert caught.value.problems
    assert SENTINEL not in _messages(caught.value)


@pytest.mark.parametrize("kind", list(KINDS))
def test_sentinel_key_and_numbers_never_appear_in_messages(kind: str) -> None:
    """An unknown field named by a sentinel, and a sentinel number, are not quoted either."""
    doc = _valid(kind)
    doc[SENTINEL] = SENTINEL
    doc["version"] = 987654321
    with pytest.raises(RecordValidationError) as caught:
        validate_record(kind, doc)
    rules = {p.rule for p in caught.value.problems}
    assert {"additionalProperties", "const"} <= rules
    assert SENTINEL not in _messages(caught.value)
    assert "987654321" not in _messages(caught.value)


@given(st.text(min_size=6, max_size=40).filter(lambda s: s.strip() == s and len(set(s)) > 3))
@settings(max_examples=100, deadline=None)
def test_no_identifier_value_appears_in_messages(text: str) -> None:
    """Whatever text is put in the identifier fields, the messages never contain it."""
    value = "\u00a7" + text  # a section sign: no message contains one by chance
    doc = _valid("referral")
    for field in ("nhs_number", "upn", "school_urn", "date_of_birth"):
        doc["child"][field] = value
    doc["referrer"]["email"] = value
    with pytest.raises(RecordValidationError) as caught:
        validate_record("referral", doc)
    assert value not in _messages(caught.value)


def test_size_limit_is_checked_before_parsing() -> None:
    """A document over the kind's limit is refused on size alone, even if it is not JSON."""
    raw = b"{" * (KINDS["outcome"].max_document + 1)
    with pytest.raises(RecordValidationError) as caught:
        validate_record("outcome", raw)
    assert [(p.path, p.rule) for p in caught.value.problems] == [("", "document.size")]


def test_size_limit_applies_to_mappings() -> None:
    """A mapping is measured in its compact JSON form."""
    doc = _valid("outcome")
    doc["feedback"] = "x" * KINDS["outcome"].max_document
    with pytest.raises(RecordValidationError) as caught:
        validate_record("outcome", doc)
    assert caught.value.problems[0].rule == "document.size"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": "outcome", "kind": "outcome"}',
        b'{"version": NaN}',
        b'{"version": Infinity}',
        b"\xef\xbb\xbf{}",
        b'{"kind": "\xff"}',
        b"[" * 60_000,
        b"{",
        b"",
        b'{"kind": "outcome", "note": "\\ud800"}',
        b'{"kind": "outcome", "\\udfff": 1}',
    ],
    ids=[
        "duplicate-key",
        "nan",
        "infinity",
        "bom",
        "bad-utf8",
        "deep",
        "truncated",
        "empty",
        "lone-high-surrogate",
        "lone-low-surrogate-key",
    ],
)
def test_strict_json(raw: bytes) -> None:
    """Duplicate keys, NaN, Infinity, a BOM, bad UTF-8, deep nesting and bad JSON are refused."""
    with pytest.raises(RecordValidationError) as caught:
        validate_record("outcome", raw)
    assert [(p.path, p.rule) for p in caught.value.problems] == [("", "document.json")]


def test_a_mapping_with_a_lone_surrogate_is_a_validation_error() -> None:
    """A parsed mapping holding a lone surrogate is refused like the JSON text would be."""
    with pytest.raises(RecordValidationError) as caught:
        validate_record("outcome", {"kind": "outcome", "note": "\ud800"})
    assert [(p.path, p.rule) for p in caught.value.problems] == [("", "document.json")]


def test_an_escaped_surrogate_pair_is_text() -> None:
    """A properly paired escape (one character outside the BMP) is ordinary text."""
    with pytest.raises(RecordValidationError) as caught:
        validate_record("outcome", b'{"kind": "outcome", "note": "\\ud83d\\ude00"}')
    assert ("", "document.json") not in [(p.path, p.rule) for p in caught.value.problems]


def test_text_and_bytes_and_mapping_agree() -> None:
    """The same record as bytes, str or mapping gives an equal Record."""
    doc = _valid("outcome")
    text = json.dumps(doc)
    assert (
        validate_record("outcome", doc)
        == validate_record("outcome", text)
        == validate_record("outcome", text.encode())
    )


def test_record_is_frozen_and_a_copy() -> None:
    """The Record cannot be reassigned and does not share the caller's dict."""
    doc = _valid("outcome")
    record = validate_record("outcome", doc)
    doc["decision"] = "early-help"
    assert record.data["decision"] == "no-further-action"
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.kind = "referral"  # type: ignore[misc]


def test_top_level_must_be_an_object() -> None:
    """A JSON array is not a record."""
    with pytest.raises(RecordValidationError) as caught:
        validate_record("outcome", b"[]")
    assert caught.value.problems == [
        Problem("", "type", "the record must be of type object"),
    ]


def test_problems_are_capped() -> None:
    """At most MAX_PROBLEMS problems are reported and the error says more exist."""
    doc = _valid("information-request")
    doc["questions"] = [""] * 30
    doc["child"]["upn"] = "bad"
    doc["due_date"] = "soon"
    with pytest.raises(RecordValidationError) as caught:
        validate_record("information-request", doc)
    assert len(caught.value.problems) == MAX_PROBLEMS
    assert caught.value.truncated
    assert "more not listed" in str(caught.value)


def test_error_is_a_record_error_and_value_error() -> None:
    """Callers can catch RecordError (the package base) or ValueError."""
    assert issubclass(RecordValidationError, RecordError)
    assert issubclass(RecordValidationError, ValueError)


def test_unknown_kind_is_caller_misuse() -> None:
    """An unknown kind argument is a ValueError naming the argument, not a record problem."""
    with pytest.raises(ValueError, match="kind must be one of") as caught:
        validate_record("advance-information", {})
    assert not isinstance(caught.value, RecordError)


def test_non_json_doc_is_a_type_error() -> None:
    """A doc that is not JSON text or a mapping of JSON values is a TypeError."""
    with pytest.raises(TypeError):
        validate_record("outcome", 42)
    with pytest.raises(TypeError):
        validate_record("outcome", {"when": object()})


def test_missing_fields_each_named() -> None:
    """Every missing required field is reported with its own dotted path."""
    doc = copy.deepcopy(_valid("cp-file-transfer"))
    del doc["pupil"]["upn"]
    del doc["pupil"]["date_of_birth"]
    with pytest.raises(RecordValidationError) as caught:
        validate_record("cp-file-transfer", doc)
    assert {(p.path, p.rule) for p in caught.value.problems} == {
        ("pupil.upn", "required"),
        ("pupil.date_of_birth", "required"),
    }
