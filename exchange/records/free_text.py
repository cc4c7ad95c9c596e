"""Children's details in free text: one detector for every reason, note and hold a node keeps.

A reason for a disclosure, a decision not to share, a recall or an inquiry hold is stored in
the sharing register, exported to the DPO and shown in API answers, so it must say *why*
without saying *who*. :func:`find_child_details` looks for the details that identify a
child and returns what kind of detail it found, never the text:

* a **UPN**: a letter, 11 digits and a digit or check-table letter (docs/records.md §3); a
  shape typed as one word is caught whatever its check letter, one typed in pieces
  ("a 1234 5678 9012 3") when its DfE check letter is right;
* an **NHS number**: 10 digits typed as one word, or in groups (3-3-4, 2-4-4, one at a
  time ...) whose modulo-11 check digit is right;
* a **date that could be a date of birth**: a full date with day, month and year, in
  numbers (``14/03/2015``, ``14.3.15``, ``2015-03-14``, ``14032015``) or with the month
  in words (``14 March 2015``, ``March 14th, 2015``, ``14-Mar-15``); a month and year, a
  year alone or a day and month without a year are not dates of birth;
* a **name from the record**: a given, family or known-as name of the child or of a member
  of the household, as a whole word in any case (``names``; see :func:`name_words` for
  double-barrelled names and names that are also common words).

Before looking, the text is normalised so that spelling cannot hide a detail: NFKC
(fullwidth and other compatibility forms become plain), every Unicode decimal digit becomes
its ASCII digit (Arabic-Indic, Devanagari ...), accents are dropped, case is folded,
invisible format characters (zero-width joiners and spaces, bidi controls) are removed, and
spaces, dashes, dots, slashes, underscores and the like become one separator, so
"a-1234.5678 9012/3" reads as the pieces of one identifier. Pure: text in, kinds out.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import Final

from exchange.records.identifiers import UPN_LETTERS, nhs_check_digit, upn_check_letter


class ChildDetail(enum.Enum):
    """A kind of detail that identifies a child; the value is how a refusal names it."""

    UPN = "a UPN"
    NHS_NUMBER = "an NHS number"
    DATE = "a date that could be a date of birth"
    NAME = "a name from the record"

    @property
    def rule(self) -> str:
        """The last part of the rule a refusal names (``reason.identifier`` ...)."""
        return _RULES[self]


_RULES: Final = {
    ChildDetail.UPN: "identifier",
    ChildDetail.NHS_NUMBER: "identifier",
    ChildDetail.DATE: "date-of-birth",
    ChildDetail.NAME: "names-subject",
}

#: Characters that separate the pieces of an identifier or a date, besides every space
#: (category Z*), dash (Pd) and control: after NFKC a fullwidth or small form is one of these.
#: A comma is kept: it ends a list ("ages 5, 11, 16"), so it never joins pieces, and only
#: a date with the month in words may hold one ("March 14, 2015").
_SEPARATORS: Final = frozenset("./\\_:;'\u2019\u00b7\u2022\u2044\u2215")
#: Unicode categories removed outright: format characters (zero-width space, joiners, bidi
#: marks, soft hyphen) and combining marks (accents, after NFD).
_REMOVED: Final = frozenset({"Cf", "Mn", "Me"})

_MONTHS: Final = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4,
    "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8,
    "sep": 9, "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11,
    "dec": 12, "december": 12,
}  # fmt: skip
_MONTH: Final = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY: Final = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR: Final = r"(\d{4}|\d{2})"


def _anywhere(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern`` as whole words, found at every start (matches may overlap)."""
    return re.compile(rf"(?<!\w)(?=({pattern})(?!\w))")


#: Date forms over the normalised text (pieces joined by single spaces).
_NUMERIC_DMY: Final = _anywhere(r"(\d{1,2}) (\d{1,2}) (\d{4}|\d{2})")
_NUMERIC_YMD: Final = _anywhere(r"(\d{4}) (\d{1,2}) (\d{1,2})")
_WORDS_DMY: Final = _anywhere(rf"{_DAY} (?:of )?({_MONTH})(?: ?, ?| ){_YEAR}")
_WORDS_MDY: Final = _anywhere(rf"({_MONTH}) {_DAY}(?: ?, ?| ){_YEAR}")
#: A word: letters and digits of any script (underscores became separators).
_TOKEN: Final = re.compile(r"[^\W_]+")
_UPN_SHAPE: Final = re.compile(r"[a-z]\d{11}[0-9a-z]")
_UPN_LETTERS: Final = frozenset(UPN_LETTERS.lower())
#: Longest run of pieces worth joining: a UPN is 13 characters.
_LONGEST: Final = 13


def normalise(text: str) -> str:
    """Return ``text`` as the detector reads it: plain, folded, pieces joined by one space.

    NFKC, Unicode decimal digits to ASCII, accents dropped, case folded, format characters
    removed, separators (spaces, dashes, dots, slashes, underscores, controls) to a single
    space; letters and digits of other scripts are kept, and so are commas and other marks.
    """
    text = unicodedata.normalize("NFKC", text)
    chars: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        category = unicodedata.category(ch)
        if category in _REMOVED:
            continue
        digit = unicodedata.decimal(ch, None)
        if digit is not None:
            chars.append(str(digit))
        elif category[0] in "ZC" or category == "Pd" or ch in _SEPARATORS:
            chars.append(" ")
        else:
            chars.append(ch)
    folded = "".join(chars).casefold()
    # Folding can bring back compatibility forms (and digits written otherwise): once more.
    folded = "".join(
        str(d) if (d := unicodedata.decimal(ch, None)) is not None else ch
        for ch in unicodedata.normalize("NFKC", folded)
    )
    return " ".join(folded.split())


def _joined_runs(pieces: list[str]) -> Iterable[tuple[str, int]]:
    """Yield every run of consecutive pieces joined, with how many pieces it took."""
    for start in range(len(pieces)):
        joined = ""
        for end in range(start, len(pieces)):
            joined += pieces[end]
            if len(joined) > _LONGEST:
                break
            yield joined, end - start + 1


def _chains(text: str) -> list[list[str]]:
    """Return the runs of letter-and-digit pieces that only separators divide."""
    chains: list[list[str]] = []
    current: list[str] = []
    last_end = -1
    for match in _TOKEN.finditer(text):
        if current and match.start() != last_end + 1:
            chains.append(current)
            current = []
        current.append(match.group())
        last_end = match.end()
    if current:
        chains.append(current)
    return chains


def _is_upn(candidate: str, pieces: int) -> bool:
    if _UPN_SHAPE.fullmatch(candidate) is None:
        return False
    if pieces == 1:
        return True
    upper = candidate.upper()
    body = upper[1:]
    if not body[-1].isdigit() and body[-1].lower() not in _UPN_LETTERS:
        return False
    return upper[0].lower() in _UPN_LETTERS and upn_check_letter(body) == upper[0]


def _is_nhs_number(candidate: str, pieces: int) -> bool:
    if len(candidate) != 10 or not candidate.isdigit():
        return False
    return pieces == 1 or nhs_check_digit(candidate[:9]) == int(candidate[9])


def _identifiers(text: str) -> set[ChildDetail]:
    found: set[ChildDetail] = set()
    for chain in _chains(text):
        for candidate, pieces in _joined_runs(chain):
            if _is_upn(candidate, pieces):
                found.add(ChildDetail.UPN)
            elif _is_nhs_number(candidate, pieces):
                found.add(ChildDetail.NHS_NUMBER)
    return found


def _year(text: str) -> int:
    value = int(text)
    return value if len(text) == 4 else 2000 + value


def _real(year: int, month: int, day: int) -> bool:
    if not 1900 <= year <= 2099:
        return False
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _dates(text: str) -> Iterable[tuple[int, int, int]]:
    """Yield every (year, month, day) reading of the dates ``text`` may hold."""
    for match in _NUMERIC_DMY.finditer(text):
        first, second, year = int(match[2]), int(match[3]), _year(match[4])
        yield year, second, first
        yield year, first, second  # month first, as some forms are written
    for match in _NUMERIC_YMD.finditer(text):
        yield int(match[2]), int(match[3]), int(match[4])
    for match in _WORDS_DMY.finditer(text):
        yield _year(match[4]), _MONTHS[match[3]], int(match[2])
    for match in _WORDS_MDY.finditer(text):
        yield _year(match[4]), _MONTHS[match[2]], int(match[3])
    for chain in _chains(text):
        for candidate, _ in _joined_runs(chain):
            if len(candidate) == 8 and candidate.isdigit():
                yield int(candidate[4:]), int(candidate[2:4]), int(candidate[:2])
                yield int(candidate[:4]), int(candidate[4:6]), int(candidate[6:])


def _has_date(text: str) -> bool:
    return any(_real(*reading) for reading in _dates(text))


#: English words that are also names (given or family). Such a name is only found written as
#: a name, with a capital ("Will", "WILL"): otherwise a child called Will or a family called
#: Day could never be given a reason ("we will share within one working day").
_COMMON_WORDS: Final = """
amber angel apple april ash august autumn baker bear bell berry best bill bird birch
bishop black bliss brook brown buck carter cash chance chapel chase cherry child church
cook coral cross crystal daisy dawn day dean drake early east faith field fisher ford
fox gold good grace green grey gray hall happy hart hawk hay hazel heather hill holly
home honour hope house hunt iris ivy jade jay joy june justice king knight lake lamb
lane law liberty little long lord love major mark mason may mercy miller moss north oak
olive page park patience pearl penny poppy pope porter rain ray reed rich river robin
rock rose ruby sage sharp short silver sky south sparrow star stone storm strong summer
sunny swan sweet swift unity violet ward well west white will willow wolf wood wren
young
"""
COMMON_WORDS: Final = frozenset(_COMMON_WORDS.split())


def name_words(names: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """Return each name of ``names`` as the normalised words it is looked for as.

    A name string with spaces holds several names ("Mary Ann"), each looked for alone; a
    double-barrelled or hyphenated name ("Smith-Jones", "O'Neill") is looked for whole, as
    its words in a row, so that its parts may still be ordinary words ("Sentinel-Child"
    does not refuse "the child's review"). Words of one letter are not names.
    """
    found: set[tuple[str, ...]] = set()
    for value in names:
        for name in value.split():
            words = tuple(w for w in _TOKEN.findall(normalise(name)) if not w.isdigit())
            if words and sum(map(len, words)) >= 2:
                found.add(words)
    return tuple(sorted(found))


def _written_as_name(text: str, word: str) -> bool:
    """Whether ``word`` (a common word) appears in ``text`` with a capital, as a name does."""
    plain = unicodedata.normalize("NFKC", text)
    forms = {word.capitalize(), word.upper()}
    return any(re.search(rf"(?<!\w){re.escape(form)}(?!\w)", plain) for form in forms)


def _names_in(text: str, plain: str, names: Iterable[str]) -> bool:
    tokens = _TOKEN.findall(plain)
    for words in name_words(names):
        size = len(words)
        if not any(tuple(tokens[i : i + size]) == words for i in range(len(tokens) - size + 1)):
            continue
        if size > 1 or words[0] not in COMMON_WORDS or _written_as_name(text, words[0]):
            return True
    return False


def find_child_details(text: str, *, names: Iterable[str] = ()) -> tuple[ChildDetail, ...]:
    """Return the kinds of child's detail ``text`` holds, in :class:`ChildDetail` order.

    ``names`` are the names in the record at hand (the child's and the household's), looked
    for as whole words in any case (:func:`name_words`; a name that is also a common word,
    :data:`COMMON_WORDS`, only with a capital). An empty answer means none was found.
    """
    if not isinstance(text, str):
        raise TypeError("text must be a string")
    plain = normalise(text)
    found = _identifiers(plain)
    if _has_date(plain):
        found.add(ChildDetail.DATE)
    if _names_in(text, plain, names):
        found.add(ChildDetail.NAME)
    return tuple(d for d in ChildDetail if d in found)


def refusal(field: str, found: tuple[ChildDetail, ...]) -> tuple[str, str]:
    """Return the (message, rule) refusing ``field`` for the details ``found`` (not empty).

    The message is one plain sentence naming what kind of detail was found, never the text:
    "reason must not name the child or give their UPN, NHS number or date of birth (found: a
    UPN)". The rule is ``<field>.<kind>`` for the first kind found.
    """
    if not found:
        raise ValueError("found must name at least one detail")
    kinds = " and ".join(d.value for d in found)
    message = (
        f"{field} must not name the child or give their UPN, NHS number or date of birth "
        f"(found: {kinds})"
    )
    return message, f"{field}.{found[0].rule}"
