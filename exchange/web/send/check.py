"""The "Check your answers" page, sending, and the confirmation with reference and deadline.

Sending happens once per draft: the send POST holds the draft's lock, reads it again, and
if it was already sent goes to that confirmation; otherwise it sends through the service
and keeps, in place of the answers, only what the confirmation shows. Two clicks, two tabs,
or the back button and a second send all end on the first envelope's confirmation. The
draft's id also goes to the service as an idempotency key, committed with the envelope, so
even a node stopped between the two (the draft still unsent) seals nothing new when it is
sent again.

A refusal of the service comes back here: a field of the record is named with a link to
its page, a reason refused for holding an identifier or a name says so, and a policy
refusal explains the rule and names its id.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any, Final

from aiohttp import web
from markupsafe import Markup, escape

from exchange.keys.ids import OrgId
from exchange.model import short_reference
from exchange.policy import parse_lawful_basis
from exchange.service.corrections import rectify
from exchange.service.errors import UnprocessableError
from exchange.service.idempotency import IdempotencyKey
from exchange.sharing.prepare import FileInput, Submission
from exchange.web.app import render
from exchange.web.busy import busy_page
from exchange.web.send.choices import basis_words, category_words
from exchange.web.send.drafts import Draft, DraftBusyError
from exchange.web.send.journey import reason_error
from exchange.web.send.questions import (
    Form,
    Problem,
    check,
    error_messages,
    summary_value,
)
from exchange.web.send.steps import Person, draft_of, steps, unsent, url
from exchange.web.send.uploads import TYPE_WORDS
from exchange.web.words import deadline_words, kind_name, organisation_name

#: What the confirmation says is due, by kind.
#: What "Check your answers" says while another request is sending the same draft.
BEING_SENT: Final = "This record is being sent. Wait a moment, then refresh the page"
DUE_WORDS: Final = {
    "referral": "They must acknowledge it",
    "cp-file-transfer": "It must reach the new school",
    "information-request": "They must reply",
}


def extra_fields(draft: Draft, form: Form) -> dict[str, Any]:
    """Return the record's fields no page asks: the manifest, and what a reply answers."""
    extra: dict[str, Any] = {}
    if form.manifest is not None and draft.uploads:
        entries = []
        for upload in draft.uploads:
            entry: dict[str, Any] = {
                "title": upload.title,
                "content_type": upload.content_type,
                "size": upload.size,
                "sha256": upload.sha256,
            }
            if upload.document_kind:
                entry["kind"] = upload.document_kind
            entries.append(entry)
        extra[form.manifest] = entries
    if draft.mode == "reply" and draft.target and "in_reply_to" in form.schema["properties"]:
        extra["in_reply_to"] = draft.target
    return extra


def _problem_errors(draft: Draft, form: Form, problems: list[Problem]) -> list[dict[str, str]]:
    """Return error summary entries for the record's problems, linked to their pages."""
    errors = []
    for error in error_messages(form, problems, draft.answers):
        top = error.path.split(".", 1)[0].split("[", 1)[0]
        if form.section(top) is not None:
            href = url(draft, f"questions/{top}") + f"?return=check#{error.target}"
        elif top == form.manifest and form.manifest is not None:
            href = url(draft, "files") + "?return=check"
            error_text = "Add the documents the record needs"
            errors.append({"href": href, "text": error_text})
            continue
        else:
            href = "#main-content"
        errors.append({"href": href, "text": error.text})
    return errors


def _missing_choices(draft: Draft, who: Person) -> list[dict[str, str]]:
    """Return what is still to choose on the pages after the questions."""
    errors = []
    if draft.mode == "new" and not draft.recipients:
        errors.append(
            {"href": url(draft, "recipients") + "?return=check", "text": "Choose who to send it to"}
        )
    if draft.mode != "correct":
        if draft.purpose not in who.service.records.policy.purposes:
            errors.append(
                {"href": url(draft, "purpose"), "text": "Choose why you are sharing the record"}
            )
        elif not draft.categories or not draft.lawful_basis:
            errors.append(
                {
                    "href": url(draft, "reason") + "?return=check",
                    "text": "Choose the kinds of information and the lawful basis",
                }
            )
    if not draft.reason.strip():
        errors.append(
            {
                "href": url(draft, "reason") + "?return=check",
                "text": reason_error(draft, "reason.length"),
            }
        )
    return errors


def _lines(lines: list[str]) -> Markup:
    return Markup("<br>").join(escape(line) for line in lines) if lines else Markup("Not given")


def _change(draft: Draft, step: str, hidden: str) -> dict[str, str]:
    return {"href": url(draft, step) + "?return=check", "text": "Change", "hidden": hidden}


def _check_context(
    request: web.Request,
    who: Person,
    draft: Draft,
    form: Form,
    errors: list[dict[str, str]],
    *,
    reply_to: str | None,
) -> dict[str, Any]:
    record_rows = [
        {
            "key": section.label,
            "html": _lines(summary_value(form, section, draft.answers)),
            "action": _change(draft, f"questions/{section.path}", section.label.lower()),
        }
        for section in form.sections
    ]
    file_rows = []
    if form.manifest is not None:
        file_rows = [
            {
                "key": "Files",
                "html": _lines(
                    [
                        f"{u.title} ({u.name}, {TYPE_WORDS.get(u.content_type, u.content_type)})"
                        for u in draft.uploads
                    ]
                ),
                "action": _change(draft, "files", "files"),
            }
        ]
    sharing_rows: list[dict[str, Any]] = []
    service = who.service
    if draft.mode == "new":
        sharing_rows.append(
            {
                "key": "Send to",
                "html": _lines([organisation_name(request, OrgId(r)) for r in draft.recipients]),
                "action": _change(draft, "recipients", "who to send it to"),
            }
        )
    elif draft.mode == "reply" and draft.target:
        sharing_rows.append({"key": "Send to", "value": reply_to or ""})
    else:
        sharing_rows.append(
            {"key": "Send to", "value": "Every organisation that received the original record"}
        )
    purpose = service.records.policy.purposes.get(draft.purpose)
    if draft.mode != "correct":
        sharing_rows.append(
            {
                "key": "Why you are sharing it",
                "value": "" if purpose is None else purpose.title,
                "action": _change(draft, "purpose", "why you are sharing it"),
            }
        )
        basis = None
        if purpose is not None:
            basis = next((b for b in purpose.lawful_bases if b.code == draft.lawful_basis), None)
        sharing_rows += [
            {
                "key": "Information it holds",
                "html": _lines([category_words(c) for c in draft.categories]),
                "action": _change(draft, "reason", "the information it holds"),
            },
            {
                "key": "Lawful basis",
                "html": _lines([] if basis is None else list(basis.citations)),
                "action": _change(draft, "reason", "the lawful basis"),
            },
        ]
    sharing_rows.append(
        {
            "key": "Reason for the sharing register"
            if draft.mode != "correct"
            else "Why it is corrected",
            "value": draft.reason.strip() or "Not given",
            "action": _change(draft, "reason", "the reason"),
        }
    )
    return {
        "kind_words": kind_name(draft.kind),
        "mode": draft.mode,
        "record_rows": record_rows,
        "file_rows": file_rows,
        "sharing_rows": sharing_rows,
        "errors": errors,
        "action": url(draft, "send"),
        "back": url(draft, steps(draft, form)[-2]),
        "cancel": url(draft, "cancel"),
    }


def _all_errors(who: Person, draft: Draft, form: Form) -> list[dict[str, str]]:
    _, problems = check(form, draft.answers, extra=extra_fields(draft, form))
    return _problem_errors(draft, form, problems) + _missing_choices(draft, who)


async def check_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/<draft>/check``: every answer, with a link to change it, and Send."""
    who, draft = await draft_of(request)
    unsent(draft)
    form = Form(draft.kind)
    reply_to = await _reply_words(request, who, draft)
    context = _check_context(request, who, draft, form, [], reply_to=reply_to)
    return render(request, "send/check.html", context)


async def _reply_words(request: web.Request, who: Person, draft: Draft) -> str | None:
    """Return the name of the organisation a reply goes to (None for other drafts)."""
    if draft.mode == "reply" and draft.target:
        target = await who.service.reply_target(who.user, bytes.fromhex(draft.target))
        return organisation_name(request, target.sender)
    return None


def _refusal(draft: Draft, form: Form, exc: UnprocessableError) -> list[dict[str, str]]:
    """Return the error summary for a refusal of the service, in plain words."""
    rule = str(exc.details.get("rule", ""))
    problems = exc.details.get("problems", [])
    if problems:
        found = [
            Problem(str(p["path"]).removeprefix("record").lstrip("."), str(p["rule"]))
            for p in problems
        ]
        return _problem_errors(draft, form, found)
    if rule.startswith("reason."):
        return [
            {
                "href": url(draft, "reason") + "?return=check#f-reason",
                "text": reason_error(draft, rule),
            }
        ]
    if rule.startswith(("attachment", "manifest", "container")):
        text = f"A file cannot be sent: {exc} (rule {rule})"
        return [{"href": url(draft, "files") + "?return=check", "text": text}]
    message = str(exc).rstrip(".")
    named = f"{message} (rule {rule})" if rule and rule not in message else message
    step = "recipients" if rule == "recipients" and draft.mode == "new" else "purpose"
    if draft.mode == "correct":
        step = "reason"
    return [{"href": url(draft, step), "text": f"This record cannot be sent: {named}"}]


async def send(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/send``: send it once; a second send goes to the confirmation."""
    who, draft = await draft_of(request)
    if (busy := busy_page(request, who.service, url(draft, "check"))) is not None:
        return busy
    try:
        return await _send_once(request, who, draft)
    except DraftBusyError:
        return await _busy(request, who, draft)


async def _busy(request: web.Request, who: Person, draft: Draft) -> web.StreamResponse:
    """Return "Check your answers" saying another request is sending the draft (409)."""
    form = Form(draft.kind)
    reply_to = await _reply_words(request, who, draft)
    errors = [{"href": url(draft, "check"), "text": BEING_SENT}]
    context = _check_context(request, who, draft, form, errors, reply_to=reply_to)
    return render(request, "send/check.html", context, status=409)


async def _send_once(request: web.Request, who: Person, draft: Draft) -> web.StreamResponse:
    """Send the draft holding its claim (across the node's processes); see :func:`send`."""
    async with who.drafts.sending(who.owner, draft.id):
        draft = await who.load(draft.id)
        unsent(draft)
        form = Form(draft.kind)
        reply_to = await _reply_words(request, who, draft)
        errors = _all_errors(who, draft, form)
        if errors:
            context = _check_context(request, who, draft, form, errors, reply_to=reply_to)
            return render(request, "send/check.html", context, status=400)
        try:
            sent = await _submit(who, draft, form)
        except UnprocessableError as exc:
            refusal = _refusal(draft, form, exc)
            context = _check_context(request, who, draft, form, refusal, reply_to=reply_to)
            return render(request, "send/check.html", context, status=400)
        await who.drafts.forget_content(who.owner, who.token, draft, sent)
    raise web.HTTPSeeOther(url(draft, "sent"))


async def _submit(who: Person, draft: Draft, form: Form) -> dict[str, Any]:
    """Send the draft through the service; return what its confirmation shows."""
    record, _ = check(form, draft.answers, extra=extra_fields(draft, form))
    attachments: list[FileInput] = []
    for upload in draft.uploads:
        # Checked against its digest as it is opened: a pass over the file, in a thread.
        file = await who.drafts.open_file(who.owner, who.token, draft.id, upload)
        sha256 = bytes.fromhex(upload.sha256)
        attachments.append(FileInput(upload.name, upload.content_type, file, sha256))
    return await _send_draft(who, draft, record, tuple(attachments))


async def _send_draft(
    who: Person, draft: Draft, record: dict[str, Any], attachments: tuple[FileInput, ...]
) -> dict[str, Any]:
    """Send the checked record with its files (read from the draft as it is sealed)."""
    recipients: list[str]
    if draft.mode == "correct":
        assert draft.target is not None
        done = await rectify(
            who.service,
            who.user,
            bytes.fromhex(draft.target),
            record=record,
            reason=draft.reason,
            attachments=attachments,
        )
        submitted = done.submitted
        recipients = [str(r) for r in done.recipients]
        not_sent = [list(pair) for pair in done.not_sent]
    else:
        if draft.mode == "reply":
            assert draft.target is not None
            target = await who.service.reply_target(who.user, bytes.fromhex(draft.target))
            recipients = [str(target.sender)]
        else:
            recipients = list(draft.recipients)
        submission = Submission(
            recipients=tuple(OrgId(r) for r in recipients),
            purpose=draft.purpose,
            record_kind=draft.kind,
            record=record,
            categories=tuple(draft.categories),
            reason=draft.reason,
            lawful_basis=draft.lawful_basis or None,
            attachments=attachments,
            in_reply_to=bytes.fromhex(draft.target)
            if draft.mode == "reply" and draft.target
            else None,
        )
        # The draft's id is the form's hidden token: should the node stop between sending
        # and keeping the confirmation, sending the draft again gives the first answer.
        once = IdempotencyKey(f"web-draft-{draft.id}", hashlib.sha256(draft.id.encode()).digest())
        submitted = await who.service.submit(who.user, submission, idempotency=once)
        not_sent = []
    return {
        "envelope_id": submitted.envelope_id.hex(),
        "digest": submitted.digest.hex(),
        "deadline_due": submitted.deadline_due,
        "lawful_basis": submitted.lawful_basis,
        "recipients": [str(r) for r in recipients],
        "not_sent": not_sent,
    }


async def sent_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/<draft>/sent``: the confirmation panel, the reference and the deadline."""
    _, draft = await draft_of(request)
    sent = draft.sent
    if sent is None:
        raise web.HTTPSeeOther(url(draft, "check"))
    due = sent.get("deadline_due")
    names = [organisation_name(request, OrgId(r)) for r in sent.get("recipients", [])]
    deadline = None
    if due:
        deadline = (
            f"{DUE_WORDS.get(draft.kind, 'It is due')} {deadline_words(date.fromisoformat(due))}."
        )
    lawful = None
    if sent.get("lawful_basis"):
        lawful = basis_words(parse_lawful_basis(str(sent["lawful_basis"])))[0]
    return render(
        request,
        "send/sent.html",
        {
            "kind_words": kind_name(draft.kind),
            "mode": draft.mode,
            "reference": short_reference(bytes.fromhex(str(sent["envelope_id"]))),
            "recipients": names,
            "not_sent": [
                (organisation_name(request, OrgId(org)), why)
                for org, why in sent.get("not_sent", [])
            ],
            "deadline": deadline,
            "lawful": lawful,
            "sent_item": f"/sent/{sent['digest']}",
        },
    )


async def cancel(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/cancel``: abandon the draft, deleting its answers and files."""
    who, draft = await draft_of(request)
    try:
        async with who.drafts.sending(who.owner, draft.id):
            await who.drafts.delete(who.owner, draft.id)
    except DraftBusyError:
        return await _busy(request, who, draft)
    raise web.HTTPSeeOther("/send" if draft.mode == "new" else "/inbox")
