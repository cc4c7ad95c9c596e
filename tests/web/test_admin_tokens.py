"""The API tokens pages over a running node: list, make (shown once), revoke, refusals.

The token is shown once, on the answer to the form, never in a URL or a later page; it works
on the staff API at once and stops when revoked. Only the organisation's administrators see
the pages; a bad form is refused with one plain sentence per field.
"""

from __future__ import annotations

import re

import pytest

from tests.web.pages import parse
from tests.web.signed_in_admin import Admin
from tests.web.world import FRONT_DOOR, NURSES

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

TOKEN_RE = re.compile(r'<code id="api-token">([A-Za-z0-9_-]{43})</code>')


def _summary(page: str) -> list[tuple[str, str]]:
    """Return the error summary's links and words."""
    return [
        (a.attrs.get("href") or "", a.text.strip())
        for a in parse(page).all("a")
        if (a.attrs.get("href") or "").startswith("#") and a.attrs.get("href") != "#main-content"
    ]


async def _make(admin: Admin, name: str, role: str = "staff", days: str = "90") -> str:
    """Make a token through the form; return it, as the page shows it once."""
    _, page, _ = await admin.browser.get("/admin/tokens/new")
    status, answer, _ = await admin.browser.post(
        "/admin/tokens/new", {"name": name, "role": role, "days": days}, page
    )
    assert status == 200, answer
    found = TOKEN_RE.search(answer)
    assert found is not None
    return found.group(1)


async def test_a_token_is_shown_once_works_and_stops_when_revoked(admin: Admin) -> None:
    """Made on the form, listed without its secret, accepted by the API, revoked after asking."""
    _, form, _ = await admin.browser.get("/admin/tokens/new")
    assert parse(form).title == "Make an API token – Secure exchange"
    assert 'value="90"' in form  # the default lifetime
    status, answer, _ = await admin.browser.post(
        "/admin/tokens/new", {"name": "case-system", "role": "dsl", "days": "90"}, form
    )
    assert status == 200
    assert parse(answer).title == "API token made – Secure exchange"
    assert "Copy the token now. You will not be able to see it again" in answer
    found = TOKEN_RE.search(answer)
    assert found is not None
    secret = found.group(1)

    status, listing, _ = await admin.browser.get("/admin/tokens")
    assert status == 200
    assert "case-system" in listing
    assert "Designated safeguarding lead" in listing
    assert "Never" in listing  # not used yet
    assert secret not in listing

    http = admin.world.http
    url = admin.world.base(FRONT_DOOR) + "/api/v1/inbox"
    headers = {"Authorization": f"Bearer {secret}"}
    async with http.get(url, headers=headers) as response:
        assert response.status == 200
    _, listing, _ = await admin.browser.get("/admin/tokens")
    assert "Never" not in listing  # its last use is shown

    token = (await admin.world.service(FRONT_DOOR).api_tokens.listed(FRONT_DOOR))[0]
    revoke = f"/admin/tokens/{token.id}/revoke"
    assert f'href="{revoke}"' in listing
    _, confirm, _ = await admin.browser.get(revoke)
    assert parse(confirm).title == "Revoke an API token – Secure exchange"
    assert "Revoke the API token case-system?" in confirm
    status, _, headers_back = await admin.browser.post(revoke, {}, confirm)
    assert (status, headers_back["Location"]) == (303, "/admin/tokens?done=revoked")
    _, listing, _ = await admin.browser.get("/admin/tokens?done=revoked")
    assert "The API token was revoked." in listing
    assert "Revoked" in listing
    assert f'href="{revoke}"' not in listing
    async with http.get(url, headers=headers) as response:
        assert response.status == 401
        assert "revoked" in await response.text()
    # Revoking again is refused on the page, saying why.
    status, again, _ = await admin.browser.post(revoke, {}, confirm)
    assert status == 409
    assert _summary(again) == [("#confirm", "This API token was revoked already")]


async def test_the_form_names_each_problem_and_makes_nothing(admin: Admin) -> None:
    """Empty fields, a bad name, role or days, and a taken name: one plain sentence each."""
    _, form, _ = await admin.browser.get("/admin/tokens/new")
    status, answer, _ = await admin.browser.post("/admin/tokens/new", {"days": ""}, form)
    assert status == 400
    assert parse(answer).title == "Error: Make an API token – Secure exchange"
    assert _summary(answer) == [
        ("#name", "Enter a name for the token"),
        ("#role", "Select the token's role"),
        ("#days", "Enter the number of days until the token expires"),
    ]
    cases = [
        ({"name": "Jane Smith's laptop", "role": "staff", "days": "90"}, "#name"),
        ({"name": "export", "role": "superuser", "days": "90"}, "#role"),
        ({"name": "export", "role": "staff", "days": "366"}, "#days"),
        ({"name": "export", "role": "staff", "days": "ninety"}, "#days"),
        ({"name": "export", "role": "staff", "days": "0"}, "#days"),
    ]
    for fields, field in cases:
        status, answer, _ = await admin.browser.post("/admin/tokens/new", fields, form)
        assert status == 400, fields
        links = _summary(answer)
        assert [href for href, _ in links] == [field], fields
        text = links[0][1]
        assert text[:1].isupper(), text
        assert "\n" not in text
        assert TOKEN_RE.search(answer) is None
    assert await admin.world.service(FRONT_DOOR).api_tokens.listed(FRONT_DOOR) == []
    await _make(admin, "export")
    status, answer, _ = await admin.browser.post(
        "/admin/tokens/new", {"name": "export", "role": "dpo", "days": "30"}, form
    )
    assert status == 400
    assert _summary(answer) == [("#name", "An API token with this name already exists")]


async def test_only_the_organisations_administrators_see_its_tokens(admin: Admin) -> None:
    """A DSL is refused every page; another organisation's token is not found, untouched."""
    world = admin.world
    nurses = await world.account(NURSES, "admin", app=False)
    nurse_browser = world.client(NURSES)
    await world.sign_in(nurse_browser, nurses)
    _, form, _ = await nurse_browser.get("/admin/tokens/new")
    await nurse_browser.post(
        "/admin/tokens/new", {"name": "nurses-export", "role": "staff", "days": "90"}, form
    )
    theirs = (await world.service(NURSES).api_tokens.listed(NURSES))[0]

    _, listing, _ = await admin.browser.get("/admin/tokens")
    assert "nurses-export" not in listing
    status, page, _ = await admin.browser.get(f"/admin/tokens/{theirs.id}/revoke")
    assert status == 404
    assert "nurses-export" not in page
    status, _, _ = await admin.browser.post(f"/admin/tokens/{theirs.id}/revoke", {}, listing)
    assert status == 404
    assert (await world.service(NURSES).api_tokens.listed(NURSES))[0].revoked_at is None

    dsl = world.client(FRONT_DOOR)
    await world.sign_in(dsl, await world.account(FRONT_DOOR, "dsl"))
    for path in ("/admin/tokens", "/admin/tokens/new", f"/admin/tokens/{theirs.id}/revoke"):
        status, page, _ = await dsl.get(path)
        assert status == 403, path
        assert parse(page).title == "You cannot see this page – Secure exchange"
    _, inbox, _ = await dsl.get("/inbox")
    status, _, _ = await dsl.post(
        "/admin/tokens/new", {"name": "sneaky", "role": "admin", "days": "90"}, inbox
    )
    assert status == 403
    assert await world.service(FRONT_DOOR).api_tokens.listed(FRONT_DOOR) == []
