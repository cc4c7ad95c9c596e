"""The sharing register page: every decision to share or not, filtered, paged, downloaded.

``GET /register`` shows the DPO's organisation's decisions, newest first, filtered by the
dates they were made (GOV.UK date inputs, London days), the purpose and the decision. The
filter is a GET form, so a filtered view can be bookmarked: it holds dates and names from
fixed lists only, never personal data. A value that is not a real date or not on its list
is a GOV.UK error that names the field and never quotes what was sent.
``GET /register/download`` gives the same filtered decisions as the CSV export, with every
column the register keeps, as an attachment. The service decides who may see either (DPO).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, cast
from urllib.parse import urlencode

from aiohttp import web

from exchange.http.streaming import stream_text
from exchange.model import RegisterOutcome, RegisterRow
from exchange.policy.decisions import NotSharingReason
from exchange.service.register_reports import london_days
from exchange.web.accounts import SESSION
from exchange.web.app import render, web_service
from exchange.web.dpo.dates import DateField, read_date
from exchange.web.words import kind_name, london_time, organisation_name

#: Decisions on one page of the register.
PAGE_SIZE: Final = 25
#: The highest page number read from a URL (far beyond any real register).
MAX_PAGE: Final = 100_000
#: The decisions a filter may choose, in words.
DECISIONS: Final[Mapping[RegisterOutcome, str]] = {
    "shared": "Shared",
    "not-shared": "Not shared",
}
#: Each decision's tag colour.
DECISION_COLOURS: Final[Mapping[str, str]] = {"shared": "green", "not-shared": "grey"}
#: The filter's names in the query; the dates add ``-day``, ``-month`` and ``-year``.
FILTER_NAMES: Final = ("purpose", "decision")


@dataclass(frozen=True)
class RegisterFilter:
    """The register filter as read from the query: values, and errors for the summary."""

    start: DateField
    end: DateField
    purpose: str | None = None
    decision: RegisterOutcome | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def query(self) -> dict[str, str]:
        """Return the filter as query parameters (only its valid values)."""
        found: dict[str, str] = {}
        for date_field in (self.start, self.end):
            for part, value in date_field.values.items():
                found[f"{date_field.name}-{part}"] = value
        if self.purpose is not None:
            found["purpose"] = self.purpose
        if self.decision is not None:
            found["decision"] = self.decision
        return found

    def field_errors(self) -> dict[str, str]:
        """Return each field's error by the field's name (the summary link without '#')."""
        return {e["href"].removeprefix("#").removesuffix("-day"): e["text"] for e in self.errors}


def read_filter(request: web.Request) -> RegisterFilter:
    """Read and check the register filter of a request's query."""
    query = request.query
    start = read_date(query, "from", "Start date")
    end = read_date(query, "to", "End date")
    errors = [{"href": f.href, "text": f.error} for f in (start, end) if f.error is not None]
    if start.day is not None and end.day is not None and end.day < start.day:
        end = DateField("to", error="End date must be the same as or after the start date")
        errors.append({"href": end.href, "text": str(end.error)})
    purposes = web_service(request).records.policy.purposes
    purpose = query.get("purpose", "") or None
    if purpose is not None and purpose not in purposes:
        errors.append({"href": "#purpose", "text": "Select a purpose from the list"})
        purpose = None
    decision_text = query.get("decision", "") or None
    decision = cast(RegisterOutcome, decision_text) if decision_text in DECISIONS else None
    if decision_text is not None and decision is None:
        errors.append({"href": "#decision", "text": "Select shared or not shared"})
    return RegisterFilter(start, end, purpose, decision, errors)


def _page_number(request: web.Request) -> int:
    """Return the page number asked for (1 if none); a number that is not one is not found."""
    text = request.query.get("page", "1")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise web.HTTPNotFound
    return int(text)


def _purpose_title(request: web.Request, purpose: str) -> str:
    found = web_service(request).records.policy.purposes.get(purpose)
    return found.title if found is not None else purpose


def _row(request: web.Request, row: RegisterRow) -> dict[str, object]:
    """Return one decision as the table shows it: words and names, no identifiers."""
    entry = row.entry
    reason = None
    if entry.outcome == "not-shared" and entry.reason_code is not None:
        try:
            reason = NotSharingReason(entry.reason_code).description.capitalize()
        except ValueError:
            reason = None
    return {
        "decided": london_time(entry.decided_at),
        "decision": DECISIONS.get(entry.outcome, entry.outcome),
        "colour": DECISION_COLOURS.get(entry.outcome, "grey"),
        "reason": reason,
        "purpose": _purpose_title(request, entry.purpose),
        "record": kind_name(entry.record_kind) if entry.record_kind else "Not given",
        "organisations": [organisation_name(request, org) for org, _ in entry.recipients],
        "destroyed": row.destroyed_at is not None,
    }


def _options(request: web.Request) -> dict[str, list[dict[str, str]]]:
    purposes = web_service(request).records.policy.purposes
    return {
        "purposes": [{"value": "", "text": "All purposes"}]
        + [{"value": name, "text": p.title} for name, p in sorted(purposes.items())],
        "decisions": [{"value": "", "text": "All decisions"}]
        + [{"value": value, "text": words} for value, words in DECISIONS.items()],
    }


def _href(path: str, query: Mapping[str, str]) -> str:
    return path + ("?" + urlencode(query) if query else "")


async def register_page(request: web.Request) -> web.StreamResponse:
    """``GET /register``: the decisions under the filter, newest first, a page at a time."""
    user = request[SESSION].user
    filters = read_filter(request)
    number = _page_number(request)
    context: dict[str, object] = {
        "filters": filters,
        "errors": filters.errors,
        "field_errors": filters.field_errors(),
        **_options(request),
    }
    if filters.errors:
        # Still asks the service, which refuses anyone but the DPO before any error shows.
        await web_service(request).register_page(
            user, since=None, until=None, purpose=None, outcome=None, limit=0, offset=0
        )
        return render(request, "dpo/register.html", context, status=400)
    since, until = london_days(filters.start.day, filters.end.day)
    found = await web_service(request).register_page(
        user,
        since=since,
        until=until,
        purpose=filters.purpose,
        outcome=filters.decision,
        limit=PAGE_SIZE,
        offset=(number - 1) * PAGE_SIZE,
    )
    pages = max(1, -(-found.total // PAGE_SIZE))
    if number > pages:
        raise web.HTTPNotFound
    query = filters.query()
    context.update(
        {
            "rows": [_row(request, row) for row in found.rows],
            "total": found.total,
            "first": (number - 1) * PAGE_SIZE + 1,
            "last": (number - 1) * PAGE_SIZE + len(found.rows),
            "page": number,
            "pages": pages,
            "previous": _href("/register", {**query, "page": str(number - 1)})
            if number > 1
            else None,
            "next": _href("/register", {**query, "page": str(number + 1)})
            if number < pages
            else None,
            "download": _href("/register/download", query),
            "filtered": bool(query),
        }
    )
    return render(request, "dpo/register.html", context)


async def register_download(request: web.Request) -> web.StreamResponse:
    """``GET /register/download``: the filtered decisions as CSV, as an attachment."""
    user = request[SESSION].user
    filters = read_filter(request)
    if filters.errors:
        # Only a changed address gets here: the page's link holds checked values only.
        return await register_page(request)
    since, until = london_days(filters.start.day, filters.end.day)
    pieces = web_service(request).register_stream(
        user,
        since=since,
        until=until,
        form="csv",
        purpose=filters.purpose,
        outcome=filters.decision,
    )
    name = f"sharing-register-{user.org.replace(':', '-')}.csv"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return await stream_text(request, pieces, content_type="text/csv", headers=headers)


def add_register_routes(app: web.Application) -> None:
    """Add the sharing register page and its download."""
    app.router.add_get("/register", register_page)
    app.router.add_get("/register/download", register_download)
