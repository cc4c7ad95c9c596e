"""Nodes routing over NHS MESH (the real sandbox) and SMTP (a real aiosmtpd with STARTTLS).

The school sends to the school-nursing team, whose only route is its MESH mailbox: the
envelope goes through MESH, the LA node (serving the nurses) collects it, and the signed
``delivered`` receipt comes back over MESH on the ``_ACK`` workflow; opening sends
``opened`` by the school's HTTPS route. An organisation whose only route is email gets the
sealed envelope as an attachment, and staff get a notice with no personal data.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.config import MeshTenantConfig
from exchange.connectors.base import Delivered, Message
from exchange.connectors.mesh import MeshConfig, MeshConnector
from exchange.demo.loopback import Deployment, OrgSpec
from exchange.envelope import open_envelope
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType, decode_event
from exchange.node.runtime import Node
from tests.connectors.mesh_sandbox import PASSWORD, RECIPIENT, SENDER, SHARED_KEY, Sandbox
from tests.connectors.smtp_server import (
    SmtpServer,
    ThrowawayCa,
)

from .conftest import FAST_DELIVERY, LA, NURSES, SCHOOL, deployed, smtp_settings
from .helpers import auth, client, org_pair, sent, submit, until
from .records import opened_note

MAIL_ONLY = OrgId("urn:145678")
ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
    OrgSpec(NURSES, "School nursing team", "nhs", "la"),
    OrgSpec(MAIL_ONLY, "Moorside Academy", "school", "la"),
)
SENTINEL = "Zebedee Quixote-Smith"
DELIVERY = dataclasses.replace(FAST_DELIVERY, collect_interval=0.2)


@pytest.fixture
def sandbox(mesh_sandbox_server: Sandbox) -> Sandbox:
    mesh_sandbox_server.reset()
    return mesh_sandbox_server


@pytest.fixture
def mesh_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MESH_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_MESH_KEY", SHARED_KEY)


def _mesh(url: str, mailbox: str) -> MeshTenantConfig:
    return MeshTenantConfig(
        url=url,
        mailbox=mailbox,
        password_env="TEST_MESH_PASSWORD",  # noqa: S106 - a variable name
        shared_key_env="TEST_MESH_KEY",
        workflow="EXCHANGE_TEST",
        chunk_size=64 * 1024,
        allow_http=True,
    )


@pytest.fixture
async def world(
    tmp_path: Path, sandbox: Sandbox, smtp: SmtpServer, smtp_ca: ThrowawayCa, mesh_secrets: None
) -> AsyncIterator[Deployment]:
    del mesh_secrets
    async with deployed(
        tmp_path / "world",
        {SCHOOL: ["dsl"], NURSES: ["staff"], LA: ["staff"], MAIL_ONLY: ["dsl"]},
        orgs=ORGS,
        delivery=DELIVERY,
        routes={
            SCHOOL: (("https", "school"), ("mesh", SENDER)),
            NURSES: (("mesh", RECIPIENT),),
            MAIL_ONLY: (("smtp", "dsl@moorside.example"),),
        },
        mesh={SCHOOL: _mesh(sandbox.url, SENDER), NURSES: _mesh(sandbox.url, RECIPIENT)},
        notify={NURSES: ("nurses@nhs.example",)},
        smtp=smtp_settings(
            smtp, smtp_ca, link_template="https://exchange.example/inbox/{envelope_id}"
        ),
    ) as deployment:
        yield deployment


def _statuses(item: dict[str, object]) -> list[str]:
    [recipient] = item["recipients"]  # type: ignore[misc]
    return [entry["status"] for entry in recipient["timeline"]]


async def test_envelope_over_mesh_with_receipts_back_over_mesh(
    world: Deployment, smtp: SmtpServer
) -> None:
    content = f"LAC health assessment for {SENTINEL}".encode()
    async with client(world) as http:
        digest = (await submit(http, world, content, [NURSES]))["digest"]

        async def delivered() -> bool:
            return "delivered" in _statuses(await sent(http, world, digest))

        await until(delivered, timeout=30.0)
        item = await sent(http, world, digest)
        [recipient] = item["recipients"]
        assert recipient["route"] == "mesh"

        # The nurses open it: "opened" goes back by the school's first route (HTTPS).
        async with http.post(
            world.url("la") + f"/api/v1/inbox/{digest}/open", headers=auth(world, NURSES, "staff")
        ) as resp:
            assert resp.status == 200
            assert opened_note(await resp.read()) == content.decode()

        async def opened() -> bool:
            return "opened" in _statuses(await sent(http, world, digest))

        await until(opened, timeout=30.0)

        # The LA node's metrics count what it took from MESH.
        async with http.get(world.ops_url("la") + "/metrics") as resp:
            metrics = await resp.text()
        assert 'exchange_collected_total{outcome="stored"} 1' in metrics
        assert "exchange_collect_failures_total 0" in metrics

    school = world.nodes["school"].service.store
    events = [decode_event(e) for _, e in await school.ledger_events_for(bytes.fromhex(digest))]
    assert [(e.type, e.reason) for e in events][:2] == [
        (EventType.SUBMITTED, None),
        (EventType.ATTEMPTED, "handed-over:mesh"),
    ]
    # The nurses' staff were told, without personal data, that an item is waiting.
    [notice] = [m for m in smtp.handler.received if "nurses@nhs.example" in m.rcpt_tos]
    assert notice.encrypted
    assert SENTINEL.encode() not in notice.data
    message = email.message_from_bytes(notice.data, policy=email.policy.default)
    assert "School nursing team" in message.as_string()


async def test_mail_only_organisation_gets_the_sealed_envelope(
    world: Deployment, smtp: SmtpServer
) -> None:
    content = f"CP file for {SENTINEL}".encode()
    async with client(world) as http:
        digest = (await submit(http, world, content, [MAIL_ONLY]))["digest"]

        async def handed_over() -> bool:
            item = await sent(http, world, digest)
            return bool(item["recipients"][0]["delivery_state"] == "delivered")

        await until(handed_over, timeout=20.0)
        [recipient] = (await sent(http, world, digest))["recipients"]
        assert recipient["route"] == "smtp"
        assert recipient["timeline"] == []  # no receipt comes back by mail
    [mail] = [m for m in smtp.handler.received if "dsl@moorside.example" in m.rcpt_tos]
    assert SENTINEL.encode() not in mail.data
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    [attachment] = list(message.iter_attachments())
    sealed = attachment.get_payload(decode=True)
    assert isinstance(sealed, bytes)
    assert world.directory is not None
    plain, opened = open_envelope(
        sealed, world.directory, [org_pair(world, MAIL_ONLY)], now=int(time.time())
    )
    assert opened_note(plain) == content.decode()
    assert opened.verified.digest == bytes.fromhex(digest)

    # The receiving DSL imports the attachment into her node; "delivered" goes back.
    async with client(world) as http:
        for expected_status in (201, 200):  # a second import changes nothing
            async with http.post(
                world.url("la") + "/api/v1/inbox/import",
                data=sealed,
                headers={
                    **auth(world, MAIL_ONLY, "dsl"),
                    "Content-Type": "application/vnd.exchange.envelope",
                },
            ) as resp:
                assert resp.status == expected_status, await resp.text()
                assert (await resp.json())["digest"] == digest

        async def delivered() -> bool:
            return _statuses(await sent(http, world, digest)) == ["delivered"]

        await until(delivered, timeout=20.0)
        # Another organisation's staff cannot import it: it is not addressed to them.
        async with http.post(
            world.url("la") + "/api/v1/inbox/import",
            data=sealed,
            headers=auth(world, NURSES, "staff"),
        ) as resp:
            assert resp.status == 403


async def test_recall_after_mesh_or_mail_hand_over_is_not_possible(world: Deployment) -> None:
    """Once MESH or a mail server took an envelope, a recall says so, and is recorded."""
    async with client(world) as http:
        digests = [
            (await submit(http, world, b"synthetic target", [org]))["digest"]
            for org in (NURSES, MAIL_ONLY)
        ]

        async def handed_over() -> bool:
            for digest in digests:
                [recipient] = (await sent(http, world, digest))["recipients"]
                if recipient["delivery_state"] != "delivered":
                    return False
            return True

        await until(handed_over, timeout=30.0)
        for digest, route in zip(digests, ("mesh", "smtp"), strict=True):
            async with http.post(
                world.url("school") + f"/api/v1/sent/{digest}/recall",
                json={"reason": "Sent to the wrong organisation."},
                headers=auth(world, SCHOOL, "dsl"),
            ) as resp:
                assert resp.status == 200, await resp.text()
                [row] = (await resp.json())["recipients"]
            assert (row["outcome"], row["route"]) == ("not-recallable", route)
            assert "cannot pull it back" in row["detail"]
            [recipient] = (await sent(http, world, digest))["recipients"]
            assert recipient["recall"]["outcome"] == "not-recallable"
            school = world.nodes["school"].service.store
            events = [
                decode_event(e) for _, e in await school.ledger_events_for(bytes.fromhex(digest))
            ]
            assert EventType.RECALLED not in [e.type for e in events]


async def test_a_mesh_message_left_unread_shows_in_the_metrics(
    world: Deployment, sandbox: Sandbox
) -> None:
    """A message on a workflow the node does not serve stays in MESH and is counted."""
    other = MeshConnector(
        MeshConfig(
            base_url=sandbox.url,
            mailbox=SENDER,
            password=PASSWORD,
            shared_key=SHARED_KEY.encode(),
            organisation=SCHOOL,
            envelope_workflow="SOMEONE_ELSES_WORKFLOW",
            allow_http=True,
        )
    )
    try:
        message = Message("envelope", b"\x01" * 32, SCHOOL, NURSES, b"not for the exchange")
        outcome = await other.deliver(message, RECIPIENT, timeout=10.0)
        assert isinstance(outcome, Delivered)
    finally:
        await other.close()
    async with client(world) as http:

        async def counted() -> bool:
            async with http.get(world.ops_url("la") + "/metrics") as resp:
                return "exchange_mesh_unread_messages 1" in await resp.text()

        await until(counted, timeout=20.0)


async def test_a_mesh_non_delivery_report_sends_the_envelope_again_once(
    world: Deployment, sandbox: Sandbox
) -> None:
    """MESH reports our message undelivered: the node re-queues it; it arrives once."""
    await world.nodes["la"].stop()  # nobody collects the first copy before the report
    school = world.nodes["school"].service.store
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic target", [NURSES]))["digest"]

        async def handed_over() -> bool:
            item = await school.sent_item(SCHOOL, bytes.fromhex(digest))
            return item is not None and item.deliveries[0].transport_ref is not None

        await until(handed_over, timeout=20.0)
        item = await school.sent_item(SCHOOL, bytes.fromhex(digest))
        assert item is not None
        first_ref = item.deliveries[0].transport_ref
        assert first_ref is not None
        sandbox.create_report(
            mailbox_id=SENDER,
            code="14",
            description="Undelivered message",
            workflow_id="EXCHANGE_TEST",
            local_id=digest,
            linked_message_id=first_ref,
        )

        async def sent_again() -> bool:
            again = await school.sent_item(SCHOOL, bytes.fromhex(digest))
            ref = None if again is None else again.deliveries[0].transport_ref
            return ref is not None and ref != first_ref

        await until(sent_again, timeout=20.0)
        events = [
            (decode_event(e).type, decode_event(e).reason)
            for _, e in await school.ledger_events_for(bytes.fromhex(digest))
        ]
        assert events[:4] == [
            (EventType.SUBMITTED, None),
            (EventType.ATTEMPTED, "handed-over:mesh"),
            (EventType.ATTEMPTED, "undelivered:mesh"),
            (EventType.ATTEMPTED, "handed-over:mesh"),
        ]
        node = Node(world.nodes["la"].config)
        await node.start()
        world.nodes["la"] = node

        async def delivered() -> bool:
            return "delivered" in _statuses(await sent(http, world, digest))

        await until(delivered, timeout=30.0)
    # Both copies reached the nurses' MESH inbox; the node stored the envelope once.
    inbox = await world.nodes["la"].service.store.inbox(NURSES, limit=10)
    assert [i.envelope.digest.hex() for i in inbox] == [digest]
