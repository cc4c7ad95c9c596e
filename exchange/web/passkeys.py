"""The passkey pages: "Your passkeys" (list, add, remove), and signing in with a passkey.

- ``/account/passkeys``: the person's passkeys, with when each was added and last used
  (Europe/London), a link to add one and a link to remove each (after a confirmation page).
- ``/account/passkeys/add``: a name for the new passkey; the page's script
  (``/assets/passkeys.js``) asks ``/account/passkeys/add/options`` for the options, lets the
  browser make the passkey and sends its answer with the form. It needs a second factor
  given recently: otherwise the person is sent to ``/sign-in/confirm`` first.
- ``/sign-in/passkey``: the form of ``sign_in_other_ways.html`` (on the sign-in, security
  code and confirm pages), completed by the same script from
  ``/sign-in/passkey/options``. A passkey proves both factors, so the person lands where the
  sign-in steps end (``?to=``, or their home page).

The two ``options`` answers are JSON for the script; they are POSTs with the form's CSRF
token, as they make a challenge. Each challenge is bound to this browser through its CSRF
secret (the session's, or before sign-in the signed cookie's). Without JavaScript the
passkey buttons stay hidden and every other page works as before.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from exchange.auth.passkey import browser_binding
from exchange.service.errors import ServiceError, UnprocessableError
from exchange.service.passkeys import ConfirmFirstError
from exchange.web.accounts import (
    SESSION,
    _set_session_cookie,
    _token,
    landing,
    return_path,
    sign_in_context,
    with_return,
)
from exchange.web.app import render, web_service
from exchange.web.security import CSRF_SECRETS
from exchange.web.words import london_time

PASSKEYS: Final = "/account/passkeys"
ADD: Final = PASSKEYS + "/add"
#: One passkey's removal page.
REMOVE: Final = PASSKEYS + "/{passkey:[0-9]{1,12}}/remove"
#: Where a person confirms it's them (the step-up page) before adding a passkey.
CONFIRM: Final = "/sign-in/confirm"

#: What the list says after an action (the ``done`` query value names it: no data).
DONE: Final = {
    "added": "Your passkey was added. You can use it to sign in.",
    "removed": "Your passkey was removed. It can no longer be used to sign in.",
}
#: What a sign-in form sent without the browser's answer says (the prompt was cancelled).
NOT_USED: Final = (
    "Your passkey was not used. Try again, and use your fingerprint, face or screen lock when "
    "your browser asks, or sign in with your email address and password"
)


async def _binding(request: web.Request) -> bytes:
    """Return what binds a challenge to this browser: its CSRF secret, hashed."""
    return browser_binding(await request.app[CSRF_SECRETS].csrf_secret(request))


def _options(text: str) -> web.Response:
    return web.Response(text=text, content_type="application/json")


def _options_refused(exc: ServiceError) -> web.Response:
    """Tell the script the options were refused; it then sends the form, which says why."""
    return web.json_response({"error": str(exc)}, status=exc.status)


async def passkeys_page(request: web.Request) -> web.StreamResponse:
    """``GET /account/passkeys``: the person's passkeys."""
    passkeys = web_service(request).passkeys
    rows = [
        {
            "name": p.name,
            "added": london_time(p.created),
            "last_used": "Not used yet" if p.last_used is None else london_time(p.last_used),
            "remove": f"{PASSKEYS}/{p.id}/remove",
        }
        for p in await passkeys.passkeys(request[SESSION].user)
    ]
    return render(
        request,
        "account/passkeys.html",
        {
            "passkeys": rows,
            "enabled": passkeys.enabled,
            "done": DONE.get(request.query.get("done", "")),
        },
    )


def _add_context(name: str = "", errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    errors = errors or []
    return {
        "name": name,
        "errors": errors,
        "field_errors": {e["href"].removeprefix("#"): e["text"] for e in errors},
    }


def _confirm_first() -> web.HTTPSeeOther:
    return web.HTTPSeeOther(with_return(CONFIRM, ADD))


async def add_page(request: web.Request) -> web.StreamResponse:
    """``GET /account/passkeys/add``: name the passkey (after confirming it's you)."""
    if not await web_service(request).passkeys.may_add(request[SESSION]):
        raise _confirm_first()
    return render(request, "account/add_passkey.html", _add_context())


async def add_options(request: web.Request) -> web.StreamResponse:
    """``POST /account/passkeys/add/options``: the options for the browser (JSON)."""
    form = await request.post()
    token = _token(request) or ""
    try:
        options = await web_service(request).passkeys.registration_options(
            token, binding=await _binding(request), name=str(form.get("name", ""))
        )
    except ServiceError as exc:
        return _options_refused(exc)
    return _options(options)


async def add(request: web.Request) -> web.StreamResponse:
    """``POST /account/passkeys/add``: check the browser's answer and keep the passkey."""
    form = await request.post()
    name = str(form.get("name", ""))
    try:
        await web_service(request).passkeys.add(
            _token(request) or "",
            binding=await _binding(request),
            answer=str(form.get("credential", "")),
            name=name,
        )
    except ConfirmFirstError:
        raise _confirm_first() from None
    except ServiceError as exc:
        named = isinstance(exc, UnprocessableError) and exc.details["rule"] == "passkey-name"
        errors = [{"href": "#name" if named else "#add-passkey", "text": str(exc)}]
        context = _add_context(name, errors)
        return render(request, "account/add_passkey.html", context, status=exc.status)
    raise web.HTTPSeeOther(PASSKEYS + "?done=added")


def _passkey_id(request: web.Request) -> int:
    return int(request.match_info["passkey"])


async def remove_page(request: web.Request) -> web.StreamResponse:
    """``GET /account/passkeys/<number>/remove``: ask before removing a passkey."""
    passkey = await web_service(request).passkeys.passkey(
        request[SESSION].user, _passkey_id(request)
    )
    return render(
        request,
        "admin/confirm.html",
        {
            "title": "Remove a passkey",
            "heading": f"Remove the passkey {passkey.name}?",
            "paragraphs": [
                "You will no longer be able to sign in with it.",
                "To use that device again, add a new passkey.",
            ],
            "warning": None,
            "button_text": "Remove passkey",
            "dangerous": True,
            "action": f"{PASSKEYS}/{passkey.id}/remove",
            "cancel": PASSKEYS,
            "errors": [],
        },
    )


async def remove(request: web.Request) -> web.StreamResponse:
    """``POST /account/passkeys/<number>/remove``: remove it."""
    await web_service(request).passkeys.remove(request[SESSION].user, _passkey_id(request))
    raise web.HTTPSeeOther(PASSKEYS + "?done=removed")


async def sign_in_options(request: web.Request) -> web.StreamResponse:
    """``POST /sign-in/passkey/options``: the options for the browser (JSON)."""
    try:
        options = await web_service(request).passkeys.sign_in_options(
            binding=await _binding(request), session=request.get(SESSION)
        )
    except ServiceError as exc:
        return _options_refused(exc)
    return _options(options)


async def sign_in(request: web.Request) -> web.StreamResponse:
    """``POST /sign-in/passkey``: check the browser's answer; sign in, or confirm it's you."""
    form = await request.post()
    answer = str(form.get("credential", ""))
    message = NOT_USED
    if answer:
        try:
            token, session = await web_service(request).passkeys.sign_in(
                binding=await _binding(request), answer=answer, replacing=_token(request)
            )
        except ServiceError as exc:
            message = str(exc)
        else:
            response = web.HTTPSeeOther(landing(request, session.user.role))
            _set_session_cookie(response, token)
            raise response
    return _not_accepted(request, message)


def _not_accepted(request: web.Request, message: str) -> web.StreamResponse:
    """Say the passkey did not sign the person in: on the sign-in page, or its own page."""
    to = return_path(request)
    held = request.get(SESSION)
    if held is not None and held.signed_in:
        # Confirming it's them: the sign-in page is not for a signed-in person.
        return render(
            request,
            "account/passkey_not_accepted.html",
            {"message": message + ".", "again": with_return(CONFIRM, to)},
            status=401,
        )
    errors = [{"href": "#passkey-sign-in", "text": message}]
    context = sign_in_context(request, errors=errors, to=to)
    return render(request, "sign_in.html", context, status=401)


def add_passkey_routes(app: web.Application) -> None:
    """Add "Your passkeys" and signing in with a passkey to the web pages."""
    router = app.router
    router.add_get(PASSKEYS, passkeys_page)
    router.add_get(ADD, add_page)
    router.add_post(ADD, add)
    router.add_post(ADD + "/options", add_options)
    router.add_get(REMOVE, remove_page)
    router.add_post(REMOVE, remove)
    router.add_post("/sign-in/passkey", sign_in)
    router.add_post("/sign-in/passkey/options", sign_in_options)
