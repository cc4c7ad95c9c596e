"""The staff accounts pages: list, invite, change a role, reset a second factor, disable, remove.

``/admin/accounts`` lists the organisation's accounts; ``/admin/accounts/invite`` invites
someone and shows their code once (never in a URL); ``/admin/accounts/<number>`` manages
one account, addressed by its account number (never by a name or an address). Resetting a
second factor, disabling and removing ask for confirmation first. Every action is a POST with the
session's CSRF token and calls one method of the service, which decides who may do what:
another organisation's account number is "not found", and a change that would leave the
organisation with no administrator is refused with the reason, shown on the page.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from exchange.auth.account import Account
from exchange.service.account_admin import (
    AccountState,
    Invitation,
    InvitationProblemError,
    account_state,
)
from exchange.service.errors import ConflictError
from exchange.service.node_service import NodeService
from exchange.web.accounts import SESSION
from exchange.web.admin.words import role_choices, role_name, second_factor_words
from exchange.web.app import render, web_service
from exchange.web.words import london_time

#: The path of one account's pages.
ACCOUNT: Final = "/admin/accounts/{account:[0-9]{1,12}}"

#: What the pages say after each action (the ``done`` query value names it: no data).
DONE: Final = {
    "role": "The role was changed. Their sessions have ended, so the new role applies now.",
    "reset": "The authenticator app was reset. They will set one up when they next sign in.",
    "disabled": "The account was disabled. Their sessions have ended.",
    "enabled": "The account was enabled. They can sign in again.",
}

#: What the list says after an action that leaves no account page to go back to.
LIST_DONE: Final = {
    "invited": "The invitation was made.",
    "removed": "The account was removed. They cannot sign in or use an API token.",
}


def _account_id(request: web.Request) -> int:
    return int(request.match_info["account"])


#: The tag colour of each account state.
COLOURS: Final[dict[AccountState, str]] = {
    "active": "green",
    "invited": "blue",
    "invitation expired": "orange",
    "disabled": "grey",
}


def _status(account: Account, now: float) -> tuple[str, str]:
    """Return an account's status in words, with its tag colour."""
    state = account_state(account, now)
    return state.capitalize(), COLOURS[state]


async def accounts_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/accounts``: every account of the organisation, by name."""
    service = web_service(request)
    accounts = await service.organisation_accounts(request[SESSION].user)
    now = service.now()
    rows = []
    for account in accounts:
        status, colour = _status(account, now)
        rows.append(
            {
                "name": account.user.name,
                "email": account.email,
                "role": role_name(account.user.role),
                "factor": second_factor_words(account),
                "status": status,
                "colour": colour,
                "last_sign_in": "Never"
                if account.last_sign_in is None
                else london_time(account.last_sign_in),
                "href": f"/admin/accounts/{account.id}",
            }
        )
    done = request.query.get("done")
    return render(
        request,
        "admin/accounts.html",
        {"rows": rows, "done": LIST_DONE.get(done or "")},
    )


async def _account_context(
    service: NodeService, account: Account, *, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    status, _ = _status(account, service.now())
    facts: list[dict[str, Any]] = [
        {"key": "Email address", "value": account.email},
        {"key": "Role", "value": role_name(account.user.role)},
        {"key": "Status", "value": status},
        {
            "key": "Second factor",
            "value": second_factor_words(account),
        },
        {
            "key": "Last signed in",
            "value": "Never" if account.last_sign_in is None else london_time(account.last_sign_in),
        },
    ]
    linked = await service.sso.linked_labels(account.user)
    if linked:
        facts.append({"key": "Single sign-on", "value": "Linked to " + " and ".join(linked)})
    if account.invited and account.invitation_expires is not None:
        facts.append(
            {"key": "Invitation code works until", "value": london_time(account.invitation_expires)}
        )
    errors = errors or []
    return {
        "name": account.user.name,
        "facts": facts,
        "base": f"/admin/accounts/{account.id}",
        "account_id": account.id,
        "role": account.user.role,
        "roles": role_choices(),
        "has_factor": account.has_second_factor,
        "disabled": account.disabled,
        "invited": account.invited,
        "errors": errors,
        "field_errors": {e["href"].removeprefix("#"): e["text"] for e in errors},
        "done": None,
    }


async def account_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/accounts/<number>``: one account, with what can be done to it."""
    service = web_service(request)
    account = await service.staff_account(request[SESSION].user, _account_id(request))
    context = await _account_context(service, account)
    context["done"] = DONE.get(request.query.get("done", ""))
    return render(request, "admin/account.html", context)


def _done(account_id: int, what: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/admin/accounts/{account_id}?done={what}")


async def change_role(request: web.Request) -> web.StreamResponse:
    """``POST /admin/accounts/<number>/role``: give the account the role chosen."""
    service = web_service(request)
    actor = request[SESSION].user
    account_id = _account_id(request)
    form = await request.post()
    role = str(form.get("role", ""))
    try:
        await service.change_role(actor, account_id, role)
    except (InvitationProblemError, ConflictError) as exc:
        account = await service.staff_account(actor, account_id)
        errors = [{"href": "#role", "text": str(exc)}]
        context = await _account_context(service, account, errors=errors)
        return render(request, "admin/account.html", context, status=exc.status)
    raise _done(account_id, "role")


#: The confirmation pages: title, heading, what happens, and the button's words. The
#: title leaves the person's name out: titles go into browser history and bookmarks.
CONFIRMATIONS: Final = {
    "reset-second-factor": (
        "Reset an authenticator app",
        "Reset the authenticator app of {name}?",
        [
            (
                "Their authenticator app, recovery codes and passkeys will stop working, "
                "and their sessions will end."
            ),
            (
                "When they next sign in with their password, they will set up an "
                "authenticator app again."
            ),
        ],
        "Reset authenticator app",
    ),
    "disable": (
        "Disable an account",
        "Disable the account of {name}?",
        [
            (
                "They will be signed out at once and will not be able to sign in until the "
                "account is enabled again."
            ),
            "Nothing they sent or received is removed.",
        ],
        "Disable account",
    ),
    "remove": (
        "Remove an account",
        "Remove the account of {name}?",
        [
            (
                "They will be signed out at once and will never be able to sign in or use "
                "an API token again. This cannot be undone: to let them back in, invite them "
                "again."
            ),
            "Nothing they sent or received is removed, and it still shows who they were.",
        ],
        "Remove account",
    ),
}


def _confirmation(
    account: Account, action: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    title, heading, paragraphs, button_text = CONFIRMATIONS[action]
    base = f"/admin/accounts/{account.id}"
    return {
        "title": title,
        "heading": heading.format(name=account.user.name),
        "paragraphs": paragraphs,
        "warning": None,
        "button_text": button_text,
        "dangerous": True,
        "action": f"{base}/{action}",
        "cancel": base,
        "errors": errors or [],
    }


async def confirm_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/accounts/<number>/(reset-second-factor|disable|remove)``: ask first."""
    service = web_service(request)
    account = await service.staff_account(request[SESSION].user, _account_id(request))
    action = request.path.rsplit("/", 1)[1]
    return render(request, "admin/confirm.html", _confirmation(account, action))


async def confirmed(request: web.Request) -> web.StreamResponse:
    """``POST /admin/accounts/<number>/(reset-second-factor|disable|remove)``: do it."""
    service = web_service(request)
    actor = request[SESSION].user
    account_id = _account_id(request)
    action = request.path.rsplit("/", 1)[1]
    try:
        if action == "disable":
            await service.set_account_disabled(actor, account_id, disabled=True)
        elif action == "remove":
            await service.remove_account(actor, account_id)
        else:
            await service.reset_second_factor(actor, account_id)
    except ConflictError as exc:
        account = await service.staff_account(actor, account_id)
        errors = [{"href": "#confirm", "text": str(exc)}]
        context = _confirmation(account, action, errors)
        return render(request, "admin/confirm.html", context, status=exc.status)
    if action == "remove":
        raise web.HTTPSeeOther("/admin/accounts?done=removed")
    raise _done(account_id, "disabled" if action == "disable" else "reset")


async def enable(request: web.Request) -> web.StreamResponse:
    """``POST /admin/accounts/<number>/enable``: let a disabled account sign in again."""
    account_id = _account_id(request)
    await web_service(request).set_account_disabled(
        request[SESSION].user, account_id, disabled=False
    )
    raise _done(account_id, "enabled")


def _invite_context(
    values: dict[str, str], errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    errors = errors or []
    return {
        "values": values,
        "roles": role_choices(),
        "errors": errors,
        "field_errors": {e["href"].removeprefix("#"): e["text"] for e in errors},
    }


async def invite_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/accounts/invite``: name, email address and role of the new person."""
    await web_service(request).organisation_accounts(request[SESSION].user)  # admins only
    return render(
        request, "admin/invite.html", _invite_context({"name": "", "email": "", "role": ""})
    )


def _invitation_created(request: web.Request, invitation: Invitation) -> web.StreamResponse:
    """Show the code once, on the answer to the POST: never in a URL, never stored."""
    service = web_service(request)
    return render(
        request,
        "admin/invitation_created.html",
        {
            "name": invitation.name,
            "code": invitation.code,
            "expires": london_time(invitation.expires),
            "accept_url": service.public_url.rstrip("/") + "/sign-in/invitation",
        },
    )


async def invite(request: web.Request) -> web.StreamResponse:
    """``POST /admin/accounts/invite``: create the account; show its invitation code once."""
    form = await request.post()
    values = {key: str(form.get(key, "")) for key in ("name", "email", "role")}
    service = web_service(request)
    actor = request[SESSION].user
    # Every field is checked, so one answer names every problem.
    errors = []
    if not values["name"].strip():
        errors.append({"href": "#name", "text": "Enter the person's full name"})
    if not values["email"].strip():
        errors.append({"href": "#email", "text": "Enter the person's email address"})
    if not values["role"]:
        errors.append({"href": "#role", "text": "Select the person's role"})
    if not errors:
        try:
            invitation = await service.invite(actor, **values)
        except InvitationProblemError as exc:
            errors.append({"href": f"#{exc.field}", "text": str(exc)})
        else:
            return _invitation_created(request, invitation)
    await service.organisation_accounts(actor)  # admins only, even to see the errors
    return render(request, "admin/invite.html", _invite_context(values, errors), status=400)


async def renew_invitation(request: web.Request) -> web.StreamResponse:
    """``POST /admin/accounts/<number>/invitation``: a new code; the old one stops working."""
    service = web_service(request)
    actor = request[SESSION].user
    account_id = _account_id(request)
    try:
        invitation = await service.renew_invitation(actor, account_id)
    except ConflictError as exc:
        account = await service.staff_account(actor, account_id)
        errors = [{"href": "#role", "text": str(exc)}]
        context = await _account_context(service, account, errors=errors)
        return render(request, "admin/account.html", context, status=exc.status)
    return _invitation_created(request, invitation)


def add_admin_account_routes(app: web.Application) -> None:
    """Add the staff accounts pages."""
    router = app.router
    router.add_get("/admin/accounts", accounts_page)
    router.add_get("/admin/accounts/invite", invite_page)
    router.add_post("/admin/accounts/invite", invite)
    router.add_get(ACCOUNT, account_page)
    router.add_post(ACCOUNT + "/role", change_role)
    router.add_post(ACCOUNT + "/enable", enable)
    router.add_post(ACCOUNT + "/invitation", renew_invitation)
    for action in CONFIRMATIONS:
        router.add_get(f"{ACCOUNT}/{action}", confirm_page)
        router.add_post(f"{ACCOUNT}/{action}", confirmed)
