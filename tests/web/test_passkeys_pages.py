"""The passkey pages of a running node, driven as their script drives them, with a soft passkey.

The module's node is reached at ``https://127.0.0.1:<port>``, which cannot be a WebAuthn
relying party: :func:`named` gives Hillside's node the public URL ``https://localhost:<port>``
for a test (the soft passkey answers for that origin), then puts the address back. The
browser tests (tests/browser/test_passkeys_journey.py) run the same pages in Chromium.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from exchange.service.passkeys import PASSKEY_REFUSED
from exchange.web.passkeys import NOT_USED
from tests.auth.webauthn_device import SoftPasskey
from tests.node.account_trail import account_events
from tests.web.page_client import PageClient
from tests.web.pages import parse
from tests.web.world import PASSWORD, SCHOOL, Person, World

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

PASSKEY_FORM = 'action="/sign-in/passkey'


@pytest_asyncio.fixture(loop_scope="module")
async def named(world: World) -> AsyncIterator[str]:
    """Name Hillside's node ``localhost`` for the test; return the origin passkeys answer for."""
    service = world.service(SCHOOL)
    address = service.public_url
    origin = "https://localhost:" + str(urlsplit(world.base(SCHOOL)).port)
    service.public_url = origin
    yield origin
    service.public_url = address


async def _options(client: PageClient, path: str, page: str, form: dict[str, str]) -> str:
    status, text, headers = await client.post(path, form, page)
    assert status == 200, text
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "no-store"
    return text


async def _add(person: Person, device: SoftPasskey, name: str = "Work laptop") -> tuple[int, str]:
    """Add a passkey as the add page's script does; return the answer's status and Location."""
    status, page, _ = await person.get("/account/passkeys/add")
    assert status == 200
    options = await _options(person, "/account/passkeys/add/options", page, {"name": name})
    status, text, headers = await person.post(
        "/account/passkeys/add", {"name": name, "credential": device.register(options)}, page
    )
    return status, headers.get("Location", text)


async def _sign_in(
    client: PageClient, device: SoftPasskey, start: str = "/sign-in", **wrong: object
) -> tuple[int, str, str]:
    """Sign in as the sign-in page's script does: status, page and Location."""
    _, page, _ = await client.get(start)
    assert PASSKEY_FORM in page
    options = await _options(client, "/sign-in/passkey/options", page, {})
    answer = device.sign_in(options, **wrong)  # type: ignore[arg-type]
    to = re.search(r'action="/sign-in/passkey([^"]*)"', page)
    assert to is not None
    status, text, headers = await client.post(
        "/sign-in/passkey" + to.group(1).replace("&amp;", "&"), {"credential": answer}, page
    )
    return status, text, headers.get("Location", "")


async def test_a_node_reached_by_address_offers_no_passkeys(world: World) -> None:
    """At an IP address the sign-in page has no passkey button, and the list says why."""
    client = world.client(SCHOOL)
    _, page, _ = await client.get("/sign-in")
    assert PASSKEY_FORM not in page
    person = await world.person(SCHOOL, "staff")
    status, page, _ = await person.get("/account/passkeys")
    assert status == 200
    assert "Passkeys cannot be used on this node" in page
    assert 'href="/account/passkeys/add"' not in page


async def test_add_sign_in_and_remove_a_passkey(world: World, named: str) -> None:
    """The whole journey: add one, sign out, sign in with it at the page asked for, remove it."""
    person = await world.person(SCHOOL, "dsl")
    device = SoftPasskey(rp_id="localhost", origin=named)
    assert await _add(person, device, "  Work   laptop ") == (303, "/account/passkeys?done=added")
    _, page, _ = await person.get("/account/passkeys?done=added")
    listed = parse(page)
    assert "Your passkey was added" in page
    assert [c.text for c in listed.all("th") if c.attrs.get("scope") == "row"] == ["Work laptop"]
    assert "Not used yet" in page

    _, page, _ = await person.get("/inbox")
    await person.post("/sign-out", {}, page)
    stranger = world.client(SCHOOL)
    status, _, location = await _sign_in(stranger, device, "/sign-in?to=/sent")
    assert (status, location) == (303, "/sent")
    status, page, _ = await stranger.get("/account/passkeys")
    assert status == 200
    assert "Not used yet" not in page  # its last use is shown, in London time

    number = re.search(r'href="/account/passkeys/(\d+)/remove"', page)
    assert number is not None
    status, page, _ = await stranger.get(f"/account/passkeys/{number.group(1)}/remove")
    assert status == 200
    assert "Remove the passkey Work laptop?" in page
    status, _, headers = await stranger.post(
        f"/account/passkeys/{number.group(1)}/remove", {}, page
    )
    assert (status, headers["Location"]) == (303, "/account/passkeys?done=removed")
    _, page, _ = await stranger.get("/account/passkeys")
    assert "You have not added a passkey" in page
    status, page, _ = await _sign_in(world.client(SCHOOL), device)
    assert status == 401
    assert PASSKEY_REFUSED in page


async def test_adding_needs_a_second_factor_given_recently(world: World, named: str) -> None:
    """Past the step-up window (the session still in use) the add page sends to confirm."""
    del named
    person = await world.person(SCHOOL, "dsl")
    for _ in range(2):
        with world.clock_moved(SCHOOL, by=500):
            assert (await person.get("/account/passkeys"))[0] == 200
    with world.clock_moved(SCHOOL, by=1000):
        status, _, headers = await person.get("/account/passkeys/add")
    assert (status, headers["Location"]) == (303, "/sign-in/confirm?to=/account/passkeys/add")


async def test_a_passkey_needs_a_name_before_the_browser_is_asked(world: World, named: str) -> None:
    """An empty name is refused by the options (the script then sends the form, which says so)."""
    person = await world.person(SCHOOL, "dsl")
    _, page, _ = await person.get("/account/passkeys/add")
    status, text, _ = await person.post("/account/passkeys/add/options", {"name": " "}, page)
    assert status == 422
    assert "Enter a name for your passkey" in json.loads(text)["error"]
    device = SoftPasskey(rp_id="localhost", origin=named)
    status, page, _ = await person.post(
        "/account/passkeys/add", {"name": "", "credential": ""}, page
    )
    assert status == 422
    assert 'href="#name"' in page
    status, _ = await _add(person, device, "Phone")
    assert status == 303


async def test_a_cancelled_prompt_says_what_to_do(world: World, named: str) -> None:
    """A form sent without the browser's answer adds nothing, or signs nobody in, and says so."""
    del named
    person = await world.person(SCHOOL, "staff")
    _, page, _ = await person.get("/account/passkeys/add")
    status, page, _ = await person.post(
        "/account/passkeys/add", {"name": "Laptop", "credential": ""}, page
    )
    assert status == 422
    assert "Your passkey was not added" in page
    client = world.client(SCHOOL)
    _, page, _ = await client.get("/sign-in")
    status, page, _ = await client.post("/sign-in/passkey", {"credential": ""}, page)
    assert status == 401
    assert NOT_USED.split(".")[0] in page
    assert client.session_token() is None


async def test_a_passkey_from_another_origin_signs_nobody_in(world: World, named: str) -> None:
    """An answer made for another site is refused with one plain sentence; no session starts."""
    person = await world.person(SCHOOL, "staff")
    device = SoftPasskey(rp_id="localhost", origin=named)
    assert (await _add(person, device))[0] == 303
    client = world.client(SCHOOL)
    status, page, _ = await _sign_in(client, device, origin="https://evil.example")
    assert status == 401
    assert PASSKEY_REFUSED in page
    assert 'href="#passkey-sign-in"' in page
    assert client.session_token() is None


async def test_the_options_need_the_forms_token(world: World, named: str) -> None:
    """Another site cannot make the node issue a challenge for this browser."""
    del named
    client = world.client(SCHOOL)
    status, _, _ = await client.post_without_token("/sign-in/passkey/options", {})
    assert status == 403


async def test_an_account_whose_factor_is_a_passkey_uses_it_after_the_password(
    world: World, named: str
) -> None:
    """An administrator with only a passkey is asked for it after the password: no code form."""
    account = await world.account(SCHOOL, "admin", app=False)
    admin = world.client(SCHOOL, account=account)
    await world.sign_in(admin, account)  # the password alone: the role needs no more yet
    device = SoftPasskey(rp_id="localhost", origin=named)
    assert (await _add(admin, device))[0] == 303
    client = world.client(SCHOOL)
    _, page, _ = await client.get("/sign-in")
    status, _, headers = await client.post(
        "/sign-in", {"email": account.email, "password": PASSWORD}, page
    )
    assert (status, headers["Location"]) == (303, "/sign-in/security-code")
    status, page, _ = await client.get("/sign-in/security-code")
    assert status == 200
    assert "Use your passkey" in page
    assert 'name="code"' not in page
    assert (await client.get("/admin/accounts"))[0] == 303  # not signed in yet
    status, _, location = await _sign_in(client, device, "/sign-in/security-code")
    assert (status, location) == (303, "/admin/accounts")
    status, page, _ = await client.get("/admin/accounts")
    assert status == 200
    # The administrator's list says which second factor each account has.
    row = next(r for r in parse(page).all("tr") if account.email in r.text)
    assert "1 passkey" in row.text


async def test_confirming_with_a_passkey_is_one_audited_step_up(world: World, named: str) -> None:
    """Past the window, the confirm page's passkey raises the session: one ``step-up`` event.

    An answer made for another site is refused there on a page of its own, as one
    ``sign-in-refused`` event; neither event's statement names the person.
    """
    person = await world.person(SCHOOL, "dsl")
    assert person.account is not None
    device = SoftPasskey(rp_id="localhost", origin=named)
    assert (await _add(person, device))[0] == 303
    store = world.service(SCHOOL).store
    secrets = (person.account.email, person.user.name, person.user.id)
    confirm = "/sign-in/confirm?to=/inbox"
    for _ in range(2):
        with world.clock_moved(SCHOOL, by=500):
            assert (await person.get("/account/passkeys"))[0] == 200
    with world.clock_moved(SCHOOL, by=1000):
        async with account_events(store, SCHOOL, secrets) as refused:
            status, page, _ = await _sign_in(person, device, confirm, origin="https://evil.example")
        assert status == 401
        assert parse(page).title == "Your passkey was not accepted – Secure exchange"
        async with account_events(store, SCHOOL, secrets) as confirmed:
            status, _, location = await _sign_in(person, device, confirm)
        assert (status, location) == (303, "/inbox")
    assert [(e.kind, e.user_id, e.method) for e in refused] == [
        ("sign-in-refused", person.user.id, "passkey")
    ]
    assert refused[0].detail
    assert [(e.kind, e.user_id, e.method, e.detail) for e in confirmed] == [
        ("step-up", person.user.id, "passkey", "")
    ]
