"""The node page over running nodes: route health, dead letters and requeue, directory, keys."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.model import User
from tests.node.helpers import publish_route, until
from tests.web.admin_world import (
    FRONT_DOOR,
    NURSES,
    SCHOOL,
    AdminWorld,
    add_account,
    admin_world,
    email_of,
    sign_in,
    submission,
)
from tests.web.pages import parse
from tests.web.test_sign_in import Browser

pytestmark = pytest.mark.network

DSL = User(f"{SCHOOL}/dsl", SCHOOL, "DSL of Hillside", "dsl")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[AdminWorld]:
    """Start the nodes, with an administrator for each organisation and Hillside's DSL."""
    async with admin_world(tmp_path / "node") as running:
        for org in (SCHOOL, FRONT_DOOR, NURSES):
            await add_account(running.service(org), org, "admin", app=False)
        await add_account(running.service(SCHOOL), SCHOOL, "dsl", app=False)
        yield running


async def _admin(world: AdminWorld, org: str) -> Browser:
    browser = world.browser(org)  # type: ignore[arg-type]
    await sign_in(browser, email_of(org, "admin"))  # type: ignore[arg-type]
    return browser


async def _states(world: AdminWorld, digest: bytes) -> set[str]:
    view = await world.service(SCHOOL).sent_item(DSL, digest)
    return {r.delivery.state for r in view.recipients}


async def test_a_dead_letter_is_shown_and_requeued_once_its_route_is_fixed(
    world: AdminWorld,
) -> None:
    """A route that refuses makes a dead letter; the admin sees it, requeues it, it arrives."""
    school = world.service(SCHOOL)
    first = await school.submit(DSL, submission([FRONT_DOOR]))
    await until(lambda: _states_are(world, first.digest, "delivered"), what="first delivery")

    # The front door's route now points at the school's own node, which refuses the item.
    la_url = world.base(FRONT_DOOR)
    publish_route(world.deployment, FRONT_DOOR, world.base(SCHOOL))
    second = await school.submit(DSL, submission([FRONT_DOOR]))
    await until(lambda: _states_are(world, second.digest, "dead"), what="a dead letter")

    admin = await _admin(world, SCHOOL)
    status, page, response = await admin.get("/admin/node")
    assert status == 200
    assert response.headers["Cache-Control"] == "no-store"
    parsed = parse(page)
    assert parsed.title == "Node – Secure exchange"
    assert len(parsed.all("h1")) == 1
    assert "Stockport children&#39;s front door" in page
    assert "Failing" in page
    reference = second.digest.hex()[:12]
    assert reference in page
    assert f"/admin/node/dead-letters/{second.digest.hex()}/requeue" in page

    # The front door's administrator (another node) and the nurses' see none of it.
    for org in (FRONT_DOOR, NURSES):
        other = await _admin(world, org)
        status, page, _ = await other.get("/admin/node")
        assert status == 200
        assert reference not in page
        status, _, _ = await other.get(f"/admin/node/dead-letters/{second.digest.hex()}/requeue")
        assert status == 404

    publish_route(world.deployment, FRONT_DOOR, la_url)
    path = f"/admin/node/dead-letters/{second.digest.hex()}/requeue"
    status, page, _ = await admin.get(path)
    assert status == 200
    assert parse(page).title == "Requeue dead letters – Secure exchange"
    response = await admin.post(path, {}, page)
    assert (response.status, response.headers["Location"]) == (303, "/admin/node?requeued=1")
    await until(lambda: _states_are(world, second.digest, "delivered"), what="the requeue")
    _, page, _ = await admin.get("/admin/node?requeued=1")
    assert "1 dead letter was put back in the queue." in page
    assert "There are no dead letters." in page
    # Requeueing it again: nothing of this organisation is dead, so "not found".
    _, page, _ = await admin.get("/admin/node")
    response = await admin.post(path, {}, page)
    assert response.status == 404


async def _states_are(world: AdminWorld, digest: bytes, state: str) -> bool:
    return await _states(world, digest) == {state}


async def test_the_page_shows_the_directory_and_warns_of_keys_expiring(
    world: AdminWorld,
) -> None:
    """The directory's version and the keys' dates; under 60 days left, a warning in words."""
    admin = await _admin(world, FRONT_DOOR)
    _, page, _ = await admin.get("/admin/node")
    version = world.service(FRONT_DOOR).directory.version
    assert f">{version}<" in page.replace("\n", "").replace(" ", "")
    assert "In use" in page
    assert "expire in" not in page
    keys = world.service(FRONT_DOOR).directory.organisation(FRONT_DOOR).keys
    soon = keys[0].not_after - 30 * 24 * 3600 - 60
    service = world.service(FRONT_DOOR)
    service.clock = lambda: soon
    try:
        later = await _admin(world, FRONT_DOOR)
        _, page, _ = await later.get("/admin/node")
    finally:
        service.clock = time.time
    assert "Your organisation&#39;s keys expire in 30 days" in page
