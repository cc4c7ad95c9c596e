"""Identifier checks: the DfE UPN check letter, the NHS number check digit and formats."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.records.identifiers import (
    UPN_LETTERS,
    InvalidIdentifierError,
    nhs_check_digit,
    upn_check_letter,
    validate_la_code,
    validate_nhs_number,
    validate_ods_code,
    validate_upn,
    validate_urn,
)

DIGITS = string.digits
UPN_ALPHABET = DIGITS + UPN_LETTERS


@st.composite
def upns(draw: st.DrawFn) -> str:
    """Draw a valid UPN, permanent (12 digits) or temporary (11 digits and a letter)."""
    body = draw(st.text(DIGITS, min_size=11, max_size=11))
    body += draw(st.sampled_from(DIGITS + UPN_LETTERS))
    return upn_check_letter(body) + body


@st.composite
def nhs_numbers(draw: st.DrawFn) -> str:
    """Draw a valid NHS number: nine digits whose check digit is not 10, then the check."""
    first = draw(
        st.text(DIGITS, min_size=9, max_size=9).filter(lambda s: nhs_check_digit(s) is not None)
    )
    return first + str(nhs_check_digit(first))


def test_upn_published_example() -> None:
    """The python-stdnum example B801200005001 is valid and A801200005001 is not."""
    assert validate_upn("B801200005001") == "B801200005001"
    with pytest.raises(InvalidIdentifierError) as caught:
        validate_upn("A801200005001")
    assert caught.value.rule == "upn.check-letter"


def test_upn_check_letter_hand_computed() -> None:
    """207000016049 sums to 266 = 11 x 23 + 13, and value 13 is the letter P."""
    assert upn_check_letter("207000016049") == "P"


@given(upns())
def test_generated_upns_are_valid(upn: str) -> None:
    """Every UPN built by the algorithm passes validation."""
    assert validate_upn(upn) == upn


@given(upns())
@settings(max_examples=200, deadline=None)
def test_upn_every_single_character_change_is_caught(upn: str) -> None:
    """Changing any one character to another of a different value is always detected.

    Weights 2..13 and value differences 1..22 are all non-zero modulo the prime 23, so no
    such substitution keeps the sum; a changed check letter no longer equals the sum's
    letter. (Same-value swaps of the last character are the scheme's blind spot, below.)
    """
    for position in range(13):
        alphabet = UPN_LETTERS if position == 0 else DIGITS if position < 12 else UPN_ALPHABET
        for char in alphabet:
            if char == upn[position] or (position == 12 and _value(char) == _value(upn[12])):
                continue
            changed = upn[:position] + char + upn[position + 1 :]
            with pytest.raises(InvalidIdentifierError):
                validate_upn(changed)


def _value(char: str) -> int:
    return int(char) if char.isdigit() else UPN_LETTERS.index(char)


def test_upn_blind_spot_final_digit_and_letter_of_equal_value() -> None:
    """The DfE scheme gives digit d and the letter of value d (0/A ... 9/K) equal weight.

    So a permanent UPN and the temporary UPN that ends in the letter of the same value
    share a check letter: this single substitution is NOT detected, by design of the scheme.
    """
    for digit, letter in zip(DIGITS, "ABCDEFGHJK", strict=True):
        body = "35620012400"
        assert upn_check_letter(body + digit) == upn_check_letter(body + letter)


@given(upns(), st.integers(min_value=1, max_value=10))
def test_upn_adjacent_transposition_is_caught(upn: str, position: int) -> None:
    """Swapping two different adjacent digits changes the sum by their difference (not 0 mod 23)."""
    a, b = upn[position], upn[position + 1]
    if a == b:
        return
    swapped = upn[:position] + b + a + upn[position + 2 :]
    with pytest.raises(InvalidIdentifierError):
        validate_upn(swapped)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("W35620012400", "upn.length"),
        ("W3562001240011", "upn.length"),
        ("w356200124001", "upn.format"),
        ("I356200124001", "upn.format"),
        ("W35620012400S", "upn.format"),
        ("W3562001240O1", "upn.format"),
        ("W356 00124001", "upn.format"),
        ("W35620012400١", "upn.format"),
    ],
)
def test_upn_format_rules(value: str, rule: str) -> None:
    """Wrong lengths, lower case, I/O/S, spaces and non-ASCII digits break the named rule."""
    with pytest.raises(InvalidIdentifierError) as caught:
        validate_upn(value)
    assert caught.value.rule == rule


def test_nhs_known_test_number() -> None:
    """943 476 5919, the number NHS documentation uses as its example, is valid."""
    assert validate_nhs_number("9434765919") == "9434765919"


@given(nhs_numbers())
def test_generated_nhs_numbers_are_valid(number: str) -> None:
    """Every number built by the algorithm passes validation."""
    assert validate_nhs_number(number) == number


@given(nhs_numbers())
@settings(max_examples=300, deadline=None)
def test_nhs_every_single_digit_change_is_caught(number: str) -> None:
    """Mod 11 with weights 10..2 catches every single-digit substitution."""
    for position in range(10):
        for digit in DIGITS:
            if digit == number[position]:
                continue
            with pytest.raises(InvalidIdentifierError):
                validate_nhs_number(number[:position] + digit + number[position + 1 :])


def test_nhs_check_digit_ten_is_its_own_rule() -> None:
    """Nine digits whose check would be 10 can never be valid, whatever the tenth."""
    assert nhs_check_digit("999000000") is None
    for last in DIGITS:
        with pytest.raises(InvalidIdentifierError) as caught:
            validate_nhs_number("999000000" + last)
        assert caught.value.rule == "nhs-number.check-digit-ten"


def test_nhs_check_eleven_becomes_zero() -> None:
    """A remainder of 0 gives 11, written as check digit 0."""
    assert nhs_check_digit("999000005") == 0
    validate_nhs_number("9990000050")


@pytest.mark.parametrize("value", ["999 000 0018", "999000001", "99900000180", "99900000１8", ""])
def test_nhs_format(value: str) -> None:
    """Spaces, wrong lengths and non-ASCII digits break nhs-number.format."""
    with pytest.raises(InvalidIdentifierError) as caught:
        validate_nhs_number(value)
    assert caught.value.rule == "nhs-number.format"


@pytest.mark.parametrize(
    ("check", "good", "bad", "rule"),
    [
        (validate_urn, "106123", ["10612", "1061234", "10612a", " 106123"], "urn.format"),
        (validate_la_code, "356", ["35", "3560", "35a"], "la-code.format"),
        (validate_ods_code, "X26ABC", ["x26", "R1", "ABCDEFGHIJK", "RBS-01"], "ods-code.format"),
    ],
)
def test_format_only_identifiers(check: object, good: str, bad: list[str], rule: str) -> None:
    """URN, LA code and ODS code accept their form and refuse others with their rule."""
    assert callable(check)
    assert check(good) == good
    for value in bad:
        with pytest.raises(InvalidIdentifierError) as caught:
            check(value)
        assert caught.value.rule == rule


def test_messages_never_quote_the_value() -> None:
    """An identifier error's message names the field and rule, not the value."""
    with pytest.raises(InvalidIdentifierError) as caught:
        validate_nhs_number("9990000019", field="child.nhs_number")
    assert "9990000019" not in str(caught.value)
    assert "child.nhs_number" in str(caught.value)


def test_non_string_is_a_type_error() -> None:
    """Passing a number instead of text is caller misuse: TypeError."""
    with pytest.raises(TypeError):
        validate_nhs_number(9990000018)  # type: ignore[arg-type]


@given(nhs_numbers(), st.integers(min_value=0, max_value=8))
def test_nhs_adjacent_transposition_is_caught(number: str, position: int) -> None:
    """Swapping two different adjacent digits (the check digit included) is detected."""
    a, b = number[position], number[position + 1]
    if a == b:
        return
    with pytest.raises(InvalidIdentifierError):
        validate_nhs_number(number[:position] + b + a + number[position + 2 :])
