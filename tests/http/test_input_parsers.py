"""Property tests of the parsers of request input: JSON bodies, list cursors, whole numbers.

Each parser either returns a value within its bounds or refuses with its own sentence; no
input, however made, gets another exception out of it (which the node would answer with a
500), and a refusal never repeats a string of the input.
"""

from __future__ import annotations

import json
import math
import string
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from exchange.http.common import MAX_LIST, next_cursor, parse_cursor, whole_number
from exchange.http.jsonbody import MAX_DEPTH, BadRequestError, parse_json

SENTINEL = "Tallulah"

#: JSON values the bounds allow: 64-bit integers, finite floats, text without surrogates.
_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\ufffe\uffff"))
_allowed = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@given(_allowed)
def test_allowed_documents_come_back_as_sent(value: Any) -> None:
    assume(_depth(value) <= MAX_DEPTH)
    assert parse_json(json.dumps(value).encode()) == value


@given(st.binary(max_size=200))
@example(b"9" * 5000)
@example(b"[" * 5000)
@example(b'"\\ud800"')
@example(b"1e999")
@example(b"NaN")
def test_any_bytes_are_parsed_or_refused_with_a_sentence(raw: bytes) -> None:
    try:
        parse_json(raw)
    except BadRequestError as exc:
        message = str(exc)
    else:
        message = "accepted"
    assert message


@given(
    st.sampled_from(
        [
            ("9" * 20, "is an integer outside the signed 64-bit range"),
            ("-9223372036854775809", "is an integer outside the signed 64-bit range"),
            ("1" * 4301, "is an integer outside the signed 64-bit range"),
            ("1e400", "is a number too large to be finite"),
            ("-Infinity", "is NaN or Infinity, which JSON does not allow"),
            ('"\\udc00"', "holds a lone surrogate"),
            ('"\\uFDD0"', "holds a Unicode non-character"),
            ('"\ufffe"', "holds a Unicode non-character"),
            ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "is nested more than 32 levels"),
        ]
    ),
    st.lists(st.sampled_from(["a", "b_c", 0, 3, SENTINEL]), max_size=5),
)
def test_a_value_out_of_bounds_is_refused_naming_its_path(
    case: tuple[str, str], path: list[str | int]
) -> None:
    bad, rule = case
    text = bad
    for step in reversed(path):
        text = (
            "[" + "0," * step + text + "]"
            if isinstance(step, int)
            else "{" + json.dumps(step) + ": " + text + "}"
        )
    assume(_json_depth(text) <= MAX_DEPTH or "nested" in rule)
    with pytest.raises(BadRequestError) as refused:
        parse_json(text.encode())
    message = str(refused.value)
    assert rule in message
    assert SENTINEL not in message  # a key not shaped like a field name is not repeated
    expected = "".join(
        f"[{s}]" if isinstance(s, int) else f".{s if s != SENTINEL else '(a key)'}" for s in path
    ).removeprefix(".")
    if "nested" not in rule:
        assert message.startswith(expected or "the request body")


def _json_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        deepest = max(deepest, depth)
    return deepest


@given(
    st.just(0.0) | st.floats(min_value=2.0**-1022, max_value=1.7e308, allow_infinity=False),
    st.binary(min_size=32, max_size=32),
)
def test_every_cursor_the_node_gives_out_reads_back(at: float, digest: bytes) -> None:
    assert parse_cursor(next_cursor(at, digest)) == (at, digest)


@given(st.text(alphabet="0123456789abcdefpx.:+-²٣ " + string.ascii_letters, max_size=90))
@example("0x1.0000000000000p9999:" + "ab" * 32)
@example("0x1.8p3:" + "ab" * 32)
def test_any_text_is_a_cursor_as_issued_or_nothing(text: str) -> None:
    parsed = parse_cursor(text)
    if parsed is not None:
        at, digest = parsed
        assert math.isfinite(at)
        assert next_cursor(at, digest) == text


@given(st.text(max_size=30))
@example("²")
@example("٣")
@example("0" * 5000 + "1")
@example("+5")
def test_whole_numbers_are_ascii_digits_in_range(text: str) -> None:
    value = whole_number(text, 1, MAX_LIST)
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_LIST))
    if digits and 1 <= int(text) <= MAX_LIST:
        assert value == int(text)
    else:
        assert value is None
