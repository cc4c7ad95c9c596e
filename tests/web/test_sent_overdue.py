"""The overdue page: what an organisation is waiting for and what it owes, by deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.web.pages import parse
from tests.web.sent_nodes import (
    FRONT_DOOR,
    NURSES,
    SCHOOL,
    SENTINEL,
    SentNodes,
    delivered,
    sent_nodes,
)

pytestmark = pytest.mark.network

#: Five days on: past a referral's one working day, whatever day the test runs.
LATER = 5 * 86400


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[SentNodes]:
    """Start the school node and the LA node."""
    async for running in sent_nodes(tmp_path / "overdue"):
        yield running


def _rows(page: str) -> list[str]:
    return [" ".join(e.text.split()) for e in parse(page).all("tr")]


async def test_the_sender_waits_and_the_recipient_owes_an_acknowledgement(
    nodes: SentNodes,
) -> None:
    """An unacknowledged referral: owed by the front door, then overdue on both sides."""
    digest = await nodes.refer()
    await nodes.sent_until(SCHOOL, digest, delivered)

    front_door = await nodes.client(FRONT_DOOR, "staff")
    status, page = await front_door.get("/overdue")
    assert (status, parse(page).title) == (200, "Overdue – Secure exchange")
    owed = [row for row in _rows(page) if row.startswith("Referral")]
    assert len(owed) == 1
    assert "Hillside Primary School" in owed[0]
    assert "Due Due by 5pm on " in owed[0]
    assert f'href="/inbox/{digest.hex()}"' in page
    assert "Nothing your organisation sent is past its deadline." in page

    school = await nodes.client(SCHOOL, "dsl")
    _, page = await school.get("/overdue")
    assert "Nothing your organisation sent is past its deadline." in page

    for org in (SCHOOL, FRONT_DOOR):
        nodes.service(org).clock = lambda: time.time() + LATER
    school = await nodes.client(SCHOOL, "dsl")
    _, page = await school.get("/overdue")
    waiting = [row for row in _rows(page) if row.startswith("Referral")]
    assert len(waiting) == 1
    assert "Stockport children's front door Overdue Was due by 5pm on " in waiting[0]
    assert waiting[0].endswith("Their acknowledgement")
    assert f'href="/sent/{digest.hex()}"' in page
    front_door = await nodes.client(FRONT_DOOR, "staff")
    _, page = await front_door.get("/overdue")
    assert any("Overdue Was due by 5pm on " in row for row in _rows(page))
    assert SENTINEL not in page

    nurses = await nodes.client(NURSES, "dsl")
    _, page = await nurses.get("/overdue")
    assert "Your organisation has answered everything sent to it" in page
    assert digest.hex() not in page


async def test_an_information_request_is_owed_by_the_date_in_it(nodes: SentNodes) -> None:
    """The due date is sealed in the request, so the page points to it without opening it."""
    digest = await nodes.request_information(due="2027-03-01")
    school = nodes.service(SCHOOL)
    deadline = time.monotonic() + 20
    while await school.store.inbox_item(SCHOOL, digest) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    client = await nodes.client(SCHOOL, "dsl")
    _, page = await client.get("/overdue")
    owed = [row for row in _rows(page) if row.startswith("Information request")]
    assert len(owed) == 1
    assert owed[0].endswith("On the date given in the request")
    assert "not opened yet" in owed[0]


async def test_the_page_is_refused_to_an_administrator_and_takes_no_query(
    nodes: SentNodes,
) -> None:
    """The service allows DSLs, staff and DPOs only; a query is a 400 page."""
    admin = await nodes.client(SCHOOL, "admin")
    status, _ = await admin.get("/overdue")
    assert status == 403
    dpo = await nodes.client(SCHOOL, "dpo")
    status, page = await dpo.get("/overdue?show=Zebracorn")
    assert status == 400
    assert "Zebracorn" not in page
