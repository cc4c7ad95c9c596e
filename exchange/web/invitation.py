"""Accepting an invitation: the invited person's first step, ``/sign-in/invitation``.

The person enters their email address, the code their administrator gave them and a new
password (GOV.UK password guidance: 12 characters or more, checked by the service). The
code is used up and a session starts at the password step of a first sign-in, so the
existing steps follow: set up the authenticator app, save the recovery codes, then the
person's first page. A wrong address, a wrong, used or expired code all get one answer,
which never says whether an account exists; repeated failures are slowed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exchange.service.errors import UnprocessableError
from exchange.web.accounts import (
    SESSION,
    _set_session_cookie,
    _token,
    home,
)
from exchange.web.app import render, web_service


def _context(*, errors: list[dict[str, str]] | None = None, email: str = "") -> dict[str, Any]:
    errors = errors or []
    return {
        "errors": errors,
        "field_errors": {e["href"].removeprefix("#"): e["text"] for e in errors},
        "email": email,
    }


async def invitation_page(request: web.Request) -> web.StreamResponse:
    """``GET /sign-in/invitation``: email address, invitation code and a new password."""
    session = request.get(SESSION)
    if session is not None and session.signed_in:
        raise web.HTTPSeeOther(home(session.user.role))
    return render(request, "admin/accept_invitation.html", _context())


def _problems(email: str, code: str, password: str, confirm: str) -> list[dict[str, str]]:
    """Return what is missing or does not match, field by field."""
    errors = []
    if not email:
        errors.append({"href": "#email", "text": "Enter your email address"})
    if not code:
        errors.append({"href": "#code", "text": "Enter your invitation code"})
    if not password:
        errors.append({"href": "#password", "text": "Create a password"})
    elif not confirm:
        errors.append({"href": "#confirm", "text": "Confirm your password"})
    elif password != confirm:
        errors.append({"href": "#confirm", "text": "The passwords you entered do not match"})
    return errors


async def accept_invitation(request: web.Request) -> web.StreamResponse:
    """``POST /sign-in/invitation``: set the password; go on to set up the app."""
    form = await request.post()
    email = str(form.get("email", "")).strip()
    code = str(form.get("code", "")).strip()
    password = str(form.get("password", ""))
    confirm = str(form.get("confirm", ""))
    errors = _problems(email, code, password, confirm)
    if errors:
        return render(
            request,
            "admin/accept_invitation.html",
            _context(errors=errors, email=email),
            status=400,
        )
    service = web_service(request)
    try:
        step = await service.accept_invitation(email, code, password)
    except UnprocessableError as exc:
        # A password rule, named by the service in plain English; the code is not used up.
        errors = [{"href": "#password", "text": str(exc)}]
        return render(
            request,
            "admin/accept_invitation.html",
            _context(errors=errors, email=email),
            status=400,
        )
    if not step.accepted or step.next is None:
        status = 429 if step.outcome == "slowed" else 401
        errors = [{"href": "#code", "text": step.message}]
        return render(
            request,
            "admin/accept_invitation.html",
            _context(errors=errors, email=email),
            status=status,
        )
    token, _ = await service.start_session(step, replacing=_token(request))
    location = {
        "signed-in": home(step.user.role) if step.user is not None else "/",
        "second-factor": "/sign-in/security-code",
        "enrol-second-factor": "/sign-in/set-up-authenticator",
    }[step.next]
    response = web.HTTPSeeOther(location)
    _set_session_cookie(response, token)
    raise response


def add_invitation_routes(app: web.Application) -> None:
    """Add the page where an invited person sets up their account."""
    app.router.add_get("/sign-in/invitation", invitation_page)
    app.router.add_post("/sign-in/invitation", accept_invitation)
