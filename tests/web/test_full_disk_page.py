"""A staff web page on a node whose storage is full: an error page that says so, then recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.full_disk import FullDisk
from tests.web.pages import parse
from tests.web.sent_nodes import SCHOOL, SentNodes, sent_nodes

pytestmark = pytest.mark.network


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[SentNodes]:
    """Start the school node and the LA node."""
    async for running in sent_nodes(tmp_path / "full-page"):
        yield running


async def test_a_page_that_cannot_write_says_the_storage_is_full(
    nodes: SentNodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting a record writes a draft: on a full disk it is a 507 error page saying so.

    The page says in the service's words that the storage is full and nothing was saved,
    with no detail of the failure; once space is back, the same form works again.
    """
    client = await nodes.client(SCHOOL, "dsl")
    status, form = await client.get("/send")
    assert status == 200
    disk = FullDisk(nodes.service(SCHOOL).store, monkeypatch)
    disk.fill()
    status, page = await client.post("/send", {"kind": "referral"}, form)
    assert status == 507
    parsed = parse(page)
    assert parsed.title == "Sorry, there is a problem with the service – Secure exchange"
    paragraphs = [" ".join(p.text.split()) for p in parsed.all("p")]
    assert "The node's storage is full; nothing was saved." in paragraphs
    assert "OSError" not in page
    assert "No space" not in page
    disk.free()
    status, _ = await client.post("/send", {"kind": "referral"}, form)
    assert status == 303
