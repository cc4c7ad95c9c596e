"""Acknowledging with an outcome and rejecting with a reason: fixed codes, the sender told."""

from __future__ import annotations

import asyncio
import time

import pytest

from exchange.keys.ids import OrgId
from exchange.model import User
from exchange.receipts import parse_signed
from tests.web.pages import parse
from tests.web.synthetic import information_request, referral
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, WAIT, World

#: The tests share the module's nodes: each makes its own people and items.
pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


async def _sender_sees(
    world: World, sender: User, digest: bytes, recipient: OrgId
) -> tuple[str, str | None]:
    """Wait for the recipient's final receipt in the sender's view; return status and code."""
    deadline = time.monotonic() + WAIT
    while True:
        view = await world.service(sender.org).sent_item(sender, digest)
        for r in view.recipients:
            if r.delivery.destination != recipient:
                continue
            for receipt in r.receipts:
                if receipt.status in {"acknowledged", "rejected"}:
                    return receipt.status, parse_signed(receipt.signed).receipt.disposition
        assert time.monotonic() < deadline, "the final receipt did not reach the sender"
        await asyncio.sleep(0.05)


async def test_acknowledging_with_an_outcome_tells_the_sender(world: World) -> None:
    """A choice is required, only an offered code is taken, and the receipt carries it."""
    school_dsl = await world.person(SCHOOL, "dsl")
    worker = await world.person(FRONT_DOOR, "dsl")
    digest = await world.send(school_dsl.user, referral())
    path = f"/inbox/{digest.hex()}"
    _, page, _ = await worker.get(path)
    _, page, _ = await worker.post(f"{path}/open", {}, page)
    assert f'href="{path}/acknowledge"' in page
    assert f'href="/send/reply/{digest.hex()}"' in page

    status, form, _ = await worker.get(f"{path}/acknowledge")
    assert status == 200
    assert parse(form).title == "What will your organisation do with this record? – Secure exchange"
    values = [i.attrs["value"] for i in parse(form).all("input") if i.attrs.get("type") == "radio"]
    assert values == ["accepted-for-assessment", "no-further-action", "query"]
    assert "Accepted for assessment" in form

    status, error, _ = await worker.post(f"{path}/acknowledge", {}, form)
    assert status == 400
    assert parse(error).title.startswith("Error: ")
    assert 'href="#outcome"' in error
    assert 'id="outcome"' in error
    status, error, _ = await worker.post(f"{path}/acknowledge", {"outcome": "made-up-code"}, form)
    assert status == 400
    assert "made-up-code" not in error

    status, _, headers = await worker.post(
        f"{path}/acknowledge", {"outcome": "accepted-for-assessment"}, form
    )
    assert (status, headers["Location"]) == (303, f"{path}/decided")
    # A second click finds it decided and goes to the same confirmation.
    status, _, headers = await worker.post(f"{path}/acknowledge", {"outcome": "query"}, form)
    assert (status, headers["Location"]) == (303, f"{path}/decided")
    status, done, _ = await worker.get(f"{path}/decided")
    assert status == 200
    assert parse(done).title == "Record acknowledged – Secure exchange"
    assert "Hillside Primary School has been sent a signed receipt" in done

    assert await _sender_sees(world, school_dsl.user, digest, FRONT_DOOR) == (
        "acknowledged",
        "accepted-for-assessment",
    )
    # Decided: the form leads to the confirmation, and the item no longer offers it.
    status, _, headers = await worker.get(f"{path}/acknowledge")
    assert (status, headers["Location"]) == (303, f"{path}/decided")
    _, page, _ = await worker.get(path)
    assert f'href="{path}/acknowledge"' not in page
    assert "Acknowledged" in page


async def test_the_nursing_team_rejects_with_a_reason(world: World) -> None:
    """A nurse rejects the front door's request as not for them; the front door is told why."""
    front_dsl = await world.person(FRONT_DOOR, "dsl")
    nurse = await world.person(NURSES, "staff")
    digest = await world.send(front_dsl.user, information_request())
    path = f"/inbox/{digest.hex()}"
    _, page, _ = await nurse.get(path)
    _, page, _ = await nurse.post(f"{path}/open", {}, page)
    assert "Section 47 checks" in page

    status, form, _ = await nurse.get(f"{path}/reject")
    assert status == 200
    assert "Why are you rejecting this record?" in form
    values = [i.attrs["value"] for i in parse(form).all("input") if i.attrs.get("type") == "radio"]
    assert values == ["not-for-us", "wrong-pupil", "unreadable", "duplicate"]
    assert not parse(form).all("textarea")  # the reason is a code, never free text
    status, _, headers = await nurse.post(f"{path}/reject", {"reason": "not-for-us"}, form)
    assert (status, headers["Location"]) == (303, f"{path}/decided")
    _, done, _ = await nurse.get(f"{path}/decided")
    assert parse(done).title == "Record rejected – Secure exchange"
    assert await _sender_sees(world, front_dsl.user, digest, NURSES) == ("rejected", "not-for-us")


async def test_a_dpo_cannot_decide(world: World) -> None:
    """The forms refuse a role that may not open records, and so does the service."""
    school_dsl = await world.person(SCHOOL, "dsl")
    dpo = await world.person(FRONT_DOOR, "dpo")
    digest = await world.send(school_dsl.user, referral())
    path = f"/inbox/{digest.hex()}"
    status, _, _ = await dpo.get(f"{path}/acknowledge")
    assert status == 403
    _, inbox, _ = await dpo.get("/inbox")
    status, _, _ = await dpo.post(f"{path}/reject", {"reason": "not-for-us"}, inbox)
    assert status == 403
    item = await world.service(FRONT_DOOR).store.inbox_item(FRONT_DOOR, digest)
    assert item is not None
    assert item.state == "delivered"
