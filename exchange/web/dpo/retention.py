"""Retention: the DPO's review queue, holds, and destruction with a confirmation page.

- ``GET /retention``: the records whose review date has come (and what each is waiting
  for), the holds placed and lifted, and the records without a review date, with why.
- ``GET /retention/holds/new`` (``?item=<digest>`` for one record) and ``POST
  /retention/holds``: place a hold. Its reason is chosen from a fixed list, never typed, so
  it cannot hold a child's name; the reference is the claim's or inquiry's own.
- ``POST /retention/holds/<id>/lift``: lift a hold.
- ``GET`` and ``POST /retention/<digest>/destroy``: the "Are you sure" page, then the
  destruction; ``GET /retention/<digest>/destroyed``: the outcome.

Records are named in URLs by their envelope digest only. The service decides who may act
(the DPO) and whether a record may be destroyed; another organisation's record or hold is
not found. A refusal is a plain sentence from a fixed list, keyed by the rule that refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from aiohttp import web

from exchange.service.errors import ServiceError, UnprocessableError
from exchange.web.accounts import SESSION
from exchange.web.app import DIGEST_RE, DIGEST_ROUTE, render, web_service
from exchange.web.words import day_words, kind_name, london_time, organisation_name

#: Longest hold reference (the service's limit).
MAX_REFERENCE_LEN: Final = 200
#: Why a hold is placed: the form's value, and the words the hold keeps.
HOLD_REASONS: Final[Mapping[str, str]] = {
    "litigation": "Litigation or a legal claim",
    "inquiry": "A public or statutory inquiry",
    "subject-access": "A subject access request",
    "complaint": "A complaint or a regulator's investigation",
}
#: The reason every destruction through these pages records: the DPO's review approved it.
DESTROY_REASON: Final = (
    "Reviewed by the data protection officer after the retention period: no reason to keep it"
)
#: The banners shown after an action, by the ``done`` query value (others are ignored).
DONE: Final[Mapping[str, str]] = {
    "hold-placed": "Hold placed",
    "hold-lifted": "Hold lifted",
}
#: Each review state's tag: its words and colour.
STATE_TAGS: Final[Mapping[str, tuple[str, str]]] = {
    "review-due": ("Review due", "orange"),
    "held": ("On hold", "purple"),
    "retained": ("Kept", "grey"),
    "unscheduled": ("No review date", "grey"),
    "destroyed": ("Destroyed", "red"),
}
#: What a refused reference means, by the service's rule (never the value).
REFERENCE_PROBLEMS: Final[Mapping[str, str]] = {
    "reference.length": f"Reference must be {MAX_REFERENCE_LEN} characters or fewer",
    "reference.characters": "Reference must be plain text on one line",
    "reference.identifier": "Reference must not include a UPN or an NHS number",
    "reference.date-of-birth": (
        "Reference must not include a full date: it could be a child's date of birth"
    ),
}


def _digest(text: str) -> bytes:
    """Return a digest from the URL's (already matched) text."""
    return bytes.fromhex(text)


def _between(request: web.Request, item: Mapping[str, Any]) -> str:
    """Return ``sent to <names>`` or ``received from <name>`` for a held record."""
    names = ", ".join(organisation_name(request, org) for org in item["counterparties"])
    return f"sent to {names}" if item["direction"] == "sent" else f"received from {names}"


def _review(day: str | None) -> str:
    return day_words(date.fromisoformat(day)) if day else "None"


def _moment(iso: str) -> str:
    return london_time(datetime.fromisoformat(iso).timestamp())


def _item(request: web.Request, item: Mapping[str, Any]) -> dict[str, Any]:
    """Return a held record as the pages show it: kind, organisations, dates, state."""
    words, colour = STATE_TAGS.get(item["state"], (item["state"], "grey"))
    between = _between(request, item)
    return {
        "digest": item["digest"],
        "record": kind_name(item["record_kind"]),
        "between": between[:1].upper() + between[1:],
        "between_in_text": between,
        "review": _review(item.get("review_date")),
        "source": item.get("source"),
        "state": item["state"],
        "tag": words,
        "colour": colour,
        "why": str(item.get("explanation", "")).capitalize(),
        "holds": item.get("holds", []),
    }


def _hold(hold: Mapping[str, Any], covered: Mapping[str, str]) -> dict[str, Any]:
    digest = hold["digest"]
    return {
        "id": hold["id"],
        "reason": hold["reason"],
        "reference": hold["reference"],
        "covers": "Every record" if digest is None else covered.get(digest, "One record"),
        "placed": _moment(hold["placed_at"]),
        "lifted": None if hold["lifted_at"] is None else _moment(hold["lifted_at"]),
    }


async def retention_page(request: web.Request) -> web.StreamResponse:
    """``GET /retention``: the review queue, the holds and the records without a date."""
    user = request[SESSION].user
    service = web_service(request)
    report = await service.retention_due(user, None)
    holds = await service.retention_holds(user)
    items = [_item(request, i) for i in report["items"]]
    unscheduled = [_item(request, {**i, "state": "unscheduled"}) for i in report["unscheduled"]]
    covered = {i["digest"]: f"{i['record']}: {i['between']}" for i in items + unscheduled}
    all_holds = [_hold(h, covered) for h in holds["holds"]]
    return render(
        request,
        "dpo/retention.html",
        {
            "done": DONE.get(request.query.get("done", "")),
            "items": items,
            "unscheduled": unscheduled,
            "holds": [h for h in all_holds if h["lifted"] is None],
            "lifted": [h for h in all_holds if h["lifted"] is not None],
        },
    )


def _reasons() -> list[dict[str, str]]:
    return [{"value": value, "text": words} for value, words in HOLD_REASONS.items()]


async def _hold_form(
    request: web.Request,
    item_text: str | None,
    *,
    errors: list[dict[str, str]] | None = None,
    reason: str | None = None,
) -> web.Response:
    """Render the hold form for one record (``item_text``, a digest) or for every record."""
    user = request[SESSION].user
    service = web_service(request)
    if item_text is None:
        await service.retention_holds(user)  # the service says who may place holds
        item = None
    else:
        item = _item(request, await service.retention_item(user, _digest(item_text)))
    errors = errors or []
    return render(
        request,
        "dpo/hold.html",
        {
            "item": item,
            "reasons": _reasons(),
            "reason": reason,
            "errors": errors,
            "field_errors": {e["href"].removeprefix("#"): e["text"] for e in errors},
        },
        status=400 if errors else 200,
    )


def _item_query(text: str) -> str | None:
    """Return the record a hold is for (its digest) from a query or form; '' means none."""
    if not text:
        return None
    if DIGEST_RE.fullmatch(text) is None:
        raise web.HTTPNotFound
    return text


async def new_hold_page(request: web.Request) -> web.StreamResponse:
    """``GET /retention/holds/new``: the form to place a hold (``?item=`` for one record)."""
    return await _hold_form(request, _item_query(request.query.get("item", "")))


async def place_hold(request: web.Request) -> web.StreamResponse:
    """``POST /retention/holds``: place the hold; back to the queue, or the form's errors."""
    user = request[SESSION].user
    form = await request.post()
    item_text = _item_query(str(form.get("item", "")))
    reason = str(form.get("reason", ""))
    reference = str(form.get("reference", "")).strip()
    errors = []
    if reason not in HOLD_REASONS:
        errors.append({"href": "#reason", "text": "Select why the hold is needed"})
    if not reference:
        errors.append({"href": "#reference", "text": "Enter the reference"})
    if not errors:
        try:
            await web_service(request).place_hold(
                user,
                digest=None if item_text is None else _digest(item_text),
                reason=HOLD_REASONS[reason],
                reference=reference,
            )
        except UnprocessableError as exc:
            rule = str(exc.details.get("rule", ""))
            if rule not in REFERENCE_PROBLEMS:
                raise
            errors.append({"href": "#reference", "text": REFERENCE_PROBLEMS[rule]})
        else:
            raise web.HTTPSeeOther("/retention?done=hold-placed")
    chosen = reason if reason in HOLD_REASONS else None
    return await _hold_form(request, item_text, errors=errors, reason=chosen)


async def lift_hold(request: web.Request) -> web.StreamResponse:
    """``POST /retention/holds/<id>/lift``: lift the hold; back to the queue."""
    user = request[SESSION].user
    await web_service(request).lift_hold(user, int(request.match_info["id"]))
    raise web.HTTPSeeOther("/retention?done=hold-lifted")


async def destroy_page(request: web.Request) -> web.StreamResponse:
    """``GET /retention/<digest>/destroy``: are you sure? What will go, and what stays."""
    user = request[SESSION].user
    digest = request.match_info["digest"]
    item = await web_service(request).retention_item(user, _digest(digest))
    if item["state"] == "destroyed":
        raise web.HTTPSeeOther(f"/retention/{digest}/destroyed")
    return render(request, "dpo/destroy.html", {"item": _item(request, item)})


def refusal_words(rule: str) -> str:
    """Return why a record was not destroyed, in plain words, from the rule that refused."""
    if rule.startswith("holds."):
        return "A hold is in force on this record. Lift the hold before you destroy it."
    return {
        "retention.destroyed": "This record has already been destroyed.",
        "retention.unscheduled": (
            "This record has no review date, so no retention rule allows destroying it."
        ),
        "retention.deliveries-pending": (
            "This record is still being delivered. Destroy it once delivery has finished."
        ),
    }.get(rule, "This record's retention period has not ended, so its rule keeps it.")


async def destroy(request: web.Request) -> web.StreamResponse:
    """``POST /retention/<digest>/destroy``: destroy the record, or say why not."""
    user = request[SESSION].user
    digest = request.match_info["digest"]
    service = web_service(request)
    try:
        await service.destroy(user, _digest(digest), reason=DESTROY_REASON)
    except ServiceError as exc:
        if exc.status not in {409, 422} or not isinstance(exc, UnprocessableError):
            raise
        item = await service.retention_item(user, _digest(digest))
        return render(
            request,
            "dpo/not_destroyed.html",
            {
                "item": _item(request, item),
                "why": refusal_words(str(exc.details.get("rule", ""))),
            },
            status=exc.status,
        )
    raise web.HTTPSeeOther(f"/retention/{digest}/destroyed")


async def destroyed_page(request: web.Request) -> web.StreamResponse:
    """``GET /retention/<digest>/destroyed``: the outcome of a destruction."""
    user = request[SESSION].user
    item = await web_service(request).retention_item(user, _digest(request.match_info["digest"]))
    if item["state"] != "destroyed":
        raise web.HTTPNotFound
    return render(
        request,
        "dpo/destroyed.html",
        {"item": _item(request, item), "destroyed": _moment(item["destroyed_at"])},
    )


def add_retention_routes(app: web.Application) -> None:
    """Add the retention pages: the queue, holds, and destruction."""
    router = app.router
    router.add_get("/retention", retention_page)
    router.add_get("/retention/holds/new", new_hold_page)
    router.add_post("/retention/holds", place_hold)
    router.add_post("/retention/holds/{id:[1-9][0-9]{0,17}}/lift", lift_hold)
    router.add_get(f"/retention/{DIGEST_ROUTE}/destroy", destroy_page)
    router.add_post(f"/retention/{DIGEST_ROUTE}/destroy", destroy)
    router.add_get(f"/retention/{DIGEST_ROUTE}/destroyed", destroyed_page)
