"""The node page: routes and their health, the outbox, dead letters, directory and keys.

``/admin/node`` shows what :class:`~exchange.service.node_state.NodeState` returns for the
administrator's organisation, in words. Dead letters are requeued after a confirmation page:
one envelope's (``/admin/node/dead-letters/<digest>/requeue``, the envelope digest in hex,
as the staff API addresses items) or all of them (``/admin/node/dead-letters/requeue``);
another organisation's digest is "not found".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from exchange.http.common import whole_number
from exchange.policy import LONDON
from exchange.service.node_state import (
    KEY_WARNING_DAYS,
    Destination,
    KeyGenerationState,
    RouteHealth,
)
from exchange.web.accounts import SESSION
from exchange.web.admin.words import count_words, route_name
from exchange.web.app import DIGEST_ROUTE, render, web_service
from exchange.web.words import day_words, kind_name, london_time, organisation_name

#: One envelope's dead letters, by the envelope digest in hex.
DIGEST_PATH: Final = f"/admin/node/dead-letters/{DIGEST_ROUTE}/requeue"
ALL_PATH: Final = "/admin/node/dead-letters/requeue"
#: The button "Check for a new directory now" posts here.
DIRECTORY_CHECK_PATH: Final = "/admin/node/directory/check"
#: Characters of the digest shown as an item's reference.
REFERENCE_LEN: Final = 12
#: Longest last problem shown (a connector's reason, never record content).
MAX_PROBLEM_LEN: Final = 160

#: Why a directory found was refused, in words (``?directory=refused&reason=...``).
REFUSAL_WORDS: Final = {
    "rollback": "it is older than the one in use",
    "fork": "it has the version in use but different contents",
    "invalid": "its signature did not verify against the directory authority's key",
    "oversize": "it is larger than the node accepts",
    "timeout": "the directory's address did not answer in time",
    "unreachable": "the directory's address could not be reached",
}

OUTBOX_WORDS: Final = (
    ("queued", "Waiting to be sent"),
    ("attempting", "Being sent now"),
    ("retry-wait", "Waiting to try again"),
    ("delivered", "Delivered"),
    ("dead", "Dead letters"),
    ("recalled", "Recalled"),
)


def _day(moment: int) -> str:
    return day_words(datetime.fromtimestamp(moment, UTC).astimezone(LONDON).date())


def _health(route: RouteHealth) -> tuple[str, str]:
    """Return a route's health in words and its tag colour."""
    # Ledger times are whole seconds: a failure in the second of a success counts as later.
    last_failure = route.last_failure or 0.0
    if route.failures and (route.last_success is None or last_failure >= int(route.last_success)):
        return "Failing", "red"
    if route.failures:
        return "Working after failures", "yellow"
    if route.last_success is not None:
        return "Working", "green"
    return "Not used recently" if route.listed else "No longer listed", "grey"


def _destination(request: web.Request, dest: Destination) -> dict[str, Any]:
    queue = []
    if dest.waiting:
        queue.append(f"{dest.waiting} waiting")
    if dest.dead:
        queue.append(count_words(dest.dead, "dead letter", "dead letters"))
    routes = []
    for route in dest.routes or (RouteHealth("none", 0, None, None, listed=False),):
        health, colour = _health(route)
        routes.append(
            {
                "name": route_name(route.kind),
                "health": health,
                "colour": colour,
                "failures": route.failures,
                "last_success": "Not in the last 7 days"
                if route.last_success is None
                else london_time(route.last_success),
            }
        )
    return {
        "name": organisation_name(request, dest.org),
        "queue": ", ".join(queue),
        "waiting": dest.waiting,
        "dead": dest.dead,
        "routes": routes,
    }


def _key(key: KeyGenerationState) -> dict[str, str]:
    if key.revoked:
        status, colour = "Revoked", "grey"
    elif key.days_left < 0:
        status, colour = "Expired", "grey"
    elif not key.held:
        status, colour = "Not held by this node", "grey"
    elif key.days_left < KEY_WARNING_DAYS:
        status, colour = f"Expires in {count_words(key.days_left, 'day', 'days')}", "orange"
    else:
        status, colour = "In use", "green"
    return {
        "valid_from": _day(key.not_before),
        "expires": _day(key.not_after),
        "status": status,
        "colour": colour,
    }


async def node_page(request: web.Request) -> web.StreamResponse:
    """``GET /admin/node``: the node's state for the administrator's organisation."""
    view = await web_service(request).node_state_for(request[SESSION].user)
    key_warning = None
    if view.keys_expire is None:
        key_warning = (
            "This node holds no key of your organisation that is valid now, so nothing can "
            "be sent to or from it. Ask the directory's authority to publish a new key."
        )
    elif view.keys_expire_soon:
        days = (view.keys_expire - view.now) // (24 * 3600)
        key_warning = (
            f"Your organisation's keys expire in {count_words(days, 'day', 'days')}, on "
            f"{_day(view.keys_expire)}. Ask the directory's authority to publish a new key "
            "before then."
        )
    dead_letters = [
        {
            "reference": dead.item.envelope_digest.hex()[:REFERENCE_LEN],
            "to": organisation_name(request, dead.item.destination),
            "what": "Receipt"
            if dead.item.kind == "receipt"
            else "Email to staff"
            if dead.item.kind in {"notice", "chase"}
            else kind_name(dead.record_kind or "record"),
            "stopped": london_time(dead.item.updated_at),
            "attempts": dead.item.attempts,
            "problem": (dead.item.last_error or "Not recorded")[:MAX_PROBLEM_LEN],
            "href": f"/admin/node/dead-letters/{dead.item.envelope_digest.hex()}/requeue",
        }
        for dead in view.dead_letters
    ]
    requeued = whole_number(request.query.get("requeued", ""), 0, 999_999)
    done = None
    if requeued is not None:
        count = count_words(requeued, "dead letter was", "dead letters were")
        done = f"{count} put back in the queue."
    checked = _directory_outcome(request.query, view.directory_version)
    return render(
        request,
        "admin/node.html",
        {
            "done": done,
            "checked": checked,
            "directory_check": DIRECTORY_CHECK_PATH,
            "key_warning": key_warning,
            "destinations": [_destination(request, d) for d in view.destinations],
            "backlog": [
                {"key": words, "value": str(view.backlog.get(state, 0))}
                for state, words in OUTBOX_WORDS
            ],
            "dead_letters": dead_letters,
            "directory": [
                {"key": "Version", "value": str(view.directory_version)},
                {"key": "Issued", "value": london_time(view.directory_issued)},
            ],
            "keys": [_key(k) for k in view.keys],
        },
    )


def _directory_outcome(query: Mapping[str, str], version: int) -> dict[str, Any] | None:
    """Return the banner after "Check for a new directory now", from the page's query."""
    outcome = query.get("directory")
    if outcome == "adopted":
        return {"text": f"The node now uses directory version {version}.", "success": True}
    if outcome == "unchanged":
        return {
            "text": f"There is no newer directory. The node uses version {version}.",
            "success": True,
        }
    reason = REFUSAL_WORDS.get(query.get("reason", ""))
    if outcome == "refused" and reason is not None:
        return {
            "text": f"The directory found was refused: {reason}. The node keeps version {version}.",
            "success": False,
        }
    return None


async def check_directory(request: web.Request) -> web.StreamResponse:
    """``POST /admin/node/directory/check``: look for a new directory now."""
    result = await web_service(request).check_directory(request[SESSION].user)
    query = f"directory={result.outcome}"
    if result.reason:
        query += f"&reason={result.reason}"
    # To the top of the page, where the banner is: a fragment would scroll it out of view.
    raise web.HTTPSeeOther(f"/admin/node?{query}")


def _digest(request: web.Request) -> bytes | None:
    text = request.match_info.get("digest")
    return None if text is None else bytes.fromhex(text)


async def requeue_page(request: web.Request) -> web.StreamResponse:
    """``GET`` a requeue path: what will be requeued, and the button to do it."""
    service = web_service(request)
    actor = request[SESSION].user
    digest = _digest(request)
    if digest is None:
        view = await service.node_state_for(actor)
        count = view.dead_total
        heading = f"Requeue all {count_words(count, 'dead letter', 'dead letters')}?"
        if count == 0:
            raise web.HTTPSeeOther("/admin/node")
    else:
        found = await service.node_state.dead_letters_of(actor, digest)
        names = sorted({organisation_name(request, d.item.destination) for d in found})
        heading = f"Requeue item {digest.hex()[:REFERENCE_LEN]} to {', '.join(names)}?"
    return render(
        request,
        "admin/confirm.html",
        {
            "title": "Requeue dead letters",
            "heading": heading,
            "paragraphs": [
                (
                    "The node will try again from the first route, as if the item were new. "
                    "If the cause is not fixed, it will become a dead letter again."
                ),
            ],
            "warning": None,
            "button_text": "Requeue",
            "dangerous": False,
            "action": request.path,
            "cancel": "/admin/node",
            "errors": [],
        },
    )


async def requeue(request: web.Request) -> web.StreamResponse:
    """``POST`` a requeue path: put the dead letters back in the queue."""
    count = await web_service(request).requeue_dead(request[SESSION].user, _digest(request))
    raise web.HTTPSeeOther(f"/admin/node?requeued={count}")


def add_node_state_routes(app: web.Application) -> None:
    """Add the node page and its requeue pages."""
    router = app.router
    router.add_get("/admin/node", node_page)
    router.add_post(DIRECTORY_CHECK_PATH, check_directory)
    for path in (ALL_PATH, DIGEST_PATH):
        router.add_get(path, requeue_page)
        router.add_post(path, requeue)
