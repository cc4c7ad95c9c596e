"""The account activity page over a running node: what happened, newest first, by account.

Sign-ins through the pages, a wrong password, a role change and a token made appear with the
person's user id and name, the method in words and the time in Europe/London; the page is
paged by cursor and filtered by account; only the organisation's administrators see it, and
a bad filter is refused with a plain sentence.
"""

from __future__ import annotations

import pytest

from exchange.service.audit import PAGE_SIZE
from exchange.words import london_time
from tests.web.pages import parse
from tests.web.signed_in_admin import Admin
from tests.web.world import FRONT_DOOR, NURSES, PASSWORD

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


def _rows(page: str) -> list[list[str]]:
    """Return the activity table's rows, as the text of their cells."""
    parsed = parse(page)
    cells = [" ".join(e.text.split()) for e in parsed.all("td")]
    return [cells[i : i + 5] for i in range(0, len(cells), 5)]


async def test_what_happened_is_listed_newest_first_in_words(admin: Admin) -> None:
    """A DSL's sign-in and failure, a role change and a token: each a row, newest first."""
    world = admin.world
    service = world.service(FRONT_DOOR)
    dsl = await world.account(FRONT_DOOR, "dsl")
    browser = world.client(FRONT_DOOR)
    _, page, _ = await browser.get("/sign-in")
    await browser.post("/sign-in", {"email": dsl.email, "password": "not the password"}, page)
    await world.sign_in(browser, dsl)
    number = await world.account_number(FRONT_DOOR, dsl.email)
    _, page, _ = await admin.browser.get(f"/admin/accounts/{number}")
    assert f'href="/admin/activity?account={number}"' in page
    await admin.browser.post(f"/admin/accounts/{number}/role", {"role": "staff"}, page)
    _, form, _ = await admin.browser.get("/admin/tokens/new")
    await admin.browser.post(
        "/admin/tokens/new", {"name": "export", "role": "dpo", "days": "30"}, form
    )

    status, page, _ = await admin.browser.get("/admin/activity")
    assert status == 200
    assert parse(page).title == "Account activity – Secure exchange"
    assert 'href="/admin/activity"' in (await admin.browser.get("/admin/accounts"))[1]
    admin_who = f"{admin.account.user.name} ({admin.account.user.id})"
    dsl_who = f"{dsl.user.name} ({dsl.user.id})"
    rows = _rows(page)
    assert [row[1:] for row in rows[:4]] == [
        [admin_who, "Made an API token: number 1, data protection officer", "", ""],
        [dsl_who, "Role changed to staff member", "", admin_who],
        [dsl_who, "Signed in", "Password and authenticator app", ""],
        [dsl_who, "Sign-in failed: wrong password", "Password", ""],
    ]
    newest = (await service.store.account_events(FRONT_DOOR, limit=1))[0]
    assert rows[0][0] == london_time(newest.at)
    # No email address or password anywhere on the page.
    assert dsl.email not in page
    assert PASSWORD not in page

    # One account's events: about it, or done by it.
    status, page, _ = await admin.browser.get(f"/admin/activity?account={number}")
    assert status == 200
    assert {row[1] for row in _rows(page)} == {dsl_who}
    assert f'<option value="{number}" selected>' in page


async def test_the_activity_is_paged_by_cursor(admin: Admin) -> None:
    """More than a page: "Older events" leads on, "Newest events" back, nothing twice."""
    world = admin.world
    dsl = await world.account(FRONT_DOOR, "dsl")
    for _ in range(PAGE_SIZE + 3):
        await world.service(FRONT_DOOR).accounts._audited("step-up", dsl.user, method="passkey")
    _, first, _ = await admin.browser.get("/admin/activity")
    assert len(_rows(first)) == PAGE_SIZE
    older = [
        a.attrs["href"] for a in parse(first).all("a") if "before=" in (a.attrs.get("href") or "")
    ]
    assert len(older) == 1
    assert older[0] is not None
    _, second, _ = await admin.browser.get(older[0].replace("&amp;", "&"))
    rest = _rows(second)
    assert 3 <= len(rest) < PAGE_SIZE
    assert 'href="/admin/activity"' in second  # back to the newest
    assert "Older events" not in second


async def test_refusals_are_plain_sentences(admin: Admin) -> None:
    """A filter that is not a number, another organisation's account, a DSL: each refused."""
    world = admin.world
    status, page, _ = await admin.browser.get("/admin/activity?account=alice")
    assert status == 400
    assert parse(page).title == "Error: Account activity – Secure exchange"
    assert "Select an account from the list" in page
    assert "alice" not in page.split("<form")[0]
    status, page, _ = await admin.browser.get("/admin/activity?before=-1")
    assert status == 400
    assert "The page of older events does not exist" in page

    nurses = await world.account(NURSES, "admin", app=False)
    theirs = await world.account_number(NURSES, nurses.email)
    await world.service(NURSES).accounts._audited("step-up", nurses.user, method="passkey")
    status, page, _ = await admin.browser.get(f"/admin/activity?account={theirs}")
    assert status == 404
    assert "Select an account from the list" in page
    assert nurses.user.id not in page
    _, page, _ = await admin.browser.get("/admin/activity")
    assert nurses.user.id not in page

    dsl = world.client(FRONT_DOOR)
    await world.sign_in(dsl, await world.account(FRONT_DOOR, "dsl"))
    status, page, _ = await dsl.get("/admin/activity")
    assert status == 403
    assert parse(page).title == "You cannot see this page – Secure exchange"
