"""Step-up: each page that shows or gives out a record asks for a recent second factor.

Hillside sends the front door a referral with a letter, which the front door opens. Each
test makes its own people, so each has its own session, factor and failure count. A
factor goes stale by moving the node's clock past the step-up window (15 minutes) in two
moves, the session used in between, so that it is never idle for 15 minutes and ends.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

import pytest
import pytest_asyncio

from exchange.auth.session import SessionPolicy
from exchange.auth.totp import code_at
from exchange.keys.ids import OrgId
from exchange.model import Role
from exchange.store.account_events import AccountActivity
from tests.node.account_trail import account_events
from tests.web.page_client import Form
from tests.web.pages import parse
from tests.web.synthetic import GIVEN, NEEDLES, PDF, UPN, referral
from tests.web.world import FRONT_DOOR, SCHOOL, Person, World, actor

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

#: Each of the two clock moves that make a factor stale: together past the 15-minute window,
#: each within the 15-minute idle timeout.
MOVE: Final = 600
#: A wrong code for sure: the app's codes have six digits.
WRONG: Final = "1234567"


@dataclass(frozen=True)
class Protected:
    """A page that shows or gives out a record: who asks for it, how, and where it returns."""

    org: OrgId
    role: Role
    method: str
    path: str
    back: str
    form: Form | None = None


@dataclass(frozen=True)
class Items:
    """The referral the front door received and opened, and one it has not opened."""

    opened: bytes
    unopened: bytes

    def cases(self) -> dict[str, Protected]:
        """Return each protected page, by name."""
        item = f"/inbox/{self.opened.hex()}"
        sent = f"/sent/{self.opened.hex()}"
        return {
            "record": Protected(FRONT_DOOR, "dsl", "get", item, item),
            "open": Protected(FRONT_DOOR, "dsl", "post", f"{item}/open", item, {}),
            "document": Protected(FRONT_DOOR, "staff", "get", f"{item}/attachments/1", item),
            "own copy": Protected(SCHOOL, "dsl", "post", f"{sent}/copy", sent, {}),
            "copies": Protected(
                SCHOOL, "dpo", "post", "/subject-access", "/subject-access",
                {"upn": UPN, "action": "copies"},
            ),
        }  # fmt: skip


CASES: Final = ("record", "open", "document", "own copy", "copies")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def items(world: World) -> Items:
    """Hillside refers the child to the front door twice; the front door opens the first."""
    opened = await world.send(actor(SCHOOL, "dsl"), referral())
    await world.service(FRONT_DOOR).open_item(actor(FRONT_DOOR, "dsl"), opened)
    unopened = await world.send(actor(SCHOOL, "dsl"), referral())
    return Items(opened, unopened)


async def _ask(person: Person, case: Protected) -> tuple[int, bytes, str]:
    """Ask for the protected page: status, body and where it redirects (if it does)."""
    if case.method == "get":
        status, body, headers = await person.get_bytes(case.path)
        return status, body, headers.get("Location", "")
    # A form is posted with the token of a page that has no record on it.
    _, page, _ = await person.get("/inbox" if case.org == FRONT_DOOR else "/sent")
    assert case.form is not None
    status, body, headers = await person.post_bytes(case.path, case.form, page)
    return status, body, headers.get("Location", "")


def _opened(case: Protected, body: bytes) -> bool:
    """Whether the answer holds the record: the child, the letter or the copies' zip."""
    if case.path.endswith("/attachments/1"):
        return body == PDF
    if case.path == "/subject-access":
        return (
            body.startswith(b"PK") and "report.json" in zipfile.ZipFile(io.BytesIO(body)).namelist()
        )
    return GIVEN.encode() in body


@asynccontextmanager
async def stale(world: World, person: Person) -> AsyncIterator[None]:
    """Run the block past the step-up window since the person's factor, their session alive."""
    org = person.user.org
    with world.clock_moved(org, by=MOVE):
        status, _, _ = await person.get("/")
        assert status == 200
    with world.clock_moved(org, by=2 * MOVE):
        yield


def _code(world: World, person: Person) -> str:
    """Return the person's app code at their node's time."""
    assert person.account is not None
    assert person.account.secret is not None
    return code_at(person.account.secret, world.service(person.user.org).clock())


def _confirm(to: str) -> str:
    """Return the confirm page's address as a redirect gives it."""
    return f"/sign-in/confirm?to={to}"


def _main_text(page: str) -> str:
    return " ".join(parse(page).all("main")[0].text.split())


@pytest.mark.parametrize("name", CASES)
async def test_a_recent_factor_opens_the_record(world: World, items: Items, name: str) -> None:
    """Just signed in with the app: the page shows or gives out the record at once."""
    case = items.cases()[name]
    person = await world.person(case.org, case.role)
    status, body, _ = await _ask(person, case)
    assert status == 200
    assert _opened(case, body)


@pytest.mark.parametrize("name", CASES)
async def test_a_stale_factor_is_asked_again_and_shown_nothing(
    world: World, items: Items, name: str
) -> None:
    """Past the window: a redirect to confirm, back to the page (or the page with the button)."""
    case = items.cases()[name]
    person = await world.person(case.org, case.role)
    async with stale(world, person):
        status, body, location = await _ask(person, case)
    assert (status, location) == (303, _confirm(case.back))
    assert not _opened(case, body)
    assert not [needle for needle in NEEDLES if needle.encode() in body]


@pytest.mark.parametrize("name", CASES)
async def test_the_right_code_returns_to_the_page_which_then_opens(
    world: World, items: Items, name: str
) -> None:
    """The confirm page says why; the app's code goes back to the page, which opens."""
    case = items.cases()[name]
    person = await world.person(case.org, case.role)
    async with stale(world, person):
        _, _, location = await _ask(person, case)
        status, page, _ = await person.get(location)
        assert status == 200
        assert parse(page).title == "Confirm it's you – Secure exchange"
        what = (
            "download copies of records" if case.back == "/subject-access" else "open this record"
        )
        assert (
            f"You need to confirm it's you before you {what}. We ask again after 15 minutes."
            in _main_text(page)
        )
        assert 'action="/sign-in/confirm?' + urlencode({"to": case.back}) + '"' in page
        status, _, headers = await person.post(location, {"code": _code(world, person)}, page)
        assert (status, headers["Location"]) == (303, case.back)
        status, body, _ = await _ask(person, case)
    assert status == 200
    assert _opened(case, body)


async def test_confirming_keeps_the_session_s_start_and_level(world: World, items: Items) -> None:
    """A new session id, the same start time and level, and the factor given now."""
    del items
    person = await world.person(FRONT_DOOR, "dsl")
    accounts = world.service(FRONT_DOOR).accounts
    old_token = person.session_token()
    assert old_token is not None
    before = await accounts.session_for(old_token)
    assert before is not None
    async with stale(world, person):
        _, page, _ = await person.get("/sign-in/confirm")
        status, _, headers = await person.post(
            "/sign-in/confirm", {"code": _code(world, person)}, page
        )
        now = world.service(FRONT_DOOR).clock()
        assert (status, headers["Location"]) == (303, "/inbox")
        new_token = person.session_token()
        assert new_token is not None
        assert new_token != old_token
        assert await accounts.session_for(old_token) is None
        after = await accounts.session_for(new_token)
    assert after is not None
    assert (after.created, after.level, after.required) == (
        before.created, before.level, before.required,
    )  # fmt: skip
    assert after.factor_at is not None
    assert abs(after.factor_at - now) < 5
    assert after.method == "password+totp"


def _trail(world: World, person: Person) -> AbstractAsyncContextManager[list[AccountActivity]]:
    """Collect the account events the person's node records, checking they name no one."""
    assert person.account is not None
    user = person.user
    secrets = (person.account.email, user.name, user.id)
    return account_events(world.service(user.org).store, user.org, secrets)


async def test_a_wrong_code_is_refused_counted_and_slowed(world: World, items: Items) -> None:
    """Wrong codes are refused with the same words, then slowed like sign-in; each is audited."""
    person = await world.person(FRONT_DOOR, "dsl")
    item = f"/inbox/{items.opened.hex()}"
    async with _trail(world, person) as events, stale(world, person):
        _, _, headers = await person.get(item)
        location = headers["Location"]
        _, page, _ = await person.get(location)
        for _ in range(5):
            status, page, _ = await person.post(location, {"code": WRONG}, page)
            assert status == 400
            assert "Enter a correct code from your authenticator app" in page
        status, page, _ = await person.post(location, {"code": _code(world, person)}, page)
        assert status == 429
        assert "Wait 1 minute, then try again" in page
        status, _, headers = await person.get(item)
        assert (status, headers["Location"]) == (303, location)
    # One event for each wrong code, none for the attempt refused unchecked while slowed.
    assert [(e.kind, e.user_id, e.method, e.detail) for e in events] == [
        ("sign-in-failed", person.user.id, "password+totp", "step-up")
    ] * 5


async def test_a_confirmation_is_an_audited_step_up(world: World, items: Items) -> None:
    """The account event names the user and the method, and nothing of the code."""
    del items
    person = await world.person(SCHOOL, "dsl")
    async with _trail(world, person) as events, stale(world, person):
        _, page, _ = await person.get("/sign-in/confirm")
        status, _, _ = await person.post("/sign-in/confirm", {"code": _code(world, person)}, page)
    assert status == 303
    assert [(e.kind, e.user_id, e.method, e.detail) for e in events] == [
        ("step-up", person.user.id, "password+totp", "")
    ]


async def test_an_empty_code_is_asked_for(world: World, items: Items) -> None:
    """Nothing typed: the error summary asks for the code, and nothing is counted."""
    del items
    person = await world.person(SCHOOL, "dsl")
    async with stale(world, person):
        _, page, _ = await person.get("/sign-in/confirm")
        status, page, _ = await person.post("/sign-in/confirm", {"code": " "}, page)
    assert status == 400
    assert parse(page).title == "Error: Confirm it's you – Secure exchange"
    assert 'href="#code"' in page
    assert "Enter the code from your authenticator app, or a recovery code" in page


async def test_a_recovery_code_confirms_too(world: World, items: Items) -> None:
    """A recovery code confirms, as at sign-in."""
    person = await world.person(FRONT_DOOR, "dsl")
    assert person.account is not None
    item = f"/inbox/{items.opened.hex()}"
    async with stale(world, person):
        _, _, headers = await person.get(item)
        location = headers["Location"]
        _, page, _ = await person.get(location)
        code = person.account.recovery_codes[0]
        status, _, headers = await person.post(location, {"code": code}, page)
        assert (status, headers["Location"]) == (303, item)
        status, page, _ = await person.get(item)
    assert status == 200
    assert GIVEN in page


@pytest.mark.parametrize(
    "to",
    ["//evil.example/inbox", "https://evil.example/", "/sign-in/security-code", "/inbox?x=1",
     "inbox", "/inbox/\\evil", "/" + "a" * 201],
)  # fmt: skip
async def test_the_return_address_cannot_send_elsewhere(
    world: World, items: Items, to: str
) -> None:
    """Only a plain page path of this node is returned to; anything else lands on home."""
    del items
    person = await world.person(FRONT_DOOR, "dsl")
    address = "/sign-in/confirm?" + urlencode({"to": to})
    async with stale(world, person):
        status, page, _ = await person.get(address)
        assert status == 200
        assert "to=" not in page.split('action="/sign-in/confirm', 1)[1].split('"', 1)[0]
        status, _, headers = await person.post(address, {"code": _code(world, person)}, page)
    assert (status, headers["Location"]) == (303, "/inbox")


async def test_lists_and_the_api_are_not_asked(world: World, items: Items) -> None:
    """The inbox and sent lists show without a recent factor; the API reads with its token."""
    person = await world.person(FRONT_DOOR, "dsl")
    assert person.account is not None
    async with stale(world, person):
        for path in ("/inbox", "/sent", "/overdue", f"/inbox/{items.unopened.hex()}"):
            status, _, _ = await person.get(path)
            assert status == 200, path
        async with world.http.post(
            f"{person.base}/api/v1/inbox/{items.opened.hex()}/open",
            headers={"Authorization": f"Bearer {person.account.api_token}"},
        ) as response:
            assert response.status == 200


async def test_a_stale_open_leaves_the_item_unopened(world: World, items: Items) -> None:
    """Pressing "Open record" without a recent factor opens nothing (no receipt, no access)."""
    person = await world.person(FRONT_DOOR, "dsl")
    async with stale(world, person):
        _, page, _ = await person.get("/inbox")
        status, _, headers = await person.post(f"/inbox/{items.unopened.hex()}/open", {}, page)
    assert (status, headers["Location"]) == (303, _confirm(f"/inbox/{items.unopened.hex()}"))
    item = await world.service(FRONT_DOOR).store.inbox_item(FRONT_DOOR, items.unopened)
    assert item is not None
    assert item.state == "delivered"


async def test_the_confirm_page_needs_a_session(world: World, items: Items) -> None:
    """Signed out, the confirm page sends the person to sign in, keeping where to return."""
    item = f"/inbox/{items.opened.hex()}"
    status, _, headers = await world.client(FRONT_DOOR).get(_confirm(item))
    assert (status, headers["Location"]) == (303, f"/sign-in?to={item}")


async def test_with_a_recent_factor_the_confirm_page_goes_on(world: World, items: Items) -> None:
    """Nothing to confirm: straight to the page asked for."""
    item = f"/inbox/{items.opened.hex()}"
    person = await world.person(FRONT_DOOR, "dsl")
    status, _, headers = await person.get(_confirm(item))
    assert (status, headers["Location"]) == (303, item)


async def test_an_account_without_an_app_sees_no_code_form(world: World, items: Items) -> None:
    """An administrator who has no app is told so in a sentence, not given a form to fail."""
    del items
    account = await world.account(SCHOOL, "admin", app=False)
    person = world.client(SCHOOL, account=account)
    await world.sign_in(person, account)
    status, page, _ = await person.get("/sign-in/confirm")
    assert status == 200
    assert 'name="code"' not in page
    assert "Your account has no authenticator app or other way to confirm it's you" in page
    status, page, _ = await person.post("/sign-in/confirm", {"code": "123456"}, page)
    assert status == 400
    assert 'name="code"' not in page


@contextmanager
def step_up_window(world: World, org: OrgId, seconds: int) -> Iterator[None]:
    """Run the block with the node's step-up window set to ``seconds``."""
    accounts = world.service(org).accounts
    saved = accounts.policy
    accounts.policy = SessionPolicy(step_up_window=seconds)
    try:
        yield
    finally:
        accounts.policy = saved


async def test_the_window_is_the_node_s_setting(world: World, items: Items) -> None:
    """With a one-minute window, two minutes on is stale, and the page says one minute."""
    item = f"/inbox/{items.opened.hex()}"
    person = await world.person(FRONT_DOOR, "dsl")
    with step_up_window(world, FRONT_DOOR, 60), world.clock_moved(FRONT_DOOR, by=120):
        status, _, headers = await person.get(item)
        assert (status, headers["Location"]) == (303, _confirm(item))
        _, page, _ = await person.get(headers["Location"])
    assert "We ask again after 1 minute." in _main_text(page)
