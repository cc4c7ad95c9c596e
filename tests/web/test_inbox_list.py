"""The inbox list: unread first, then the newest; a page at a time; each row links its item."""

from __future__ import annotations

import pytest

from exchange.web.inbox import listing
from tests.web.pages import parse
from tests.web.synthetic import referral
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, World

#: The tests share the module's nodes: only the first sends, and only to the front door.
pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


def _rows(page: str) -> list[tuple[str, str]]:
    """Return each row's link and status tag."""
    parsed = parse(page)
    links = [
        a.attrs["href"] or ""
        for a in parsed.all("a")
        if (a.attrs["href"] or "").startswith("/inbox/")
    ]
    tags = [
        " ".join(t.text.split())
        for t in parsed.all("strong")
        if "govuk-tag" in (t.attrs.get("class") or "")
    ]
    return list(zip(links, tags, strict=True))


async def test_unread_items_come_first_and_the_list_pages_by_cursor(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New items first (newest first), then opened ones; next and first page links."""
    monkeypatch.setattr(listing, "PAGE_SIZE", 2)
    school_dsl = await world.person(SCHOOL, "dsl")
    worker = await world.person(FRONT_DOOR, "dsl")
    digests = [await world.send(school_dsl.user, referral()) for _ in range(3)]
    await world.service(FRONT_DOOR).read_item(worker.user, digests[2])  # the newest is read

    status, page, _ = await worker.get("/inbox")
    assert status == 200
    assert parse(page).title == "Inbox – Secure exchange"
    assert _rows(page) == [
        (f"/inbox/{digests[1].hex()}", "New"),
        (f"/inbox/{digests[0].hex()}", "New"),
    ]
    assert "Hillside Primary School" in page
    next_link = [a.attrs["href"] for a in parse(page).all("a") if a.attrs.get("rel") == "next"]
    assert len(next_link) == 1
    assert next_link[0] is not None

    status, second, _ = await worker.get(next_link[0])
    assert status == 200
    assert _rows(second) == [(f"/inbox/{digests[2].hex()}", "Opened")]
    assert not [a for a in parse(second).all("a") if a.attrs.get("rel") == "next"]
    assert [a.attrs["href"] for a in parse(second).all("a") if a.attrs.get("rel") == "prev"] == [
        "/inbox"
    ]

    for bad in ("nonsense", "1:0x1p30:" + "g" * 64, "2:0x1p30:" + "0" * 64):
        status, error, _ = await worker.get(f"/inbox?after={bad}")
        assert status == 400
        assert bad not in error


async def test_an_empty_inbox_says_so(world: World) -> None:
    """An organisation that has been sent nothing sees a sentence, not an empty table."""
    worker = await world.person(NURSES, "staff")
    status, page, _ = await worker.get("/inbox")
    assert status == 200
    assert "Nothing has been sent to your organisation yet." in page
    assert not parse(page).all("table")
