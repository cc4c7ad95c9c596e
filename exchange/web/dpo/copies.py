"""The files of a subject access export: each record as a readable page, its documents beside it.

The service gives the report and a copy of each item it lists
(:meth:`~exchange.service.subject_access.SubjectAccess.copies`); this module turns them into
files, the same for the command line (``exchange subject-access export``, a folder) and the
DPO's page (a zip file). Each record becomes a standalone HTML page labelled from its kind's
schema (the reader's titles, as the inbox shows it: :class:`RecordView`), its attachments
files of their own, and ``index.html`` lists everything: the items found with the kinds of
identifier that found them, the items to review, the copies not held and why. Names hold the
direction, kind and reference only, never the child's details.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from markupsafe import Markup, escape

from exchange.records import RecordError, decode_container
from exchange.service.subject_access import ItemCopy
from exchange.web.inbox.record_view import RecordView, Section
from exchange.web.words import kind_name, london_time

OrgName = Callable[[str], str]

#: Characters kept in an attachment's file name; anything else becomes ``_``.
_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]")
_STYLE: Final = (
    "body{font-family:Arial,sans-serif;margin:2em;max-width:60em}"
    "dt{font-weight:bold;margin-top:.5em}dd{margin-left:0}"
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em;text-align:left}"
)
_KIND_WORDS: Final = {"upn": "UPN", "nhs-number": "NHS number"}


def _page(title: str, body: Markup) -> bytes:
    html = Markup(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{}</title>'
        "<style>{}</style></head><body><h1>{}</h1>{}</body></html>\n"
    ).format(title, Markup(_STYLE), title, body)  # noqa: S704 - a constant of this module
    return str(html).encode("utf-8")


def _facts(rows: Sequence[tuple[str, str]]) -> Markup:
    items = Markup("").join(Markup("<dt>{}</dt><dd>{}</dd>").format(k, v) for k, v in rows)
    return Markup("<dl>{}</dl>").format(items)


def _sections(sections: Sequence[Section]) -> Markup:
    parts = []
    for section in sections:
        rows = Markup("").join(
            Markup("<dt>{}</dt><dd>{}</dd>").format(r.key, r.html) for r in section.rows
        )
        cards = Markup("").join(
            Markup("<h3>{}</h3><dl>{}</dl>").format(
                card.title,
                Markup("").join(
                    Markup("<dt>{}</dt><dd>{}</dd>").format(r.key, r.html) for r in card.rows
                ),
            )
            for card in section.cards
        )
        parts.append(Markup("<h2>{}</h2><dl>{}</dl>{}").format(section.heading, rows, cards))
    return Markup("").join(parts)


def _when(iso: str) -> str:
    return london_time(datetime.fromisoformat(iso).timestamp())


def _base_name(number: int, copy: ItemCopy) -> str:
    summary = copy.summary
    reference = summary.get("reference") or summary["digest"][:8]
    kind = _SAFE_NAME.sub("_", summary.get("record_kind") or "item")
    return f"{number:03d}-{summary['direction']}-{kind}-{reference}"


def _item_facts(copy: ItemCopy, name_of: OrgName) -> list[tuple[str, str]]:
    summary = copy.summary
    if summary["direction"] == "sent":
        others = summary.get("counterparties") or summary.get("recipients") or []
        who = ("Sent to", ", ".join(name_of(o) for o in others))
    else:
        sender = summary.get("sender") or (summary.get("counterparties") or [""])[0]
        who = ("Received from", name_of(sender))
    rows = [
        ("Record", kind_name(summary.get("record_kind") or "")),
        who,
        ("Date", _when(summary["date"])),
        ("Reference", str(summary.get("reference") or "")),
        ("Envelope digest", summary["digest"]),
    ]
    matched = summary.get("matched_by")
    if matched:
        rows.append(("Found by", " and ".join(_KIND_WORDS.get(k, k) for k in matched)))
    else:
        rows.append(("Found by", "Not found by a search: to review"))
    return rows


def _record_files(
    base: str, copy: ItemCopy, name_of: OrgName
) -> tuple[list[tuple[str, bytes]], str | None]:
    """Return the files of one held copy (its page and documents), or why it has none."""
    assert copy.content is not None
    try:
        container = decode_container(copy.content)
    except RecordError:
        # Not a record container: the content as it came, for the DPO to look at.
        return [(f"{base}.bin", copy.content)], None
    record = container.record
    files: list[tuple[str, bytes]] = []
    documents: list[tuple[str, str]] = []
    for number, attachment in enumerate(container.attachments, start=1):
        name = f"{base}-{number:02d}-{_SAFE_NAME.sub('_', attachment.name)[:100]}"
        files.append((name, attachment.data))
        documents.append((attachment.name, name))
    view = RecordView(record.kind, name_of)
    body = _facts(_item_facts(copy, name_of)) + _sections(view.sections(record.data))
    if documents:
        links = Markup("").join(
            Markup('<li><a href="{}">{}</a></li>').format(href, title) for title, href in documents
        )
        body += Markup("<h2>Documents</h2><ul>{}</ul>").format(links)
    title = f"{kind_name(record.kind)} ({copy.summary.get('reference') or ''})"
    files.insert(0, (f"{base}.html", _page(title, body)))
    return files, None


def export_files(
    report: dict[str, Any], copies: Sequence[ItemCopy], name_of: OrgName
) -> list[tuple[str, bytes]]:
    """Return every file of the export, ``index.html`` first: (name, content) pairs."""
    files: list[tuple[str, bytes]] = []
    rows: list[Markup] = []
    for number, copy in enumerate(copies, start=1):
        base = _base_name(number, copy)
        if copy.content is None:
            link: Markup | str = f"No copy: {copy.missing}"
        else:
            made, _ = _record_files(base, copy, name_of)
            files += made
            link = Markup('<a href="{}">{}</a>').format(made[0][0], made[0][0])
        facts = dict(_item_facts(copy, name_of))
        who = facts.get("Sent to") or facts.get("Received from") or ""
        rows.append(
            Markup(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                "<td>{}</td></tr>"
            ).format(
                "About the child" if copy.section == "found" else "To review",
                copy.summary["direction"].capitalize(),
                facts["Record"],
                who,
                facts["Date"],
                facts["Found by"],
                link,
            )
        )
    review = report["needs_review"]
    intro = Markup(
        "<p>Generated {} for {}. Searched by {}. The identifiers searched for are not in this "
        "export.</p><p>{} item(s) about the child; {} to review: {}</p>"
    ).format(
        _when(report["generated_at"]),
        name_of(report["organisation"]),
        " and ".join(_KIND_WORDS.get(k, k) for k in report["searched"]),
        len(report["items"]),
        review["count"],
        review["why"],
    )
    table = Markup(
        "<table><thead><tr><th>Section</th><th>Sent or received</th><th>Record</th>"
        "<th>Organisation</th><th>Date</th><th>Found by</th><th>Copy</th></tr></thead>"
        "<tbody>{}</tbody></table>"
    ).format(Markup("").join(rows))
    destroyed = Markup("").join(
        Markup("<li>{} {} ({}), destroyed {} under {}</li>").format(
            item["direction"].capitalize(),
            kind_name(item["record_kind"]),
            ", ".join(name_of(o) for o in item["counterparties"]),
            _when(item["destroyed_at"]),
            item["rule"],
        )
        for item in report["destroyed"]
    )
    notes = Markup("").join(Markup("<li>{}</li>").format(n) for n in report["notes"])
    body = intro + table
    if destroyed:
        body += Markup("<h2>Destroyed under the retention rules</h2><ul>{}</ul>").format(destroyed)
    body += Markup("<h2>Notes</h2><ul>{}</ul>").format(notes)
    files.insert(0, ("index.html", _page("Subject access response", escape(body))))
    return files
