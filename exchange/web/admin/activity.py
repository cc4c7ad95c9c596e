"""The account activity page: the organisation's account events, newest first.

``/admin/activity`` lists what happened to the organisation's staff accounts and API tokens
(sign-ins and their method, failed sign-ins, changes an administrator made, tokens made and
revoked), fifty at a time, newest first, read from the readable side of the account events
the ledger records. ``?account=<number>`` keeps one account's events (about it or done by
it); ``?before=<event number>`` is the cursor of the next, older page. Only the
organisation's administrators see it: the service decides.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from exchange.service.errors import NotFoundError
from exchange.store.account_events import AccountActivity
from exchange.web.accounts import SESSION
from exchange.web.admin.words import role_name
from exchange.web.app import render, web_service
from exchange.web.words import london_time

#: What happened, in words, by kind.
KIND_WORDS: Final = {
    "sign-in": "Signed in",
    "sign-in-failed": "Sign-in failed",
    "sign-in-refused": "Sign-in refused",
    "step-up": "Confirmed who they are again",
    "invited": "Invited",
    "invitation-renewed": "Given a new invitation code",
    "invitation-accepted": "Accepted their invitation",
    "role-changed": "Role changed",
    "disabled": "Account disabled",
    "enabled": "Account enabled",
    "removed": "Account removed",
    "factors-reset": "Authenticator app reset",
    "token-created": "Made an API token",
    "token-revoked": "Revoked an API token",
    "passkey-added": "Added a passkey",
    "passkey-removed": "Removed a passkey",
    "sso-linked": "Linked to single sign-on",
}
#: How a person proved who they are, in words.
METHOD_WORDS: Final = {
    "password": "Password",
    "password+totp": "Password and authenticator app",
    "password+recovery-code": "Password and recovery code",
    "passkey": "Passkey",
    "sso": "Single sign-on",
    "sso+mfa": "Single sign-on with a second factor",
}
#: Why a sign-in failed, when it was not just a wrong password or code.
FAILURE_WORDS: Final = {
    "disabled": "the account is disabled",
    "invited": "the invitation was not accepted yet",
    "invitation": "wrong invitation code",
    "step-up": "while confirming who they are again",
    "enrolment": "while setting up an authenticator app",
}
#: Who did something to an account that is not their own, when it was the node's operator.
OPERATOR: Final = "The node's operator"


def _who(user_id: str | None, name: str | None) -> str:
    """Return a person as ``Name (user id)``; the user id ``""`` is the node's operator."""
    if user_id == "":
        return OPERATOR
    return f"{name} ({user_id})" if name else str(user_id)


def _what(event: AccountActivity) -> str:
    """Return what happened, in a sentence's words."""
    words = KIND_WORDS.get(event.kind, event.kind)
    detail = event.detail
    if event.kind == "role-changed" and detail:
        return f"{words} to {role_name(detail).lower()}"
    if event.kind == "invited" and detail:
        return f"{words} as {role_name(detail).lower()}"
    if event.kind.startswith("token-") and detail:
        number, _, role = detail.partition(".")
        return f"{words}: number {number}" + (f", {role_name(role).lower()}" if role else "")
    if event.kind == "sign-in-failed":
        why = FAILURE_WORDS.get(detail)
        if why is None and event.method is not None:
            why = "wrong password" if event.method == "password" else "wrong code"
        return f"{words}: {why}" if why else words
    return words


def _row(event: AccountActivity) -> dict[str, str]:
    method = "" if event.method is None else METHOD_WORDS.get(event.method, event.method)
    return {
        "time": london_time(event.at),
        "account": _who(event.user_id, event.user_name),
        "what": _what(event),
        "method": method,
        "by": "" if event.actor_id is None else _who(event.actor_id, event.actor_name),
    }


def _number(text: str | None) -> int | None:
    """Return a query value as a number (None if absent); ValueError if not one."""
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 12:
        raise ValueError(text)
    return int(text)


async def activity_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/activity``: the organisation's account events, newest first."""
    service = web_service(request)
    actor = request[SESSION].user
    accounts = await service.organisation_accounts(actor)  # administrators only
    errors: list[dict[str, str]] = []
    try:
        account_id = _number(request.query.get("account"))
    except ValueError:
        account_id = None
        errors.append({"href": "#account", "text": "Select an account from the list"})
    try:
        before = _number(request.query.get("before"))
    except ValueError:
        before = None
        errors.append({"href": "#account", "text": "The page of older events does not exist"})
    context: dict[str, Any] = {
        "rows": [],
        "errors": errors,
        "accounts": [{"value": "", "text": "All accounts"}]
        + [{"value": str(a.id), "text": _who(a.user.id, a.user.name)} for a in accounts],
        "account": "" if account_id is None else str(account_id),
        "first_href": None,
        "older_href": None,
    }
    if errors:
        return render(request, "admin/activity.html", context, status=400)
    try:
        page = await service.account_activity(actor, account_id=account_id, before=before)
    except NotFoundError:
        context["errors"] = [{"href": "#account", "text": "Select an account from the list"}]
        return render(request, "admin/activity.html", context, status=404)
    only = "" if account_id is None else f"account={account_id}"
    context["rows"] = [_row(e) for e in page.events]
    if before is not None:
        context["first_href"] = "/admin/activity" + (f"?{only}" if only else "")
    if page.older is not None:
        context["older_href"] = f"/admin/activity?{only + '&' if only else ''}before={page.older}"
    return render(request, "admin/activity.html", context)


def add_activity_routes(app: web.Application) -> None:
    """Add the account activity page."""
    app.router.add_get("/admin/activity", activity_page)
