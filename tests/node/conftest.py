"""Fixtures: a school node and an LA node (serving the front door and the nurses) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.node.config import DeliveryConfig
from exchange.node.loopback import Deployment, OrgSpec, start_deployment
from keys.ids import OrgId
from keys.keyfile import KdfParams

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
NURSES = OrgId("ods:X26ABC")

ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
    OrgSpec(NURSES, "School nursing team", "nhs", "la"),
)

FAST_DELIVERY = DeliveryConfig(
    batch=32, concurrency=8, timeout=5.0, backoff_base=0.05, backoff_max=0.2, poll_interval=0.02
)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the two nodes over TLS with a test CA; stop them afterwards."""
    deployment = await start_deployment(
        tmp_path / "world",
        ORGS,
        users={SCHOOL: ["dsl", "dpo"], LA: ["staff", "dsl"], NURSES: ["staff"]},
        delivery=FAST_DELIVERY,
        kdf=KdfParams.fast_for_tests(),
    )
    yield deployment
    await deployment.stop()
