"""An opened record in words, from its schema; a download's file name made safe for headers."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from exchange.http.streaming import content_disposition
from exchange.records.kinds import KINDS
from exchange.web.inbox.record_view import RecordView, size_words, words
from tests.node.records import cp_file, information_request, lac_record, referral


def _org(org: str) -> str:
    return {"urn:106123": "Hillside Primary School", "la:356": "Stockport"}.get(org, org)


def _text(kind: str, data: dict) -> str:
    parts = []
    for section in RecordView(kind, _org).sections(data):
        parts.append(section.heading)
        rows = [*section.rows, *(row for card in section.cards for row in card.rows)]
        parts.extend(f"{row.key}: {row.html}" for row in rows)
    return "\n".join(parts)


@pytest.mark.parametrize(
    "record", [referral(), cp_file(), lac_record(), information_request()], ids=lambda r: r["kind"]
)
def test_every_kind_reads_as_words_never_json(record: dict) -> None:
    """Each kind's sections name their fields in words; no key, brace or ISO date is shown."""
    assert record["kind"] in KINDS
    text = _text(record["kind"], record)
    assert "{" not in text
    assert "_" not in text
    assert "2015-03-14" not in text
    assert "14 March 2015" in text
    assert "\nkind:" not in text.lower()


@pytest.mark.parametrize(
    "record", [referral(), cp_file(), lac_record(), information_request()], ids=lambda r: r["kind"]
)
def test_the_reader_is_never_addressed_as_the_sender(record: dict) -> None:
    """Question-page titles say "your"; the reader's page names the sender's parts instead."""
    record["household"] = [{"name": {"given_names": "Ann", "family_name": "Example"}}]
    sections = RecordView(record["kind"], _org).sections(record)
    labels = [s.heading for s in sections]
    labels += [row.key for s in sections for row in s.rows]
    labels += [row.key for s in sections for card in s.cards for row in card.rows]
    assert len(labels) > 5
    addressed = [label for label in labels if {"you", "your"} & set(words_of(label))]
    assert addressed == []


def words_of(label: str) -> list[str]:
    """Return a label's words in lower case, without punctuation."""
    return "".join(c if c.isalpha() else " " for c in label.lower()).split()


def test_a_referral_starts_with_the_child_and_spells_out_its_terms() -> None:
    """The subject first; enums, booleans, organisations and acronyms in words."""
    record = referral()
    record["concerns"] = ["neglect", "fgm"]
    record["household"] = [
        {"name": {"given_names": "Ann", "family_name": "Example"}, "relationship": "mother"}
    ]
    sections = RecordView("referral", _org).sections(record)
    assert [s.heading for s in sections][:3] == ["Child", "About this record", "Referrer"]
    text = _text("referral", record)
    assert "Unique pupil number (UPN): W356200124001" in text
    assert "Female genital mutilation (FGM)" in text
    assert "Level of need: Level 3" in text
    assert "Is the child at immediate risk of harm?: No" in text
    assert "Organisation: Hillside Primary School" in text
    assert "People in the child's household: 1 of 1" in [c.title for s in sections for c in s.cards]
    assert "Relationship to the child: Mother" in text


def test_hostile_values_are_escaped() -> None:
    """A value holding markup is shown as text."""
    record = referral(description='<script>alert("x")</script>')
    assert "<script>" not in _text("referral", record)
    assert "&lt;script&gt;" in _text("referral", record)


def test_words_and_sizes() -> None:
    """Keys and codes read as words; sizes in bytes, KB and MB."""
    assert words("first_language") == "First language"
    assert words("gp") == "GP"
    assert size_words(71) == "71 bytes"
    assert size_words(12 * 1024) == "12 KB"
    assert size_words(3 * 1024 * 1024 // 2) == "1.5 MB"


def test_a_download_name_cannot_break_the_header() -> None:
    """Quotes, line breaks and non-ASCII letters stay out of the plain name; all in filename*."""
    name = 'Zoë\'s "notes"\r\nSet-Cookie: x=1.pdf'
    header = content_disposition(name)
    assert "\r" not in header
    assert "\n" not in header
    plain = header.split('filename="')[1].split('"')[0]
    assert plain == "Zo__s _notes___Set-Cookie_ x_1.pdf"
    assert unquote(header.split("filename*=UTF-8''")[1]) == name
