"""Subject access: every exchange about one child, found by their UPN or NHS number.

The identifier is sent only in a POST body, never in a URL, and is never shown again: not on
the results page, not in an error (which says what form the identifier takes, not what was
typed), not in the title, not in a log. The results name what was found by kind,
organisation, date and decision, as the service's report lists it; the report holds no
record content. The service decides who may search (the DPO).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, cast

from aiohttp import web

from exchange.model import SubjectKind
from exchange.policy.decisions import NotSharingReason
from exchange.records import InvalidIdentifierError, validate_nhs_number, validate_upn
from exchange.web.accounts import SESSION
from exchange.web.app import render, web_service
from exchange.web.words import kind_name, london_time, organisation_name

#: The identifiers a search takes: the form's value, and its words.
IDENTIFIERS: Final[Mapping[SubjectKind, str]] = {"upn": "UPN", "nhs-number": "NHS number"}
#: Longest identifier read from the form (a UPN is 13 characters; spaces may be typed).
MAX_TYPED_LEN: Final = 40
UPN_FORMAT: Final = (
    "Enter a UPN in the right format: 13 characters, a letter then 12 digits "
    "(a temporary UPN ends in a letter)"
)
#: What the form says when nothing was typed, by the identifier chosen.
EMPTY: Final[Mapping[SubjectKind, str]] = {
    "upn": "Enter a UPN",
    "nhs-number": "Enter an NHS number",
}
#: What each broken identifier rule means, in the words of the form (never the value).
PROBLEMS: Final[Mapping[str, str]] = {
    "upn.length": UPN_FORMAT,
    "upn.format": UPN_FORMAT,
    "upn.check-letter": "Enter a real UPN: the first letter does not match the digits",
    "nhs-number.format": "Enter an NHS number in the right format: 10 digits",
    "nhs-number.check-digit-ten": "Enter a real NHS number: the digits do not make one",
    "nhs-number.check-digit": "Enter a real NHS number: the last digit does not match the others",
}
#: Received items' states in words.
STATES: Final[Mapping[str, str]] = {
    "delivered": "Not opened",
    "opened": "Opened",
    "acknowledged": "Acknowledged",
    "rejected": "Rejected",
    "recalled": "Recalled by sender",
}


def _form_context(errors: list[dict[str, str]], kind: SubjectKind | None) -> dict[str, object]:
    field_errors = {e["href"].removeprefix("#"): e["text"] for e in errors}
    return {
        "errors": errors,
        "field_errors": field_errors,
        "kind": kind,
        "kinds": [{"value": value, "text": words} for value, words in IDENTIFIERS.items()],
    }


async def subject_access_page(request: web.Request) -> web.StreamResponse:
    """``GET /subject-access``: the search form (for those the service lets search)."""
    web_service(request).check_subject_access(request[SESSION].user)
    return render(request, "dpo/subject_access.html", _form_context([], None))


def read_identifier(kind: SubjectKind | None, typed: str) -> tuple[str | None, str | None]:
    """Return (the identifier in its canonical form, None) or (None, what is wrong).

    Spaces are taken out and letters made capitals, as people type them; what is left must
    follow the identifier's rules. What is wrong never quotes the value. Without a kind
    nothing can be checked but that something was typed.
    """
    text = "".join(typed.split()).upper()
    if kind is None:
        return None, None if text else "Enter a UPN or NHS number"
    if not text:
        return None, EMPTY[kind]
    if len(text) > MAX_TYPED_LEN:
        return None, PROBLEMS[f"{kind}.format"]
    try:
        found = validate_upn(text) if kind == "upn" else validate_nhs_number(text)
    except InvalidIdentifierError as exc:
        return None, PROBLEMS.get(exc.rule, PROBLEMS[f"{kind}.format"])
    return found, None


async def subject_access(request: web.Request) -> web.StreamResponse:
    """``POST /subject-access``: search by the identifier; show what was found, not it."""
    user = request[SESSION].user
    service = web_service(request)
    service.check_subject_access(user)
    form = await request.post()
    chosen = str(form.get("kind", ""))
    kind = cast(SubjectKind, chosen) if chosen in IDENTIFIERS else None
    errors = []
    if kind is None:
        errors.append({"href": "#kind", "text": "Select whether you have a UPN or an NHS number"})
    value, problem = read_identifier(kind, str(form.get("identifier", "")))
    if problem is not None:
        errors.append({"href": "#identifier", "text": problem})
    if kind is None or value is None:
        return render(request, "dpo/subject_access.html", _form_context(errors, kind), status=400)
    report = await service.subject_access(user, kind, value)
    return render(request, "dpo/subject_access_results.html", _results(request, kind, report))


def _moment(iso: str) -> str:
    """Return an ISO 8601 UTC time of the report in London words."""
    return london_time(datetime.fromisoformat(iso).timestamp())


def _names(request: web.Request, orgs: list[str]) -> list[str]:
    return [organisation_name(request, org) for org in orgs]  # type: ignore[arg-type]


def _results(request: web.Request, kind: SubjectKind, report: dict[str, Any]) -> dict[str, object]:
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
    unopened = [
        {
            "date": _moment(item["received_at"]),
            "record": kind_name(item["record_kind"]),
            "organisations": _names(request, [item["sender"]]),
            "why": "Never opened" if item["why"] == "never opened" else "Not a record",
        }
        for item in report["received_not_indexed"]
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
        "identifier_words": IDENTIFIERS[kind],
        "generated": _moment(report["generated_at"]),
        "items": items,
        "decisions": decisions,
        "unopened": unopened,
        "destroyed": destroyed,
    }


def add_subject_access_routes(app: web.Application) -> None:
    """Add the subject access form and its results."""
    app.router.add_get("/subject-access", subject_access_page)
    app.router.add_post("/subject-access", subject_access)
