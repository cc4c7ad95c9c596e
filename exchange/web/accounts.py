"""Signing in and out of the staff web pages, and the session every other page relies on.

The steps are the GOV.UK pattern for an account with a second factor:

1. ``/sign-in``: email address and password. A refusal says the same thing whether or not
   the address has an account; repeated failures are slowed by the service.
2. ``/sign-in/set-up-authenticator`` (first sign-in of a role that reads records): a QR
   code and the secret as text, confirmed with a code from the app; the single-use
   recovery codes are shown once on ``/sign-in/recovery-codes``.
3. ``/sign-in/security-code``: a code from the app, or a recovery code.
4. ``/sign-out`` (a POST with its CSRF token, so another site cannot sign anyone out).

The session lives in the node's store (:mod:`exchange.service.accounts`); the browser holds
only its token, in a ``__Host-`` cookie that is ``Secure``, ``HttpOnly`` and
``SameSite=Strict``. Every step that raises the session's level gets a new token, so a token
seen before sign-in opens nothing after it. Once a session exists its CSRF secret is the
session's own (:class:`SessionCsrf`); before it, the signed cookie of
:class:`~exchange.web.security.SignedCookieCsrf`.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlencode

from aiohttp import hdrs, web

from exchange.auth.session import Session
from exchange.logs import get_logger
from exchange.service.accounts import SlowedDownError
from exchange.service.errors import ServiceError
from exchange.service.sso import provider_choices
from exchange.web.app import (
    ORGANISATION_NAME,
    SIGNED_IN,
    SIGNED_IN_ROLE,
    navigation,
    render,
    web_service,
)
from exchange.web.security import (
    CSRF_SECRETS,
    CsrfSecrets,
    Handler,
    SignedCookieCsrf,
    csrf_middleware,
    is_page,
)
from exchange.web.words import organisation_name

log = get_logger("exchange.web")

#: The session cookie: ``__Host-`` so no other host or path can set it.
SESSION_COOKIE: Final = "__Host-exchange-session"
#: The signed-in session of this request, if any (set by :func:`session_middleware`).
SESSION: Final = web.RequestKey("web_session", Session)


def home(role: str) -> str:
    """Return where a signed-in person of ``role`` lands: their first navigation link."""
    links = navigation(role)
    return links[0][0] if links else "/"


#: A page a person may be sent back to after signing in: a path on this node only (one
#: leading slash, so never ``//host``), of the characters page paths use, and short.
_RETURN_PATH: Final = re.compile(r"/(?!/)[A-Za-z0-9/_-]{1,200}")


def return_path(request: web.Request) -> str | None:
    """Return the page the sign-in steps should end on (``?to=``), if it is a safe one.

    A link from a notice email (``/inbox/<envelope id>``) followed while signed out comes
    back here after sign-in. Anything that is not a plain path of this node (another host,
    a sign-in step, a query) is ignored, so the parameter cannot send anyone elsewhere.
    """
    value = request.query.get("to", "")
    if _RETURN_PATH.fullmatch(value) is None or value.startswith(("/sign-in", "/assets/")):
        return None
    return value


def with_return(path: str, to: str | None) -> str:
    """Return ``path`` carrying the page to return to, if there is one."""
    return path if to is None else f"{path}?{urlencode({'to': to})}"


def other_ways_context(to: str | None) -> dict[str, object]:
    """Return what ``sign_in_other_ways.html`` needs: the other ways to sign in or confirm.

    ``sso_providers`` (each ``{"id": ..., "label": ...}``) and ``passkeys_enabled`` say
    which ways this node offers; ``to_query`` carries the page to return to.
    """
    return {"sso_providers": [], "passkeys_enabled": False, "to_query": with_return("", to)}


def landing(request: web.Request, role: str) -> str:
    """Return where the sign-in steps end: the page asked for, or the role's home."""
    return return_path(request) or home(role)


#: Paths a person without a session may see: the start page, the sign-in steps, assets.
OPEN_PATHS: Final = frozenset({"/", "/sign-in", "/signed-out"})
#: The sign-in steps after the password, for a session that has not reached its level.
SIGN_IN_STEPS: Final = frozenset(
    {"/sign-in/set-up-authenticator", "/sign-in/recovery-codes", "/sign-in/security-code"}
)

#: What the email and password form says for every refusal (never who has an account).
REFUSED: Final = "Enter a correct email address and password"
ENDED: Final = "Your session has ended. Sign in again."


class SessionCsrf:
    """CSRF secrets bound to the server-side session once there is one.

    Before sign-in the signed double-submit cookie protects the sign-in form itself (so no
    other site can sign a person in as someone else); after it, the secret is the session's,
    so a token from one session is worthless in another.
    """

    def __init__(self, before_sign_in: SignedCookieCsrf) -> None:
        self._cookie = before_sign_in

    async def csrf_secret(self, request: web.Request) -> bytes:
        """Return the session's secret, or the signed cookie's without a session."""
        session: Session | None = request.get(SESSION)
        if session is not None:
            return session.csrf_secret
        return await self._cookie.csrf_secret(request)

    def prepare_response(self, request: web.Request, response: web.StreamResponse) -> None:
        """Set the pre-sign-in cookie when this request made one."""
        self._cookie.prepare_response(request, response)


def _set_session_cookie(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, path="/", secure=True, httponly=True, samesite="Strict"
    )


def _clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


def _token(request: web.Request) -> str | None:
    token = request.cookies.get(SESSION_COOKIE)
    return token or None


def _see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Find the request's session; send people who are not signed in to the sign-in page.

    Runs before the CSRF check, so a signed-in form is checked against its session's secret.
    """
    if not is_page(request) or request.path.startswith("/assets/"):
        return await handler(request)
    token = _token(request)
    session = None
    if token is not None:
        session = await web_service(request).accounts.session_for(token)
    path = request.path
    if session is not None:
        request[SESSION] = session
        if session.signed_in:
            request[SIGNED_IN] = True
            request[ORGANISATION_NAME] = organisation_name(request, session.user.org)
            request[SIGNED_IN_ROLE] = session.user.role
    if path in OPEN_PATHS or path.startswith("/sign-in"):
        return await handler(request)
    if session is None or not session.signed_in:
        if request.method not in {hdrs.METH_GET, hdrs.METH_HEAD}:
            # A form sent after the session ended: say so, and keep nothing of it.
            response: web.StreamResponse = render(
                request, "sign_in.html", sign_in_context(request, ended=True), status=401
            )
            if token is not None:
                _clear_session_cookie(response)
            return response
        to = request.path if _RETURN_PATH.fullmatch(request.path) else None
        raise _see_other(with_return("/sign-in", to))
    return await handler(request)


def sign_in_context(
    request: web.Request,
    *,
    errors: list[dict[str, str]] | None = None,
    email: str = "",
    ended: bool = False,
    to: str | None = None,
) -> dict[str, object]:
    """Return what the sign-in page shows: the form's errors and values, other ways in."""
    errors = errors or []
    # Each field shows its own message beside it, as the summary's link points there.
    field_errors = {e["href"].removeprefix("#"): e["text"] for e in errors}
    return {
        "errors": errors,
        "field_errors": field_errors,
        "email": email,
        "ended": ended,
        "to_query": with_return("", to),
        "passkeys_enabled": web_service(request).passkeys.enabled,
        "sso_providers": provider_choices(web_service(request).sso.providers()),
    }


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    """``GET /sign-in``: the email address and password form (or home, if signed in)."""
    if request.get(SIGNED_IN):
        raise _see_other(landing(request, request[SESSION].user.role))
    return render(request, "sign_in.html", sign_in_context(request, to=return_path(request)))


async def sign_in(request: web.Request) -> web.StreamResponse:
    """``POST /sign-in``: check the password; start a session; go to the next step."""
    form = await request.post()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    errors = []
    if not email:
        errors.append({"href": "#email", "text": "Enter your email address"})
    if not password:
        errors.append({"href": "#password", "text": "Enter your password"})
    if errors:
        return render(
            request,
            "sign_in.html",
            sign_in_context(request, errors=errors, email=email, to=return_path(request)),
            status=400,
        )
    accounts = web_service(request).accounts
    step = await accounts.begin_sign_in(email, password)
    if not step.accepted or step.next is None:
        text = step.message if step.outcome == "slowed" else REFUSED
        status = 429 if step.outcome == "slowed" else 401
        errors = [{"href": "#email", "text": text}]
        return render(
            request,
            "sign_in.html",
            sign_in_context(request, errors=errors, email=email, to=return_path(request)),
            status=status,
        )
    token, _ = await accounts.start_session(step, replacing=_token(request))
    location = {
        "signed-in": landing(request, step.user.role) if step.user is not None else "/",
        "second-factor": with_return("/sign-in/security-code", return_path(request)),
        "enrol-second-factor": with_return("/sign-in/set-up-authenticator", return_path(request)),
    }[step.next]
    response = _see_other(location)
    _set_session_cookie(response, token)
    raise response


def _pending(request: web.Request) -> tuple[str, Session]:
    """Return the token and session of a sign-in under way, or send the person back."""
    token = _token(request)
    session = request.get(SESSION)
    if token is None or session is None:
        raise _see_other("/sign-in")
    return token, session


async def set_up_page(request: web.Request) -> web.StreamResponse:
    """``GET /sign-in/set-up-authenticator``: a new secret as a QR code and as text."""
    token, session = _pending(request)
    if session.signed_in:
        raise _see_other(landing(request, session.user.role))
    enrolment = await web_service(request).accounts.enrol_totp(token, keep_pending=True)
    return render(
        request,
        "set_up_authenticator.html",
        {
            "qr_svg": enrolment.qr_svg(),
            "secret_text": enrolment.secret_text,
            "errors": [],
            "to_query": with_return("", return_path(request)),
        },
    )


async def set_up(request: web.Request) -> web.StreamResponse:
    """``POST /sign-in/set-up-authenticator``: confirm the app with a code from it."""
    token, _ = _pending(request)
    form = await request.post()
    code = "".join(str(form.get("code", "")).split())
    accounts = web_service(request).accounts
    if not code:
        error = "Enter the 6-digit code from your authenticator app"
    else:
        try:
            confirmed = await accounts.confirm_totp_enrolment(token, code)
        except SlowedDownError as exc:
            error = str(exc)
        except ServiceError:
            error = "Enter the 6-digit code your authenticator app shows now"
        else:
            response = render(
                request,
                "recovery_codes.html",
                {
                    "codes": confirmed.recovery_codes,
                    "home": landing(request, confirmed.session.user.role),
                },
            )
            _set_session_cookie(response, confirmed.token)
            log.info("web.second-factor-enrolled", session=confirmed.session.ref)
            return response
    # The same secret again: the person may already have added it to their app.
    enrolment = await accounts.enrol_totp(token, keep_pending=True)
    return render(
        request,
        "set_up_authenticator.html",
        {
            "qr_svg": enrolment.qr_svg(),
            "secret_text": enrolment.secret_text,
            "errors": [{"href": "#code", "text": error}],
            "to_query": with_return("", return_path(request)),
        },
        status=400,
    )


async def security_code_page(request: web.Request) -> web.StreamResponse:
    """``GET /sign-in/security-code``: the code from the app, or a recovery code."""
    _, session = _pending(request)
    if session.signed_in:
        raise _see_other(landing(request, session.user.role))
    return render(request, "security_code.html", await _security_code_context(request, session))


async def _security_code_context(
    request: web.Request, session: Session, errors: list[dict[str, str]] | None = None
) -> dict[str, object]:
    """Return what the security code page shows: the code form, a passkey, or both."""
    ways = await web_service(request).passkeys.ways_to_confirm(session.user)
    return {
        "errors": errors or [],
        "to_query": with_return("", return_path(request)),
        "has_code": ways.code,
        "passkeys_enabled": ways.passkey,
    }


async def security_code(request: web.Request) -> web.StreamResponse:
    """``POST /sign-in/security-code``: check the code; a new session at the full level."""
    token, session = _pending(request)
    form = await request.post()
    code = str(form.get("code", "")).strip()
    if not code:
        error = "Enter the code from your authenticator app, or a recovery code"
    else:
        try:
            new_token, new = await web_service(request).accounts.verify_second_factor(token, code)
        except SlowedDownError as exc:
            error = str(exc)
        except ServiceError:
            error = "Enter a correct code from your authenticator app, or a recovery code"
        else:
            response = _see_other(landing(request, new.user.role))
            _set_session_cookie(response, new_token)
            raise response
    context = await _security_code_context(request, session, [{"href": "#code", "text": error}])
    return render(request, "security_code.html", context, status=400)


async def sign_out(request: web.Request) -> web.StreamResponse:
    """``POST /sign-out``: end the session here and forget its cookie."""
    token = _token(request)
    if token is not None:
        await web_service(request).accounts.end_session(token)
    response = _see_other("/signed-out")
    _clear_session_cookie(response)
    raise response


async def signed_out(request: web.Request) -> web.StreamResponse:
    """``GET /signed-out``: confirmation that the person has signed out."""
    return render(request, "signed_out.html", {})


def add_account_routes(app: web.Application) -> None:
    """Add the sign-in steps, sign-out and the session middleware to the web pages."""
    before = app[CSRF_SECRETS]
    if isinstance(before, SignedCookieCsrf):
        csrf: CsrfSecrets = SessionCsrf(before)
        app[CSRF_SECRETS] = csrf
    # The session is found before the CSRF check, which uses the session's secret.
    app.middlewares.insert(app.middlewares.index(csrf_middleware), session_middleware)
    router = app.router
    router.add_get("/sign-in", sign_in_page)
    router.add_post("/sign-in", sign_in)
    router.add_get("/sign-in/set-up-authenticator", set_up_page)
    router.add_post("/sign-in/set-up-authenticator", set_up)
    router.add_get("/sign-in/security-code", security_code_page)
    router.add_post("/sign-in/security-code", security_code)
    router.add_post("/sign-out", sign_out)
    router.add_get("/signed-out", signed_out)
