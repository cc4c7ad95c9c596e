"""An inbox item's pages: before opening, opening (recorded once), the record, its documents."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from exchange.ledger.events import decode_event
from tests.web.pages import parse
from tests.web.synthetic import (
    DOB_WORDS,
    FAMILY,
    GIVEN,
    NHS,
    PDF,
    PDF_NAME,
    UPN,
    information_request,
    referral,
)
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, World

#: The tests share the module's nodes: each makes its own people and items.
pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


def _summary(page: str) -> dict[str, str]:
    """Return the page's first summary list as {key: value}, white space collapsed."""
    parsed = parse(page)
    keys = [" ".join(e.text.split()) for e in parsed.all("dt")]
    values = [" ".join(e.text.split()) for e in parsed.all("dd")]
    return dict(zip(keys, values, strict=False))


async def _events(world: World, digest: bytes) -> list[str]:
    """Return the front door's ledger event types about an envelope, in order."""
    store = world.service(FRONT_DOOR).store
    return [
        decode_event(raw).type.value
        for _, raw in await store.ledger_events_for(digest)
        if decode_event(raw).org == FRONT_DOOR
    ]


async def test_an_item_shows_what_it_is_before_opening_and_opening_is_recorded_once(
    world: World,
) -> None:
    """Sender, kind, received, deadline and an Open button; then the record, once opened."""
    school_dsl = await world.person(SCHOOL, "dsl")
    worker = await world.person(FRONT_DOOR, "dsl")
    digest = await world.send(school_dsl.user, referral())
    path = f"/inbox/{digest.hex()}"

    status, page, headers = await worker.get(path)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    parsed = parse(page)
    assert parsed.title == "Referral from Hillside Primary School – Secure exchange"
    facts = _summary(page)
    assert facts["From"] == "Hillside Primary School"
    assert facts["Record"] == "Referral"
    assert facts["Status"] == "New"
    assert re.fullmatch(r"Acknowledge by 5pm on \w+day \d+ \w+ \d{4}", facts["Deadline"])
    assert "is sent a signed receipt saying your organisation opened it" in page
    assert GIVEN not in page
    assert UPN not in page
    forms = [f.attrs["action"] for f in parsed.all("form")]
    assert f"{path}/open" in forms

    status, page, _ = await worker.post(f"{path}/open", {}, page)
    assert status == 200
    assert f"{GIVEN} {FAMILY}" in page
    assert DOB_WORDS in page
    assert UPN in page
    assert NHS in page
    assert "Emotional abuse" in page
    assert "Level 3" in page
    assert "{" not in parse(page).all("main")[0].text  # never raw JSON
    headings = [" ".join(h.text.split()) for h in parse(page).all("h2")]
    assert headings[:3] == ["Child", "About this record", "Referrer"]
    assert "Documents" in headings
    assert f'href="{path}/attachments/1"' in page
    assert "Letter from the school nurse" in page
    assert "PDF" in page

    # The sender is told once: one opened receipt; every reading is an access in the ledger.
    status, again, _ = await worker.get(path)
    assert status == 200
    assert f"{GIVEN} {FAMILY}" in again
    assert await _events(world, digest) == ["delivered", "opened", "accessed", "accessed"]
    receipts = await world.service(FRONT_DOOR).store.receipts_for(digest)
    assert sorted(r.status for r in receipts if r.receipter == FRONT_DOOR) == [
        "delivered",
        "opened",
    ]


async def test_a_document_downloads_as_an_attachment_only_once_opened(world: World) -> None:
    """Never the first thing released; then byte for byte, never inline, each time recorded."""
    school_dsl = await world.person(SCHOOL, "dsl")
    worker = await world.person(FRONT_DOOR, "staff")
    digest = await world.send(school_dsl.user, referral())
    path = f"/inbox/{digest.hex()}"
    # A download before opening is refused: a document is never the first thing released.
    status, _, headers = await worker.get_bytes(f"{path}/attachments/1")
    assert (status, headers["Location"]) == (303, path)
    assert await _events(world, digest) == ["delivered"]

    _, page, _ = await worker.get(path)
    status, _, _ = await worker.post(f"{path}/open", {}, page)
    assert status == 200

    # The document downloads as an attachment, byte for byte, and that is recorded too.
    status, body, headers = await worker.get_bytes(f"{path}/attachments/1")
    assert status == 200
    assert body == PDF
    assert headers["Content-Type"] == "application/pdf"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    disposition = headers["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert 'filename="Letter from the school nurse.pdf"' in disposition
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == PDF_NAME
    assert (await _events(world, digest))[-1] == "accessed"
    for number in ("2", "0", "x"):
        status, _, _ = await worker.get_bytes(f"{path}/attachments/{number}")
        assert status == 404


async def test_the_link_in_a_notice_leads_to_the_item(world: World) -> None:
    """``/inbox/<envelope id>`` redirects to the item; an unknown or foreign id is not found."""
    school_dsl = await world.person(SCHOOL, "dsl")
    worker = await world.person(FRONT_DOOR, "staff")
    nurse = await world.person(NURSES, "dsl")
    digest = await world.send(school_dsl.user, referral())
    item = await world.service(FRONT_DOOR).store.inbox_item(FRONT_DOOR, digest)
    assert item is not None
    envelope_id = item.envelope.envelope_id.hex()

    status, _, headers = await worker.get(f"/inbox/{envelope_id}")
    assert (status, headers["Location"]) == (303, f"/inbox/{digest.hex()}")
    for path in (f"/inbox/{envelope_id}", f"/inbox/{digest.hex()}"):
        status, page, _ = await nurse.get(path)
        assert status == 404
        assert parse(page).title == "Page not found – Secure exchange"
    for path in ("/inbox/" + "0" * 32, "/inbox/" + "0" * 64, "/inbox/not-an-id"):
        status, _, _ = await worker.get(path)
        assert status == 404


async def test_a_tenant_cannot_reach_another_tenants_item_on_the_same_node(world: World) -> None:
    """The nurses' item is not found for the front door, in every page and action."""
    front_dsl = await world.person(FRONT_DOOR, "dsl")
    nurse = await world.person(NURSES, "staff")
    digest = await world.send(front_dsl.user, information_request())
    path = f"/inbox/{digest.hex()}"
    status, _page, _ = await nurse.get(path)
    assert status == 200
    _, inbox, _ = await front_dsl.get("/inbox")
    for method, where in (
        ("get", path),
        ("post", f"{path}/open"),
        ("get", f"{path}/attachments/1"),
        ("get", f"{path}/acknowledge"),
        ("post", f"{path}/acknowledge"),
        ("get", f"{path}/reject"),
        ("post", f"{path}/reject"),
        ("get", f"{path}/decided"),
    ):
        if method == "get":
            status, _, _ = await front_dsl.get(where)
        else:
            status, _, _ = await front_dsl.post(where, {"outcome": "query"}, inbox)
        assert status == 404, where
    # The nurses' item was never opened by anyone.
    item = await world.service(NURSES).store.inbox_item(NURSES, digest)
    assert item is not None
    assert item.state == "delivered"


async def test_a_dpo_sees_the_item_but_cannot_open_it(world: World) -> None:
    """The service refuses a DPO's opening; the page says so and offers no button."""
    school_dsl = await world.person(SCHOOL, "dsl")
    dpo = await world.person(FRONT_DOOR, "dpo")
    digest = await world.send(school_dsl.user, referral())
    status, page, _ = await dpo.get(f"/inbox/{digest.hex()}")
    assert status == 200
    assert "Your account cannot" in page
    assert not [f for f in parse(page).all("form") if f.attrs["action"].endswith("/open")]
    _, inbox, _ = await dpo.get("/inbox")
    status, _, _ = await dpo.post(f"/inbox/{digest.hex()}/open", {}, inbox)
    assert status == 403


async def test_a_recalled_item_offers_nothing_to_open(world: World) -> None:
    """After the sender's recall the item says so, and opening it shows the same."""
    school_dsl = await world.person(SCHOOL, "dsl")
    worker = await world.person(FRONT_DOOR, "dsl")
    digest = await world.send(school_dsl.user, referral())
    path = f"/inbox/{digest.hex()}"
    _, before, _ = await worker.get(path)
    await world.recall(school_dsl, digest)
    await world.inbox_state_until(FRONT_DOOR, digest, "recalled")
    status, page, _ = await worker.get(path)
    assert status == 200
    assert "Hillside Primary School recalled this record" in page
    assert not parse(page).all("form") or all(
        f.attrs["action"] == "/sign-out" for f in parse(page).all("form")
    )
    status, page, _ = await worker.post(f"{path}/open", {}, before)
    assert status == 200
    assert "recalled this record" in page
    assert GIVEN not in page
