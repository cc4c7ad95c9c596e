"""An opened record as a readable page: sections of labelled rows, built from its JSON Schema.

The record's schema (:func:`exchange.records.kinds.load_schema`) is the one source of the
fields: it gives their order, their types and formats, and, where it has them, their titles
and the titles of enum values (``oneOf`` of ``const`` and ``title``). A title written for
the sender's question page ("Your contact details") has a reader's title beside it
(``x-reader-title``: "Referrer"), which this page uses instead. A field without a
title is named from its key in words (:data:`FIELD_WORDS` spells out the abbreviations and
terms a key cannot). Dates are written in words, enum values and yes/no in words,
organisations by name; digests and the attachment manifest are left out (the attachments
have their own table). Nothing is ever shown as JSON.

The subject (the child or pupil) comes first, then the record's own details (its top-level
single values), then each group of fields in the schema's order. A list of groups (the
household, the PEP targets) becomes one summary card per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from markupsafe import Markup, escape

from exchange.records.kinds import kind_spec, load_schema
from exchange.sharing.prepare import SUBJECT_FIELDS
from exchange.web.words import date_words

#: Fields whose key does not read well as words, and statutory terms spelt out once.
FIELD_WORDS: Final = {
    "upn": "Unique pupil number (UPN)",
    "nhs_number": "NHS number",
    "gp": "GP",
    "ods_code": "ODS code",
    "school_urn": "School URN",
    "from_school_urn": "From school (URN)",
    "to_school_urn": "To school (URN)",
    "dsl": "Designated safeguarding lead",
    "household": "Household members",
    "confidential_from_family": "Information kept from the family",
    "cp_plan": "Child protection plan",
    "child_in_need": "Child in need",
    "ehcp": "Education, health and care plan (EHCP)",
    "channel": "Channel (Prevent) support",
    "pep": "Personal education plan (PEP)",
    "sdq": "Strengths and difficulties questionnaire (SDQ)",
    "responsible_la": "Responsible local authority",
    "placing_la": "Placing local authority",
    "legal_status": "Legal status",
    "date_new_school_confirmed": "Date the new school was confirmed",
    "early_help": "Early help",
    "parents_informed": "Parents or carers told about the referral",
    "consent_given": "Consent given",
    "immediate_risk": "Child at immediate risk",
    "allocated_pence": "Allocated",
    "spent_pence": "Spent",
    "pupil_premium_plus": "Pupil premium plus",
    "attendance_percent": "Attendance",
    "request_type": "Type of request",
}

#: Enum values whose words a value cannot give by itself.
VALUE_WORDS: Final = {
    "not-sought": "Not sought",
    "fgm": "Female genital mutilation (FGM)",
    "online-harm": "Online harm",
    "missing-from-education": "Missing from education",
    "s20": "Accommodated under section 20 of the Children Act 1989",
    "s47-checks": "Section 47 checks",
    "s17-checks": "Section 17 checks",
    "strategy-discussion-checks": "Strategy discussion checks",
    "mash-checks": "Multi-agency safeguarding hub (MASH) checks",
    "lac-review": "Looked-after child review",
    "section-17-assessment": "Section 17 assessment (child in need)",
    "section-47-enquiry": "Section 47 enquiry (child protection)",
    "partner-of-parent": "Partner of a parent",
    "step-parent": "Step-parent",
    "not-known": "Not known",
}

#: Words in keys and values kept in capitals.
_ACRONYMS: Final = frozenset(
    {"gp", "ods", "urn", "upn", "nhs", "la", "dsl", "pep", "sdq", "lac", "fgm", "ehcp", "mash"}
)
#: Schema definitions shown as one value rather than as their parts.
_NAME_DEF: Final = "#/$defs/name"
_ADDRESS_DEF: Final = "#/$defs/address"
_ORG_DEF: Final = "#/$defs/org_id"
_DIGEST_DEF: Final = "#/$defs/sha256"

OrgName = Callable[[str], str]


@dataclass(frozen=True)
class Row:
    """One summary list row: a label and its value (escaped text or built markup)."""

    key: str
    html: Markup


@dataclass(frozen=True)
class Card:
    """One entry of a list of groups (a household member), as a titled summary card."""

    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Section:
    """A heading with its rows, and the cards of any list of groups under it."""

    heading: str
    rows: tuple[Row, ...] = ()
    cards: tuple[Card, ...] = field(default_factory=tuple)


def words(key: str) -> str:
    """Return a field key or enum value in words: ``first_language`` -> ``First language``."""
    parts = key.replace("_", " ").replace("-", " ").split()
    shown = [p.upper() if p in _ACRONYMS else p for p in parts]
    text = " ".join(shown)
    return text[:1].upper() + text[1:]


def size_words(size: int) -> str:
    """Return a file size in words: ``512 bytes``, ``12 KB``, ``1.5 MB``."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


class _Schema:
    """A record kind's schema, with its local references resolved."""

    def __init__(self, kind: str) -> None:
        self.root = load_schema(kind)

    def resolve(self, node: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
        """Return a node with its ``$ref`` followed (its own title kept), and the ref."""
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
            return node, None
        target = self.root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}, ref


class RecordView:
    """Turns one record's data into sections, labelled from its kind's schema."""

    def __init__(self, kind: str, org_name: OrgName) -> None:
        self.kind = kind
        self.schema = _Schema(kind)
        self.org_name = org_name
        self.manifest = kind_spec(kind).manifest

    def sections(self, data: Mapping[str, Any]) -> list[Section]:
        """Return the record's sections: the subject, the details, then each group."""
        properties: Mapping[str, Any] = self.schema.root.get("properties", {})
        subject = SUBJECT_FIELDS.get(self.kind)
        details: list[Row] = []
        groups: list[Section] = []
        first: list[Section] = []
        for key, raw in properties.items():
            if key not in data or key == self.manifest:
                continue
            node, ref = self.schema.resolve(raw)
            if _hidden(node, ref):
                continue
            label = self._label(key, node)
            value = data[key]
            if _is_group(node, ref):
                section = Section(label, tuple(self._rows(value, node)), self._cards(value, node))
                (first if key == subject else groups).append(section)
            elif _is_group_list(node, self.schema):
                groups.append(Section(label, cards=self._card_list(label, value, node)))
            else:
                details.append(Row(label, self._value(value, node, ref, key)))
        if details:
            first.append(Section("About this record", tuple(details)))
        return first + groups

    def _label(self, key: str, node: Mapping[str, Any]) -> str:
        for keyword in ("x-reader-title", "title"):
            title = node.get(keyword)
            if isinstance(title, str) and title:
                return title
        return FIELD_WORDS.get(key, words(key))

    def _rows(
        self, value: Mapping[str, Any], node: Mapping[str, Any], prefix: str = ""
    ) -> list[Row]:
        """Return a group's single values as rows (nested groups flattened, their label first)."""
        rows: list[Row] = []
        for key, raw in node.get("properties", {}).items():
            if key not in value:
                continue
            child, ref = self.schema.resolve(raw)
            if _hidden(child, ref) or _is_group_list(child, self.schema):
                continue
            label = self._label(key, child)
            if prefix:
                label = f"{prefix} {_lower_first(label)}"
            if _is_group(child, ref):
                rows.extend(self._rows(value[key], child, label))
            else:
                rows.append(Row(label, self._value(value[key], child, ref, key)))
        return rows

    def _cards(self, value: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[Card, ...]:
        """Return the cards of the lists of groups inside a group."""
        cards: list[Card] = []
        for key, raw in node.get("properties", {}).items():
            child, _ = self.schema.resolve(raw)
            if key in value and _is_group_list(child, self.schema):
                cards.extend(self._card_list(self._label(key, child), value[key], child))
        return tuple(cards)

    def _card_list(
        self, label: str, entries: Sequence[Any], node: Mapping[str, Any]
    ) -> tuple[Card, ...]:
        """Return one card per entry of a list of groups, numbered."""
        item, _ = self.schema.resolve(node.get("items", {}))
        total = len(entries)
        return tuple(
            Card(f"{label}: {number} of {total}", tuple(self._rows(entry, item)))
            for number, entry in enumerate(entries, start=1)
        )

    def _value(self, value: Any, node: Mapping[str, Any], ref: str | None, key: str) -> Markup:
        """Return one value as markup built from escaped text."""
        if isinstance(value, list):
            item, item_ref = self.schema.resolve(node.get("items", {}))
            shown = [self._value(v, item, item_ref, key) for v in value]
            if len(shown) == 1:
                return shown[0]
            items = Markup("").join(Markup("<li>{}</li>").format(s) for s in shown)
            return Markup('<ul class="govuk-list govuk-list--bullet">{}</ul>').format(items)
        if ref == _NAME_DEF and isinstance(value, Mapping):
            return escape(_full_name(value))
        if ref == _ADDRESS_DEF and isinstance(value, Mapping):
            lines = [*value.get("lines", []), value.get("postcode", "")]
            return Markup("<br>").join(escape(line) for line in lines if line)
        if isinstance(value, Mapping):  # not expected of a validated record; never raw JSON
            return Markup("<br>").join(
                Markup("{}: {}").format(words(k), self._value(v, {}, None, k))
                for k, v in value.items()
            )
        return escape(self._scalar(value, node, ref, key))

    def _scalar(self, value: Any, node: Mapping[str, Any], ref: str | None, key: str) -> str:
        if isinstance(value, bool):
            return "Yes" if value else "No"
        if isinstance(value, int | float):
            return _number(value, key)
        text = str(value)
        if node.get("format") == "date":
            text = date_words(date.fromisoformat(text))
        elif ref == _ORG_DEF:
            text = self.org_name(text)
        elif node.get("format") == "urn":
            name = self.org_name(f"urn:{text}")
            text = text if name == f"urn:{text}" else f"{name} (URN {text})"
        elif "enum" in node or "oneOf" in node:
            text = _enum_words(text, node)
        return text


def _number(value: float, key: str) -> str:
    """Return a number in words: money in pence as pounds, a percentage with its sign."""
    if key.endswith("_pence"):
        return f"£{value / 100:,.2f}"
    if key.endswith("_percent"):
        return f"{value:g}%"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _hidden(node: Mapping[str, Any], ref: str | None) -> bool:
    """Whether a field is not for people: a constant (kind, version) or a digest."""
    return "const" in node or ref == _DIGEST_DEF


def _is_group(node: Mapping[str, Any], ref: str | None) -> bool:
    """Whether a field is a group of fields (not a name or an address, shown as one)."""
    return node.get("type") == "object" and ref not in {_NAME_DEF, _ADDRESS_DEF}


def _is_group_list(node: Mapping[str, Any], schema: _Schema) -> bool:
    if node.get("type") != "array":
        return False
    item, ref = schema.resolve(node.get("items", {}))
    return _is_group(item, ref)


def _enum_words(value: str, node: Mapping[str, Any]) -> str:
    for choice in node.get("oneOf", ()):
        if isinstance(choice, Mapping) and choice.get("const") == value and "title" in choice:
            return str(choice["title"])
    return VALUE_WORDS.get(value, words(value))


def _full_name(name: Mapping[str, Any]) -> str:
    full = " ".join(str(name[k]) for k in ("given_names", "family_name") if name.get(k))
    known = name.get("known_as")
    return f"{full} (known as {known})" if known else full


def _lower_first(label: str) -> str:
    """Lower the first letter of a label joined after another, unless it starts an acronym."""
    first = label.split(" ", 1)[0]
    if first.isupper() and len(first) > 1:
        return label
    return label[:1].lower() + label[1:]
