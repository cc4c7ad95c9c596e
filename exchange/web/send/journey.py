"""The send journey's question pages: the kind, the record's fields, files, and choices.

``/send`` asks which kind of record; each later page belongs to a draft
(``/send/<draft>/...``) and, when its answers are good, goes on to the next page
(:func:`~exchange.web.send.steps.steps`). A page with errors is shown again with what was
typed, and the GOV.UK error summary links each message to its field.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Final

from aiohttp import web

from exchange.policy import DataCategory
from exchange.records import KINDS, MAX_ATTACHMENTS
from exchange.service.errors import NotFoundError
from exchange.sharing.limits import AttachmentLimits, node_limits
from exchange.sharing.prepare import (
    MAX_REASON_LEN,
    SubmissionError,
    check_reason,
    record_names,
)
from exchange.web.app import render, web_service
from exchange.web.security import MULTIPART
from exchange.web.send.choices import (
    Recipient,
    basis_choice,
    basis_words,
    candidates,
    category_words,
    purposes_for,
    recipient_kinds,
    search,
)
from exchange.web.send.drafts import Draft
from exchange.web.send.questions import (
    Form,
    build_record,
    check,
    error_messages,
    field_id,
    page_fields,
)
from exchange.web.send.steps import (
    Person,
    action_suffix,
    back_url,
    draft_of,
    next_url,
    person,
    seen,
    unsent,
    url,
)
from exchange.web.send.uploads import MB, TYPE_WORDS, megabytes, receive_upload
from exchange.web.words import kind_name

#: The kinds offered on ``/send``, each with its hint.
KIND_HINTS: Final = {
    "referral": "A safeguarding referral to a local authority's children's front door.",
    "cp-file-transfer": "A child protection file, to the school a pupil is moving to.",
    "lac-record": "A looked-after child's record, to the virtual school or a health team.",
    "outcome": "The outcome of a referral: reply to the referral from your inbox.",
    "information-request": "Ask another organisation for information about a child.",
}
OUTCOME_IS_A_REPLY: Final = (
    "An outcome answers a referral: open the referral in your inbox and choose to reply"
)


def _errors(items: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"href": f"#{target}", "text": text} for target, text in items]


# --- the kind ---------------------------------------------------------------------------------


def kind_choices(kinds: tuple[str, ...], chosen: str = "") -> list[dict[str, Any]]:
    """Return the kinds as radios: value, words, hint."""
    return [
        {"value": k, "text": kind_name(k), "hint": KIND_HINTS.get(k), "checked": k == chosen}
        for k in kinds
    ]


async def choose_kind_page(request: web.Request) -> web.StreamResponse:
    """``GET /send``: which kind of record to send."""
    who = person(request)
    await who.service.may_send(who.user)
    return render(request, "send/kind.html", {"choices": kind_choices(tuple(KINDS)), "errors": []})


async def choose_kind(request: web.Request) -> web.StreamResponse:
    """``POST /send``: start a draft of the chosen kind."""
    who = person(request)
    await who.service.may_send(who.user)
    form = await request.post()
    kind = form.get("kind", "")
    kind = kind if isinstance(kind, str) and kind in KINDS else ""
    error = None
    if not kind:
        error = "Select the kind of record you want to send"
    elif kind == "outcome":
        error = OUTCOME_IS_A_REPLY
    if error is not None:
        return render(
            request,
            "send/kind.html",
            {
                "choices": kind_choices(tuple(KINDS), kind),
                "errors": _errors([("kind", error)]),
                "error": error,
            },
            status=400,
        )
    draft = await start_draft(who, Draft(id="", kind=kind))
    raise web.HTTPSeeOther(url(draft, f"questions/{Form(kind).sections[0].path}"))


async def start_draft(who: Person, draft: Draft) -> Draft:
    """Keep a new draft with what the pages can fill in for the sender, and return it."""
    form = Form(draft.kind)
    org = who.user.org
    values = draft.answers.values
    for section in form.sections:
        for question in form.walk(section, draft.answers):
            name = question.path.rsplit(".", 1)[-1]
            if name == "organisation" and question.widget == "text":
                values[question.path] = org
            if name == "from_school_urn" and org.startswith("urn:"):
                values[question.path] = org.removeprefix("urn:")
    return await who.drafts.create(who.owner, who.token, draft)


# --- the record's questions -------------------------------------------------------------------


def _question_context(
    request: web.Request, draft: Draft, form: Form, name: str, errors: list[Any]
) -> dict[str, Any]:
    section = form.section(name)
    assert section is not None
    by_path = {e.path: e.text for e in errors}
    step = f"questions/{name}"
    return {
        "kind_words": kind_name(draft.kind),
        "mode": draft.mode,
        "field": page_fields(form, section, draft.answers, by_path),
        "errors": [{"href": f"#{e.target}", "text": e.text} for e in errors],
        "action": url(draft, step) + action_suffix(request),
        "back": back_url(request, draft, form, step),
        "cancel": url(draft, "cancel"),
    }


def _section(request: web.Request, form: Form) -> str:
    name = request.match_info["section"]
    if form.section(name) is None:
        raise NotFoundError("no such question")
    return name


async def question_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/<draft>/questions/<section>``: one page of the record's questions."""
    _, draft = await draft_of(request)
    unsent(draft)
    form = Form(draft.kind)
    name = _section(request, form)
    return render(request, "send/question.html", _question_context(request, draft, form, name, []))


async def answer_question(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/questions/<section>``: keep the answers; add or remove an item."""
    who, draft = await draft_of(request)
    unsent(draft)
    form = Form(draft.kind)
    name = _section(request, form)
    section = form.section(name)
    assert section is not None
    data = await request.post()
    form.read(section, data, draft.answers)
    action = data.get("action", "continue")
    action = action if isinstance(action, str) else "continue"
    here = url(draft, f"questions/{name}") + action_suffix(request)
    if action.startswith("add:"):
        added = form.add_item(section, draft.answers, action.removeprefix("add:"))
        await who.save(draft)
        raise web.HTTPSeeOther(here + ("" if added is None else f"#{_anchor(added)}"))
    if action.startswith("remove:"):
        form.remove_item(section, draft.answers, action.removeprefix("remove:"))
        await who.save(draft)
        raise web.HTTPSeeOther(here)
    _, problems = check(form, draft.answers, sections=[section])
    if problems:
        await who.save(draft)
        errors = error_messages(form, problems, draft.answers)
        context = _question_context(request, draft, form, name, errors)
        return render(request, "send/question.html", context, status=400)
    seen(draft, f"questions/{name}")
    await who.save(draft)
    raise web.HTTPSeeOther(next_url(request, draft, form, f"questions/{name}"))


def _anchor(path: str) -> str:
    return field_id(path) + "-item"


# --- files ------------------------------------------------------------------------------------


def _size_words(size: int) -> str:
    if size >= MB:
        return f"{size / MB:.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


def _files_context(
    request: web.Request,
    draft: Draft,
    form: Form,
    errors: dict[str, str],
    *,
    title: str = "",
    document_kind: str = "",
) -> dict[str, Any]:
    limits = _file_limits(request, draft)
    item = form.manifest_item() or {}
    kinds = item.get("properties", {}).get("kind")
    document_kinds = []
    if kinds is not None:
        words = kinds.get("x-enum-titles", {})
        document_kinds = [
            {"value": v, "text": words.get(v, v), "checked": v == document_kind}
            for v in kinds.get("enum", [])
        ]
    order = ["title", "document_kind", "file", "files"]
    return {
        "kind_words": kind_name(draft.kind),
        "mode": draft.mode,
        "files": [
            {
                "id": u.id,
                "name": u.name,
                "title": u.title,
                "type": TYPE_WORDS.get(u.content_type, u.content_type),
                "size": _size_words(u.size),
                "document_kind": next(
                    (k["text"] for k in document_kinds if k["value"] == u.document_kind), ""
                ),
            }
            for u in draft.uploads
        ],
        "document_kinds": document_kinds,
        "types": ", ".join(list(TYPE_WORDS.values())[:-1]) + " or " + list(TYPE_WORDS.values())[-1],
        "max_size": megabytes(limits.per_file),
        "max_files": MAX_ATTACHMENTS,
        "max_total": megabytes(limits.total),
        "required": int(
            form.schema["properties"][form.manifest].get("minItems", 0) if form.manifest else 0
        ),
        "errors": _errors(
            [(f"f-{k}" if k != "files" else "f-file", v) for k in order if (v := errors.get(k))]
        ),
        "field_errors": errors,
        "title": title,
        "action": url(draft, "files") + action_suffix(request),
        "done_action": url(draft, "files/done") + action_suffix(request),
        "remove_action": url(draft, "files/remove") + action_suffix(request),
        "back": back_url(request, draft, form, "files"),
        "cancel": url(draft, "cancel"),
    }


def _file_limits(request: web.Request, draft: Draft) -> AttachmentLimits:
    """Return the most one file and all files of the draft may be on this node."""
    return node_limits(web_service(request).max_envelope_bytes).attachments(draft.kind)


def _carries_files(draft: Draft) -> Form:
    form = Form(draft.kind)
    if form.manifest is None:
        raise NotFoundError("this kind of record carries no files")
    return form


async def files_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/<draft>/files``: the files added so far, and a form to add another."""
    _, draft = await draft_of(request)
    unsent(draft)
    form = _carries_files(draft)
    return render(request, "send/files.html", _files_context(request, draft, form, {}))


async def add_file(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/files`` (multipart): stream one file into the draft."""
    who, draft = await draft_of(request)
    unsent(draft)
    form = _carries_files(draft)
    reader = request.get(MULTIPART)
    if reader is None:
        raise web.HTTPBadRequest
    limits = _file_limits(request, draft)
    received = await receive_upload(
        reader, who.drafts, who.owner, who.token, draft.id, limits.per_file
    )
    errors = dict(received.errors)
    item = form.manifest_item() or {}
    properties = item.get("properties", {})
    if len(received.title) > int(properties.get("title", {}).get("maxLength", 200)):
        errors["title"] = "The title must be 200 characters or fewer"
    kinds = properties.get("kind")
    if kinds is not None and received.document_kind not in kinds.get("enum", []):
        errors["document_kind"] = "Select the type of document"
    upload = received.upload
    if upload is not None and "file" not in errors:
        if len(draft.uploads) >= MAX_ATTACHMENTS:
            errors["file"] = f"You can add up to {MAX_ATTACHMENTS} files"
        elif sum(u.size for u in draft.uploads) + upload.size > limits.total:
            errors["file"] = f"The files must be smaller than {megabytes(limits.total)} in total"
        elif upload.name.casefold() in {u.name.casefold() for u in draft.uploads}:
            errors["file"] = "A file with the same name has already been added: rename the file"
    if errors:
        if upload is not None:
            await who.drafts.delete_file(who.owner, draft.id, upload.id)
        context = _files_context(
            request,
            draft,
            form,
            errors,
            title=received.title,
            document_kind=received.document_kind,
        )
        return render(request, "send/files.html", context, status=400)
    assert upload is not None
    upload.title = received.title or PurePath(upload.name).stem or upload.name
    upload.document_kind = received.document_kind
    draft.uploads.append(upload)
    await who.save(draft)
    raise web.HTTPSeeOther(url(draft, "files") + action_suffix(request))


async def remove_file(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/files/remove``: take a file out of the draft and delete it."""
    who, draft = await draft_of(request)
    unsent(draft)
    _carries_files(draft)
    chosen = (await request.post()).get("file", "")
    kept = [u for u in draft.uploads if u.id != chosen]
    if len(kept) != len(draft.uploads):
        await who.drafts.delete_file(who.owner, draft.id, str(chosen))
        draft.uploads = kept
        await who.save(draft)
    raise web.HTTPSeeOther(url(draft, "files") + action_suffix(request))


async def files_done(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/files/done``: go on, if the kind's least number of files is met."""
    who, draft = await draft_of(request)
    unsent(draft)
    form = _carries_files(draft)
    context = _files_context(request, draft, form, {})
    if len(draft.uploads) < context["required"]:
        errors = {"files": f"Add at least {context['required']} file"}
        context = _files_context(request, draft, form, errors)
        return render(request, "send/files.html", context, status=400)
    seen(draft, "files")
    await who.save(draft)
    raise web.HTTPSeeOther(next_url(request, draft, form, "files"))


# --- recipients -------------------------------------------------------------------------------


def _recipients_context(
    request: web.Request,
    who: Person,
    draft: Draft,
    form: Form,
    error: str | None = None,
    *,
    field: str = "f-q",
) -> dict[str, Any]:
    """Return the page's context: the chosen, a select of the rest, the search, any error.

    ``error`` is shown at ``field``: the select (``f-org``, which the autocomplete's input
    takes over with JavaScript) or the search box (``f-q``).
    """
    found = candidates(
        who.service.directory, who.user.org, recipient_kinds(who.service.records.policy, draft.kind)
    )
    query = request.query.get("q", "").strip()[:100]
    names: dict[str, Recipient] = {r.id: r for r in found}
    return {
        "kind_words": kind_name(draft.kind),
        "chosen": [names[r] for r in draft.recipients if r in names],
        "organisations": [r for r in found if r.id not in draft.recipients],
        "query": query,
        "matches": [r for r in search(found, query) if r.id not in draft.recipients],
        "searched": bool(query),
        "errors": _errors([(field, error)]) if error else [],
        "error": error,
        "error_field": field,
        "action": url(draft, "recipients") + action_suffix(request),
        "back": back_url(request, draft, form, "recipients"),
        "cancel": url(draft, "cancel"),
    }


def _new_only(draft: Draft) -> None:
    if draft.mode != "new":
        raise NotFoundError("a reply or a correction has its recipients already")


async def recipients_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/<draft>/recipients?q=``: who it goes to, found in the directory."""
    who, draft = await draft_of(request)
    unsent(draft)
    _new_only(draft)
    form = Form(draft.kind)
    return render(request, "send/recipients.html", _recipients_context(request, who, draft, form))


async def choose_recipients(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/recipients``: add or remove a recipient, or go on."""
    who, draft = await draft_of(request)
    unsent(draft)
    _new_only(draft)
    form = Form(draft.kind)
    data = await request.post()
    action = str(data.get("action", "continue"))
    allowed = {
        r.id
        for r in candidates(
            who.service.directory,
            who.user.org,
            recipient_kinds(who.service.records.policy, draft.kind),
        )
    }
    here = url(draft, "recipients") + action_suffix(request)
    if action == "add":
        chosen = str(data.get("recipient", ""))
        if chosen not in allowed:
            # From the select (or the autocomplete over it), or from the search's results.
            field = "f-org" if data.get("from") == "list" else "f-q"
            error = "Select an organisation"
            context = _recipients_context(request, who, draft, form, error, field=field)
            return render(request, "send/recipients.html", context, status=400)
        if chosen not in draft.recipients:
            draft.recipients.append(chosen)
            await who.save(draft)
        raise web.HTTPSeeOther(here)
    if action.startswith("remove:"):
        draft.recipients = [r for r in draft.recipients if r != action.removeprefix("remove:")]
        await who.save(draft)
        raise web.HTTPSeeOther(here)
    draft.recipients = [r for r in draft.recipients if r in allowed]
    if not draft.recipients:
        error = "Choose or find the organisation you want to send the record to, and add it"
        context = _recipients_context(
            request, who, draft, form, error, field="f-org" if allowed else "f-q"
        )
        return render(request, "send/recipients.html", context, status=400)
    seen(draft, "recipients")
    await who.save(draft)
    raise web.HTTPSeeOther(next_url(request, draft, form, "recipients"))


# --- purpose and reasons ----------------------------------------------------------------------


def _purpose_context(
    request: web.Request, who: Person, draft: Draft, form: Form, error: str | None = None
) -> dict[str, Any]:
    return {
        "kind_words": kind_name(draft.kind),
        "choices": [
            {"value": p.name, "text": p.title, "checked": p.name == draft.purpose}
            for p in purposes_for(who.service.records.policy, draft.kind)
        ],
        "errors": _errors([("f-purpose", error)]) if error else [],
        "error": error,
        "action": url(draft, "purpose") + action_suffix(request),
        "back": back_url(request, draft, form, "purpose"),
        "cancel": url(draft, "cancel"),
    }


def _not_correction(draft: Draft) -> None:
    if draft.mode == "correct":
        raise NotFoundError("a correction keeps the original's purpose")


async def purpose_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/<draft>/purpose``: why the record is shared, from the policy's purposes."""
    who, draft = await draft_of(request)
    unsent(draft)
    _not_correction(draft)
    form = Form(draft.kind)
    return render(request, "send/purpose.html", _purpose_context(request, who, draft, form))


async def choose_purpose(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/purpose``: keep the purpose (a new one clears its choices)."""
    who, draft = await draft_of(request)
    unsent(draft)
    _not_correction(draft)
    form = Form(draft.kind)
    chosen = str((await request.post()).get("purpose", ""))
    names = {p.name for p in purposes_for(who.service.records.policy, draft.kind)}
    if chosen not in names:
        context = _purpose_context(request, who, draft, form, "Select why you are sharing it")
        return render(request, "send/purpose.html", context, status=400)
    if chosen != draft.purpose:
        draft.purpose, draft.categories, draft.lawful_basis = chosen, [], ""
    seen(draft, "purpose")
    await who.save(draft)
    raise web.HTTPSeeOther(next_url(request, draft, form, "purpose"))


#: The reason's rules in words (``exchange.sharing.prepare.check_reason``).
REASON_WORDS: Final = {
    "reason.length": f"Your reason must be {MAX_REASON_LEN:,} characters or fewer",
    "reason.characters": "Your reason must be plain text",
    "reason.identifier": (
        "Remove the UPN or NHS number from your reason: the sharing register must not hold "
        "a child's identifiers"
    ),
    "reason.date-of-birth": (
        "Remove the date from your reason: it could be the child's date of birth, which the "
        "sharing register must not hold (a month and year is fine)"
    ),
    "reason.names-subject": (
        "Remove the child's name and the names of their family from your reason: the sharing "
        "register must not identify the child"
    ),
}


def reason_error(draft: Draft, rule: str) -> str:
    """Return the words for a reason refused by ``rule``."""
    if rule == "reason.length" and not draft.reason.strip():
        return (
            "Enter why you are correcting the record"
            if draft.mode == "correct"
            else "Enter why you are sharing the record"
        )
    return REASON_WORDS.get(rule, "Enter a different reason")


def _reason_context(
    request: web.Request, who: Person, draft: Draft, form: Form, errors: dict[str, str]
) -> dict[str, Any]:
    purpose = who.service.records.policy.purposes.get(draft.purpose)
    categories = []
    bases = []
    if purpose is not None and draft.mode != "correct":
        categories = [
            {
                "value": c.value,
                "text": category_words(c.value),
                "checked": c.value in draft.categories,
            }
            for c in DataCategory
            if c in purpose.categories
        ]
        chosen = draft.lawful_basis or purpose.lawful_bases[0].code
        for basis in purpose.lawful_bases:
            text, hint = basis_words(basis)
            bases.append(
                {"value": basis.code, "text": text, "hint": hint, "checked": basis.code == chosen}
            )
    order = ["categories", "lawful_basis", "reason"]
    return {
        "kind_words": kind_name(draft.kind),
        "mode": draft.mode,
        "purpose": None if purpose is None else purpose.title,
        "categories": categories,
        "bases": bases,
        "reason": draft.reason,
        "max_reason": MAX_REASON_LEN,
        "errors": _errors([(f"f-{k}", errors[k]) for k in order if k in errors]),
        "field_errors": errors,
        "action": url(draft, "reason") + action_suffix(request),
        "back": back_url(request, draft, form, "reason"),
        "cancel": url(draft, "cancel"),
    }


async def reason_page(request: web.Request) -> web.StreamResponse:
    """``GET /send/<draft>/reason``: the data shared, the lawful basis and the reason."""
    who, draft = await draft_of(request)
    unsent(draft)
    form = Form(draft.kind)
    if draft.mode != "correct" and draft.purpose not in who.service.records.policy.purposes:
        raise web.HTTPSeeOther(url(draft, "purpose"))
    return render(request, "send/reason.html", _reason_context(request, who, draft, form, {}))


async def give_reason(request: web.Request) -> web.StreamResponse:
    """``POST /send/<draft>/reason``: keep the categories, basis and reason if they are good."""
    who, draft = await draft_of(request)
    unsent(draft)
    form = Form(draft.kind)
    data = await request.post()
    errors: dict[str, str] = {}
    reason = data.get("reason", "")
    draft.reason = reason if isinstance(reason, str) else ""
    if draft.mode != "correct":
        purpose = who.service.records.policy.purposes.get(draft.purpose)
        if purpose is None:
            raise web.HTTPSeeOther(url(draft, "purpose"))
        allowed = {c.value for c in purpose.categories}
        draft.categories = [c for c in data.getall("categories", []) if c in allowed]
        basis = basis_choice(purpose, str(data.get("lawful_basis", "")))
        draft.lawful_basis = "" if basis is None else basis.code
        if not draft.categories:
            errors["categories"] = "Select the kinds of information the record holds"
        if basis is None:
            errors["lawful_basis"] = "Select the lawful basis for sharing"
    try:
        record, _ = build_record(form, draft.answers)
        check_reason(draft.reason, names=record_names(draft.kind, record))
    except SubmissionError as exc:
        errors["reason"] = reason_error(draft, exc.rule)
    await who.save(draft)
    if errors:
        context = _reason_context(request, who, draft, form, errors)
        return render(request, "send/reason.html", context, status=400)
    seen(draft, "reason")
    await who.save(draft)
    raise web.HTTPSeeOther(next_url(request, draft, form, "reason"))
