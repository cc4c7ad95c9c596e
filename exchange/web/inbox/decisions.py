"""Acknowledging an inbox item with an outcome, or rejecting it with a reason.

Each is a short form of radios, one per code the service offers
(:meth:`~exchange.service.node_service.NodeService.decision_codes`): the outcome or reason
travels in the signed receipt as a fixed code, never as free text, so there is no text box.
A value that is not one of the codes (a tampered form) is refused like no choice at all, and
never echoed. The decision is the service's (:meth:`NodeService.decide`, which checks the
role and the item's state); then a confirmation page says the sender has been told. A
second submission of the same form (a double click without JavaScript, the back button)
finds the item decided and shows the same confirmation.
"""

from __future__ import annotations

import contextlib
from typing import Final

from aiohttp import web

from exchange.service.errors import ConflictError
from exchange.web.accounts import SESSION
from exchange.web.app import path_digest, render, web_service
from exchange.web.inbox.item import item_title
from exchange.web.inbox.record_view import words
from exchange.web.words import kind_name, organisation_name

#: Each code's words and hint, as the radios show them.
CODE_WORDS: Final = {
    "accepted-for-assessment": (
        "Accepted for assessment",
        "Your organisation will assess the child's needs.",
    ),
    "no-further-action": (
        "No further action",
        "Your organisation has read the record and will take no further action.",
    ),
    "query": (
        "We have a question about it",
        (
            "Your organisation accepts the record but needs to ask the sender something. "
            "Reply to them with your question."
        ),
    ),
    "not-for-us": (
        "It was not meant for us",
        "It should have gone to another organisation.",
    ),
    "wrong-pupil": (
        "It is about a child who is not ours",
        "The child it is about does not attend or use your organisation.",
    ),
    "unreadable": (
        "We cannot read it",
        "The record or one of its documents could not be read.",
    ),
    "duplicate": (
        "We already have it",
        "The same record was sent before.",
    ),
}

#: Each form's words: its question, hint, error, button and field name.
FORMS: Final = {
    True: {
        "question": "What will your organisation do with this record?",
        "hint": (
            "Acknowledging tells {sender}, with a signed receipt, that your organisation has "
            "accepted the record and what happens next. You cannot change this afterwards."
        ),
        "error": "Select what your organisation will do with this record",
        "button": "Acknowledge record",
        "field": "outcome",
    },
    False: {
        "question": "Why are you rejecting this record?",
        "hint": (
            "Rejecting tells {sender}, with a signed receipt, that your organisation will not "
            "act on this record, and why. You cannot change this afterwards."
        ),
        "error": "Select why you are rejecting this record",
        "button": "Reject record",
        "field": "reason",
    },
}


def _options(codes: tuple[str, ...]) -> list[dict[str, str]]:
    options = []
    for code in codes:
        text, hint = CODE_WORDS.get(code, (words(code), ""))
        options.append({"value": code, "text": text, "hint": hint})
    return options


async def _form(request: web.Request, *, accept: bool, error: bool = False) -> web.Response:
    """Render the acknowledge or reject form (with its error when nothing valid was chosen)."""
    service = web_service(request)
    user = request[SESSION].user
    view = await service.inbox_item(user, path_digest(request))
    digest = view.item.envelope.digest.hex()
    if not service.may_open(user):
        raise web.HTTPForbidden
    if view.item.state in {"acknowledged", "rejected"}:
        raise web.HTTPSeeOther(f"/inbox/{digest}/decided")
    if view.item.state == "recalled":
        raise web.HTTPSeeOther(f"/inbox/{digest}")
    words_of = FORMS[accept]
    sender = organisation_name(request, view.item.envelope.sender)
    field = words_of["field"]
    return render(
        request,
        "inbox/decide.html",
        {
            "title": words_of["question"],
            "item_title": item_title(request, view),
            "hint": words_of["hint"].format(sender=sender),
            "field": field,
            "options": _options(service.decision_codes(accept=accept)),
            "error": words_of["error"] if error else None,
            "errors": [{"href": f"#{field}", "text": words_of["error"]}] if error else [],
            "button_text": words_of["button"],
            "warning": not accept,
            "action": request.path,
            "href": f"/inbox/{digest}",
        },
        status=400 if error else 200,
    )


async def _decide(request: web.Request, *, accept: bool) -> web.StreamResponse:
    """Check the chosen code is one offered, then acknowledge or reject through the service."""
    service = web_service(request)
    user = request[SESSION].user
    digest = path_digest(request)
    form = await request.post()
    code = form.get(FORMS[accept]["field"])
    if not isinstance(code, str) or code not in service.decision_codes(accept=accept):
        return await _form(request, accept=accept, error=True)
    # Decided already (a second click): the confirmation shows how the item stands.
    with contextlib.suppress(ConflictError):
        await service.decide(user, digest, accept=accept, code=code)
    raise web.HTTPSeeOther(f"/inbox/{digest.hex()}/decided")


async def acknowledge_page(request: web.Request) -> web.StreamResponse:
    """``GET /inbox/{digest}/acknowledge``: choose the outcome."""
    return await _form(request, accept=True)


async def acknowledge(request: web.Request) -> web.StreamResponse:
    """``POST /inbox/{digest}/acknowledge``: acknowledge with the chosen outcome."""
    return await _decide(request, accept=True)


async def reject_page(request: web.Request) -> web.StreamResponse:
    """``GET /inbox/{digest}/reject``: choose the reason."""
    return await _form(request, accept=False)


async def reject(request: web.Request) -> web.StreamResponse:
    """``POST /inbox/{digest}/reject``: reject with the chosen reason."""
    return await _decide(request, accept=False)


async def decided_page(request: web.Request) -> web.StreamResponse:
    """``GET /inbox/{digest}/decided``: the confirmation that the sender has been told."""
    service = web_service(request)
    user = request[SESSION].user
    view = await service.inbox_item(user, path_digest(request))
    if not service.may_open(user):
        raise web.HTTPForbidden
    digest = view.item.envelope.digest.hex()
    state = view.item.state
    if state not in {"acknowledged", "rejected"}:
        raise web.HTTPSeeOther(f"/inbox/{digest}")
    return render(
        request,
        "inbox/decided.html",
        {
            "title": "Record acknowledged" if state == "acknowledged" else "Record rejected",
            "state": state,
            "kind": kind_name(view.item.envelope.record_kind).lower(),
            "sender": organisation_name(request, view.item.envelope.sender),
            "href": f"/inbox/{digest}",
            "reply_href": f"/send/reply/{digest}",
        },
    )
