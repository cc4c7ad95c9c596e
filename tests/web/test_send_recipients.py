"""The recipients page: a select of the directory (an autocomplete with JavaScript) and a search.

Without JavaScript the select and the search are the page; with it, ``recipients.js`` turns
the select into GOV.UK's accessible autocomplete (tests/browser/test_recipients_autocomplete.py
drives that in Chromium). Each option names the organisation and its code, which is what
the autocomplete matches on.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.keys.ids import OrgId
from exchange.web.send.choices import Recipient
from tests.web.pages import Page, parse
from tests.web.send_client import FRONT_DOOR, SCHOOL, Client, SendExchange, send_exchange, start

pytestmark = pytest.mark.network

FRONT_DOOR_LABEL = "Stockport children's front door (LA 356)"


@pytest.fixture
async def exchange(tmp_path: Path) -> AsyncIterator[SendExchange]:
    """Start a school node and an LA node, with signed-up staff."""
    async with send_exchange(tmp_path / "nodes") as running:
        yield running


async def _recipients(client: Client, kind: str = "referral") -> str:
    """Start a draft of ``kind``; return its recipients page's path."""
    first = await start(client, kind)
    match = re.match(r"/send/([^/]+)/", first)
    assert match is not None, first
    return f"/send/{match.group(1)}/recipients"


def _options(page: Page) -> list[tuple[str, str]]:
    """Return the select's options: (value, text)."""
    return [(str(o.attrs.get("value")), o.text.strip()) for o in page.all("option")]


def _summary(text: str) -> list[tuple[str, str]]:
    return [
        (str(a.attrs.get("href")), " ".join(a.text.split()))
        for a in parse(text).all("a")
        if str(a.attrs.get("href", "")).startswith("#f-")
    ]


def test_an_option_names_the_organisation_and_its_code() -> None:
    """The text the select shows and the autocomplete matches on: name, then scheme and code."""
    cases = {
        ("la:356", "la"): "Stockport children's front door (LA 356)",
        ("urn:106123", "school"): "Stockport children's front door (URN 106123)",
        ("ods:X26ABC", "nhs"): "Stockport children's front door (ODS X26ABC)",
    }
    for (org, kind), label in cases.items():
        recipient = Recipient(OrgId(org), "Stockport children's front door", kind)
        assert recipient.label == label


async def test_the_select_lists_who_may_receive_it_by_name_and_code(
    exchange: SendExchange,
) -> None:
    """A referral goes to a local authority: the select lists the front door, not the school."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await _recipients(client)
        status, text, _ = await client.get(where)
    assert status == 200
    page = parse(text)
    select = next(e for e in page.all("select"))
    assert (select.attrs["id"], select.attrs["name"]) == ("f-org", "recipient")
    assert _options(page) == [("", "Choose an organisation"), (str(FRONT_DOOR), FRONT_DOOR_LABEL)]
    assert "Hillside" not in select.text
    # The search stays, for a long directory.
    assert [i.attrs.get("name") for i in page.all("input") if i.attrs.get("type") == "search"] == [
        "q"
    ]


async def test_the_select_never_lists_the_senders_own_organisation(
    exchange: SendExchange,
) -> None:
    """An information request may go to an LA, but the front door's own select omits itself."""
    async with exchange.client(FRONT_DOOR, "dsl") as client:
        where = await _recipients(client, "information-request")
        _, text, _ = await client.get(where)
    options = _options(parse(text))
    assert ("urn:106123", "Hillside Primary School (URN 106123)") in options
    assert str(FRONT_DOOR) not in [value for value, _ in options]
    assert "front door (LA 356)" not in text


async def test_the_autocomplete_loads_on_this_page_alone_with_the_nonce(
    exchange: SendExchange,
) -> None:
    """Its stylesheets and scripts are files from /assets/ carrying the nonce: nothing inline."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await _recipients(client)
        async with client.http.get(client.base + where) as response:
            csp = response.headers["Content-Security-Policy"]
            text = await response.text()
        _, other, _ = await client.get("/send")
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce is not None
    assert "style-src 'self'" in csp
    page = parse(text)
    sources = {str(s.attrs.get("src")).split("?")[0]: s for s in page.all("script")}
    library = sources["/assets/accessible-autocomplete.min.js"]
    ours = sources["/assets/recipients.js"]
    assert ours.attrs.get("type") == "module"
    assert library.attrs.get("nonce") == ours.attrs.get("nonce") == nonce.group(1)
    sheets = [str(link.attrs.get("href")).split("?")[0] for link in page.all("link")]
    assert "/assets/accessible-autocomplete.min.css" in sheets
    assert "/assets/recipients.css" in sheets
    assert " style=" not in text
    assert "accessible-autocomplete" not in other
    assert "recipients.js" not in other


async def test_choosing_from_the_select_adds_it_without_javascript(
    exchange: SendExchange,
) -> None:
    """The select's form adds the organisation; it then leaves the select, and Continue goes on."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await _recipients(client)
        _, page, _ = await client.get(where)
        form = {"from": "list", "recipient": str(FRONT_DOOR), "action": "add"}
        status, _, location = await client.post(where, form, page)
        assert (status, location) == (303, where)
        _, page, _ = await client.get(where)
        parsed = parse(page)
        chosen = [e.text.strip() for e in parsed.all("dt")]
        assert chosen == ["Stockport children's front door"]
        assert str(FRONT_DOOR) not in [value for value, _ in _options(parsed)]
        assert "recipients.js" not in page  # none left to choose: no select to enhance
        status, _, location = await client.post(where, {"action": "continue"}, page)
    assert status == 303
    assert location.endswith("/purpose")


async def test_adding_nothing_from_the_select_points_the_error_at_it(
    exchange: SendExchange,
) -> None:
    """The error summary links to the select (or the autocomplete, which takes its id)."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await _recipients(client)
        _, page, _ = await client.get(where)
        form = {"from": "list", "recipient": "", "action": "add"}
        status, text, _ = await client.post(where, form, page)
        assert status == 400
        assert _summary(text) == [("#f-org", "Select an organisation")]
        select = parse(text).all("select")[0]
        assert "govuk-select--error" in str(select.attrs["class"])
        assert select.attrs["aria-describedby"] == "f-org-hint f-org-error"
        status, text, _ = await client.post(where, {"action": "continue"}, page)
    assert status == 400
    assert _summary(text) == [
        ("#f-org", "Choose or find the organisation you want to send the record to, and add it")
    ]


async def test_the_senders_own_organisation_cannot_be_added_from_the_select(
    exchange: SendExchange,
) -> None:
    """A value that is not an option (here the sender's own id) is refused, nothing added."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await _recipients(client)
        _, page, _ = await client.get(where)
        form = {"from": "list", "recipient": str(SCHOOL), "action": "add"}
        status, text, _ = await client.post(where, form, page)
        assert status == 400
        assert _summary(text) == [("#f-org", "Select an organisation")]
        _, page, _ = await client.get(where)
    assert parse(page).all("dt") == []


async def test_the_search_still_finds_and_adds(exchange: SendExchange) -> None:
    """Searching by code lists the match as a radio, added with its own button."""
    async with exchange.client(SCHOOL, "dsl") as client:
        where = await _recipients(client)
        _, page, _ = await client.get(where + "?q=356")
        parsed = parse(page)
        radios = [i for i in parsed.all("input") if i.attrs.get("type") == "radio"]
        assert [r.attrs["value"] for r in radios] == [str(FRONT_DOOR)]
        buttons = [" ".join(b.text.split()) for b in parsed.all("button")]
        assert "Add selected organisation" in buttons
        form = {"recipient": str(FRONT_DOOR), "action": "add"}
        status, _, _ = await client.post(where, form, page)
        assert status == 303
        status, text, _ = await client.post(where, {"recipient": "", "action": "add"}, page)
    assert status == 400
    assert _summary(text) == [("#f-q", "Select an organisation")]
