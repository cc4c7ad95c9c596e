"""Recall from the pages: the confirmation page, its refusals, and each recipient's outcome."""

from __future__ import annotations

import pytest

from exchange.service.recall import RECALL_REASON_CODES
from exchange.web.sent_recall import REASONS
from tests.web.pages import parse
from tests.web.synthetic import referral
from tests.web.world import FRONT_DOOR, SCHOOL, World, actor, delivered

#: The async tests share the module's nodes: each recalls, or fails to, its own referral.
pytestmark = pytest.mark.network


async def _refer(world: World) -> bytes:
    """Submit Hillside's referral of the child to the front door; return its digest."""
    return await world.submit(actor(SCHOOL, "dsl"), referral())


def _cells(page: str) -> list[str]:
    return [" ".join(e.text.split()) for e in parse(page).all("tr")]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_recall_before_opening_withdraws_it_from_the_recipient(world: World) -> None:
    """Confirmation page, a reason from the list, then "Recalled before anyone opened it"."""
    digest = await _refer(world)
    await world.sent_until(SCHOOL, digest, delivered)
    client = await world.person(SCHOOL, "dsl")
    path = f"/sent/{digest.hex()}/recall"
    status, page, _ = await client.get(path)
    assert status == 200
    assert parse(page).title == "Recall this record – Secure exchange"
    assert "What recall does" in page
    radios = [e.attrs["value"] for e in parse(page).all("input") if e.attrs.get("type") == "radio"]
    assert radios == [
        "sent-in-error", "wrong-recipient", "wrong-child", "incorrect-content", "duplicate",
    ]  # fmt: skip

    status, answer, _ = await client.post(path, {"reason": "wrong-recipient"}, page)
    assert status == 200
    assert parse(answer).title == "Recall result – Secure exchange"
    assert [" ".join(e.text.split()) for e in parse(answer).all("h1")] == ["Record recalled"]
    assert any(
        row.startswith("Stockport children's front door Recalled before anyone opened it")
        for row in _cells(answer)
    )
    item = await world.service(FRONT_DOOR).store.inbox_item(FRONT_DOOR, digest)
    assert item is not None
    assert item.state == "recalled"
    [recall] = (await world.service(SCHOOL).store.recalls_for(SCHOOL, [digest]))[digest]
    assert (recall.reason_code, recall.reason) == (
        "wrong-recipient",
        "Sent to the wrong organisation.",
    )

    _, page, _ = await client.get(f"/sent/{digest.hex()}")
    assert "Stockport children's front door Recalled" in [
        " ".join(e.text.split()) for e in parse(page).all("h2")
    ]
    assert path not in page  # nothing is left to recall


@pytest.mark.asyncio(loop_scope="module")
async def test_an_opened_record_cannot_be_recalled_and_the_page_says_so(
    world: World,
) -> None:
    """Once the front door opened it, the outcome is "already opened"."""
    digest = await _refer(world)
    await world.sent_until(SCHOOL, digest, delivered)
    await world.service(FRONT_DOOR).open_item(actor(FRONT_DOOR, "dsl"), digest)
    client = await world.person(SCHOOL, "dsl")
    path = f"/sent/{digest.hex()}/recall"
    _, page, _ = await client.get(path)
    status, answer, _ = await client.post(path, {"reason": "sent-in-error"}, page)
    assert status == 200
    assert [" ".join(e.text.split()) for e in parse(answer).all("h1")] == [
        "What happened to your recall"
    ]
    assert any("Could not be recalled: it had already been opened" in row for row in _cells(answer))
    assert "contact the organisation" in answer


@pytest.mark.parametrize("form", [{}, {"reason": "Zebracorn <b>"}, {"reason": ""}])
@pytest.mark.asyncio(loop_scope="module")
async def test_a_missing_or_wrong_reason_is_an_error_on_the_form(
    world: World, form: dict[str, str]
) -> None:
    """The form comes back with the error summary linking to the radios; nothing is recalled."""
    digest = await _refer(world)
    client = await world.person(SCHOOL, "dsl")
    path = f"/sent/{digest.hex()}/recall"
    _, page, _ = await client.get(path)
    status, answer, _ = await client.post(path, form, page)
    assert status == 400
    assert parse(answer).title == "Error: Recall this record – Secure exchange"
    summary = [e for e in parse(answer).all("a") if e.attrs.get("href") == "#reason"]
    assert [" ".join(e.text.split()) for e in summary] == [
        "Select why you are recalling this record"
    ]
    assert "Zebracorn" not in answer
    assert await world.service(SCHOOL).store.recalls_for(SCHOOL, [digest]) == {}


@pytest.mark.asyncio(loop_scope="module")
async def test_a_role_that_may_not_recall_is_refused_and_a_form_needs_its_token(
    world: World,
) -> None:
    """Staff see a 403 page for recall; a POST without the CSRF token changes nothing."""
    digest = await _refer(world)
    path = f"/sent/{digest.hex()}/recall"
    staff = await world.person(SCHOOL, "staff")
    status, page, _ = await staff.get(path)
    assert (status, parse(page).title) == (403, "You cannot see this page – Secure exchange")
    _, sent, _ = await staff.get("/sent")
    status, _, _ = await staff.post(path, {"reason": "sent-in-error"}, sent)
    assert status == 403
    dsl = await world.person(SCHOOL, "dsl")
    status, page, _ = await dsl.post_without_token(path, {"reason": "sent-in-error"})
    assert status == 403
    assert "This form has expired" in page
    assert await world.service(SCHOOL).store.recalls_for(SCHOOL, [digest]) == {}


def test_the_page_offers_exactly_the_service_s_recall_codes() -> None:
    """Each reason the page offers is a code the service accepts, and each code is offered."""
    assert tuple(REASONS) == RECALL_REASON_CODES
