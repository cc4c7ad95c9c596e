"""Recall from the pages: the confirmation page, its refusals, and each recipient's outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.service.recall import RECALL_REASON_CODES
from exchange.web.sent_recall import REASONS
from tests.web.pages import parse
from tests.web.sent_nodes import FRONT_DOOR, SCHOOL, SentNodes, delivered, sent_nodes

pytestmark = pytest.mark.network


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[SentNodes]:
    """Start the school node and the LA node."""
    async for running in sent_nodes(tmp_path / "recall"):
        yield running


def _cells(page: str) -> list[str]:
    return [" ".join(e.text.split()) for e in parse(page).all("tr")]


async def test_a_recall_before_opening_withdraws_it_from_the_recipient(nodes: SentNodes) -> None:
    """Confirmation page, a reason from the list, then "Recalled before anyone opened it"."""
    digest = await nodes.refer()
    await nodes.sent_until(SCHOOL, digest, delivered)
    client = await nodes.client(SCHOOL, "dsl")
    path = f"/sent/{digest.hex()}/recall"
    status, page = await client.get(path)
    assert status == 200
    assert parse(page).title == "Recall this record – Secure exchange"
    assert "What recall does" in page
    radios = [e.attrs["value"] for e in parse(page).all("input") if e.attrs.get("type") == "radio"]
    assert radios == [
        "sent-in-error", "wrong-recipient", "wrong-child", "incorrect-content", "duplicate",
    ]  # fmt: skip

    status, answer = await client.post(path, {"reason": "wrong-recipient"}, page)
    assert status == 200
    assert parse(answer).title == "Recall result – Secure exchange"
    assert [" ".join(e.text.split()) for e in parse(answer).all("h1")] == ["Record recalled"]
    assert any(
        row.startswith("Stockport children's front door Recalled before anyone opened it")
        for row in _cells(answer)
    )
    item = await nodes.service(FRONT_DOOR).store.inbox_item(FRONT_DOOR, digest)
    assert item is not None
    assert item.state == "recalled"
    [recall] = (await nodes.service(SCHOOL).store.recalls_for(SCHOOL, [digest]))[digest]
    assert (recall.reason_code, recall.reason) == (
        "wrong-recipient",
        "Sent to the wrong organisation.",
    )

    _, page = await client.get(f"/sent/{digest.hex()}")
    assert "Stockport children's front door Recalled" in [
        " ".join(e.text.split()) for e in parse(page).all("h2")
    ]
    assert path not in page  # nothing is left to recall


async def test_an_opened_record_cannot_be_recalled_and_the_page_says_so(
    nodes: SentNodes,
) -> None:
    """Once the front door opened it, the outcome is "already opened"."""
    digest = await nodes.refer()
    await nodes.sent_until(SCHOOL, digest, delivered)
    await nodes.service(FRONT_DOOR).open_item(nodes.user(FRONT_DOOR, "dsl"), digest)
    client = await nodes.client(SCHOOL, "dsl")
    path = f"/sent/{digest.hex()}/recall"
    _, page = await client.get(path)
    status, answer = await client.post(path, {"reason": "sent-in-error"}, page)
    assert status == 200
    assert [" ".join(e.text.split()) for e in parse(answer).all("h1")] == [
        "What happened to your recall"
    ]
    assert any("Could not be recalled: it had already been opened" in row for row in _cells(answer))
    assert "contact the organisation" in answer


@pytest.mark.parametrize("form", [{}, {"reason": "Zebracorn <b>"}, {"reason": ""}])
async def test_a_missing_or_wrong_reason_is_an_error_on_the_form(
    nodes: SentNodes, form: dict[str, str]
) -> None:
    """The form comes back with the error summary linking to the radios; nothing is recalled."""
    digest = await nodes.refer()
    client = await nodes.client(SCHOOL, "dsl")
    path = f"/sent/{digest.hex()}/recall"
    _, page = await client.get(path)
    status, answer = await client.post(path, form, page)
    assert status == 400
    assert parse(answer).title == "Error: Recall this record – Secure exchange"
    summary = [e for e in parse(answer).all("a") if e.attrs.get("href") == "#reason"]
    assert [" ".join(e.text.split()) for e in summary] == [
        "Select why you are recalling this record"
    ]
    assert "Zebracorn" not in answer
    assert await nodes.service(SCHOOL).store.recalls_for(SCHOOL, [digest]) == {}


async def test_a_role_that_may_not_recall_is_refused_and_a_form_needs_its_token(
    nodes: SentNodes,
) -> None:
    """Staff see a 403 page for recall; a POST without the CSRF token changes nothing."""
    digest = await nodes.refer()
    path = f"/sent/{digest.hex()}/recall"
    staff = await nodes.client(SCHOOL, "staff")
    status, page = await staff.get(path)
    assert (status, parse(page).title) == (403, "You cannot see this page – Secure exchange")
    _, sent = await staff.get("/sent")
    status, _ = await staff.post(path, {"reason": "sent-in-error"}, sent)
    assert status == 403
    dsl = await nodes.client(SCHOOL, "dsl")
    async with dsl.http.post(
        dsl.base + path, data={"reason": "sent-in-error"}, allow_redirects=False
    ) as response:
        assert response.status == 403
        assert "This form has expired" in await response.text()
    assert await nodes.service(SCHOOL).store.recalls_for(SCHOOL, [digest]) == {}


def test_the_page_offers_exactly_the_service_s_recall_codes() -> None:
    """Each reason the page offers is a code the service accepts, and each code is offered."""
    assert tuple(REASONS) == RECALL_REASON_CODES
