"""Signing in, or confirming it is you, through an organisation's OpenID provider.

- ``GET /sign-in/sso/<id>`` (``?to=<path>``, ``&step_up=1``): sends the browser to the
  provider, holding the sign-in under way in a sealed cookie (``__Host-exchange-sso``:
  ``Secure``, ``HttpOnly``, ``SameSite=Lax``, ten minutes). It must be ``Lax``: the
  provider sends the browser back from another site, and a ``Strict`` cookie is not sent
  with that navigation.
- ``GET /sign-in/sso/callback``: the provider's answer. Everything is checked by the
  service (:class:`~exchange.service.sso.SingleSignOn`); on success the session cookie is
  set and a short page continues to where the person was going. It is a page, not a
  redirect, because a redirect answering a navigation from another site is still counted
  as cross-site by browsers, and would arrive without the ``SameSite=Strict`` session
  cookie just set; a navigation from this page is the node's own. The page continues by
  itself (``<meta http-equiv="refresh">``, no JavaScript) and has a button for browsers
  that do not.

A refusal is a plain page that says what to do, naming the provider and nothing from it:
no token, claim or email address.
"""

from __future__ import annotations

import secrets
from typing import Final

from aiohttp import web

from exchange.auth.sso_pending import KEY_LEN, PENDING_LIFETIME, open_pending, seal_pending
from exchange.keys.ids import OrgId
from exchange.service.sso import (
    CALLBACK_PATH,
    Callback,
    SsoRefusedError,
    SsoSignIn,
    expired_refusal,
    provider_choices,
)
from exchange.web.accounts import (
    _set_session_cookie,
    _token,
    landing,
    return_path,
    with_return,
)
from exchange.web.app import SIGNED_IN, render, web_service

#: The cookie holding a sign-in under way.
PENDING_COOKIE: Final = "__Host-exchange-sso"
#: The key sealing those cookies: the node's, the same in each of its processes.
PENDING_KEY: Final = web.AppKey("sso_pending_key", bytes)
#: Each kind of refusal's page title.
_TITLES: Final = {
    "failed": "You could not sign in",
    "not-allowed": "You cannot sign in with this account",
    "no-mfa": "We could not confirm it is you",
    "ended": "Your session has ended",
}
_MAX_PARAM: Final = 4096


def sso_providers(request: web.Request, org: OrgId | None = None) -> list[dict[str, str]]:
    """Return the providers the sign-in pages offer (of ``org`` if given): ids and labels."""
    return [dict(c) for c in provider_choices(web_service(request).sso.providers(org))]


def _clear_pending(response: web.StreamResponse) -> None:
    response.del_cookie(PENDING_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")


def _refused(request: web.Request, exc: SsoRefusedError, to: str | None) -> web.Response:
    status = 401 if exc.kind == "ended" else 403
    response = render(
        request,
        "sso_refused.html",
        {
            "title": _TITLES[exc.kind],
            "message": str(exc) + ".",
            "kind": exc.kind,
            "to_query": with_return("", to),
        },
        status=status,
    )
    _clear_pending(response)
    return response


async def start(request: web.Request) -> web.StreamResponse:
    """``GET /sign-in/sso/<id>``: send the browser to the provider."""
    service = web_service(request)
    to = return_path(request)
    step_up = request.query.get("step_up") == "1"
    if step_up and not request.get(SIGNED_IN):
        raise web.HTTPSeeOther(with_return("/sign-in", to))
    try:
        url, pending = await service.sso.begin(
            request.match_info["provider"], return_to=to, step_up=step_up,
            session_token=_token(request), now=service.clock(),
        )  # fmt: skip
    except SsoRefusedError as exc:
        return _refused(request, exc, to)
    response = web.HTTPSeeOther(url)
    sealed = seal_pending(request.app[PENDING_KEY], pending, secrets.token_bytes)
    response.set_cookie(
        PENDING_COOKIE, sealed, path="/", secure=True, httponly=True, samesite="Lax",
        max_age=PENDING_LIFETIME,
    )  # fmt: skip
    raise response


def _next_page(request: web.Request, done: SsoSignIn, to: str | None) -> str:
    if done.next == "second-factor":
        return with_return("/sign-in/security-code", to)
    if done.next == "enrol-second-factor":
        return with_return("/sign-in/set-up-authenticator", to)
    return to or landing(request, done.session.user.role)


async def callback(request: web.Request) -> web.StreamResponse:
    """``GET /sign-in/sso/callback``: check the provider's answer; continue, or refuse."""
    service = web_service(request)
    now = service.clock()
    pending = open_pending(
        request.app[PENDING_KEY], request.cookies.get(PENDING_COOKIE, ""), now=now
    )
    if pending is None:
        return _refused(request, expired_refusal(), None)
    query = request.query
    if any(len(v) > _MAX_PARAM for v in query.values()):
        return _refused(request, expired_refusal(), pending.return_to)
    answer = Callback(
        state=query.get("state", ""),
        code=query.get("code"),
        iss=query.get("iss"),
        error=query.get("error"),
    )
    try:
        done = await service.sso.finish(pending, answer, now=now)
    except SsoRefusedError as exc:
        return _refused(request, exc, pending.return_to)
    response = render(
        request,
        "sso_continue.html",
        {"next_page": _next_page(request, done, pending.return_to), "step_up": done.step_up},
    )
    _set_session_cookie(response, done.token)
    _clear_pending(response)
    return response


def add_sso_routes(app: web.Application, key: bytes) -> None:
    """Add the single sign-on pages (after the accounts pages, whose session they use).

    ``key`` seals the sign-ins under way: the node's, shared by its processes, since the
    provider may send the browser back to another process than the one it left from.
    """
    if len(key) != KEY_LEN:
        raise ValueError(f"the key sealing sign-ins under way must be {KEY_LEN} bytes")
    app[PENDING_KEY] = key
    app.router.add_get(CALLBACK_PATH, callback)
    app.router.add_get("/sign-in/sso/{provider:[a-z0-9][a-z0-9-]{0,31}}", start)
