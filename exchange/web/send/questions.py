"""Question pages made from a record kind's JSON Schema: questions, answers, record, errors.

The schema (:func:`exchange.records.kinds.load_schema`) is the one source of truth: each
top-level field a person fills in is one question page (GOV.UK "question pages"); its
``title`` is the label, its ``description`` the hint and ``x-enum-titles`` the words of its
choices; its rules are the schema's, checked by :func:`exchange.records.validate_record`.
Types become GOV.UK components:

- an object: a fieldset of its fields; a short string: a text input; a long one (over
  :data:`LONG_TEXT` characters): a textarea with its limit; a ``date``: the date input;
  an ``enum``: radios; an array of an ``enum``: checkboxes; a boolean: yes and no radios;
  a number: a text input for numbers;
- any other array: the "add another" pattern, done on the server (the page is sent with
  the button pressed, and comes back with one more or one fewer item), so it works without
  JavaScript.

Answers are kept as a person typed them (:class:`Answers`), by field path, so a page shows
back what was entered, even when it was wrong. :func:`build_record` turns them into the
record, leaving out what was not answered; its own problems (a date that is not a real
date, a number that is not a number) join the schema's. :func:`error_text` turns each
problem into a GOV.UK error message made from the schema and the rule broken, never from
the value given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from exchange.records import KINDS, RecordValidationError, kind_spec, load_schema, validate_record
from exchange.web.words import date_words

#: Fields no one types: set by the service or by the pages (a reply or a correction), or
#: the attachment manifest, which the upload page fills from the files.
NOT_ASKED: Final = frozenset({"kind", "version", "corrects", "in_reply_to"})
#: Strings longer than this are typed in a textarea.
LONG_TEXT: Final = 200
#: Identifier formats typed without spaces (a person may copy them with spaces).
IDENTIFIER_FORMATS: Final = frozenset({"upn", "nhs-number", "urn", "la-code", "ods-code"})
_DATE_PARTS: Final = ("day", "month", "year")


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``node`` with its ``$ref`` replaced by the definition (its own words win)."""
    if "$ref" not in node:
        return dict(node)
    name = str(node["$ref"]).removeprefix("#/$defs/")
    resolved = dict(schema["$defs"][name])
    resolved.update({k: v for k, v in node.items() if k != "$ref"})
    return resolved


def widget_of(node: Mapping[str, Any]) -> str:  # noqa: PLR0911 - one table
    """Return the component a resolved schema node is asked with."""
    kind = node.get("type")
    if kind == "object":
        return "group"
    if kind == "array":
        items = node.get("items", {})
        return "checkboxes" if "enum" in items else "list"
    if kind == "boolean":
        return "yesno"
    if kind in {"integer", "number"}:
        return "number"
    if "enum" in node:
        return "radios"
    if node.get("format") == "date":
        return "date"
    if int(node.get("maxLength", 0)) > LONG_TEXT:
        return "textarea"
    return "text"


def field_id(path: str) -> str:
    """Return the HTML id of a field: ``household[0].name`` is ``f-household-0-name``."""
    return "f-" + re.sub(r"[^A-Za-z0-9_]+", "-", path).strip("-")


def _humanise(value: str) -> str:
    return value.replace("-", " ").replace("_", " ").capitalize()


@dataclass(frozen=True)
class Question:
    """A field at a path: its resolved schema, whether it is required, and its words."""

    path: str
    schema: Mapping[str, Any]
    required: bool
    label: str
    #: The words used in error messages, with the item it belongs to (``household member 2``).
    context: str = ""

    @property
    def widget(self) -> str:
        """The component the field is asked with."""
        return widget_of(self.schema)

    @property
    def hint(self) -> str | None:
        """The field's hint, from the schema's description."""
        text = self.schema.get("description")
        return str(text) if text else None

    @property
    def choices(self) -> list[tuple[str, str]]:
        """The (value, words) of an enum's or an array of enum's choices."""
        node = self.schema.get("items", {}) if self.widget == "checkboxes" else self.schema
        words = node.get("x-enum-titles", {})
        return [(str(v), str(words.get(v, _humanise(str(v))))) for v in node.get("enum", ())]


@dataclass
class Answers:
    """What a person typed, by field path: strings, lists of choices, and list lengths.

    ``values`` holds each field's text (a date as three parts, ``path-day`` and so on; a
    checkbox question as a list); ``counts`` how many items each "add another" list shows.
    """

    values: dict[str, str | list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def text(self, key: str) -> str:
        """Return the text typed at ``key`` ("" if none)."""
        value = self.values.get(key, "")
        return value if isinstance(value, str) else ""

    def chosen(self, key: str) -> list[str]:
        """Return the choices ticked at ``key``."""
        value = self.values.get(key, [])
        return value if isinstance(value, list) else []

    def as_json(self) -> dict[str, Any]:
        """Return the answers as JSON values (for the draft)."""
        return {"values": self.values, "counts": self.counts}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Answers:
        """Return answers kept by :meth:`as_json`."""
        values: dict[str, str | list[str]] = {}
        for key, value in dict(doc.get("values", {})).items():
            if isinstance(value, str):
                values[str(key)] = value
            elif isinstance(value, list):
                values[str(key)] = [str(v) for v in value]
        counts = {str(k): int(v) for k, v in dict(doc.get("counts", {})).items()}
        return cls(values, counts)

    def drop(self, prefix: str) -> None:
        """Forget every answer at ``prefix`` or inside it."""
        for store in (self.values, self.counts):
            for key in [k for k in store if _inside(k, prefix)]:
                del store[key]

    def renumber(self, list_path: str, removed: int) -> None:
        """Forget item ``removed`` of a list and move the later items up by one."""
        self.drop(f"{list_path}[{removed}]")
        count = self.counts.get(list_path, 0)
        for index in range(removed + 1, count):
            old, new = f"{list_path}[{index}]", f"{list_path}[{index - 1}]"
            for store in (self.values, self.counts):
                for key in [k for k in store if _inside(k, old)]:
                    store[new + key[len(old) :]] = store.pop(key)  # type: ignore[assignment]
        self.counts[list_path] = max(0, count - 1)


def _inside(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith((prefix + ".", prefix + "[", prefix + "-"))


class Form:
    """The questions of one record kind, grouped into pages by the schema's top-level fields."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of: {', '.join(KINDS)}")
        self.kind = kind
        self.schema = load_schema(kind)
        self.manifest = kind_spec(kind).manifest
        required = set(self.schema.get("required", ()))
        self.sections: list[Question] = [
            Question(
                name,
                _resolve(self.schema, node),
                name in required,
                str(_resolve(self.schema, node).get("title", _humanise(name))),
            )
            for name, node in self.schema["properties"].items()
            if name not in NOT_ASKED and name != self.manifest
        ]

    @property
    def title(self) -> str:
        """The kind's schema title."""
        return str(self.schema.get("title", self.kind))

    def section(self, name: str) -> Question | None:
        """Return the top-level question ``name`` (a page), or None."""
        return next((s for s in self.sections if s.path == name), None)

    def next_section(self, name: str) -> str | None:
        """Return the page after ``name``, or None after the last."""
        names = [s.path for s in self.sections]
        index = names.index(name)
        return names[index + 1] if index + 1 < len(names) else None

    def manifest_item(self) -> Mapping[str, Any] | None:
        """Return the schema of one manifest entry (None when the kind carries no files)."""
        if self.manifest is None:
            return None
        node = _resolve(self.schema, self.schema["properties"][self.manifest])
        return _resolve(self.schema, node["items"])

    def children(self, question: Question) -> list[Question]:
        """Return the fields of a group question."""
        required = set(question.schema.get("required", ()))
        out = []
        for name, node in question.schema.get("properties", {}).items():
            if name in NOT_ASKED:
                continue
            resolved = _resolve(self.schema, node)
            out.append(
                Question(
                    f"{question.path}.{name}",
                    resolved,
                    name in required,
                    str(resolved.get("title", _humanise(name))),
                    question.context,
                )
            )
        return out

    def item_schema(self, question: Question) -> dict[str, Any]:
        """Return the resolved schema of one item of a list question."""
        return _resolve(self.schema, question.schema.get("items", {}))

    def items(self, question: Question, answers: Answers) -> list[Question]:
        """Return the items a list question shows now (as many as its count)."""
        node = self.item_schema(question)
        words = str(node.get("title", "Item"))
        return [
            Question(
                f"{question.path}[{index}]",
                node,
                required=True,
                label=f"{words} {index + 1}",
                context=f"{words.lower()} {index + 1}",
            )
            for index in range(self.count(question, answers))
        ]

    def count(self, question: Question, answers: Answers) -> int:
        """Return how many items a list shows: as answered, or its minimum (one for words)."""
        if question.path in answers.counts:
            return answers.counts[question.path]
        least = int(question.schema.get("minItems", 0))
        if self.item_schema(question).get("type") != "object":
            least = max(least, 1)
        return least

    def walk(self, question: Question, answers: Answers) -> Iterator[Question]:
        """Yield every question inside ``question``, in page order, itself included."""
        yield question
        if question.widget == "group":
            for child in self.children(question):
                yield from self.walk(child, answers)
        elif question.widget == "list":
            for item in self.items(question, answers):
                yield from self.walk(item, answers)

    # --- reading a page's form ------------------------------------------------------------

    def read(self, section: Question, form: Mapping[str, Any], answers: Answers) -> None:
        """Replace the answers of a page with what its form sent.

        Only the fields the schema defines are read, and a choice only if it is one the
        schema lists: anything else in the form, a tampered field included, changes nothing.
        """
        fresh = Answers(counts=dict(answers.counts))
        for question in self.walk(section, answers):
            key = question.path
            widget = question.widget
            if widget == "date":
                for part in _DATE_PARTS:
                    fresh.values[f"{key}-{part}"] = _form_text(form, f"{key}-{part}")
            elif widget == "checkboxes":
                allowed = {value for value, _ in question.choices}
                fresh.values[key] = [v for v in _form_list(form, key) if v in allowed]
            elif widget in {"radios", "yesno"}:
                value = _form_text(form, key)
                allowed = {"yes", "no"} if widget == "yesno" else {v for v, _ in question.choices}
                fresh.values[key] = value if value in allowed else ""
            elif widget in {"text", "textarea", "number"}:
                fresh.values[key] = _form_text(form, key)
        answers.drop(section.path)
        answers.values.update({k: v for k, v in fresh.values.items() if _inside(k, section.path)})
        answers.counts.update({k: v for k, v in fresh.counts.items() if _inside(k, section.path)})

    def lists(self, section: Question, answers: Answers) -> dict[str, Question]:
        """Return the page's "add another" lists by path."""
        return {q.path: q for q in self.walk(section, answers) if q.widget == "list"}

    def add_item(self, section: Question, answers: Answers, list_path: str) -> str | None:
        """Add an empty item to a list of the page; return its path (None if it cannot)."""
        question = self.lists(section, answers).get(list_path)
        if question is None:
            return None
        count = self.count(question, answers)
        if count >= int(question.schema.get("maxItems", 0)):
            return None
        answers.counts[list_path] = count + 1
        return f"{list_path}[{count}]"

    def remove_item(self, section: Question, answers: Answers, item_path: str) -> bool:
        """Remove an item of a list of the page (and what was typed in it)."""
        match = re.fullmatch(r"(.+)\[([0-9]{1,3})\]", item_path)
        if match is None:
            return False
        list_path, index = match.group(1), int(match.group(2))
        question = self.lists(section, answers).get(list_path)
        if question is None or not 0 <= index < self.count(question, answers):
            return False
        answers.counts[list_path] = self.count(question, answers)
        answers.renumber(list_path, index)
        return True


def _form_text(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key, "")
    return value if isinstance(value, str) else ""


def _form_list(form: Mapping[str, Any], key: str) -> list[str]:
    getall = getattr(form, "getall", None)
    values = getall(key, []) if getall is not None else [form.get(key, "")]
    return [v for v in values if isinstance(v, str)]


# --- from answers to the record -------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something wrong with an answer: the field's path and the rule it breaks."""

    path: str
    rule: str


def _real_date(parts: Sequence[str]) -> str | None:
    """Return the ISO date of day, month and year as typed, or None if it is not a date."""
    try:
        day, month, year = (int(p) for p in parts)
        found = date(year, month, day)
    except ValueError:
        return None
    return found.isoformat() if year >= 1000 else None


def _number(text: str, kind: object) -> int | float | None:
    """Return a number as typed (commas allowed), or None if it is not one."""
    cleaned = text.strip().replace(",", "")
    try:
        number = int(cleaned) if kind == "integer" else float(cleaned)
    except ValueError:
        return None
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _scalar(question: Question, answers: Answers, problems: list[Problem]) -> object:
    """Return a leaf's JSON value from its answer, None if unanswered (or not readable)."""
    node, key, widget = question.schema, question.path, question.widget
    if widget == "date":
        parts = [answers.text(f"{key}-{p}").strip() for p in _DATE_PARTS]
        value = _real_date(parts) if any(parts) else None
        if any(parts) and value is None:
            problems.append(Problem(key, "real-date"))
        return value
    if widget == "checkboxes":
        return answers.chosen(key) or None
    text = answers.text(key)
    if widget == "yesno":
        return {"yes": True, "no": False}.get(text)
    if widget == "number":
        number = _number(text, node.get("type")) if text.strip() else None
        if text.strip() and number is None:
            problems.append(Problem(key, f"number:{node.get('type')}"))
        return number
    text = text.replace("\r\n", "\n").strip() if widget == "textarea" else " ".join(text.split())
    if node.get("format") in IDENTIFIER_FORMATS:
        text = text.replace(" ", "").upper()
    return text or None


def _value(
    form: Form, question: Question, answers: Answers, problems: list[Problem], *, keep: bool
) -> object:
    """Return the JSON value of a question; an object kept (``keep``) even when empty."""
    widget = question.widget
    if widget == "group":
        out: dict[str, Any] = {}
        for child in form.children(question):
            value = _value(form, child, answers, problems, keep=child.required and keep)
            if value is not None:
                out[child.path.rsplit(".", 1)[-1]] = value
        return out if out or keep else None
    if widget == "list":
        items = [
            _value(form, item, answers, problems, keep=False)
            for item in form.items(question, answers)
        ]
        kept = [item for item in items if item is not None]
        return kept or None
    return _scalar(question, answers, problems)


def build_record(
    form: Form,
    answers: Answers,
    *,
    sections: Sequence[Question] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Problem]]:
    """Return the record the answers make (only ``sections`` if given) and their problems.

    Required sections are kept even when empty, so that the schema names each missing
    field; ``extra`` adds fields no one types (the manifest, ``in_reply_to``).
    """
    problems: list[Problem] = []
    record: dict[str, Any] = {"kind": form.kind, "version": KINDS[form.kind].version}
    for section in form.sections if sections is None else sections:
        value = _value(form, section, answers, problems, keep=section.required)
        if value is not None:
            record[section.path] = value
    record.update(extra or {})
    return record, problems


def check(
    form: Form,
    answers: Answers,
    *,
    sections: Sequence[Question] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Problem]]:
    """Return the record and every problem with it: the answers' and then the schema's.

    With ``sections``, only problems inside those pages are kept.
    """
    record, problems = build_record(form, answers, sections=sections, extra=extra)
    try:
        validate_record(form.kind, record)
    except RecordValidationError as exc:
        problems += [Problem(p.path, p.rule) for p in exc.problems]
    # A date or number that could not be read is named once, not again as its group's rule.
    unread = [p.path for p in problems if p.rule.startswith(("real-date", "number"))]
    problems = [
        p for p in problems if p.rule != "oneOf" or not any(_inside(u, p.path) for u in unread)
    ]
    if sections is not None:
        names = [s.path for s in sections]
        problems = [p for p in problems if any(_inside(p.path, n) for n in names)]
    return record, problems


# --- problems in words ------------------------------------------------------------------------

#: Which problem a field shows when it has several: the first in this order.
_RULE_ORDER: Final = (
    "real-date",
    "number",
    "required",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "enum",
    "type",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "uniqueItems",
    "oneOf",
)


def _rank(rule: str) -> int:
    head = rule.split(":", 1)[0]
    return _RULE_ORDER.index(head) if head in _RULE_ORDER else len(_RULE_ORDER)


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[1].isupper():
        return text  # an abbreviation such as "NHS number" or "PEP targets"
    return text[:1].lower() + text[1:]


@dataclass(frozen=True)
class FieldError:
    """An error message for one field: where it links to and what it says."""

    path: str
    target: str
    text: str


def _find(form: Form, path: str, answers: Answers) -> Question | None:
    """Return the question at ``path`` (one of the kind's fields), or None."""
    top = re.split(r"[.\[]", path, maxsplit=1)[0]
    section = form.section(top)
    if section is None:
        return None
    return next((q for q in form.walk(section, answers) if q.path == path), None)


def _target(question: Question) -> str:
    """Return the id an error link focuses: the first input of the field."""
    if question.widget == "date":
        return field_id(question.path) + "-day"
    return field_id(question.path)


def _first_input(form: Form, question: Question, answers: Answers) -> Question:
    for inner in form.walk(question, answers):
        if inner.widget not in {"group", "list"}:
            return inner
    return question


def _one_of_first(form: Form, question: Question, answers: Answers) -> Question:
    """Return the first field a ``oneOf`` of required fields names (the one to fill in)."""
    for branch in question.schema.get("oneOf", ()):
        names = branch.get("required", ()) if isinstance(branch, dict) else ()
        found = _find(form, f"{question.path}.{names[0]}", answers) if names else None
        if found is not None:
            return _first_input(form, found, answers)
    return _first_input(form, question, answers)


def _in_item(question: Question) -> str:
    return f" for {question.context}" if question.context else ""


def _message(  # noqa: PLR0911, PLR0912 - one table of messages
    form: Form, question: Question, rule: str, answers: Answers
) -> str:
    """Return the error message for ``rule`` at ``question``, from the schema alone."""
    node = question.schema
    label = question.label
    lower = _lower_first(label)
    where = _in_item(question)
    head, _, detail = rule.partition(":")
    widget = question.widget
    if head == "real-date":
        return f"{label}{where} must be a real date"
    if head == "number":
        kind = "a whole number" if detail == "integer" else "a number"
        return f"{label}{where} must be {kind}"
    if head == "required":
        if widget == "yesno":
            return f"Select yes or no{where}: {label}"
        if widget == "radios":
            return (
                f"Select an answer{where}: {label}"
                if label.endswith("?")
                else (f"Select {lower}{where}")
            )
        if widget == "checkboxes":
            return f"Select at least one answer for: {label}"
        if widget == "group":
            first = _first_input(form, question, answers)
            return _message(form, first, "required", answers)
        return f"Enter {lower}{where}"
    if head == "format":
        if detail == "date":
            return f"{label}{where} must be a real date"
        if detail == "email":
            return f"Enter {lower}{where} in the correct format, like name@example.com"
        hint = f" ({question.hint.rstrip('.')})" if question.hint else ""
        return f"Enter a real {lower}{where}{hint}"
    if head == "pattern":
        hint = f": {_lower_first(question.hint.rstrip('.'))}" if question.hint else ""
        return f"Enter {lower}{where} in the correct format{hint}"
    if head == "minLength":
        return f"{label}{where} must be {node.get('minLength')} characters or more"
    if head == "maxLength":
        return f"{label}{where} must be {node.get('maxLength')} characters or fewer"
    if head in {"enum", "type"}:
        return (
            f"Select {lower}{where}"
            if widget in {"radios", "yesno", "checkboxes"}
            else (f"Enter {lower}{where}")
        )
    if head == "minimum":
        return f"{label}{where} must be {node.get('minimum')} or more"
    if head == "maximum":
        return f"{label}{where} must be {node.get('maximum')} or less"
    if head == "minItems":
        if widget == "checkboxes":
            return f"Select at least one answer for: {label}"
        return f"{label}: add at least {node.get('minItems')}"
    if head == "maxItems":
        return f"{label}: you can add up to {node.get('maxItems')}"
    if head == "uniqueItems":
        return f"{label} must not list the same answer twice"
    if head == "oneOf":
        names = [
            _lower_first(str(_resolve(form.schema, node["properties"][b["required"][0]])
                             .get("title", b["required"][0])))
            for b in node.get("oneOf", ())
            if isinstance(b, dict) and b.get("required")
        ]  # fmt: skip
        return f"Enter either {' or '.join(names)}, but not both"
    return f"Check {lower}{where}"


def error_messages(form: Form, problems: Sequence[Problem], answers: Answers) -> list[FieldError]:
    """Return one error message per field, in page order, each linked to its field.

    A problem at a path no question has (the record as a whole) is named in plain words and
    linked to the page's main content.
    """
    best: dict[str, Problem] = {}
    for problem in problems:
        current = best.get(problem.path)
        if current is None or _rank(problem.rule) < _rank(current.rule):
            best[problem.path] = problem
    order = {
        q.path: index
        for index, q in enumerate(q for s in form.sections for q in form.walk(s, answers))
    }
    out: list[tuple[int, FieldError]] = []
    for path, problem in best.items():
        question = _find(form, path, answers)
        if question is None:
            out.append((-1, FieldError(path, "main-content", "The record could not be checked")))
            continue
        target = question
        if problem.rule == "oneOf":
            target = _one_of_first(form, question, answers)
        elif question.widget in {"group", "list"}:
            target = _first_input(form, question, answers)
        text = _message(form, question, problem.rule, answers)
        place = order.get(target.path, order.get(path, 0))
        # A rule of a group (one of two fields) is shown at the field it asks for.
        out.append((place, FieldError(target.path, _target(target), text)))
    return [error for _, error in sorted(out, key=lambda pair: pair[0])]


# --- what a page shows ------------------------------------------------------------------------


def page_fields(
    form: Form,
    question: Question,
    answers: Answers,
    errors: Mapping[str, str],
    *,
    depth: int = 0,
) -> dict[str, Any]:
    """Return what the templates need to show ``question`` and everything inside it."""
    widget = question.widget
    shown: dict[str, Any] = {
        "widget": widget,
        "id": field_id(question.path),
        "name": question.path,
        "label": question.label,
        "optional": not question.required and depth > 0,
        "hint": question.hint,
        "error": errors.get(question.path),
        "heading": depth == 0,
        "depth": depth,
    }
    if widget == "group":
        shown["children"] = [
            page_fields(form, child, answers, errors, depth=depth + 1)
            for child in form.children(question)
        ]
    elif widget == "list":
        count = form.count(question, answers)
        item = form.item_schema(question)
        shown["item_words"] = str(item.get("title", "item")).lower()
        shown["items"] = [
            {
                "label": entry.label,
                "path": entry.path,
                "field": page_fields(form, entry, answers, errors, depth=depth + 1),
                "removable": count > int(question.schema.get("minItems", 0)),
            }
            for entry in form.items(question, answers)
        ]
        shown["can_add"] = count < int(question.schema.get("maxItems", 0))
    elif widget == "date":
        shown["parts"] = {p: answers.text(f"{question.path}-{p}") for p in _DATE_PARTS}
    elif widget == "checkboxes":
        chosen = set(answers.chosen(question.path))
        shown["choices"] = [
            {"value": v, "text": t, "checked": v in chosen} for v, t in question.choices
        ]
    elif widget in {"radios", "yesno"}:
        value = answers.text(question.path)
        pairs = [("yes", "Yes"), ("no", "No")] if widget == "yesno" else question.choices
        shown["choices"] = [{"value": v, "text": t, "checked": v == value} for v, t in pairs]
    else:
        node = question.schema
        shown["value"] = answers.text(question.path)
        shown["max_length"] = node.get("maxLength")
        shown["width"] = _width(node)
        shown["numeric"] = widget == "number"
    return shown


def _width(node: Mapping[str, Any]) -> str:
    """Return the GOV.UK width class that fits the field's longest answer."""
    longest = int(node.get("maxLength", 0))
    if node.get("type") in {"integer", "number"}:
        return "govuk-input--width-5"
    if 0 < longest <= 10:
        return "govuk-input--width-10"
    if 0 < longest <= 20:
        return "govuk-input--width-20"
    return ""


# --- answers for "Check your answers" ---------------------------------------------------------


def summary_value(form: Form, question: Question, answers: Answers) -> list[str]:
    """Return the lines a question's answer is shown as on "Check your answers"."""
    lines: list[str] = []
    for inner in form.walk(question, answers):
        widget = inner.widget
        if widget in {"group", "list"}:
            continue
        shown = _shown(inner, answers)
        if shown:
            prefix = "" if inner is question else f"{inner.label}: "
            if inner.context and inner is not question:
                prefix = f"{inner.context.capitalize()}, {_lower_first(inner.label)}: "
            lines.append(prefix + shown)
    return lines


def _shown(question: Question, answers: Answers) -> str:  # noqa: PLR0911 - one table
    widget, key = question.widget, question.path
    if widget == "date":
        parts = [answers.text(f"{key}-{p}").strip() for p in _DATE_PARTS]
        if not any(parts):
            return ""
        try:
            day = date(int(parts[2]), int(parts[1]), int(parts[0]))
        except ValueError:
            return "/".join(parts)
        return date_words(day)
    if widget == "checkboxes":
        words = dict(question.choices)
        return ", ".join(words.get(v, v) for v in answers.chosen(key))
    if widget == "yesno":
        return {"yes": "Yes", "no": "No"}.get(answers.text(key), "")
    if widget == "radios":
        return dict(question.choices).get(answers.text(key), "")
    return answers.text(key).strip()
