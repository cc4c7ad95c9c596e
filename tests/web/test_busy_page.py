"""The send journey's Send while the node's outbox is behind: a "service is busy" page.

Nothing is sent, the draft is kept, the page says to try again in a minute and links back
to the answers; once the outbox has caught up, the same Send goes on as usual.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.held_outbox import outbox_held
from tests.web.pages import parse
from tests.web.synthetic import referral
from tests.web.world import SCHOOL, World, actor

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


async def test_send_while_busy_shows_the_busy_page_and_keeps_the_draft(
    fresh_world: World,
) -> None:
    """503 with Retry-After, a GOV.UK page saying busy, the draft kept; later it is not busy."""
    node = fresh_world.deployment.node_of(SCHOOL)
    client = await fresh_world.person(SCHOOL, "dsl")
    _, page, _ = await client.get("/send")
    status, _, headers = await client.post("/send", {"kind": "referral"}, page)
    assert status == 303
    first_question = headers["Location"]
    draft = first_question.split("/")[2]
    _, page, _ = await client.get(first_question)
    send = f"/send/{draft}/send"
    with outbox_held(node, max_backlog=1):
        await fresh_world.submit(actor(SCHOOL, "dsl"), referral())
        sent_before = await node.service.store.list_sent(SCHOOL, limit=10)
        status, busy, headers = await client.post(send, {}, page)
        assert status == 503
        assert 1 <= int(headers["Retry-After"]) <= 60
        parsed = parse(busy)
        assert parsed.title == "The service is busy – Secure exchange"
        assert [h.text for h in parsed.all("h1")] == ["The service is busy"]
        paragraphs = [" ".join(p.text.split()) for p in parsed.all("p")]
        assert "Try again in a minute." in paragraphs
        assert any("saved in your draft" in p for p in paragraphs)
        back = [a for a in parsed.all("a") if a.text.strip() == "Go back to your answers"]
        assert [a.attrs["href"] for a in back] == [f"/send/{draft}/check"]
        assert await node.service.store.list_sent(SCHOOL, limit=10) == sent_before
        # The draft is still there: its pages still answer.
        status, _, _ = await client.get(first_question)
        assert status == 200
    deadline = time.monotonic() + 20
    while node.service.store.outbox_backlog:
        assert time.monotonic() < deadline, "the outbox did not catch up"
        await asyncio.sleep(0.02)
    # Not busy: Send is handled as usual (this draft has no answers yet, so it is refused).
    status, again, _ = await client.post(send, {}, page)
    assert status == 400
    assert parse(again).title.startswith("Error: Check your answers")
