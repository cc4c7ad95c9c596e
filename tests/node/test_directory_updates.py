"""A new directory reaches running nodes: fetched over HTTPS, adopted, recorded, or refused.

The authority's address is a real HTTPS server on 127.0.0.1 with its own test CA
(:mod:`tests.node.directory_server`); the nodes are the loopback deployment, configured with
``[directory] url`` and ``ca`` and a one-second ``refresh_interval``. The nurses are served
by the LA's node from the start but listed only from version 3, so routing to them proves
the new version is in use.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exchange.cli.main import main
from exchange.config import ConfigError
from exchange.demo.loopback import Deployment, DirectorySource, routes_of
from exchange.keys.directory import Organisation, merge_directory, sign_directory
from exchange.keys.keypairs import SigningKey
from exchange.keys.notes import NoteSigner
from exchange.keys.succession import note_digest
from exchange.ledger.events import EventType, decode_event
from exchange.model import User
from exchange.node.runtime import Node
from exchange.service.directory_updates import MAX_NOTE_LEN
from exchange.service.errors import ForbiddenError
from exchange.workers.directory_fetch import NoteFetcher

from .conftest import LA, NURSES, SCHOOL, deployed
from .directory_server import NoteServer, serving_notes
from .helpers import auth, client, sent, submission, submit, until

pytestmark = pytest.mark.network


@dataclass
class Setup:
    """The deployment and the authority's HTTPS server."""

    world: Deployment
    server: NoteServer

    @property
    def school(self) -> Node:
        """The school's node (as it is now: a test may restart it)."""
        return self.world.nodes["school"]

    def sign(self, version: int, *, issued: int | None = None) -> bytes:
        """Sign a version listing every organisation, the nurses included, with routes."""
        world = self.world
        assert world.authority is not None
        entries = [
            Organisation(e.id, e.name, e.kind, e.keys, routes_of(world, e.id))
            for e in world.entries
        ]
        directory = merge_directory(
            None, entries, version=version, issued=issued or int(time.time()),
            authority=world.authority.verifier.name,
        )  # fmt: skip
        return sign_directory(directory, world.authority)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    """Start the authority's server, then the nodes fetching from it every second."""
    with serving_notes(tmp_path / "authority") as server:
        source = DirectorySource(server.url, server.ca, refresh_interval=1.0)
        async with deployed(
            tmp_path / "world", {SCHOOL: ["dsl"], LA: ["staff"]},
            unlisted=[NURSES], directory_source=source,
        ) as world:  # fmt: skip
            yield Setup(world, server)


def versions(world: Deployment) -> set[int]:
    """Return the directory versions the running nodes use."""
    return {node.service.directory.version for node in world.nodes.values()}


async def adopted_events(node: Node) -> list[tuple[str, str, bytes]]:
    """Return the node's ``directory-adopted`` events: (organisation, reason, digest)."""
    store = node.service.store
    events = [decode_event(e) for e in await store.ledger_events(0, await store.ledger_size())]
    return [
        (e.org, e.reason or "", e.envelope_digest)
        for e in events
        if e.type is EventType.DIRECTORY_ADOPTED
    ]


async def metrics(setup: Setup) -> str:
    """Return the school node's /metrics."""
    async with (
        client(setup.world) as http,
        http.get(setup.world.ops_url("school") + "/metrics") as r,
    ):
        return await r.text()


async def test_both_nodes_adopt_a_published_version_without_restart(setup: Setup) -> None:
    """Version 3 on the server: both nodes use it within seconds, and route to the nurses."""
    world, server = setup.world, setup.server
    assert versions(world) == {2}
    async with client(world) as http:
        async with http.post(
            world.url("school") + "/api/v1/envelopes",
            json=submission(b"before", [NURSES]),
            headers=auth(world, SCHOOL, "dsl"),
        ) as resp:
            assert resp.status == 422, await resp.text()
        note = setup.sign(3)
        with capture_logs() as logs:
            server.body = note
            await until(lambda: _versions_are(world, 3), what="version 3 everywhere")
        # The nodes share one directory file here: one fetches, the other may see the file.
        adopted = [e for e in logs if e["event"] == "directory.adopted"]
        assert len(adopted) == 2
        assert {e["version"] for e in adopted} == {3}
        assert "url" in {e["source"] for e in adopted}
        assert all(e["digest"] == note_digest(note).hex() for e in adopted)

        answer = await submit(http, world, b"after", [NURSES])

        async def delivered() -> bool:
            item = await sent(http, world, answer["digest"])
            return item["recipients"][0]["delivery_state"] == "delivered"

        await until(delivered, what="delivery to the nurses")
    # Written where a restart reads it, and recorded: one event per organisation served.
    assert world.nodes["school"].config.directory_file.read_bytes() == note
    la_events = await adopted_events(world.nodes["la"])
    assert sorted(e for e in la_events if e[1] == "version:3") == [
        (LA, "version:3", note_digest(note)),
        (NURSES, "version:3", note_digest(note)),
    ]
    text = await metrics(setup)
    assert re.search(r"^exchange_directory_version 3$", text, re.M)
    fetched = re.search(r"^exchange_directory_last_fetch_timestamp_seconds ([0-9.]+)$", text, re.M)
    assert fetched is not None
    assert abs(float(fetched[1]) - time.time()) < 30


async def _versions_are(world: Deployment, version: int) -> bool:
    return versions(world) == {version}


@pytest.mark.parametrize(
    "reason",
    ["rollback", "fork", "invalid-signature", "garbage", "oversize", "timeout"],
)
async def test_a_bad_note_is_refused_and_the_current_version_kept(
    setup: Setup, reason: str
) -> None:
    """Each refusal: the node keeps version 2, logs directory.refused and counts it."""
    world, server = setup.world, setup.server
    school = setup.school
    expected = reason
    if reason == "rollback":
        server.body = (world.folder / "directory-v1.note").read_bytes()
    elif reason == "fork":
        # Version 2 again, but a different note (the nurses listed).
        server.body = setup.sign(2)
    elif reason == "invalid-signature":
        note = setup.sign(3)
        server.body = note.replace(b'"version": 3', b'"version": 4', 1)
        expected = "invalid"
    elif reason == "garbage":
        server.body = b"this is not a signed note\n"
        expected = "invalid"
    elif reason == "oversize":
        server.body = b"x" * (MAX_NOTE_LEN + 1)
    else:
        server.body = setup.sign(3)
        server.delay = 2.0
        school.directory_updates.fetch = NoteFetcher(server.url, ca=server.ca, timeout=0.3)
    with capture_logs() as logs:
        result = await school.refresh_directory()
    assert (result.outcome, result.reason, result.version) == ("refused", expected, 2)
    assert school.service.directory.version == 2
    # The scheduled rounds of both nodes may log meanwhile; this refusal is among them.
    refused = [e for e in logs if e["event"] == "directory.refused" and e["outcome"] == expected]
    assert refused
    assert {e["log_level"] for e in refused} == {"error"}
    counted = re.search(
        rf'^exchange_directory_refused_total{{reason="{expected}"}} (\d+)$', await metrics(setup),
        re.M,
    )  # fmt: skip
    assert counted is not None
    assert int(counted[1]) >= 1
    assert [e for e in await adopted_events(school) if e[1] != "version:1"] == []


async def test_the_same_note_again_changes_nothing(setup: Setup) -> None:
    """Once adopted, fetching the same note again is not a new adoption nor a refusal."""
    note = setup.sign(3)
    setup.server.body = note
    await until(lambda: _versions_are(setup.world, 3), what="version 3")
    with capture_logs() as logs:
        result = await setup.school.refresh_directory()
    assert (result.outcome, result.version) == ("unchanged", 3)
    assert not [e for e in logs if e["event"].startswith("directory.")]


async def test_a_restart_uses_the_adopted_version_and_refuses_an_older_file(
    setup: Setup,
) -> None:
    """After adoption a restart runs version 3; a file put back to version 1 stops the start."""
    world, server = setup.world, setup.server
    note = setup.sign(3)
    server.body = note
    await until(lambda: _versions_are(world, 3), what="version 3")
    config = setup.school.config
    await setup.school.stop()
    again = Node(config, match_public_url=False)
    await again.start()
    world.nodes["school"] = again
    assert again.service.directory.version == 3
    school_events = [e for e in await adopted_events(again) if e[0] == SCHOOL]
    assert [e[1] for e in school_events] == ["version:1", "version:3"]
    await again.stop()

    config.directory_file.write_bytes((world.folder / "directory-v1.note").read_bytes())
    with pytest.raises(ConfigError) as refused:
        await Node(config, match_public_url=False).start()
    message = str(refused.value)
    assert "\n" not in message
    assert "directory.file holds version 1, older than version 3 this node adopted" in message


async def test_the_refresh_command_writes_the_file_and_the_running_node_adopts_it(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """`exchange directory refresh` touches only the file; the node adopts it from there."""
    world, server = setup.world, setup.server
    school = setup.school
    # The school's node stops fetching by itself; only the command fetches now.
    school.directory_updates.fetch = None
    config_file = str(world.folder / "node-school.toml")
    server.body = (world.folder / "directory-v1.note").read_bytes()
    before = school.config.directory_file.read_bytes()
    status = await asyncio.to_thread(main, ["directory", "refresh", "--config", config_file])
    err = capsys.readouterr().err.splitlines()
    assert status == 1
    assert len(err) == 1
    assert "a rollback is refused" in err[0]
    assert school.config.directory_file.read_bytes() == before

    note = setup.sign(3)
    server.body = note
    with capture_logs() as logs:
        status = await asyncio.to_thread(main, ["directory", "refresh", "--config", config_file])
        assert status == 0
        assert "wrote directory version 3" in capsys.readouterr().out
        await until(lambda: _version_of(school, 3), what="the school adopting the file")
    assert [(e["version"], e["source"]) for e in logs if e["event"] == "directory.adopted"] == [
        (3, "file")
    ]
    assert (SCHOOL, "version:3", note_digest(note)) in await adopted_events(school)


async def _version_of(node: Node, version: int) -> bool:
    return node.service.directory.version == version


async def test_a_note_signed_by_another_key_is_refused(setup: Setup) -> None:
    """A note under the authority's name but signed by another key is not trusted."""
    world = setup.world
    assert world.authority is not None
    impostor = NoteSigner(world.authority.verifier.name, SigningKey.generate())
    entries = world.listed_entries()
    directory = merge_directory(
        None, entries, version=9, issued=int(time.time()), authority=impostor.verifier.name
    )
    setup.server.body = sign_directory(directory, impostor)
    result = await setup.school.refresh_directory()
    assert (result.outcome, result.reason, result.version) == ("refused", "invalid", 2)


async def test_only_an_administrator_may_ask_for_a_check(setup: Setup) -> None:
    """The admin page's check is an administrator's; a DSL is refused and nothing is fetched."""
    dsl = User(f"{SCHOOL}/dsl", SCHOOL, "DSL", "dsl")
    with pytest.raises(ForbiddenError):
        await setup.school.service.check_directory(dsl)
    admin = User(f"{SCHOOL}/admin", SCHOOL, "Administrator", "admin")
    setup.school.directory_updates.fetch = None
    result = await setup.school.service.check_directory(admin)
    assert (result.outcome, result.version) == ("unchanged", 2)
