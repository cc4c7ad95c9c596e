"""The children's-details detector: every spelling of a UPN, NHS number, date or name is found.

Valid UPNs and NHS numbers and real dates are generated, then spelt as people and programs
spell them: lower case, spaces, dashes, dots, slashes and underscores between any
characters, fullwidth, Arabic-Indic, Persian and Devanagari digits, zero-width joiners and
spaces. Every one is caught. Ordinary reasons, with their days, sections, levels, years,
phone numbers and references, pass.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exchange.records import nhs_check_digit, upn_check_letter
from exchange.records.free_text import ChildDetail, find_child_details, normalise, refusal
from exchange.records.identifiers import UPN_LETTERS

#: Where a digit may be written otherwise: ASCII, fullwidth, Arabic-Indic, Persian, Devanagari.
DIGIT_BASES = (0x30, 0xFF10, 0x0660, 0x06F0, 0x0966)
#: What people and programs put between characters.
SEPARATORS = (" ", "-", ".", "/", "_", "\u2013", "\u00a0", "\u200b", "\u200d", "\u2060", "")
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]  # fmt: skip

#: Reasons as DSLs, front doors and DPOs write them: none may be refused.
ORDINARY = [
    "Sharing is necessary to protect the child from significant harm.",
    "The front door needs the chronology to decide on a section 47 enquiry within 3 days.",
    "Level 3 concerns: neglect and missed medical appointments since September.",
    "Strategy meeting held; police and health agreed that sharing is proportionate.",
    "The pupil joined Year 6 in 2024 and the CP file must follow within 5 school days.",
    "Mother consented on the phone; father not informed because of risk (see record).",
    "Information request under s47 Children Act 1989, due in 2 working days.",
    "Attendance below 80% for 3 terms; Early Help since 2023.",
    "Referral follows the 2024-25 threshold document, page 12.",
    "Call the MASH on 0161 217 6028 if more is needed.",
    "Sent to the LAC nurse for the initial health assessment within 20 working days.",
    "KCSIE 2024 paragraph 121 requires the transfer; Working Together 2023 chapter 2.",
    "Review at 10:30 on Monday; 2 siblings also known to the service.",
    "SDQ total 18 of 40; ages 5, 11, 16 in the household.",
    "Inquiry reference IICSA/2024/0012, litigation case 2023/417.",
    "Hold until the inquiry reports in 2027 (school year 2026/2027).",
    "Moved from Level 2 to Level 3 in March 2024; reviewed 14 March.",
    "Recorded 3 times between 2021 and 2023, most recently on 2 May.",
    "Transfer within 5 days under KCSIE; 1 of 2 files sent, 0 outstanding.",
    "Joined the school in Reception; the DSL will follow up by 5pm.",
]


def _spell(chars: str, data: st.DataObject) -> str:
    """Return ``chars`` spelt otherwise: digits in drawn scripts, letters in a drawn case.

    A drawn separator (or none) follows each character.
    """
    out = []
    for ch in chars:
        spelt = ch
        if ch.isdigit():
            spelt = chr(data.draw(st.sampled_from(DIGIT_BASES)) + int(ch))
        elif ch.isalpha():
            spelt = ch.lower() if data.draw(st.booleans()) else ch.upper()
        out.append(spelt + data.draw(st.sampled_from(SEPARATORS)))
    return "".join(out).rstrip("".join(SEPARATORS))


def _in_a_sentence(detail: str, data: st.DataObject) -> str:
    before = data.draw(
        st.sampled_from(["", "Risk to ", "UPN ", "NHS no. ", "see: ", "(", "Level 3 "])
    )
    after = data.draw(st.sampled_from(["", " is at risk.", ")", ", the child", "; refer now"]))
    return before + detail + after


@st.composite
def upns(draw: st.DrawFn) -> str:
    """Draw a valid UPN: its DfE check letter, 11 digits, a digit or check-table letter."""
    body = draw(st.text(alphabet="0123456789", min_size=11, max_size=11))
    body += draw(st.sampled_from("0123456789" + UPN_LETTERS))
    return upn_check_letter(body) + body


@st.composite
def nhs_numbers(draw: st.DrawFn) -> str:
    """Draw a valid NHS number: nine digits and their modulo-11 check digit."""
    first = draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    check = nhs_check_digit(first)
    assume(check is not None)
    return first + str(check)


@st.composite
def written_dates(draw: st.DrawFn) -> str:
    """Draw a real date, written in one of the forms people use."""
    day = draw(st.dates(min_value=date(1995, 1, 1), max_value=date(2035, 12, 31)))
    d, m, y = day.day, day.month, day.year
    dd = draw(st.sampled_from([str(d), f"{d:02d}"]))
    mm = draw(st.sampled_from([str(m), f"{m:02d}"]))
    yy = draw(st.sampled_from([str(y), f"{y % 100:02d}"]))
    sep = draw(st.sampled_from(["/", ".", "-", " ", " / ", "\u2013"]))
    month = MONTHS[m - 1]
    month = draw(st.sampled_from([month, month[:3], month.upper(), month.lower()]))
    nth = draw(st.sampled_from(["", "st" if d % 10 == 1 else "th"]))
    return draw(
        st.sampled_from(
            [
                f"{dd}{sep}{mm}{sep}{yy}",
                f"{y}-{m:02d}-{d:02d}",
                f"{d}{nth} {month} {y}",
                f"{d}{nth} of {month} {yy}",
                f"{month} {d}{nth}, {y}",
                f"{dd}-{month[:3]}-{yy}",
                f"{d:02d}{m:02d}{y}",
            ]
        )
    )


@given(upns(), st.data())
@settings(max_examples=400, deadline=None)
def test_every_spelling_of_a_upn_is_caught(upn: str, data: st.DataObject) -> None:
    """Case, separators between any characters, other scripts' digits: still a UPN."""
    text = _in_a_sentence(_spell(upn, data), data)
    assert ChildDetail.UPN in find_child_details(text)


@given(nhs_numbers(), st.data())
@settings(max_examples=400, deadline=None)
def test_every_spelling_of_an_nhs_number_is_caught(nhs: str, data: st.DataObject) -> None:
    """3-3-4, one digit at a time, dots, other scripts' digits: still an NHS number."""
    text = _in_a_sentence(_spell(nhs, data), data)
    assert ChildDetail.NHS_NUMBER in find_child_details(text)


@given(written_dates(), st.data())
@settings(max_examples=400, deadline=None)
def test_every_written_date_is_caught(written: str, data: st.DataObject) -> None:
    """Numeric and written-month forms, with other scripts' digits and zero-width joiners."""
    spelt = "".join(
        chr(data.draw(st.sampled_from(DIGIT_BASES)) + int(ch)) if ch.isdigit() else ch
        for ch in written
    )
    joiner = data.draw(st.sampled_from(["", "\u200d", "\u200b"]))
    spelt = spelt[:1] + joiner + spelt[1:]
    text = _in_a_sentence(spelt, data)
    assert ChildDetail.DATE in find_child_details(text)


NAMES = ["Zebedee", "Quillfeather", "Zoë", "Pat", "O'Neill-Smith", "Sentinel-Child"]


@given(st.sampled_from(NAMES), st.data())
@settings(max_examples=200, deadline=None)
def test_a_name_from_the_record_is_caught_in_any_case(name: str, data: st.DataObject) -> None:
    """A given or family name of the child or household, however cased, accented or joined."""
    words = normalise(name).split()
    joiner = data.draw(st.sampled_from([" ", "-", "\u2019", "_", "\u200d "]))
    spelt = "".join(ch.upper() if data.draw(st.booleans()) else ch for ch in joiner.join(words))
    text = _in_a_sentence(spelt, data)
    assert find_child_details(text, names=NAMES) == (ChildDetail.NAME,)


def test_names_match_whole_words_only() -> None:
    """A name inside a longer word is not the name ("Jo" in "joined", "Pat" in "pattern")."""
    assert find_child_details("Joined in a pattern of absence", names=["Jo", "Pat"]) == ()
    assert find_child_details("ZOE at risk", names=["Zoë"]) == (ChildDetail.NAME,)
    assert find_child_details("Jo’s mother", names=["Jo"]) == (ChildDetail.NAME,)
    assert find_child_details("Mary and Ann", names=["Mary Ann"]) == (ChildDetail.NAME,)


@pytest.mark.parametrize(
    ("text", "names", "found"),
    [
        ("Needed for the child's next review.", ["Sentinel-Child"], False),
        ("Needed for sentinel child's review.", ["Sentinel-Child"], True),
        ("Concerns about SENTINEL-CHILD.", ["Sentinel-Child"], True),
        ("We will share within one working day.", ["Will", "Day"], False),
        ("Will is at risk.", ["Will"], True),
        ("WILL DAY at risk", ["Will", "Day"], True),
        ("A grace period of 3 days; the family may move.", ["Grace", "May"], False),
        ("Grace said so.", ["Grace"], True),
    ],
)
def test_double_barrelled_names_and_names_that_are_words(
    text: str, names: list[str], found: bool
) -> None:
    """A hyphenated name is found whole; a name that is a common word only with a capital."""
    assert (find_child_details(text, names=names) == (ChildDetail.NAME,)) is found


@pytest.mark.parametrize("reason", ORDINARY)
def test_ordinary_reasons_pass(reason: str) -> None:
    """Days, sections, levels, years, times, phone numbers and references are not details."""
    assert find_child_details(reason, names=NAMES) == ()


@given(
    st.lists(
        st.one_of(
            st.sampled_from(ORDINARY),
            st.integers(1, 99).map(lambda n: f"within {n} days"),
            st.integers(1, 6).map(lambda n: f"Level {n}"),
            st.integers(1, 120).map(lambda n: f"section {n}"),
            st.integers(1990, 2040).map(lambda y: f"in {y}"),
            st.integers(1990, 2040).map(lambda y: f"the {y}/{(y + 1) % 100:02d} school year"),
            st.integers(0, 13).map(lambda g: f"Year {g}"),
            st.sampled_from(MONTHS).map(lambda m: f"since {m}"),
        ),
        min_size=1,
        max_size=5,
    )
)
@settings(max_examples=300, deadline=None)
def test_generated_ordinary_reasons_pass(parts: list[str]) -> None:
    """Any mix of ordinary phrases and numbers passes."""
    assert find_child_details(", and ".join(parts), names=NAMES) == ()


def test_the_refusal_names_the_kind_never_the_text() -> None:
    """The sentence says what kind of detail was found; the rule names the field and kind."""
    found = find_child_details("w356200124001 born 14/03/2015")
    assert found == (ChildDetail.UPN, ChildDetail.DATE)
    message, rule = refusal("reason", found[:1])
    assert message == (
        "reason must not name the child or give their UPN, NHS number or date of birth "
        "(found: a UPN)"
    )
    assert rule == "reason.identifier"
    message, rule = refusal("reason", found)
    assert "w356200124001" not in message
    assert "14/03/2015" not in message
    assert rule == "reason.identifier"
    assert refusal("reason", (ChildDetail.DATE,))[1] == "reason.date-of-birth"
    assert refusal("reason", (ChildDetail.NAME,))[1] == "reason.names-subject"


@pytest.mark.parametrize(
    "text",
    [
        "W356200124001",
        "w356200124001",
        "W 356 200 124 001",
        "W-3562-0012-4001",
        "W\uff13\uff15\uff16\uff12\uff10\uff10\uff11\uff12\uff14\uff10\uff10\uff11",
        "W\u0663\u0665\u0666\u0662\u0660\u0660\u0661\u0662\u0664\u0660\u0660\u0661",
        "W356\u200d200\u200b124001",
        "W3562.0012.4001",
        "W3562/0012/4001",
        "W3562_0012_4001",
        "ｗ３５６２００１２４００１",
    ],
)
def test_known_upn_spellings(text: str) -> None:
    """Spellings that passed the old identifier check are caught now."""
    assert find_child_details(f"UPN {text} needs a plan") == (ChildDetail.UPN,)
