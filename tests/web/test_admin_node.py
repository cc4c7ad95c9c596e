"""The node page over running nodes: route health, dead letters and requeue, directory, keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from exchange.keys.ids import OrgId
from tests.node.helpers import publish_route, until
from tests.web.page_client import PageClient
from tests.web.pages import parse
from tests.web.synthetic import referral
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, Account, World, actor

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

DSL = actor(SCHOOL, "dsl")


@dataclass
class Admins:
    """The nodes, and an administrator of each organisation (password only)."""

    world: World
    accounts: dict[OrgId, Account]

    async def signed_in(self, org: OrgId) -> PageClient:
        """Return a client signed in through the pages as ``org``'s administrator."""
        browser = self.world.client(org)
        await self.world.sign_in(browser, self.accounts[org])
        return browser


@pytest_asyncio.fixture(loop_scope="module")
async def admins(fresh_world: World) -> AsyncIterator[Admins]:
    """Start the test's own nodes (it moves routes and clocks), with an administrator each."""
    orgs = (SCHOOL, FRONT_DOOR, NURSES)
    yield Admins(fresh_world, {o: await fresh_world.account(o, "admin", app=False) for o in orgs})


async def _states(world: World, digest: bytes) -> set[str]:
    view = await world.service(SCHOOL).sent_item(DSL, digest)
    return {r.delivery.state for r in view.recipients}


async def test_a_dead_letter_is_shown_and_requeued_once_its_route_is_fixed(
    admins: Admins,
) -> None:
    """A route that refuses makes a dead letter; the admin sees it, requeues it, it arrives."""
    world = admins.world
    school = world.service(SCHOOL)
    first = await school.submit(DSL, referral())
    await until(lambda: _states_are(world, first.digest, "delivered"), what="first delivery")

    # The front door's route now points at the school's own node, which refuses the item.
    la_url = world.base(FRONT_DOOR)
    publish_route(world.deployment, FRONT_DOOR, world.base(SCHOOL))
    second = await school.submit(DSL, referral())
    await until(lambda: _states_are(world, second.digest, "dead"), what="a dead letter")

    admin = await admins.signed_in(SCHOOL)
    status, page, headers = await admin.get("/admin/node")
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
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
        other = await admins.signed_in(org)
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
    status, _, headers = await admin.post(path, {}, page)
    assert (status, headers["Location"]) == (303, "/admin/node?requeued=1")
    await until(lambda: _states_are(world, second.digest, "delivered"), what="the requeue")
    _, page, _ = await admin.get("/admin/node?requeued=1")
    assert "1 dead letter was put back in the queue." in page
    assert "There are no dead letters." in page
    # Requeueing it again: nothing of this organisation is dead, so "not found".
    _, page, _ = await admin.get("/admin/node")
    status, _, headers = await admin.post(path, {}, page)
    assert status == 404


async def _states_are(world: World, digest: bytes, state: str) -> bool:
    return await _states(world, digest) == {state}


async def test_the_page_shows_the_directory_and_warns_of_keys_expiring(
    admins: Admins,
) -> None:
    """The directory's version and the keys' dates; under 60 days left, a warning in words."""
    world = admins.world
    admin = await admins.signed_in(FRONT_DOOR)
    _, page, _ = await admin.get("/admin/node")
    version = world.service(FRONT_DOOR).directory.version
    assert f">{version}<" in page.replace("\n", "").replace(" ", "")
    assert "In use" in page
    assert "expire in" not in page
    keys = world.service(FRONT_DOOR).directory.organisation(FRONT_DOOR).keys
    soon = keys[0].not_after - 30 * 24 * 3600 - 60
    with world.clock_moved(FRONT_DOOR, to=soon):
        later = await admins.signed_in(FRONT_DOOR)
        _, page, _ = await later.get("/admin/node")
    assert "Your organisation&#39;s keys expire in 30 days" in page
