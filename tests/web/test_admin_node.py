"""The node page over running nodes: route health, dead letters and requeue, directory, keys."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from exchange.demo.loopback import routes_of
from exchange.keys.directory import Organisation, merge_directory, sign_directory
from exchange.keys.ids import OrgId
from exchange.policy import LONDON
from exchange.web.admin.node_state import DIRECTORY_CHECK_PATH
from exchange.web.words import day_words
from tests.node.helpers import publish_route, until
from tests.web.page_client import PageClient
from tests.web.pages import parse
from tests.web.synthetic import referral
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, Account, World, actor

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

DSL = actor(SCHOOL, "dsl")
DAY = 24 * 3600


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


@pytest.mark.parametrize("days", [60, 30, 7])
async def test_keys_expiring_within_60_30_or_7_days_are_warned_of_with_the_london_date(
    admins: Admins, days: int
) -> None:
    """Within each threshold: a GOV.UK warning with the days left and the date in London."""
    world = admins.world
    keys = world.service(FRONT_DOOR).directory.organisation(FRONT_DOOR).keys
    expires = keys[0].not_after
    with world.clock_moved(FRONT_DOOR, to=expires - days * DAY + 60):
        admin = await admins.signed_in(FRONT_DOOR)
        _, page, _ = await admin.get("/admin/node")
    (strong,) = [
        e for e in parse(page).all("strong") if e.attrs.get("class") == "govuk-warning-text__text"
    ]
    warning = " ".join(strong.text.split())
    on = day_words(datetime.fromtimestamp(expires, UTC).astimezone(LONDON).date())
    assert f"Your organisation's keys expire in {days - 1} days, on {on}." in warning
    with world.clock_moved(FRONT_DOOR, to=expires - 61 * DAY):
        admin = await admins.signed_in(FRONT_DOOR)
        _, page, _ = await admin.get("/admin/node")
    assert "govuk-warning-text" not in page


async def test_the_button_looks_for_a_new_directory_and_says_what_it_found(
    admins: Admins,
) -> None:
    """Nothing newer: said so; a newer version in the directory file: adopted, and said so."""
    world = admins.world
    admin = await admins.signed_in(SCHOOL)
    _, page, _ = await admin.get("/admin/node")
    assert "Check for a new directory now" in page
    version = world.service(SCHOOL).directory.version
    status, _, headers = await admin.post(DIRECTORY_CHECK_PATH, {}, page)
    assert (status, headers["Location"]) == (303, "/admin/node?directory=unchanged")
    _, page, _ = await admin.get("/admin/node?directory=unchanged")
    assert f"There is no newer directory. The node uses version {version}." in page

    deployment = world.deployment
    assert deployment.authority is not None
    newer = merge_directory(
        None,
        [
            Organisation(e.id, e.name, e.kind, e.keys, routes_of(deployment, e.id))
            for e in deployment.listed_entries()
        ],
        version=version + 1,
        issued=int(time.time()),
        authority=deployment.authority.verifier.name,
    )
    node = deployment.node_of(SCHOOL)
    node.config.directory_file.write_bytes(sign_directory(newer, deployment.authority))
    _, page, _ = await admin.get("/admin/node")
    status, _, headers = await admin.post(DIRECTORY_CHECK_PATH, {}, page)
    assert (status, headers["Location"]) == (303, "/admin/node?directory=adopted")
    assert world.service(SCHOOL).directory.version == version + 1
    _, page, _ = await admin.get("/admin/node?directory=adopted")
    assert f"The node now uses directory version {version + 1}." in page

    # Without the form's token the check is refused and nothing is looked at.
    status, _, _ = await admin.post_without_token(DIRECTORY_CHECK_PATH, {})
    assert status == 403


async def test_a_refused_directory_is_said_in_words(admins: Admins) -> None:
    """The banner after a refusal names the reason in words; an unknown reason shows none."""
    admin = await admins.signed_in(SCHOOL)
    _, page, _ = await admin.get("/admin/node?directory=refused&reason=rollback")
    assert "The directory found was refused: it is older than the one in use." in page
    _, page, _ = await admin.get("/admin/node?directory=refused&reason=%3Cscript%3E")
    assert "was refused" not in page
