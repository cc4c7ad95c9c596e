"""The staff web pages' application: templates, assets, error pages and the start page.

:func:`add_web_routes` adds the pages to the node's aiohttp application beside the staff
and peer APIs, which keep their paths, their JSON errors and their headers: the web
middlewares act only on page paths (:func:`~exchange.web.security.is_page`). A page
handler parses its form, calls one method of the
:class:`~exchange.service.node_service.NodeService` (which checks permissions) and answers
with :func:`render`; it holds no rules. A page refusal is a GOV.UK style error page with a
plain message (:func:`error_pages_middleware`): never a traceback, never the input.
"""

from __future__ import annotations

import re
from typing import Any, Final

import aiohttp_jinja2
import jinja2
from aiohttp import hdrs, web

from exchange.logs import get_logger
from exchange.service.errors import DamagedItemError, ServiceError
from exchange.service.faults import (
    DAMAGED_REFUSAL,
    LEDGER_REFUSAL,
    STORAGE_FULL_REFUSAL,
    UNAVAILABLE_REFUSAL,
    fault_of,
)
from exchange.service.node_service import NodeService
from exchange.web.assets import Assets
from exchange.web.security import (
    CSRF_SECRETS,
    CSRF_TOKEN,
    CsrfRefusedError,
    CsrfSecrets,
    Handler,
    SignedCookieCsrf,
    csp_nonce,
    csrf_middleware,
    is_page,
    route_name,
    secure_headers,
)

log = get_logger("exchange.web")

#: The service's name, in the header and every page title.
SERVICE_NAME: Final = "Secure exchange"

WEB_SERVICE: Final = web.AppKey("web_service", NodeService)
ASSETS: Final = web.AppKey("web_assets", Assets)
#: The name of the signed-in user's organisation, for the header; the accounts pages set it.
ORGANISATION_NAME: Final = web.RequestKey("organisation_name", str)
#: Whether the request comes from a signed-in session (the header then shows the navigation).
SIGNED_IN: Final = web.RequestKey("signed_in", bool)
#: The signed-in person's role, which chooses the navigation's links.
SIGNED_IN_ROLE: Final = web.RequestKey("signed_in_role", str)

#: The header's navigation: each link's path, words and the roles it is shown to. Showing a
#: link is a convenience only: every page asks the service, which decides who may do what.
NAVIGATION: Final = (
    ("/inbox", "Inbox", frozenset({"dsl", "staff", "dpo"})),
    ("/send", "Send a record", frozenset({"dsl", "staff"})),
    ("/sent", "Sent", frozenset({"dsl", "staff"})),
    ("/overdue", "Overdue", frozenset({"dsl", "staff", "dpo"})),
    ("/register", "Sharing register", frozenset({"dpo"})),
    ("/subject-access", "Subject access", frozenset({"dpo"})),
    ("/retention", "Retention", frozenset({"dpo"})),
    ("/admin/accounts", "Accounts", frozenset({"admin"})),
    ("/admin/activity", "Account activity", frozenset({"admin"})),
    ("/admin/tokens", "API tokens", frozenset({"admin"})),
    ("/admin/node", "Node", frozenset({"admin"})),
    ("/account/passkeys", "Passkeys", frozenset({"dsl", "staff", "dpo", "admin"})),
)


def navigation(role: str | None) -> list[tuple[str, str]]:
    """Return the header's links (path, words) for a role; none before sign-in."""
    if role is None:
        return []
    return [(href, text) for href, text, roles in NAVIGATION if role in roles]


def is_current(current_path: str, href: str) -> bool:
    """Whether a navigation link is the section of the current page."""
    return current_path == href or current_path.startswith(href + "/")


#: The error pages' titles (and headings) by status. Statuses not named here use 400's
#: page when they are the browser's problem and 500's when they are the node's.
ERROR_PAGES: Final = {
    400: "There is a problem with your request",
    403: "You cannot see this page",
    404: "Page not found",
    500: "Sorry, there is a problem with the service",
}
CSRF_PAGE_TITLE: Final = "This form has expired"

#: An envelope digest as a page's path names it: 64 lower-case hexadecimal characters.
#: Anything else matches no page, so it is "not found" and never repeated back.
DIGEST: Final = "[0-9a-f]{64}"
DIGEST_RE: Final = re.compile(DIGEST)
#: The ``{digest}`` part of a page's route.
DIGEST_ROUTE: Final = "{digest:" + DIGEST + "}"


def template_environment() -> jinja2.Environment:
    """Return the pages' Jinja2 environment: the package's templates, always escaped.

    Autoescape is on for every template, so a value reaches a page as text unless a page
    marks it as markup; an undefined name is an error, not an empty string, so that a
    misspelt field cannot quietly vanish from a page.
    """
    return jinja2.Environment(
        loader=jinja2.PackageLoader("exchange.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def web_service(request: web.Request) -> NodeService:
    """Return the node's service, which every page handler works through."""
    return request.app[WEB_SERVICE]


def path_digest(request: web.Request) -> bytes:
    """Return the ``{digest}`` of the path, or answer "Page not found"."""
    text = request.match_info["digest"]
    if DIGEST_RE.fullmatch(text) is None:
        raise web.HTTPNotFound
    return bytes.fromhex(text)


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """Render a page: ``context`` plus what the layout needs (nonce, CSRF token, assets)."""
    assets = request.app[ASSETS]
    page = {
        "service_name": SERVICE_NAME,
        "organisation_name": request.get(ORGANISATION_NAME),
        "signed_in": request.get(SIGNED_IN, False),
        "navigation": navigation(request.get(SIGNED_IN_ROLE)),
        "is_current": is_current,
        "current_path": request.path,
        "csp_nonce": csp_nonce(request),
        "csrf_token": request.get(CSRF_TOKEN, ""),
        "asset_url": assets.url,
        **context,
    }
    return aiohttp_jinja2.render_template(template, request, page, status=status)


def _page_status(status: int) -> int:
    """Return the status whose page shows ``status``."""
    if status in ERROR_PAGES:
        return status
    if status == 401:
        return 403  # sign-in comes with the accounts pages; until then it is a refusal
    return 500 if status >= 500 else 400


def error_page(
    request: web.Request, status: int, *, csrf: bool = False, message: str | None = None
) -> web.Response:
    """Render the error page for ``status`` (a CSRF refusal has its own 403 page).

    ``message`` is a sentence about the node's own fault (a full disk) shown first.
    """
    title = CSRF_PAGE_TITLE if csrf else ERROR_PAGES[_page_status(status)]
    return render(
        request,
        "error.html",
        {"title": title, "status": status, "csrf": csrf, "message": message},
        status=status,
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


@web.middleware
async def error_pages_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every refusal on a page path into an error page; leave the APIs' errors alone."""
    if not is_page(request):
        return await handler(request)
    try:
        return await handler(request)
    except CsrfRefusedError:
        return error_page(request, 403, csrf=True)
    except ServiceError as exc:
        # A damaged item's refusal says what to do; other refusals have the page's words.
        damaged = isinstance(exc, DamagedItemError)
        return error_page(request, exc.status, message=_sentence(str(exc)) if damaged else None)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        page = error_page(request, exc.status)
        if hdrs.ALLOW in exc.headers:  # a 405 says which methods the page takes
            page.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
        return page
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback leaks
        return _fault_page(request, exc)


def _fault_page(request: web.Request, exc: Exception) -> web.Response:
    """Answer a page that failed because of the node itself: a full disk says so (507)."""
    # Only the class name is logged: an exception's message could quote anything.
    fault = fault_of(exc)
    log.error(
        "web.request-failed", path=route_name(request), cause=fault.kind,
        error_class=type(exc).__name__,
    )  # fmt: skip
    if fault.kind == "storage-full":
        return error_page(request, 507, message=_sentence(STORAGE_FULL_REFUSAL))
    if fault.kind == "ledger-integrity":
        return error_page(request, 503, message=_sentence(LEDGER_REFUSAL))
    if fault.kind == "store-damaged":
        return error_page(request, 503, message=_sentence(DAMAGED_REFUSAL))
    if fault.kind == "store-unavailable":
        return error_page(request, 503, message=_sentence(UNAVAILABLE_REFUSAL))
    return error_page(request, 500)


async def start_page(request: web.Request) -> web.Response:
    """``GET /``: what the service is, and the way to sign in."""
    return render(request, "start.html", {})


def add_web_routes(
    app: web.Application,
    service: NodeService,
    *,
    csrf: CsrfSecrets | None = None,
    assets: Assets | None = None,
) -> None:
    """Add the web pages, their assets and their middlewares to the node's application.

    ``csrf`` is where CSRF secrets live (a signed cookie unless a session store is given);
    ``assets`` the static files (the shipped ones unless given).
    """
    app[WEB_SERVICE] = service
    app[ASSETS] = assets if assets is not None else Assets.load()
    app[CSRF_SECRETS] = csrf if csrf is not None else SignedCookieCsrf.with_random_key()
    app[aiohttp_jinja2.APP_KEY] = template_environment()
    # Inside the node's own error middleware: page refusals become pages before it sees them.
    app.middlewares.extend([error_pages_middleware, csrf_middleware])
    app.on_response_prepare.append(secure_headers)
    app.router.add_get("/", start_page)
    app.router.add_get("/assets/{name:.+}", app[ASSETS].serve)
