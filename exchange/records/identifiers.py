"""Check characters and formats of the identifiers that records carry (docs/records.md §3).

Every function takes the identifier exactly as it appears in a record (no spaces, no
lower case, no normalisation: a record either carries the canonical form or is refused) and
returns it as its ``NewType``, or raises :class:`InvalidIdentifierError` (a ``ValueError``)
whose ``rule`` names the broken rule. Messages never quote the value: a UPN or an NHS number
identifies a child.

Sources of the check-character algorithms:

* UPN: the UK Government Data Standards Catalogue entry "Unique Pupil Number" v2.0 (owner
  DfE), which the DfE guidance "Unique Pupil Numbers (UPNs)" and the school census error
  1510 repeat: the check letter at position 1 is the sum over characters 2 to 13 of
  (value x position), positions starting at 2, modulo 23, mapped onto the 23 letters
  ``ABCDEFGHJKLMNPQRTUVWXYZ`` (no I, O or S). A temporary UPN ends in one of those letters,
  which counts as its index in the same table.
* NHS number: NHS Data Dictionary "NHS Number": weights 10 down to 2 over the first nine
  digits, 11 minus the sum modulo 11 is the check digit; 11 becomes 0 and 10 means the
  nine digits can never form a valid number.
"""

from __future__ import annotations

import re
from typing import Final, NewType

Upn = NewType("Upn", str)
NhsNumber = NewType("NhsNumber", str)
Urn = NewType("Urn", str)
LaCode = NewType("LaCode", str)
OdsCode = NewType("OdsCode", str)

#: The 23 check letters of a UPN, in value order (0 -> A ... 22 -> Z); I, O and S are left
#: out because they are easily confused with 1, 0 and 5 (DfE UPN guidance).
UPN_LETTERS: Final = "ABCDEFGHJKLMNPQRTUVWXYZ"
UPN_LEN: Final = 13
NHS_NUMBER_LEN: Final = 10
URN_LEN: Final = 6
LA_CODE_LEN: Final = 3
#: ODS codes have no check character. Trusts have 3 characters, their sites 5, GP practices
#: 6 (a letter and five digits), commissioners 3; 10 leaves room for the longer site codes.
MIN_ODS_CODE_LEN: Final = 3
MAX_ODS_CODE_LEN: Final = 10

_UPN_RE: Final = re.compile(rf"[{UPN_LETTERS}][0-9]{{11}}[0-9{UPN_LETTERS}]")
_NHS_RE: Final = re.compile(r"[0-9]{10}")
_URN_RE: Final = re.compile(r"[0-9]{6}")
_LA_RE: Final = re.compile(r"[0-9]{3}")
_ODS_RE: Final = re.compile(rf"[A-Z0-9]{{{MIN_ODS_CODE_LEN},{MAX_ODS_CODE_LEN}}}")


class InvalidIdentifierError(ValueError):
    """An identifier breaks a rule; ``rule`` names it (for example ``upn.check-letter``)."""

    def __init__(self, rule: str, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem} [{rule}]")
        self.rule = rule
        self.problem = problem


def _require_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string")
    return value


def upn_check_letter(body: str) -> str:
    """Return the check letter for the 12 characters after it (characters 2 to 13 of a UPN).

    ``body`` is eleven digits and then a digit or, for a temporary UPN, a check-table letter.
    """
    if len(body) != UPN_LEN - 1 or _UPN_RE.fullmatch("A" + body) is None:
        raise ValueError("body must be 11 digits and then a digit or a UPN letter")
    total = 0
    for position, char in enumerate(body, start=2):
        value = int(char) if char.isdigit() else UPN_LETTERS.index(char)
        total += position * value
    return UPN_LETTERS[total % 23]


def validate_upn(value: str, *, field: str = "UPN") -> Upn:
    """Return ``value`` as a :class:`Upn` or raise :class:`InvalidIdentifierError`.

    Rules: ``upn.length`` (13 characters), ``upn.format`` (a check letter, 11 digits, then a
    digit or a check-table letter; upper case), ``upn.check-letter`` (the DfE modulo-23 sum).
    """
    text = _require_str(value, field)
    if len(text) != UPN_LEN:
        raise InvalidIdentifierError("upn.length", field, f"must be {UPN_LEN} characters")
    if _UPN_RE.fullmatch(text) is None:
        raise InvalidIdentifierError(
            "upn.format",
            field,
            "must be a check letter, 11 digits and a final digit or letter "
            "(upper case, no I, O or S)",
        )
    if upn_check_letter(text[1:]) != text[0]:
        raise InvalidIdentifierError("upn.check-letter", field, "has the wrong check letter")
    return Upn(text)


def nhs_check_digit(first_nine: str) -> int | None:
    """Return the check digit for nine digits, or ``None`` when no check digit exists (10)."""
    if len(first_nine) != NHS_NUMBER_LEN - 1 or not first_nine.isascii():
        raise ValueError("first_nine must be 9 ASCII digits")
    if not first_nine.isdigit():
        raise ValueError("first_nine must be 9 ASCII digits")
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def validate_nhs_number(value: str, *, field: str = "NHS number") -> NhsNumber:
    """Return ``value`` as an :class:`NhsNumber` or raise :class:`InvalidIdentifierError`.

    Rules: ``nhs-number.format`` (exactly 10 ASCII digits, no spaces),
    ``nhs-number.check-digit-ten`` (the first nine digits give 10, so no number exists) and
    ``nhs-number.check-digit`` (the tenth digit is not the modulo-11 check digit).
    """
    text = _require_str(value, field)
    if _NHS_RE.fullmatch(text) is None:
        raise InvalidIdentifierError(
            "nhs-number.format", field, f"must be {NHS_NUMBER_LEN} digits without spaces"
        )
    expected = nhs_check_digit(text[:9])
    if expected is None:
        raise InvalidIdentifierError(
            "nhs-number.check-digit-ten", field, "gives check digit 10, which no NHS number has"
        )
    if int(text[9]) != expected:
        raise InvalidIdentifierError("nhs-number.check-digit", field, "has the wrong check digit")
    return NhsNumber(text)


def validate_urn(value: str, *, field: str = "URN") -> Urn:
    """Return ``value`` as a school :class:`Urn` (6 digits, GIAS) or raise (rule ``urn.format``)."""
    text = _require_str(value, field)
    if _URN_RE.fullmatch(text) is None:
        raise InvalidIdentifierError("urn.format", field, f"must be {URN_LEN} digits")
    return Urn(text)


def validate_la_code(value: str, *, field: str = "LA code") -> LaCode:
    """Return ``value`` as an :class:`LaCode` (3 digits) or raise (rule ``la-code.format``)."""
    text = _require_str(value, field)
    if _LA_RE.fullmatch(text) is None:
        raise InvalidIdentifierError("la-code.format", field, f"must be {LA_CODE_LEN} digits")
    return LaCode(text)


def validate_ods_code(value: str, *, field: str = "ODS code") -> OdsCode:
    """Return ``value`` as an :class:`OdsCode` or raise (rule ``ods-code.format``).

    ODS codes carry no check character, so only the form is checked: 3 to 10 upper-case
    letters and digits.
    """
    text = _require_str(value, field)
    if _ODS_RE.fullmatch(text) is None:
        raise InvalidIdentifierError(
            "ods-code.format",
            field,
            f"must be {MIN_ODS_CODE_LEN} to {MAX_ODS_CODE_LEN} upper-case letters and digits",
        )
    return OdsCode(text)
