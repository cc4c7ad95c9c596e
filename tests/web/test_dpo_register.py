"""The sharing register page: filters, paging, the CSV download and who may see it.

The module's tests share nodes where Hillside has sent a referral and decided not to share
another; the two that add decisions have nodes of their own.
"""

from __future__ import annotations

import csv
import io

import pytest
import pytest_asyncio

from tests.web.pages import parse
from tests.web.synthetic import NHS, UPN, not_shared, referral_to_front_door
from tests.web.world import FRONT_DOOR, SCHOOL, World, actor

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

#: Stands in for anything a person could type into the address: never shown back.
SENTINEL = "Zebedee-Sentinel-42"


async def _two_decisions(world: World) -> World:
    """Hillside sends a referral and decides not to share another."""
    await world.submit(actor(SCHOOL, "dsl"), referral_to_front_door(upn=UPN, nhs=NHS))
    await not_shared(world.service(SCHOOL), SCHOOL, upn=UPN)
    return world


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def register(world: World) -> World:
    """Give the module's nodes Hillside's two decisions."""
    return await _two_decisions(world)


@pytest_asyncio.fixture(loop_scope="module")
async def own_register(fresh_world: World) -> World:
    """Give the test nodes of its own with Hillside's two decisions (it adds more)."""
    return await _two_decisions(fresh_world)


def _rows(page: str) -> list[list[str]]:
    """Return the text of each cell of each row of the page's table body."""
    parsed = parse(page)
    rows: list[list[str]] = []
    in_body = False
    for element in parsed.elements:
        if element.tag == "tbody":
            in_body = True
        elif element.tag == "tr" and in_body:
            rows.append([])
        elif element.tag == "td" and in_body:
            rows[-1].append(" ".join(element.text.split()))
    return rows


async def test_the_dpo_sees_every_decision_by_name_newest_first(register: World) -> None:
    """Both decisions, newest first, with organisation names and purposes in words."""
    client = await register.person(SCHOOL, "dpo")
    status, page, headers = await client.get("/register")
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert parse(page).title == "Sharing register – Secure exchange"
    assert "2 decisions" in page
    rows = _rows(page)
    assert [row[1].split()[0] for row in rows] == ["Not", "Shared"]
    assert rows[0][1].startswith("Not shared Sharing would not be proportionate")
    for row in rows:
        assert row[2].startswith("Referral of a child to children's social care")
        assert row[3] == "Referral"
        assert row[4] == "Stockport children's front door"
    assert UPN not in page
    assert NHS not in page


async def test_filters_keep_one_decision_and_the_download_follows_them(register: World) -> None:
    """Filtering by decision keeps one row; the download link gives the same rows as CSV."""
    client = await register.person(SCHOOL, "dpo")
    status, page, _ = await client.get("/register?decision=shared&purpose=safeguarding-referral")
    assert status == 200
    assert "1 decision match the filter" in " ".join(page.split())
    assert [row[1] for row in _rows(page)] == ["Shared"]
    links = [e.attrs["href"] for e in parse(page).all("a") if "download" in e.attrs]
    assert links == ["/register/download?purpose=safeguarding-referral&decision=shared"]
    status, text, headers = await client.get(str(links[0]))
    assert status == 200
    assert headers["Content-Type"].split(";")[0] == "text/csv"
    assert headers["Content-Disposition"] == (
        'attachment; filename="sharing-register-urn-106123.csv"'
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["decision"], r["purpose"], r["recipient"]) for r in rows] == [
        ("shared", "safeguarding-referral", FRONT_DOOR)
    ]
    assert UPN not in text


async def test_dates_filter_by_london_days(register: World) -> None:
    """A range of days before the decisions finds none; one including today finds both."""
    client = await register.person(SCHOOL, "dpo")
    _, page, _ = await client.get(
        "/register?from-day=1&from-month=1&from-year=2020&to-day=31&to-month=12&to-year=2020"
    )
    assert "No decisions match the filter" in page
    _, page, _ = await client.get("/register?from-day=1&from-month=1&from-year=2020")
    assert "2 decisions match the filter" in " ".join(page.split())
    # A valid date is filled back in, as the person typed it.
    inputs = {e.attrs.get("id"): e.attrs.get("value") for e in parse(page).all("input")}
    assert (inputs["from-day"], inputs["from-month"], inputs["from-year"]) == ("1", "1", "2020")


@pytest.mark.parametrize(
    ("query", "href", "message"),
    [
        ("from-day=31&from-month=2&from-year=2026", "#from-day", "Start date must be a real date"),
        ("from-day=1&from-year=2026", "#from-day", "Start date must include a month"),
        (f"to-day={SENTINEL}&to-month=1&to-year=2026", "#to-day", "End date must be a real date"),
        ("to-day=1&to-month=1&to-year=26", "#to-day", "End date must include a year with 4"),
        (
            "from-day=2&from-month=1&from-year=2026&to-day=1&to-month=1&to-year=2026",
            "#to-day",
            "End date must be the same as or after the start date",
        ),
        (f"purpose={SENTINEL}", "#purpose", "Select a purpose from the list"),
        (f"decision={SENTINEL}", "#decision", "Select shared or not shared"),
    ],
)
async def test_a_bad_filter_is_an_error_that_never_echoes_it(
    register: World, query: str, href: str, message: str
) -> None:
    """Each bad value is an error linked to its field; nothing typed is shown back."""
    client = await register.person(SCHOOL, "dpo")
    status, page, _ = await client.get("/register?" + query)
    assert status == 400
    parsed = parse(page)
    assert parsed.title == "Error: Sharing register – Secure exchange"
    summary = [(e.attrs["href"], e.text) for e in parsed.all("a") if e.attrs.get("href") == href]
    assert summary
    assert summary[0][1].startswith(message)
    assert SENTINEL not in page
    assert "<table" not in page
    # The download refuses the same values the same way.
    status, page, _ = await client.get("/register/download?" + query)
    assert status == 400
    assert SENTINEL not in page


async def test_the_register_is_paged(own_register: World) -> None:
    """25 decisions a page, newest first, with previous and next links; past the end, 404."""
    for _ in range(28):
        await not_shared(own_register.service(SCHOOL), SCHOOL)
    client = await own_register.person(SCHOOL, "dpo")
    _, first, _ = await client.get("/register?decision=not-shared")
    assert len(_rows(first)) == 25
    assert "Showing 1 to 25 of 29, newest first." in first
    nexts = [e.attrs["href"] for e in parse(first).all("a") if e.attrs.get("rel") == "next"]
    assert nexts == ["/register?decision=not-shared&page=2"]
    _, second, _ = await client.get(str(nexts[0]))
    assert len(_rows(second)) == 4
    assert [e.attrs["rel"] for e in parse(second).all("a") if "rel" in e.attrs] == ["prev"]
    assert (await client.get("/register?decision=not-shared&page=3"))[0] == 404
    assert (await client.get("/register?page=0"))[0] == 404
    assert (await client.get(f"/register?page={SENTINEL}"))[0] == 404


async def test_csv_cells_that_look_like_formulas_are_made_text(own_register: World) -> None:
    """A reason starting with = is written with a leading apostrophe, as the export does."""
    await own_register.service(SCHOOL).record_not_shared(
        actor(SCHOOL, "dsl"),
        purpose="safeguarding-referral",
        recipients=[FRONT_DOOR],
        reason_code="not-necessary",
        reason="=HYPERLINK(1) is not a reason",
    )
    client = await own_register.person(SCHOOL, "dpo")
    _, text, _ = await client.get("/register/download?decision=not-shared")
    reasons = [r["reason"] for r in csv.DictReader(io.StringIO(text))]
    assert "'=HYPERLINK(1) is not a reason" in reasons


@pytest.mark.parametrize("role", ["dsl", "admin", "staff"])
async def test_only_the_dpo_may_see_the_register(register: World, role: str) -> None:
    """Other roles of the same organisation get the 403 page on the page and the download."""
    client = await register.person(SCHOOL, role)  # type: ignore[arg-type]
    for path in ("/register", "/register/download", "/register?purpose=" + SENTINEL):
        status, page, _ = await client.get(path)
        assert status == 403
        assert parse(page).title == "You cannot see this page – Secure exchange"
        assert SENTINEL not in page


async def test_another_organisation_never_sees_hillsides_decisions(register: World) -> None:
    """The front door's DPO, on another node, sees only the front door's register."""
    client = await register.person(FRONT_DOOR, "dpo")
    _, page, _ = await client.get("/register")
    assert "No decisions" in page
    _, text, _ = await client.get("/register/download")
    assert text.count("\r\n") == 1  # the header row only
