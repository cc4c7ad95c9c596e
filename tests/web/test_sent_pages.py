"""The sent items pages over a running school node and an LA node with two tenants."""

from __future__ import annotations

import pytest

from exchange.web import sent as sent_pages
from tests.web.pages import parse
from tests.web.synthetic import NEEDLES, information_request, referral
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, World, actor, delivered

#: The tests share the module's nodes, each looking only at its own items; a test that
#: pages through everything Hillside sent, or moves its clock, has nodes of its own.
pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]
#: Five days on: past a referral's one working day, whatever day the test runs.
LATER = 5 * 86400


async def _refer(world: World) -> bytes:
    """Submit Hillside's referral of the child to the front door; return its digest."""
    return await world.submit(actor(SCHOOL, "dsl"), referral())


def _clean(page: str) -> None:
    """Assert that none of the child's details (the record's content) reaches a sent page."""
    for needle in NEEDLES:
        assert needle not in page, needle


def _texts(html: str, tag: str) -> list[str]:
    return [" ".join(e.text.split()) for e in parse(html).all(tag)]


async def test_the_list_shows_each_record_with_its_recipient_and_status(world: World) -> None:
    """A delivered referral is listed by kind, recipient name and a "Delivered" tag."""
    digest = await _refer(world)
    await world.sent_until(SCHOOL, digest, delivered)
    client = await world.person(SCHOOL, "dsl")
    status, page, _ = await client.get("/sent")
    assert status == 200
    assert parse(page).title == "Sent records – Secure exchange"
    assert _texts(page, "h1") == ["Sent records"]
    rows = _texts(page, "tr")
    assert any(
        "Referral" in row and "Stockport children's front door Delivered" in row for row in rows
    )
    assert f'href="/sent/{digest.hex()}"' in page
    _clean(page)


async def test_the_list_pages_by_cursor_both_ways(
    fresh_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two records a page, five records make three pages; Previous goes back."""
    monkeypatch.setattr(sent_pages, "PAGE_SIZE", 2)
    digests = [await _refer(fresh_world) for _ in range(5)]
    client = await fresh_world.person(SCHOOL, "dsl")

    def listed(page: str) -> list[str]:
        return [d.hex() for d in reversed(digests) if f"/sent/{d.hex()}" in page]

    def link(page: str, rel: str) -> str | None:
        found = [e for e in parse(page).all("a") if e.attrs.get("rel") == rel]
        return str(found[0].attrs["href"]) if found else None

    _, first, _ = await client.get("/sent")
    assert listed(first) == [d.hex() for d in reversed(digests)][:2]
    assert link(first, "prev") is None
    next_href = link(first, "next")
    assert next_href is not None
    _, second, _ = await client.get(next_href)
    assert listed(second) == [d.hex() for d in reversed(digests)][2:4]
    third_href = link(second, "next")
    assert third_href is not None
    _, third, _ = await client.get(third_href)
    assert listed(third) == [digests[0].hex()]
    assert link(third, "next") is None
    back = link(third, "prev")
    assert back is not None
    _, again, _ = await client.get(back)
    assert listed(again) == listed(second)
    back = link(again, "prev")
    assert back is not None
    _, top, _ = await client.get(back)
    assert listed(top) == listed(first)
    assert link(top, "prev") is None


async def test_the_filters_keep_the_records_awaiting_acknowledgement_and_the_overdue(
    fresh_world: World,
) -> None:
    """Acknowledged records leave "awaiting"; a day past the deadline the rest are overdue."""
    world = fresh_world
    answered = await _refer(world)
    waiting = await _refer(world)
    for digest in (answered, waiting):
        await world.sent_until(SCHOOL, digest, delivered)
    front_door = world.service(FRONT_DOOR)
    await front_door.decide(
        actor(FRONT_DOOR, "dsl"), answered, accept=True, code="no-further-action"
    )
    await world.sent_until(
        SCHOOL, answered, lambda v: all(r.status == "acknowledged" for r in v.recipients)
    )
    client = await world.person(SCHOOL, "dsl")
    status, page, _ = await client.get("/sent?show=awaiting-acknowledgement")
    assert status == 200
    assert f"/sent/{waiting.hex()}" in page
    assert f"/sent/{answered.hex()}" not in page
    status, page, _ = await client.get("/sent?show=overdue")
    assert status == 200
    assert "No sent records are overdue." in page

    with world.clock_moved(SCHOOL, by=LATER):  # past a working day, whatever the weekday
        client = await world.person(SCHOOL, "dsl")  # the earlier session ended days ago
        status, page, _ = await client.get("/sent?show=overdue")
    assert f"/sent/{waiting.hex()}" in page
    assert f"/sent/{answered.hex()}" not in page
    assert "Stockport children's front door Overdue" in " ".join(_texts(page, "tr"))


@pytest.mark.parametrize(
    "query",
    [
        "show=everything-Zebracorn",
        "show=overdue&show=overdue",
        "colour=Zebracorn",
        "before=Zebracorn",
        "after=0x1.0p%2B30:Zebracorn",
        f"before=0x1.0p30:{'a' * 64}&after=0x1.0p30:{'a' * 64}",
    ],
)
async def test_a_wrong_query_is_a_400_page_that_does_not_repeat_it(
    world: World, query: str
) -> None:
    """Only the fixed filter values and real cursors are accepted; the refusal echoes nothing."""
    client = await world.person(SCHOOL, "dsl")
    status, page, _ = await client.get("/sent?" + query)
    assert status == 400
    assert parse(page).title == "There is a problem with your request – Secure exchange"
    assert "Zebracorn" not in page


async def test_the_item_page_shows_the_timeline_deadline_and_actions(world: World) -> None:
    """Kind, recipient, deadline in words, the receipts in time order, correct and recall."""
    digest = await _refer(world)
    await world.sent_until(SCHOOL, digest, delivered)
    await world.service(FRONT_DOOR).open_item(actor(FRONT_DOOR, "dsl"), digest)
    await world.sent_until(SCHOOL, digest, lambda v: v.recipients[0].status == "opened")
    client = await world.person(SCHOOL, "dsl")
    status, page, _ = await client.get(f"/sent/{digest.hex()}")
    assert status == 200
    parsed = parse(page)
    assert parsed.title == "Sent referral – Secure exchange"
    assert _texts(page, "h1") == ["Referral"]
    assert "Stockport children's front door Opened" in _texts(page, "h2")
    facts = _texts(page, "dd")
    assert any(f.startswith("By 5pm on ") for f in facts)
    timeline = [row for row in _texts(page, "tr") if " at " in row]
    events = [row.split("m ", 1)[1] for row in timeline]
    assert events[0] == "Sent by your organisation"
    assert events.index("Received by their node") < events.index(
        "Opened by a member of their staff"
    )
    assert f'href="/send/correct/{digest.hex()}"' in page
    assert f'href="/sent/{digest.hex()}/recall"' in page
    _clean(page)

    staff = await world.person(SCHOOL, "staff")
    _, page, _ = await staff.get(f"/sent/{digest.hex()}")
    assert "/recall" not in page  # the role may not recall, so it is not offered


async def test_another_organisations_item_is_not_found_even_on_the_same_node(
    world: World,
) -> None:
    """The nursing team cannot see the front door's sent item, nor the school's, by its digest."""
    request = await world.submit(
        actor(FRONT_DOOR, "dsl"), information_request(SCHOOL, due="2027-03-01")
    )
    referred = await _refer(world)
    nurses = await world.person(NURSES, "dsl")
    for digest in (request, referred):
        for path in (f"/sent/{digest.hex()}", f"/sent/{digest.hex()}/recall"):
            status, page, _ = await nurses.get(path)
            assert status == 404, path
            assert parse(page).title == "Page not found – Secure exchange"
    front_door = await world.person(FRONT_DOOR, "dsl")
    status, _, _ = await front_door.get(f"/sent/{request.hex()}")
    assert status == 200
    status, _, _ = await front_door.get(f"/sent/{referred.hex()}")
    assert status == 404


@pytest.mark.parametrize("path", ["/sent/Zebracorn", "/sent/" + "A" * 64, "/sent/" + "a" * 63])
async def test_a_malformed_digest_is_not_found_and_not_repeated(world: World, path: str) -> None:
    """A digest that is not 64 lower-case hex digits matches no page."""
    client = await world.person(SCHOOL, "dsl")
    status, page, _ = await client.get(path)
    assert status == 404
    assert "Zebracorn" not in page
    assert "A" * 64 not in page


async def test_the_json_api_still_lists_sent_items(world: World) -> None:
    """``GET /api/v1/sent`` answers as before, beside the pages."""
    dsl = await world.person(SCHOOL, "dsl")
    assert dsl.account is not None
    digest = await _refer(world)
    async with world.http.get(
        world.base(SCHOOL) + "/api/v1/sent?limit=1",
        headers={"Authorization": f"Bearer {dsl.account.api_token}"},
    ) as response:
        assert response.status == 200
        body = await response.json()
    assert [item["digest"] for item in body["items"]] == [digest.hex()]


async def test_show_what_we_sent_reads_back_the_record_for_those_who_read_records(
    world: World,
) -> None:
    """The DSL sees the record it sent from the node's own copy; a DPO is refused."""
    digest = await _refer(world)
    client = await world.person(SCHOOL, "dsl")
    status, item, _ = await client.get(f"/sent/{digest.hex()}")
    assert status == 200
    assert "Show what we sent" in item
    status, page, _ = await client.post(f"/sent/{digest.hex()}/copy", {}, page=item)
    assert status == 200
    assert parse(page).title == "What we sent: Referral – Secure exchange"
    assert any(needle in page for needle in NEEDLES)  # the record itself, to its sender
    dpo = await world.person(SCHOOL, "dpo")
    status, item, _ = await dpo.get(f"/sent/{digest.hex()}")
    assert "Show what we sent" not in item
