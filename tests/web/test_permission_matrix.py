"""Who may see which page: every staff page × every role × the organisations on a node.

The expected answers are declared here, page by page (:data:`PAGES`), from what each role
is for; they are not read from the code under test. Every page route the node serves must
be declared (a new page without a line here fails :func:`test_every_page_is_declared`), so
no page can be added without saying who may see it.

Three organisations take part: Hillside Primary School on its own node, and the children's
front door and the school nursing team, two tenants of one LA node. For a page about one
item or account, the organisation that holds it may see it (the roles declared); any other
organisation, including the other tenant of the same node, is answered 404 or 403 and the
page never shows the item's reference.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import pytest
import pytest_asyncio

from exchange.keys.ids import OrgId
from exchange.model import Role, short_reference
from tests.web.pages import parse
from tests.web.synthetic import NEEDLES, referral
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, Person, World

pytestmark = pytest.mark.network
#: The tests only read pages: they share the module's nodes, people and items.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

ROLES: Final[tuple[Role, ...]] = ("dsl", "staff", "dpo", "admin")
ORGS: Final = (SCHOOL, FRONT_DOOR, NURSES)
READERS: Final = frozenset({"dsl", "staff", "dpo"})
ACTORS: Final = frozenset({"dsl", "staff"})
DPO: Final = frozenset({"dpo"})
ADMIN: Final = frozenset({"admin"})
EVERYONE: Final = frozenset(ROLES)


@dataclass(frozen=True)
class Rule:
    """Who may see a page, whose item it shows, and what a permitted person is answered.

    ``holder`` is ``"sender"`` for a page about the item Hillside sent, ``"receiver"`` for
    one about the item the front door received, ``"both"`` for one either may hold,
    ``"account"`` for one about a front-door account (account numbers are each node's own,
    so only the other tenant of the LA node is another organisation's there), ``"token"``
    likewise for a front-door API token, and ``None``
    for a page about the person's own organisation as a whole.
    """

    roles: frozenset[str]
    holder: str | None = None
    ok: frozenset[int] = frozenset({200})


#: Every staff page (GET), by its route, with who may see it.
PAGES: Final[dict[str, Rule]] = {
    "/inbox": Rule(READERS),
    "/inbox/{ref}": Rule(READERS, "receiver"),
    "/inbox/{digest}/attachments/{number}": Rule(ACTORS, "receiver"),
    "/inbox/{digest}/acknowledge": Rule(ACTORS, "receiver"),
    "/inbox/{digest}/reject": Rule(ACTORS, "receiver"),
    # Before a decision there is nothing to confirm: back to the item.
    "/inbox/{digest}/decided": Rule(ACTORS, "receiver", frozenset({303})),
    "/sent": Rule(READERS),
    "/sent/{digest}": Rule(READERS, "sender"),
    # Recall is a decision about a sharing: the DSL's, or the DPO's after a breach.
    "/sent/{digest}/recall": Rule(frozenset({"dsl", "dpo"}), "sender"),
    "/overdue": Rule(READERS),
    "/register": Rule(DPO),
    "/register/download": Rule(DPO),
    "/subject-access": Rule(DPO),
    "/retention": Rule(DPO),
    "/retention/holds/new": Rule(DPO),
    # Both the sender and the receiver hold a copy of the item, each under its own rules.
    "/retention/{digest}/destroy": Rule(DPO, "both"),
    # Nothing was destroyed: the outcome page has nothing to show.
    "/retention/{digest}/destroyed": Rule(DPO, "both", frozenset({303, 404})),
    "/send": Rule(ACTORS),
    "/send/not-shared": Rule(ACTORS),
    "/send/not-shared/recorded": Rule(ACTORS),
    # A reply goes to the sender of an item received; a correction (the DSL's, or the
    # DPO's as rectification) to an item sent.
    "/send/reply/{digest}": Rule(ACTORS, "receiver"),
    "/send/correct/{digest}": Rule(frozenset({"dsl", "dpo"}), "sender"),
    # A draft is its author's, in one session: nobody else's, not even a colleague's.
    "/send/{draft}/questions/{section}": Rule(ACTORS, "draft"),
    "/send/{draft}/files": Rule(ACTORS, "draft"),
    "/send/{draft}/recipients": Rule(ACTORS, "draft"),
    "/send/{draft}/purpose": Rule(ACTORS, "draft"),
    # Until every question is answered, these send the author back to the first one.
    "/send/{draft}/reason": Rule(ACTORS, "draft", frozenset({200, 303})),
    "/send/{draft}/check": Rule(ACTORS, "draft", frozenset({200, 303})),
    "/send/{draft}/sent": Rule(ACTORS, "draft", frozenset({303, 404})),
    # Confirming it's you again (step-up) is every signed-in person's; with a second factor
    # given just now there is nothing to confirm: on to the page asked for.
    "/sign-in/confirm": Rule(READERS | ADMIN, ok=frozenset({303})),
    "/admin/accounts": Rule(ADMIN),
    "/admin/accounts/invite": Rule(ADMIN),
    "/admin/accounts/{account}": Rule(ADMIN, "account"),
    "/admin/accounts/{account}/reset-second-factor": Rule(ADMIN, "account"),
    "/admin/accounts/{account}/disable": Rule(ADMIN, "account"),
    "/admin/accounts/{account}/remove": Rule(ADMIN, "account"),
    # Everyone's own passkeys. Adding one needs a recent second factor: a session older
    # than the step-up window is sent to confirm it's them first. Nobody here has a
    # passkey, so a removal page is not found for anyone.
    "/account/passkeys": Rule(EVERYONE),
    "/account/passkeys/add": Rule(EVERYONE, ok=frozenset({200, 303})),
    "/account/passkeys/{passkey}/remove": Rule(EVERYONE, ok=frozenset({404})),
    "/admin/activity": Rule(ADMIN),
    "/admin/tokens": Rule(ADMIN),
    "/admin/tokens/new": Rule(ADMIN),
    "/admin/tokens/{token}/revoke": Rule(ADMIN, "token"),
    "/admin/node": Rule(ADMIN),
    # With no dead letters there is nothing to requeue: back to the node page.
    "/admin/node/dead-letters/requeue": Rule(ADMIN, ok=frozenset({303})),
    "/admin/node/dead-letters/{digest}/requeue": Rule(ADMIN, "sender", frozenset({404})),
}
#: Pages anyone may see, signed in or not: the start page, the sign-in steps, sign-out.
OPEN: Final = frozenset(
    {
        "/",
        "/sign-in",
        "/sign-in/invitation",
        "/sign-in/set-up-authenticator",
        "/sign-in/security-code",
        # Single sign-on: the way to a provider, and the provider's answer (a refusal page
        # unless a sign-in is under way in this browser).
        "/sign-in/sso/{provider}",
        "/sign-in/sso/callback",
        "/signed-out",
        "/assets/{name}",
    }
)
#: Where starting a draft sends its author: its id and its first question.
DRAFT_RE: Final = re.compile(r"/send/([0-9a-f]{32})/questions/([a-z0-9_-]+)")
#: Whose item each kind of page is about, and the organisations it is another's to.
HOLDERS: Final[dict[str, tuple[frozenset[OrgId], frozenset[OrgId]]]] = {
    "sender": (frozenset({SCHOOL}), frozenset({FRONT_DOOR, NURSES})),
    "receiver": (frozenset({FRONT_DOOR}), frozenset({SCHOOL, NURSES})),
    "both": (frozenset({SCHOOL, FRONT_DOOR}), frozenset({NURSES})),
    "account": (frozenset({FRONT_DOOR}), frozenset({NURSES})),
    "token": (frozenset({FRONT_DOOR}), frozenset({NURSES})),
    "draft": (frozenset({SCHOOL}), frozenset({FRONT_DOOR, NURSES})),
}


@dataclass
class Matrix:
    """The nodes, one signed-in person per organisation and role, and the items."""

    world: World
    people: dict[tuple[OrgId, Role], Person]
    digest: bytes
    reference: str
    account: int
    #: An API token of the front door's.
    token: int
    #: A draft referral of Hillside's DSL, and the path of its first question.
    draft: str
    section: str


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def matrix(world: World) -> AsyncIterator[Matrix]:
    """Hillside sends a referral with a PDF to the front door, which opens it."""
    people = {(org, role): await world.person(org, role) for org in ORGS for role in ROLES}
    school_dsl = people[(SCHOOL, "dsl")].user
    digest = await world.send(school_dsl, referral())
    front_door = world.service(FRONT_DOOR)
    await front_door.open_item(people[(FRONT_DOOR, "dsl")].user, digest)
    account = await front_door.store.account_by_user(people[(FRONT_DOOR, "dsl")].user.id)
    assert account is not None
    token, _ = await front_door.api_tokens.create(
        name="matrix-export", org=FRONT_DOOR, role="staff", created_by="test"
    )
    envelope = await world.service(SCHOOL).store.envelope(digest)
    assert envelope is not None
    author = people[(SCHOOL, "dsl")]
    _, page, _ = await author.get("/send")
    status, _, headers = await author.post("/send", {"kind": "referral"}, page)
    assert status == 303
    found = DRAFT_RE.fullmatch(headers["Location"])
    assert found is not None
    yield Matrix(
        world,
        people,
        digest,
        short_reference(envelope.envelope_id),
        account.id,
        token.id,
        found.group(1),
        found.group(2),
    )


def _routes(world: World) -> set[str]:
    """Return the page routes (GET) of every node, in their declared form."""
    found = set()
    for node in world.deployment.nodes.values():
        for route in node.app.router.routes():
            if route.method != "GET":
                continue
            info = route.resource.get_info() if route.resource is not None else {}
            path = str(info.get("path") or info.get("formatter") or "")
            if path.startswith(("/api/", "/peer/", "/relay/")) or path in {
                "/healthz",
                "/readyz",
                "/metrics",
            }:
                continue
            # "{digest:[0-9a-f]{64}}" is declared here as "{digest}".
            found.add(_plain(path))
    return found


def _plain(path: str) -> str:
    """Drop the patterns of a route's variables: ``{digest:[0-9a-f]{64}}`` -> ``{digest}``."""
    out, depth, name = [], 0, []
    for char in path:
        if char == "{":
            depth += 1
            if depth == 1:
                name = []
                continue
        elif char == "}":
            depth -= 1
            if depth == 0:
                out.append("{" + "".join(name).split(":", 1)[0] + "}")
                continue
        if depth == 0:
            out.append(char)
        elif depth == 1 or char not in "{}":
            name.append(char)
    return "".join(out)


def _path(route: str, matrix: Matrix) -> str:
    """Fill a route's variables with the matrix's item and account."""
    return (
        route.replace("{ref}", matrix.digest.hex())
        .replace("{digest}", matrix.digest.hex())
        .replace("{number}", "1")
        .replace("{account}", str(matrix.account))
        .replace("{passkey}", "1")
        .replace("{token}", str(matrix.token))
        .replace("{draft}", matrix.draft)
        .replace("{section}", matrix.section)
    )


@in_module_loop
async def test_every_page_is_declared(matrix: Matrix) -> None:
    """Each page the nodes serve is in PAGES or OPEN, and each declared page exists."""
    served = _routes(matrix.world)
    assert served - PAGES.keys() - OPEN == set(), "declare who may see these pages"
    assert PAGES.keys() - served == set(), "these declared pages are not served"


@in_module_loop
async def test_each_role_of_each_organisation_sees_only_what_it_may(matrix: Matrix) -> None:
    """Every page × role × organisation: permitted, refused (403), or not found (404)."""
    wrong = []
    for route, rule in PAGES.items():
        path = _path(route, matrix)
        for (org, role), person in matrix.people.items():
            holders, others = HOLDERS.get(rule.holder or "", (frozenset(), frozenset()))
            if rule.holder is not None and org not in holders | others:
                continue
            status, page, _ = await person.get(path)
            if rule.holder == "draft" and (org, role) != (SCHOOL, "dsl"):
                # Someone else's draft, even a colleague's: it does not exist for them.
                allowed = {403, 404}
            elif org in others:
                # Another organisation's item or account, even on the same node.
                allowed = {403, 404}
                if matrix.reference in page:
                    wrong.append(f"{route} as {role} of {org}: shows the item's reference")
            elif role in rule.roles:
                allowed = set(rule.ok)
            else:
                allowed = {403}
            if status not in allowed:
                wrong.append(f"{route} as {role} of {org}: {status}, expected {sorted(allowed)}")
    assert wrong == [], "\n".join(wrong)


@in_module_loop
async def test_pages_need_a_session(matrix: Matrix) -> None:
    """Without a session every staff page sends the person to sign in; nothing is shown."""
    http = matrix.world.http
    base = matrix.world.base(SCHOOL)
    for route in PAGES:
        async with http.get(base + _path(route, matrix), allow_redirects=False) as response:
            assert response.status == 303, route
            assert response.headers["Location"].startswith("/sign-in"), route


def test_the_route_forms_read_plainly() -> None:
    """The helper that names routes drops variable patterns, braces and all."""
    assert _plain("/sent/{digest:[0-9a-f]{64}}/recall") == "/sent/{digest}/recall"
    assert _plain("/admin/accounts/{account:[0-9]{1,12}}") == "/admin/accounts/{account}"
    assert _plain("/inbox/{ref}") == "/inbox/{ref}"


#: The one page that shows the record (to those who may open it), and its document.
SHOWS_THE_RECORD: Final = frozenset({"/inbox/{ref}", "/inbox/{digest}/attachments/{number}"})
LINK_RE: Final = re.compile(r'(?:href|action|src)="([^"]+)"')


@in_module_loop
async def test_no_page_but_the_opened_record_shows_the_child(
    matrix: Matrix, structured_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """Every page as every person: the child's details only on the opened record's page.

    Nowhere else: not in another page, not in any title, link, form address or redirect,
    and not in any log line the nodes wrote while the pages were served.
    """
    caplog.set_level(logging.DEBUG)
    found = []
    shown_on_record_page = False
    for route, rule in PAGES.items():
        path = _path(route, matrix)
        for (org, role), person in matrix.people.items():
            _, page, headers = await person.get(path)
            shown = [needle for needle in NEEDLES if needle in page]
            may_show = route in SHOWS_THE_RECORD and org == FRONT_DOOR and role in rule.roles
            if shown and not may_show:
                found.append(f"{route} as {role} of {org} shows {shown}")
            shown_on_record_page |= bool(shown) and may_show
            title = parse(page).title if "<title>" in page else ""
            addresses = " ".join([*LINK_RE.findall(page), headers.get("Location", ""), path, title])
            found.extend(
                f"{route} as {role} of {org}: {needle!r} in a title or address"
                for needle in NEEDLES
                if needle in addresses
            )
    log_text = structured_log.getvalue() + caplog.text
    found += [f"the log holds {needle!r}" for needle in NEEDLES if needle in log_text]
    assert found == [], "\n".join(found)
    # The needles are the record's: its own page shows them to those who opened it.
    assert shown_on_record_page


@in_module_loop
async def test_every_page_has_one_heading_a_skip_link_and_a_full_title(matrix: Matrix) -> None:
    """Each page a person may see: one h1, the skip link first, "<page> – Secure exchange"."""
    wrong = []
    checked = 0
    for route in PAGES:
        path = _path(route, matrix)
        for (org, role), person in matrix.people.items():
            status, page, _ = await person.get(path)
            if status != 200 or not page.lstrip().startswith("<!DOCTYPE html>"):
                continue  # a refusal, a redirect or a download
            checked += 1
            parsed = parse(page)
            headings = parsed.all("h1")
            links = parsed.all("a")
            if len(headings) != 1:
                wrong.append(f"{route} as {role} of {org}: {len(headings)} h1")
            if not links or links[0].attrs.get("href") != "#main-content":
                wrong.append(f"{route} as {role} of {org}: the skip link is not first")
            title = parsed.title
            if not title.endswith(" – Secure exchange") or title == " – Secure exchange":
                wrong.append(f"{route} as {role} of {org}: title {title!r}")
    assert wrong == [], "\n".join(wrong)
    assert checked >= len(PAGES)
