"""Retention pages: the review queue, holds with fixed reasons, destruction after "Are you sure".

The tests that only look share the module's nodes; those that place a hold or destroy the
record have nodes of their own (a hold, or a destruction, is the organisation's as a whole).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from tests.web.pages import parse
from tests.web.synthetic import NHS, UPN, referral_to_front_door
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, World, actor, delivered

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

#: After the referral's review date (date of birth 14 March 2015 + 25 years, then review).
REVIEW_PASSED = datetime(2041, 6, 1, 12, tzinfo=UTC).timestamp()
#: Typed into the hold's reference: refused, and never shown back.
SENTINEL_REFERENCE = f"Claim about {UPN}"
DPO = actor(SCHOOL, "dpo")


@dataclass
class Retained:
    """The running nodes, and the referral Hillside holds (its digest)."""

    world: World
    digest: bytes

    @property
    def hex(self) -> str:
        """The referral's digest as addresses name it."""
        return self.digest.hex()


async def _retained(world: World) -> Retained:
    """Hillside sends a referral that reaches the front door; Hillside's clock goes to 2041."""
    digest = await world.submit(actor(SCHOOL, "dsl"), referral_to_front_door(upn=UPN, nhs=NHS))
    await world.sent_until(SCHOOL, digest, delivered)
    offset = REVIEW_PASSED - time.time()
    world.service(SCHOOL).clock = lambda: time.time() + offset
    return Retained(world, digest)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def held(world: World) -> Retained:
    """Give the module's nodes Hillside's referral, due for review."""
    return await _retained(world)


@pytest_asyncio.fixture(loop_scope="module")
async def own_held(fresh_world: World) -> Retained:
    """Give the test nodes of its own with Hillside's referral, due for review."""
    return await _retained(fresh_world)


def _text(page: str) -> str:
    return " ".join(parse(page).all("main")[0].text.split())


async def test_the_queue_lists_the_referral_due_for_review(held: Retained) -> None:
    """The referral's review date has passed: it is due, with links to destroy or hold it."""
    client = await held.world.person(SCHOOL, "dpo")
    status, page, _ = await client.get("/retention")
    assert status == 200
    assert parse(page).title == "Retention – Secure exchange"
    text = _text(page)
    assert (
        "Referral Sent to Stockport children's front door Wednesday 14 March 2040 Review due"
        in (text)
    )
    hrefs = [e.attrs.get("href") for e in parse(page).all("a")]
    assert f"/retention/{held.hex}/destroy" in hrefs
    assert f"/retention/holds/new?item={held.hex}" in hrefs
    assert "No hold is in force." in text


async def test_a_hold_blocks_destruction_until_it_is_lifted(own_held: Retained) -> None:
    """Hold the referral; destroying it is refused in plain words; lift it; destroy it."""
    client = await own_held.world.person(SCHOOL, "dpo")
    digest = own_held.hex
    status, form, _ = await client.get(f"/retention/holds/new?item={digest}")
    assert status == 200
    assert parse(form).title == "Place a hold – Secure exchange"
    status, _, headers = await client.post(
        "/retention/holds",
        {"item": digest, "reason": "litigation", "reference": "HQ-2041-17"},
        page=form,
    )
    assert (status, headers["Location"]) == (303, "/retention?done=hold-placed")
    _, page, _ = await client.get("/retention?done=hold-placed")
    text = _text(page)
    assert "Hold placed" in text
    assert "Litigation or a legal claim HQ-2041-17 Referral: Sent to Stockport" in text
    assert "On hold" in text
    [hold] = (await own_held.world.service(SCHOOL).retention_holds(DPO))["holds"]
    assert (hold["reason"], hold["reference"], hold["digest"]) == (
        "Litigation or a legal claim",
        "HQ-2041-17",
        digest,
    )

    status, confirm, _ = await client.get(f"/retention/{digest}/destroy")
    assert status == 200
    status, refused, _ = await client.post(f"/retention/{digest}/destroy", {}, page=confirm)
    assert status == 409
    assert parse(refused).title == "The record was not destroyed – Secure exchange"
    assert "A hold is in force on this record. Lift the hold before you destroy it." in refused

    status, _, headers = await client.post(f"/retention/holds/{hold['id']}/lift", {}, page=page)
    assert (status, headers["Location"]) == (303, "/retention?done=hold-lifted")
    _, page, _ = await client.get("/retention?done=hold-lifted")
    assert "Hold lifted" in page
    assert "Holds lifted" in page

    status, confirm, _ = await client.get(f"/retention/{digest}/destroy")
    assert parse(confirm).title == "Are you sure you want to destroy this record? – Secure exchange"
    assert "You cannot undo this." in confirm
    status, _, headers = await client.post(f"/retention/{digest}/destroy", {}, page=confirm)
    assert (status, headers["Location"]) == (303, f"/retention/{digest}/destroyed")
    status, done, _ = await client.get(f"/retention/{digest}/destroyed")
    assert status == 200
    assert parse(done).title == "Record destroyed – Secure exchange"
    assert "was destroyed on 1 June 2041" in _text(done)
    item = await own_held.world.service(SCHOOL).retention_item(DPO, own_held.digest)
    assert item["state"] == "destroyed"
    # Asking to destroy it again says so; its confirmation page leads to the outcome.
    status, again, _ = await client.post(f"/retention/{digest}/destroy", {}, page=confirm)
    assert status == 409
    assert "This record has already been destroyed." in again
    status, _, headers = await client.get(f"/retention/{digest}/destroy")
    assert (status, headers["Location"]) == (303, f"/retention/{digest}/destroyed")


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({}, [("#reason", "Select why the hold is needed"), ("#reference", "Enter the reference")]),
        (
            {"reason": "made-up", "reference": "HQ-1"},
            [("#reason", "Select why the hold is needed")],
        ),
        (
            {"reason": "inquiry", "reference": SENTINEL_REFERENCE},
            [("#reference", "Reference must not include a UPN or an NHS number")],
        ),
        (
            {"reason": "inquiry", "reference": "x" * 201},
            [("#reference", "Reference must be 200 characters or fewer")],
        ),
    ],
)
async def test_a_hold_form_error_names_the_field_and_never_echoes_it(
    held: Retained, form: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    """Errors link to their fields; the reference typed is not filled back in."""
    client = await held.world.person(SCHOOL, "dpo")
    _, page, _ = await client.get("/retention/holds/new")
    status, answer, _ = await client.post("/retention/holds", form, page=page)
    assert status == 400
    parsed = parse(answer)
    assert parsed.title == "Error: Place a hold – Secure exchange"
    links = [
        (e.attrs["href"], " ".join(e.text.split()))
        for e in parsed.all("a")
        if str(e.attrs.get("href", "")).startswith("#") and e.attrs["href"] != "#main-content"
    ]
    assert links == expected
    assert UPN not in answer
    assert "x" * 201 not in answer
    assert (await held.world.service(SCHOOL).retention_holds(DPO))["holds"] == []


async def test_a_hold_on_every_record(own_held: Retained) -> None:
    """Without a record chosen, the hold covers every record the organisation holds."""
    client = await own_held.world.person(SCHOOL, "dpo")
    _, form, _ = await client.get("/retention/holds/new")
    assert "every record your organisation holds" in _text(form)
    status, _, _ = await client.post(
        "/retention/holds",
        {"item": "", "reason": "inquiry", "reference": "IICSA/2041/17"},
        page=form,
    )
    assert status == 303
    _, page, _ = await client.get("/retention")
    assert "A public or statutory inquiry IICSA/2041/17 Every record" in _text(page)


@pytest.mark.parametrize("role", ["dsl", "admin"])
async def test_only_the_dpo_may_use_retention(held: Retained, role: str) -> None:
    """Other roles get the 403 page on every retention page and action."""
    client = await held.world.person(SCHOOL, role)  # type: ignore[arg-type]
    digest = held.hex
    for path in ("/retention", "/retention/holds/new", f"/retention/{digest}/destroy"):
        assert (await client.get(path))[0] == 403, path
    _, start, _ = await client.get("/")
    status, _, _ = await client.post(f"/retention/{digest}/destroy", {}, page=start)
    assert status == 403
    status, _, _ = await client.post(
        "/retention/holds", {"reason": "inquiry", "reference": "HQ-1"}, page=start
    )
    assert status == 403
    item = await held.world.service(SCHOOL).retention_item(DPO, held.digest)
    assert item["state"] == "review-due"


async def test_another_organisations_record_or_hold_is_not_found(own_held: Retained) -> None:
    """The nurses' DPO, a tenant of the LA node, cannot reach Hillside's record or hold."""
    dpo = await own_held.world.person(SCHOOL, "dpo")
    _, form, _ = await dpo.get("/retention/holds/new")
    await dpo.post("/retention/holds", {"reason": "inquiry", "reference": "HQ-1"}, page=form)
    [hold] = (await own_held.world.service(SCHOOL).retention_holds(DPO))["holds"]
    digest = own_held.hex
    for org in (NURSES, FRONT_DOOR):
        client = await own_held.world.person(org, "dpo")
        if org == NURSES:
            for path in (
                f"/retention/{digest}/destroy",
                f"/retention/{digest}/destroyed",
                f"/retention/holds/new?item={digest}",
            ):
                status, page, _ = await client.get(path)
                assert status == 404, path
                assert parse(page).title == "Page not found – Secure exchange"
        _, page, _ = await client.get("/retention")
        assert "HQ-1" not in page
        if org == NURSES:
            assert "Hillside" not in page
        status, _, _ = await client.post(f"/retention/holds/{hold['id']}/lift", {}, page=page)
        assert status == 404
    assert (await own_held.world.service(SCHOOL).retention_holds(DPO))["holds"][0][
        "lifted_at"
    ] is None


async def test_a_malformed_record_in_the_address_is_not_found(held: Retained) -> None:
    """Only a digest names a record in an address; anything else is the 404 page."""
    client = await held.world.person(SCHOOL, "dpo")
    for path in (
        "/retention/" + "A" * 64 + "/destroy",
        "/retention/holds/new?item=not-a-digest",
        "/retention/" + "0" * 64 + "/destroy",
    ):
        assert (await client.get(path))[0] == 404, path
