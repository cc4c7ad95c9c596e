"""Routes that fail: MESH down, SMTP refusing, every route refusing. Nothing is lost.

Each test submits several envelopes and ends with a count: every envelope is in the
recipient's inbox exactly once (or, when every route refuses, dead in the sender's outbox,
visible to an operator, and nowhere else), and the ledger shows each attempt and fallback.
"""

from __future__ import annotations

import dataclasses
import socket
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from exchange.config import MeshTenantConfig
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.ledger.events import EventType, decode_event
from tests.connectors.mesh_sandbox import PASSWORD, SENDER, SHARED_KEY
from tests.connectors.smtp_server import (
    SmtpServer,
    ThrowawayCa,
)

from .conftest import FAST_DELIVERY, LA, NURSES, SCHOOL, smtp_settings
from .helpers import client, sent, submit, until

ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
    OrgSpec(NURSES, "School nursing team", "nhs", "la"),
)
DELIVERY = dataclasses.replace(FAST_DELIVERY, collect_interval=0.2, fallback_after=2)
COUNT = 6


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MESH_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_MESH_KEY", SHARED_KEY)


async def _start(
    folder: Path,
    routes: dict[OrgId, tuple[tuple[str, str], ...]],
    *,
    smtp: SmtpServer | None = None,
    ca: ThrowawayCa | None = None,
    mesh_url: str | None = None,
) -> Deployment:
    settings = None
    if smtp is not None and ca is not None:
        settings = smtp_settings(smtp, ca)
    mesh = {}
    if mesh_url is not None:
        mesh[SCHOOL] = MeshTenantConfig(
            url=mesh_url,
            mailbox=SENDER,
            password_env="TEST_MESH_PASSWORD",  # noqa: S106 - a variable name
            shared_key_env="TEST_MESH_KEY",
            allow_http=True,
        )
    return await start_deployment(
        folder,
        ORGS,
        users={SCHOOL: ["dsl"]},
        delivery=DELIVERY,
        kdf=KdfParams.fast_for_tests(),
        routes=routes,
        mesh=mesh,
        smtp=settings,
    )


async def _submit_all(world: Deployment, to: OrgId) -> list[str]:
    async with client(world) as http:
        return [
            (await submit(http, world, f"synthetic record {i}".encode(), [to]))["digest"]
            for i in range(COUNT)
        ]


async def _wait_states(world: Deployment, digests: Sequence[str], state: str) -> None:
    async with client(world) as http:

        async def settled() -> bool:
            for digest in digests:
                item = await sent(http, world, digest)
                if item["recipients"][0]["delivery_state"] != state:
                    return False
            return True

        await until(settled, timeout=60.0)


async def _inbox_count(world: Deployment, org: OrgId) -> Counter[bytes]:
    items = await world.node_of(org).service.store.inbox(org, limit=1000)
    return Counter(i.envelope.digest for i in items)


async def _ledger(world: Deployment, digest: str) -> list[tuple[EventType, str | None]]:
    store = world.nodes["school"].service.store
    rows = await store.ledger_events_for(bytes.fromhex(digest))
    return [(decode_event(e).type, decode_event(e).reason) for _, e in rows]


@pytest.mark.network
async def test_mesh_down_falls_back_to_https_and_delivers_each_once(
    tmp_path: Path, secrets_env: None
) -> None:
    del secrets_env
    world = await _start(
        tmp_path / "w",
        {NURSES: (("mesh", "X26ABC2"), ("https", "la"))},
        mesh_url=f"http://127.0.0.1:{_dead_port()}",
    )
    try:
        digests = await _submit_all(world, NURSES)
        await _wait_states(world, digests, "delivered")
        counts = await _inbox_count(world, NURSES)
        assert counts == Counter({bytes.fromhex(d): 1 for d in digests})
        events = await _ledger(world, digests[0])
        assert events[:4] == [
            (EventType.SUBMITTED, None),
            (EventType.ATTEMPTED, "retry:mesh"),
            (EventType.ATTEMPTED, "retry:mesh"),
            (EventType.FALLBACK, "mesh"),
        ]
        assert events[-1] == (EventType.DELIVERED, None)
    finally:
        await world.stop()


@pytest.mark.network
async def test_mesh_down_without_another_route_keeps_retrying(
    tmp_path: Path, secrets_env: None
) -> None:
    del secrets_env
    world = await _start(
        tmp_path / "w",
        {NURSES: (("mesh", "X26ABC2"),)},
        mesh_url=f"http://127.0.0.1:{_dead_port()}",
    )
    try:
        digests = await _submit_all(world, NURSES)
        store = world.nodes["school"].service.store

        async def retried() -> bool:
            for digest in digests:
                item = await store.sent_item(SCHOOL, bytes.fromhex(digest))
                assert item is not None
                if item.deliveries[0].attempts < 3:
                    return False
            return True

        await until(retried, timeout=30.0)
        for digest in digests:
            item = await store.sent_item(SCHOOL, bytes.fromhex(digest))
            assert item is not None
            # Never dead while younger than the dead-letter age, never delivered elsewhere.
            assert item.deliveries[0].state in {"retry-wait", "attempting", "queued"}
        assert await _inbox_count(world, NURSES) == Counter()
    finally:
        await world.stop()


@pytest.mark.parametrize(
    ("reply", "first_events"),
    [
        # A permanent refusal falls back at once.
        ("550 5.1.1 Mailbox unknown", [(EventType.ATTEMPTED, "refused:smtp")]),
        # A temporary one is retried fallback_after times first.
        (
            "451 4.3.0 Try again later",
            [(EventType.ATTEMPTED, "retry:smtp"), (EventType.ATTEMPTED, "retry:smtp")],
        ),
    ],
)
async def test_smtp_refusing_falls_back(
    tmp_path: Path,
    secrets_env: None,
    smtp: SmtpServer,
    smtp_ca: ThrowawayCa,
    reply: str,
    first_events: list[tuple[EventType, str]],
) -> None:
    del secrets_env
    smtp.handler.reply = reply
    world = await _start(
        tmp_path / "w",
        {LA: (("smtp", "frontdoor@la.example"), ("https", "la"))},
        smtp=smtp,
        ca=smtp_ca,
    )
    try:
        digests = await _submit_all(world, LA)
        await _wait_states(world, digests, "delivered")
        assert await _inbox_count(world, LA) == Counter({bytes.fromhex(d): 1 for d in digests})
        events = await _ledger(world, digests[0])
        assert events[1 : 2 + len(first_events)] == [
            *first_events,
            (EventType.FALLBACK, "smtp"),
        ]
        assert smtp.handler.received == []
    finally:
        await world.stop()


async def test_every_route_refusing_ends_dead_and_delivers_nothing(
    tmp_path: Path, secrets_env: None, smtp: SmtpServer, smtp_ca: ThrowawayCa
) -> None:
    del secrets_env
    smtp.handler.reply = "554 5.7.1 Rejected"
    world = await _start(
        tmp_path / "w",
        {LA: (("smtp", "frontdoor@la.example"), ("mesh", "X26ABC2"))},
        smtp=smtp,
        ca=smtp_ca,
        mesh_url=None,
    )
    try:
        digests = await _submit_all(world, LA)
        # The node has no MESH mailbox, so the only usable route is SMTP, which refuses.
        await _wait_states(world, digests, "dead")
        assert await _inbox_count(world, LA) == Counter()
        events = await _ledger(world, digests[0])
        assert events == [(EventType.SUBMITTED, None), (EventType.ATTEMPTED, "refused:smtp")]
    finally:
        await world.stop()
