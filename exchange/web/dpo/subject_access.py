"""Subject access: every exchange about one child, found by their UPN, NHS number or both.

The identifiers are sent only in a POST body, never in a URL, and are never shown again: not
on the results page, not in the download of copies the same form asks for, not in an error
(which says what form an identifier takes, not what was typed), not in the title, not in a
log. The results name what was found by kind, organisation, date and decision, with the kinds
of identifier that found it, and the records to review; the report holds no record content.
The download is a zip file of readable copies (exchange/web/dpo/copies.py). The service
decides who may search (the DPO).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from exchange.keys.ids import OrgId
from exchange.model import SubjectKind
from exchange.policy.decisions import NotSharingReason
from exchange.records import InvalidIdentifierError, validate_nhs_number, validate_upn
from exchange.web.accounts import SESSION
from exchange.web.app import render, web_service
from exchange.web.dpo.copies import export_files
from exchange.web.step_up import ask_again_unless_recent
from exchange.web.words import kind_name, london_time, organisation_name

#: The identifiers a search takes: the form's value, and its words.
IDENTIFIERS: Final[Mapping[SubjectKind, str]] = {"upn": "UPN", "nhs-number": "NHS number"}
#: Longest identifier read from the form (a UPN is 13 characters; spaces may be typed).
MAX_TYPED_LEN: Final = 40
UPN_FORMAT: Final = (
    "Enter a UPN in the right format: 13 characters, a letter then 12 digits "
    "(a temporary UPN ends in a letter)"
)
#: What each broken identifier rule means, in the words of the form (never the value).
PROBLEMS: Final[Mapping[str, str]] = {
    "upn.length": UPN_FORMAT,
    "upn.format": UPN_FORMAT,
    "upn.check-letter": "Enter a real UPN: the first letter does not match the digits",
    "nhs-number.format": "Enter an NHS number in the right format: 10 digits",
    "nhs-number.check-digit-ten": "Enter a real NHS number: the digits do not make one",
    "nhs-number.check-digit": "Enter a real NHS number: the last digit does not match the others",
}
#: Why an item needs review, in words.
REVIEW_WHY: Final[Mapping[str, str]] = {
    "no-identifier": "The record has no UPN or NHS number",
    "never-opened": "Never opened, so not searched",
    "not-a-record": "Not a record",
}
#: Received items' states in words.
STATES: Final[Mapping[str, str]] = {
    "delivered": "Not opened",
    "opened": "Opened",
    "acknowledged": "Acknowledged",
    "rejected": "Rejected",
    "recalled": "Recalled by sender",
}


def _form_context(errors: list[dict[str, str]]) -> dict[str, object]:
    field_errors = {e["href"].removeprefix("#"): e["text"] for e in errors}
    return {"errors": errors, "field_errors": field_errors}


async def subject_access_page(request: web.Request) -> web.StreamResponse:
    """``GET /subject-access``: the search form (for those the service lets search)."""
    web_service(request).check_subject_access(request[SESSION].user)
    return render(request, "dpo/subject_access.html", _form_context([]))


def read_identifier(kind: SubjectKind, typed: str) -> tuple[str | None, str | None]:
    """Return (the identifier in its canonical form, None) or (None, what is wrong).

    Spaces are taken out and letters made capitals, as people type them; what is left must
    follow the identifier's rules. What is wrong never quotes the value. Nothing typed is
    (None, None): each identifier is optional, as long as one is given.
    """
    text = "".join(typed.split()).upper()
    if not text:
        return None, None
    if len(text) > MAX_TYPED_LEN:
        return None, PROBLEMS[f"{kind}.format"]
    try:
        found = validate_upn(text) if kind == "upn" else validate_nhs_number(text)
    except InvalidIdentifierError as exc:
        return None, PROBLEMS.get(exc.rule, PROBLEMS[f"{kind}.format"])
    return found, None


#: The form's field of each identifier.
FIELDS: Final[Mapping[SubjectKind, str]] = {"upn": "upn", "nhs-number": "nhs_number"}


async def _identifiers(
    request: web.Request,
) -> tuple[list[tuple[SubjectKind, str]], list[dict[str, str]]]:
    """Read the form's identifiers: (the valid ones, the errors), never quoting a value."""
    form = await request.post()
    found: list[tuple[SubjectKind, str]] = []
    errors = []
    for kind, field in FIELDS.items():
        value, problem = read_identifier(kind, str(form.get(field, "")))
        if problem is not None:
            errors.append({"href": f"#{field}", "text": problem})
        elif value is not None:
            found.append((kind, value))
    if not found and not errors:
        errors.append({"href": "#upn", "text": "Enter the child's UPN, NHS number or both"})
    return found, errors


async def subject_access(request: web.Request) -> web.StreamResponse:
    """``POST /subject-access``: search by every identifier given; show what was found."""
    user = request[SESSION].user
    service = web_service(request)
    service.check_subject_access(user)
    identifiers, errors = await _identifiers(request)
    if errors:
        return render(request, "dpo/subject_access.html", _form_context(errors), status=400)
    if (await request.post()).get("action") == "copies":
        return await _copies(request, identifiers)
    report = await service.subject_access(user, identifiers)
    return render(request, "dpo/subject_access_results.html", _results(request, report))


async def _copies(
    request: web.Request, identifiers: list[tuple[SubjectKind, str]]
) -> web.StreamResponse:
    """Answer the "Download copies" button: the copies, as one zip file to download.

    Every copy taken is recorded in the ledger by the service. The copies hold the records'
    content, so they need a recent second factor: without one the DPO confirms it's them
    and comes back to the empty form (the identifiers are never put in an address).
    """
    ask_again_unless_recent(request, back="/subject-access")
    user = request[SESSION].user
    service = web_service(request)
    copies = await service.subject_access_copies(user, identifiers)
    files = export_files(
        copies.report, copies.items, lambda org: organisation_name(request, OrgId(org))
    )
    files.insert(1, ("report.json", json.dumps(copies.report, indent=2).encode("utf-8")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return web.Response(
        body=buffer.getvalue(),
        content_type="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="subject-access.zip"',
            "Cache-Control": "no-store",
        },
    )


def _moment(iso: str) -> str:
    """Return an ISO 8601 UTC time of the report in London words."""
    return london_time(datetime.fromisoformat(iso).timestamp())


def _names(request: web.Request, orgs: list[str]) -> list[str]:
    return [organisation_name(request, org) for org in orgs]  # type: ignore[arg-type]


def _results(request: web.Request, report: dict[str, Any]) -> dict[str, object]:
    """Return what the results page shows of the report: kinds, names, dates, decisions."""
    items = [
        {
            "date": _moment(item["date"]),
            "direction": "Sent" if item["direction"] == "sent" else "Received",
            "record": kind_name(item["record_kind"] or ""),
            "organisations": _names(request, item["counterparties"]),
            "decision": "Shared"
            if item["direction"] == "sent"
            else STATES.get(item.get("state") or "", "Received"),
            "matched": " and ".join(IDENTIFIERS[k] for k in item["matched_by"]),
        }
        for item in report["items"]
    ]
    decisions = []
    for item in report["decisions_not_to_share"]:
        try:
            reason = NotSharingReason(item["reason_code"]).description.capitalize()
        except ValueError:
            reason = "Not given"
        decisions.append(
            {
                "date": _moment(item["date"]),
                "record": kind_name(item["record_kind"]) if item["record_kind"] else "Not given",
                "organisations": _names(request, item["intended_recipients"]),
                "reason": reason,
            }
        )
    review = [
        {
            "date": _moment(item["date"]),
            "direction": "Sent" if item["direction"] == "sent" else "Received",
            "record": kind_name(item["record_kind"]),
            "sender": item["sender_name"],
            "recipients": item["recipient_names"],
            "reference": item["reference"],
            "why": REVIEW_WHY.get(item["why"], "Not searchable"),
        }
        for item in report["needs_review"]["items"]
    ]
    destroyed = [
        {
            "date": _moment(item["destroyed_at"]),
            "direction": "Sent" if item["direction"] == "sent" else "Received",
            "record": kind_name(item["record_kind"]),
            "organisations": _names(request, item["counterparties"]),
        }
        for item in report["destroyed"]
    ]
    return {
        "identifier_words": " and ".join(IDENTIFIERS[k] for k in report["searched"]),
        "generated": _moment(report["generated_at"]),
        "items": items,
        "decisions": decisions,
        "review": review,
        "hints": report["notes"][3:],
        "destroyed": destroyed,
    }


def add_subject_access_routes(app: web.Application) -> None:
    """Add the subject access form and its results."""
    app.router.add_get("/subject-access", subject_access_page)
    app.router.add_post("/subject-access", subject_access)
