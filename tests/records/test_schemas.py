"""The schema files themselves: draft 2020-12, closed objects, bounded strings and arrays."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from exchange.records import KINDS, load_schema

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _subschemas(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key not in {"const", "enum", "required"}:
                yield from _subschemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _subschemas(value, f"{path}/{index}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_schema_is_valid_draft_2020_12(kind: str) -> None:
    """The schema declares draft 2020-12, passes the metaschema and has its $id."""
    schema = load_schema(kind)
    assert schema["$schema"] == DRAFT
    assert schema["$id"] == f"urn:exchange:record:{kind}:v1"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("kind", list(KINDS))
def test_schema_pins_kind_and_version(kind: str) -> None:
    """The kind and version fields are required constants."""
    schema = load_schema(kind)
    assert schema["properties"]["kind"] == {"const": kind}
    assert schema["properties"]["version"] == {"const": KINDS[kind].version}
    assert {"kind", "version"} <= set(schema["required"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_object_is_closed(kind: str) -> None:
    """Every object schema has additionalProperties: false."""
    for path, node in _subschemas(load_schema(kind)):
        if node.get("type") == "object":
            assert node.get("additionalProperties") is False, path


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_string_and_array_is_bounded(kind: str) -> None:
    """Every free string has a maxLength and every array a maxItems."""
    for path, node in _subschemas(load_schema(kind)):
        if node.get("type") == "string" and "enum" not in node:
            assert isinstance(node.get("maxLength"), int), path
        if node.get("type") == "array":
            assert isinstance(node.get("maxItems"), int), path


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_ref_resolves_inside_the_file(kind: str) -> None:
    """Schemas are self-contained: every $ref points at one of the file's own $defs."""
    schema = load_schema(kind)
    for path, node in _subschemas(schema):
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/$defs/")
            assert name in schema["$defs"], path
