"""A staff web page on a node whose storage is full: an error page that says so, then recovery."""

from __future__ import annotations

import pytest

from tests.full_disk import FullDisk
from tests.web.pages import parse
from tests.web.world import SCHOOL, World

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


async def test_a_page_that_cannot_write_says_the_storage_is_full(
    fresh_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting a record writes a draft: on a full disk it is a 507 error page saying so.

    The page says in the service's words that the storage is full and nothing was saved,
    with no detail of the failure; once space is back, the same form works again.
    """
    client = await fresh_world.person(SCHOOL, "dsl")
    status, form, _ = await client.get("/send")
    assert status == 200
    disk = FullDisk(fresh_world.service(SCHOOL).store, monkeypatch)
    disk.fill()
    status, page, _ = await client.post("/send", {"kind": "referral"}, form)
    assert status == 507
    parsed = parse(page)
    assert parsed.title == "Sorry, there is a problem with the service – Secure exchange"
    paragraphs = [" ".join(p.text.split()) for p in parsed.all("p")]
    assert "The node's storage is full; nothing was saved." in paragraphs
    assert "OSError" not in page
    assert "No space" not in page
    disk.free()
    status, _, _ = await client.post("/send", {"kind": "referral"}, form)
    assert status == 303
