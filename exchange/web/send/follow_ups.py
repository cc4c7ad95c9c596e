"""Replies, corrections and decisions not to share: where they start.

- ``/send/reply/<digest>``: reply to an item in the inbox with an outcome or an information
  request; it goes to the item's sender, in the same thread (``in_reply_to``).
- ``/send/correct/<digest>``: send a corrected record of a sent item's kind to everyone who
  received it (UK GDPR Art 19), under the original's purpose.
- ``/send/not-shared``: record a decision not to share, with its reason, in the register.

The digest in the URL is the envelope's (as the staff API uses): another organisation's
item is "not found". Replies and corrections then go through the same question pages as
any record (:mod:`~exchange.web.send.journey`).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from exchange.keys.ids import OrgId
from exchange.model import SubjectKind
from exchange.records import KINDS, InvalidIdentifierError, validate_nhs_number, validate_upn
from exchange.service.errors import UnprocessableError
from exchange.service.follow_ups import REPLY_KINDS, ReplyTarget
from exchange.web.app import path_digest, render
from exchange.web.send.choices import candidates, reason_code_words
from exchange.web.send.drafts import Draft
from exchange.web.send.journey import REASON_WORDS, kind_choices, start_draft
from exchange.web.send.questions import Form
from exchange.web.send.steps import person, url
from exchange.web.words import kind_name, organisation_name


def _first_question(draft: Draft) -> str:
    return url(draft, f"questions/{Form(draft.kind).sections[0].path}")


# --- replies ----------------------------------------------------------------------------------


def _reply_context(
    request: web.Request, target: ReplyTarget, error: str | None = None
) -> dict[str, Any]:
    """Return the reply page's context: the kinds of reply, and the error when there is one."""
    return {
        "choices": kind_choices(REPLY_KINDS),
        "sender": organisation_name(request, target.sender),
        "item_kind": kind_name(target.record_kind).lower(),
        "errors": [{"href": "#f-kind", "text": error}] if error else [],
        "error": error,
    }


async def reply_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/reply/<digest>``: which kind of reply to send to the item's sender."""
    who = person(request)
    target = await who.service.reply_target(who.user, path_digest(request))
    return render(request, "send/reply.html", _reply_context(request, target))


async def start_reply(request: web.Request) -> web.StreamResponse:
    """``POST /send/reply/<digest>``: start a reply of the chosen kind."""
    who = person(request)
    digest = path_digest(request)
    target = await who.service.reply_target(who.user, digest)
    kind = str((await request.post()).get("kind", ""))
    if kind not in REPLY_KINDS:
        context = _reply_context(request, target, "Select the kind of reply you want to send")
        return render(request, "send/reply.html", context, status=400)
    draft = await start_draft(who, Draft(id="", kind=kind, mode="reply", target=digest.hex()))
    raise web.HTTPSeeOther(_first_question(draft))


# --- corrections ------------------------------------------------------------------------------


async def correct_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/correct/<digest>``: what a correction is, and a button to start one."""
    who = person(request)
    target = await who.service.correction_target(who.user, path_digest(request))
    return render(
        request, "send/correct.html", {"item_kind": kind_name(target.record_kind).lower()}
    )


async def start_correction(request: web.Request) -> web.StreamResponse:
    """``POST /send/correct/<digest>``: start a corrected record of the original's kind."""
    who = person(request)
    digest = path_digest(request)
    target = await who.service.correction_target(who.user, digest)
    draft = await start_draft(
        who, Draft(id="", kind=target.record_kind, mode="correct", target=digest.hex())
    )
    raise web.HTTPSeeOther(_first_question(draft))


# --- a decision not to share ------------------------------------------------------------------

_NOT_SHARED_ORDER: Final = ("purpose", "recipient", "reason_code", "reason", "upn", "nhs_number")


def _not_shared_context(
    request: web.Request, values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    who = person(request)
    service = who.service
    return {
        "purposes": [
            {"value": p.name, "text": p.title, "checked": p.name == values.get("purpose")}
            for p in service.records.policy.purposes.values()
            if p.record_kinds & set(KINDS)
        ],
        "organisations": [
            {
                "value": r.id,
                "text": f"{r.name} ({r.id})",
                "selected": r.id == values.get("recipient"),
            }
            for r in candidates(service.directory, who.user.org, ("school", "la", "nhs"))
        ],
        "reason_codes": [
            {"value": code, "text": words, "checked": code == values.get("reason_code")}
            for code, words in reason_code_words()
        ],
        "kinds": [
            {"value": k, "text": kind_name(k), "checked": k == values.get("record_kind")}
            for k in KINDS
        ],
        "reason": values.get("reason", ""),
        "errors": [
            {"href": f"#f-{k}", "text": errors[k]} for k in _NOT_SHARED_ORDER if k in errors
        ],
        "field_errors": errors,
    }


async def not_shared_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/not-shared``: the short form that records a decision not to share."""
    who = person(request)
    await who.service.may_send(who.user)
    return render(request, "send/not_shared.html", _not_shared_context(request, {}, {}))


async def record_not_shared(request: web.Request) -> web.StreamResponse:
    """``POST /send/not-shared``: record the decision in the register, or say what is wrong."""
    who = person(request)
    data = await request.post()
    values = {
        k: str(data.get(k, "")).strip()
        for k in ("purpose", "recipient", "reason_code", "reason", "record_kind")
    }
    errors: dict[str, str] = {}
    service = who.service
    if values["purpose"] not in service.records.policy.purposes:
        errors["purpose"] = "Select what the information was asked for or would have been for"
    allowed = {r.id for r in candidates(service.directory, who.user.org, ("school", "la", "nhs"))}
    if values["recipient"] not in allowed:
        errors["recipient"] = "Select the organisation that asked, or would have received it"
    if values["reason_code"] not in dict(reason_code_words()):
        errors["reason_code"] = "Select why you decided not to share"
    if not values["reason"]:
        errors["reason"] = "Enter the reasons for your decision"
    identifiers: list[tuple[SubjectKind, str]] = []
    for key, kind, check, words in (
        ("upn", "upn", validate_upn, "unique pupil number (UPN)"),
        ("nhs_number", "nhs-number", validate_nhs_number, "NHS number"),
    ):
        given = "".join(str(data.get(key, "")).split()).upper()
        if given:
            try:
                identifiers.append((kind, check(given, field=key)))  # type: ignore[arg-type]
            except InvalidIdentifierError:
                errors[key] = f"Enter a real {words}, or leave it empty"
    record_kind = values["record_kind"] if values["record_kind"] in KINDS else None
    if not errors:
        try:
            await service.record_not_shared(
                who.user,
                purpose=values["purpose"],
                recipients=[OrgId(values["recipient"])],
                reason_code=values["reason_code"],
                reason=values["reason"],
                record_kind=record_kind,
                identifiers=identifiers,
            )
        except UnprocessableError as exc:
            rule = str(exc.details.get("rule", ""))
            if rule.startswith("reason."):
                errors["reason"] = REASON_WORDS.get(rule, "Enter different reasons")
            else:
                errors["purpose"] = f"The decision cannot be recorded: {exc} (rule {rule})"
    if errors:
        # The identifiers are never shown back: they are checked, not echoed.
        context = _not_shared_context(request, values, errors)
        return render(request, "send/not_shared.html", context, status=400)
    raise web.HTTPSeeOther("/send/not-shared/recorded")


async def not_shared_recorded(request: web.Request) -> web.StreamResponse:
    """``GET /send/not-shared/recorded``: the confirmation."""
    who = person(request)
    await who.service.may_send(who.user)
    return render(request, "send/not_shared_recorded.html", {})
