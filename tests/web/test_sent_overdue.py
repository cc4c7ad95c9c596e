"""The overdue page: what an organisation is waiting for and what it owes, by deadline."""

from __future__ import annotations

import pytest

from tests.web.pages import parse
from tests.web.synthetic import NEEDLES, information_request, referral
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, World, actor, delivered

#: The tests share the module's nodes, but the one that counts what is owed and moves the
#: clocks has its own; the information request is the only one sent to Hillside here.
pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

#: Five days on: past a referral's one working day, whatever day the test runs.
LATER = 5 * 86400


def _rows(page: str) -> list[str]:
    return [" ".join(e.text.split()) for e in parse(page).all("tr")]


async def test_the_sender_waits_and_the_recipient_owes_an_acknowledgement(
    fresh_world: World,
) -> None:
    """An unacknowledged referral: owed by the front door, then overdue on both sides."""
    world = fresh_world
    digest = await world.submit(actor(SCHOOL, "dsl"), referral())
    await world.sent_until(SCHOOL, digest, delivered)

    front_door = await world.person(FRONT_DOOR, "staff")
    status, page, _ = await front_door.get("/overdue")
    assert (status, parse(page).title) == (200, "Overdue – Secure exchange")
    owed = [row for row in _rows(page) if row.startswith("Referral")]
    assert len(owed) == 1
    assert "Hillside Primary School" in owed[0]
    assert "Due Due by 5pm on " in owed[0]
    assert f'href="/inbox/{digest.hex()}"' in page
    assert "Nothing your organisation sent is past its deadline." in page

    school = await world.person(SCHOOL, "dsl")
    _, page, _ = await school.get("/overdue")
    assert "Nothing your organisation sent is past its deadline." in page

    with world.clock_moved(SCHOOL, FRONT_DOOR, by=LATER):
        school = await world.person(SCHOOL, "dsl")
        _, page, _ = await school.get("/overdue")
        waiting = [row for row in _rows(page) if row.startswith("Referral")]
        assert len(waiting) == 1
        assert "Stockport children's front door Overdue Was due by 5pm on " in waiting[0]
        assert waiting[0].endswith("Their acknowledgement")
        assert f'href="/sent/{digest.hex()}"' in page
        front_door = await world.person(FRONT_DOOR, "staff")
        _, page, _ = await front_door.get("/overdue")
        assert any("Overdue Was due by 5pm on " in row for row in _rows(page))
        for needle in NEEDLES:  # nothing of the record reaches the page
            assert needle not in page, needle

        nurses = await world.person(NURSES, "dsl")
        _, page, _ = await nurses.get("/overdue")
    assert "Your organisation has answered everything sent to it" in page
    assert digest.hex() not in page


async def test_an_information_request_is_owed_by_the_date_in_it(world: World) -> None:
    """The due date is sealed in the request, so the page points to it without opening it."""
    await world.send(actor(FRONT_DOOR, "dsl"), information_request(SCHOOL, due="2027-03-01"))
    client = await world.person(SCHOOL, "dsl")
    _, page, _ = await client.get("/overdue")
    owed = [row for row in _rows(page) if row.startswith("Information request")]
    assert len(owed) == 1
    assert owed[0].endswith("On the date given in the request")
    assert "not opened yet" in owed[0]


async def test_the_page_is_refused_to_an_administrator_and_takes_no_query(
    world: World,
) -> None:
    """The service allows DSLs, staff and DPOs only; a query is a 400 page."""
    admin = await world.person(SCHOOL, "admin")
    status, _, _ = await admin.get("/overdue")
    assert status == 403
    dpo = await world.person(SCHOOL, "dpo")
    status, page, _ = await dpo.get("/overdue?show=Zebracorn")
    assert status == 400
    assert "Zebracorn" not in page
