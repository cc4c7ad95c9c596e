"""Step-up: a recent second factor before a page shows a record or hands one out.

A person signed in hours ago who walks away from an unlocked screen must not leave every
record open to whoever sits down. So the pages that show record content or give out a copy
of it ask for a second factor given within ``[web] step_up_window`` (15 minutes by default:
:attr:`~exchange.auth.session.SessionPolicy.step_up_window`):

- ``GET /inbox/<digest>`` once the record is opened, and ``POST /inbox/<digest>/open``;
- ``GET /inbox/<digest>/attachments/<n>``, each document;
- ``POST /sent/<digest>/copy``, the sender's own copy ("Show what we sent");
- ``POST /subject-access`` with the "Download copies" button (the DPO's zip of copies).

Those pages call :func:`ask_again_unless_recent` (or are wrapped by
:func:`needs_recent_factor`) before they read anything: with no recent factor the person
is sent to ``/sign-in/confirm?to=<page>`` and nothing is read or recorded. A GET returns
to the page asked for; a POST (a button) and a download return to the page that has the
button or the link, where the person presses it again: the form's values are never put
in an address, and a browser left on the confirm page while a file downloads would look
as if nothing had happened. Pages that list items (the inbox, sent items) and the API,
which machines use with their own tokens, are not asked.

The confirm page (GOV.UK "Confirm it's you") takes a code from the authenticator app or a
recovery code, checked, counted and slowed as at sign-in (:meth:`Accounts.step_up`); the
session keeps its start time and level, gets a new id, and gives its factor now. Other
ways to confirm (single sign-on, passkeys) come in through the shared partial
``sign_in_other_ways.html``; an account without an app is never shown a form it cannot use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from exchange.auth.session import Session
from exchange.logs import get_logger
from exchange.service.accounts import SlowedDownError
from exchange.service.errors import ServiceError
from exchange.web.accounts import (
    SESSION,
    _set_session_cookie,
    _token,
    landing,
    other_ways_context,
    return_path,
    with_return,
)
from exchange.web.app import SIGNED_IN, render, web_service
from exchange.web.security import SAFE_METHODS, Handler, route_name
from exchange.web.sso import sso_providers

log = get_logger("exchange.web")

#: The confirm page.
CONFIRM_PATH: Final = "/sign-in/confirm"
#: What the confirm page says when no code was typed, and when the code is refused.
NO_CODE: Final = "Enter the code from your authenticator app, or a recovery code"
WRONG_CODE: Final = "Enter a correct code from your authenticator app, or a recovery code"


def ask_again_unless_recent(request: web.Request, *, back: str | None = None) -> None:
    """Go on if the session gave a second factor recently; otherwise ask for it again.

    Raises a redirect to the confirm page, which returns to ``back`` (for a GET, the page
    itself unless given). Call it before reading anything, so a refusal records nothing.
    """
    session: Session = request[SESSION]
    if web_service(request).accounts.factor_is_recent(session):
        return
    if back is None and request.method in SAFE_METHODS:
        back = request.path
    log.info("web.step-up-asked", session=session.ref, path=route_name(request))
    raise web.HTTPSeeOther(with_return(CONFIRM_PATH, back))


def needs_recent_factor(
    back: Callable[[web.Request], str] | None = None,
) -> Callable[[Handler], Handler]:
    """Wrap a page handler that shows or gives out a record: ask again unless recent.

    ``back`` names the page to return to after confirming (for a POST or a download, the
    page with its button or link); a GET page returns to itself without it.
    """

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            ask_again_unless_recent(request, back=None if back is None else back(request))
            return await handler(request)

        return checked

    return wrap


def window_words(seconds: int) -> str:
    """Return the step-up window in words: ``15 minutes``, ``1 hour``."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour" if hours == 1 else f"{hours} hours"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


def _what(to: str | None) -> str:
    """Return what the person is about to do, for the sentence that says why we ask."""
    if to is not None and to.startswith("/subject-access"):
        return "download copies of records"
    return "open this record"


def _signed_in(request: web.Request) -> tuple[str, Session]:
    """Return the token and signed-in session, or send the person to sign in."""
    token = _token(request)
    session: Session | None = request.get(SESSION)
    if token is None or session is None or not request.get(SIGNED_IN):
        raise web.HTTPSeeOther(with_return("/sign-in", return_path(request)))
    return token, session


async def _context(
    request: web.Request, session: Session, errors: list[dict[str, str]]
) -> dict[str, Any]:
    to = return_path(request)
    service = web_service(request)
    ways = await service.passkeys.ways_to_confirm(session.user)
    return {
        "errors": errors,
        "has_app": ways.code,
        "what": _what(to),
        "window": window_words(service.accounts.policy.step_up_window),
        **other_ways_context(to),
        "passkeys_enabled": ways.passkey,
        "sso_providers": sso_providers(request, session.user.org),
        "step_up": True,
    }


async def confirm_page(request: web.Request) -> web.StreamResponse:
    """``GET /sign-in/confirm``: confirm it's you (or, with a recent factor, go on)."""
    _, session = _signed_in(request)
    if web_service(request).accounts.factor_is_recent(session):
        raise web.HTTPSeeOther(landing(request, session.user.role))
    return render(request, "confirm.html", await _context(request, session, []))


async def confirm(request: web.Request) -> web.StreamResponse:
    """``POST /sign-in/confirm``: check the code; back to the page asked for."""
    token, session = _signed_in(request)
    accounts = web_service(request).accounts
    code = str((await request.post()).get("code", "")).strip()
    status = 400
    if not await accounts.has_authenticator_app(session):
        error = None  # no form was shown: the page says what else there is
    elif not code:
        error = NO_CODE
    else:
        try:
            new_token, new = await accounts.step_up(token, code)
        except SlowedDownError as exc:
            error, status = str(exc), 429
        except ServiceError:
            error = WRONG_CODE
        else:
            log.info("web.step-up", session=new.ref)
            response = web.HTTPSeeOther(landing(request, new.user.role))
            _set_session_cookie(response, new_token)
            raise response
    errors = [] if error is None else [{"href": "#code", "text": error}]
    return render(request, "confirm.html", await _context(request, session, errors), status=status)


def add_step_up_routes(app: web.Application) -> None:
    """Add the confirm page."""
    app.router.add_get(CONFIRM_PATH, confirm_page)
    app.router.add_post(CONFIRM_PATH, confirm)
