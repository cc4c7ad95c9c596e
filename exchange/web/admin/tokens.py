"""The API tokens pages: list the organisation's tokens, make one (shown once), revoke one.

``/admin/tokens`` lists the organisation's machine tokens with their role, expiry, last use
and status; ``/admin/tokens/new`` makes one (name, role, days until it expires, 90 unless
changed) and shows the token once, on the answer to the POST: never in a URL, never stored
(only its hash is). ``/admin/tokens/<number>/revoke`` asks before revoking. Every action is
a POST with the session's CSRF token and calls one method of the service, which lets only
the organisation's administrators act and records each token made or revoked as an
account event.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from exchange.auth.api_token import DEFAULT_DAYS, MAX_DAYS, ApiToken
from exchange.service.api_tokens import TokenProblemError
from exchange.service.errors import ConflictError
from exchange.web.accounts import SESSION
from exchange.web.admin.words import role_choices, role_name
from exchange.web.app import render, web_service
from exchange.web.words import london_time

#: The path of one token's revoke page.
REVOKE: Final = "/admin/tokens/{token:[0-9]{1,12}}/revoke"

#: A token's status in words, with its tag colour.
STATUS: Final = {
    "active": ("Active", "green"),
    "expired": ("Expired", "grey"),
    "revoked": ("Revoked", "red"),
}


def _status(token: ApiToken, now: float) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if now >= token.expires_at else "active"


def _row(token: ApiToken, now: float) -> dict[str, Any]:
    state = _status(token, now)
    words, colour = STATUS[state]
    return {
        "name": token.name,
        "role": role_name(token.role),
        "expires": london_time(token.expires_at),
        "last_used": "Never" if token.last_used_at is None else london_time(token.last_used_at),
        "status": words,
        "colour": colour,
        "revoke": f"/admin/tokens/{token.id}/revoke" if state == "active" else None,
    }


async def tokens_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/tokens``: the organisation's API tokens, newest first."""
    service = web_service(request)
    tokens = await service.organisation_tokens(request[SESSION].user)
    now = service.now()
    done = "The API token was revoked." if request.query.get("done") == "revoked" else None
    return render(
        request, "admin/tokens.html", {"rows": [_row(t, now) for t in tokens], "done": done}
    )


def _new_context(
    values: dict[str, str], errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    errors = errors or []
    return {
        "values": values,
        "roles": role_choices(),
        "max_days": MAX_DAYS,
        "errors": errors,
        "field_errors": {e["href"].removeprefix("#"): e["text"] for e in errors},
    }


async def new_token_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/tokens/new``: the new token's name, role and lifetime."""
    await web_service(request).organisation_tokens(request[SESSION].user)  # admins only
    values = {"name": "", "role": "", "days": str(DEFAULT_DAYS)}
    return render(request, "admin/token_new.html", _new_context(values))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _days(text: str) -> tuple[int | None, str | None]:
    """Return the days typed, or a sentence saying what is wrong with them."""
    text = text.strip()
    if not text:
        return None, "Enter the number of days until the token expires"
    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        return None, f"The number of days must be a whole number from 1 to {MAX_DAYS}"
    return int(text), None


async def create_token(request: web.Request) -> web.StreamResponse:
    """``POST /admin/tokens/new``: make the token and show it once."""
    form = await request.post()
    values = {key: str(form.get(key, "")) for key in ("name", "role", "days")}
    service = web_service(request)
    actor = request[SESSION].user
    errors = []
    if not values["name"].strip():
        errors.append({"href": "#name", "text": "Enter a name for the token"})
    if not values["role"]:
        errors.append({"href": "#role", "text": "Select the token's role"})
    days, problem = _days(values["days"])
    if problem is not None:
        errors.append({"href": "#days", "text": problem})
    if not errors and days is not None:
        try:
            token, secret = await service.create_api_token(
                actor, name=values["name"].strip(), role=values["role"], days=days
            )
        except TokenProblemError as exc:
            errors.append({"href": f"#{exc.field}", "text": _sentence(str(exc))})
        except ConflictError:
            errors.append({"href": "#name", "text": "An API token with this name already exists"})
        else:
            return render(
                request,
                "admin/token_created.html",
                {
                    "name": token.name,
                    "secret": secret,
                    "role": role_name(token.role),
                    "expires": london_time(token.expires_at),
                },
            )
    await service.organisation_tokens(actor)  # admins only, even to see the errors
    return render(request, "admin/token_new.html", _new_context(values, errors), status=400)


def _token_id(request: web.Request) -> int:
    return int(request.match_info["token"])


def _confirmation(token: ApiToken, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "title": "Revoke an API token",
        "heading": f"Revoke the API token {token.name}?",
        "paragraphs": [
            "Whatever uses it will be refused at once, with the answer that it was revoked.",
            "This cannot be undone: to let it back in, make a new token.",
        ],
        "warning": None,
        "button_text": "Revoke token",
        "dangerous": True,
        "action": f"/admin/tokens/{token.id}/revoke",
        "cancel": "/admin/tokens",
        "errors": errors or [],
    }


async def revoke_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/tokens/<number>/revoke``: ask first."""
    service = web_service(request)
    token = await service.organisation_token(request[SESSION].user, _token_id(request))
    return render(request, "admin/confirm.html", _confirmation(token))


async def revoke(request: web.Request) -> web.StreamResponse:
    """``POST /admin/tokens/<number>/revoke``: revoke it."""
    service = web_service(request)
    actor = request[SESSION].user
    token_id = _token_id(request)
    try:
        await service.revoke_api_token(actor, token_id)
    except ConflictError:
        token = await service.organisation_token(actor, token_id)
        errors = [{"href": "#confirm", "text": "This API token was revoked already"}]
        return render(request, "admin/confirm.html", _confirmation(token, errors), status=409)
    raise web.HTTPSeeOther("/admin/tokens?done=revoked")


def add_token_routes(app: web.Application) -> None:
    """Add the API tokens pages."""
    router = app.router
    router.add_get("/admin/tokens", tokens_page)
    router.add_get("/admin/tokens/new", new_token_page)
    router.add_post("/admin/tokens/new", create_token)
    router.add_get(REVOKE, revoke_page)
    router.add_post(REVOKE, revoke)
