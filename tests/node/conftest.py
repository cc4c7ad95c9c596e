"""Fixtures: a school node and an LA node (serving the front door and the nurses) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exchange.config import DeliveryConfig, SmtpSettings
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from tests.connectors.smtp_server import PASSWORD as SMTP_PASSWORD
from tests.connectors.smtp_server import (
    USERNAME,
    SmtpServer,
    ThrowawayCa,
    make_test_ca,
    start_smtp_server,
)
from tests.store_engines import ENGINES, DeploymentEngine, deployment_databases

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


@asynccontextmanager
async def deployed(
    folder: Path,
    users: Mapping[OrgId, Sequence[str]],
    *,
    orgs: Sequence[OrgSpec] = ORGS,
    delivery: DeliveryConfig = FAST_DELIVERY,
    **options: Any,
) -> AsyncIterator[Deployment]:
    """Start a loopback deployment over TLS with fast key files; stop it afterwards.

    ``options`` go to :func:`~exchange.demo.loopback.start_deployment` as they are (routes,
    relays, MESH and SMTP settings, notification mailboxes).
    """
    async with deployment_databases(s.node for s in orgs) as databases:
        deployment = await start_deployment(
            folder,
            orgs,
            users=users,
            delivery=delivery,
            kdf=KdfParams.fast_for_tests(),
            databases=options.pop("databases", None) or databases,
            **options,
        )
        try:
            yield deployment
        finally:
            await deployment.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give each node test both engines, or SQLite alone if marked ``sqlite_only``."""
    if "store_engine" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("store_engine", ENGINES[:1] if only else ENGINES, indirect=True)


@pytest.fixture(autouse=True)
def store_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run each node test on SQLite and on PostgreSQL (tests/store_engines.py)."""
    if request.param == "postgresql":
        DeploymentEngine.server = request.getfixturevalue("postgres_server")
    try:
        yield request.param
    finally:
        DeploymentEngine.server = None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the two nodes over TLS with a test CA; stop them afterwards."""
    users = {SCHOOL: ["dsl", "dpo"], LA: ["staff", "dsl"], NURSES: ["staff"]}
    async with deployed(tmp_path / "world", users) as deployment:
        yield deployment


@pytest.fixture
async def http(office: Deployment) -> AsyncIterator[aiohttp.ClientSession]:
    """Yield an HTTPS client trusting the CA of the module's own ``office`` deployment."""
    # Imported here: the helpers import this module's organisations.
    from .helpers import client

    async with client(office) as session:
        yield session


#: The environment variable the nodes read the SMTP password from in these tests.
SMTP_PASSWORD_ENV = "TEST_SMTP_PASSWORD"  # noqa: S105 - a variable name


@pytest.fixture(scope="module")
def smtp_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCa:
    """Make a throwaway CA and certificate for the SMTP servers of a module."""
    return make_test_ca(tmp_path_factory.mktemp("smtp-ca"))


@pytest.fixture
async def smtp(smtp_ca: ThrowawayCa, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SmtpServer]:
    """Run a real aiosmtpd requiring STARTTLS and AUTH; put its password in the environment."""
    monkeypatch.setenv(SMTP_PASSWORD_ENV, SMTP_PASSWORD)
    server = await start_smtp_server(smtp_ca)
    yield server
    await server.stop()


def smtp_settings(server: SmtpServer, ca: ThrowawayCa, **changes: str) -> SmtpSettings:
    """Return a node's [smtp] settings for the test server (``changes`` replace fields)."""
    fields: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "from_address": "exchange@hillside.example",
        "message_id_domain": "exchange.hillside.example",
        "username": USERNAME,
        "password_env": SMTP_PASSWORD_ENV,
        "ca": ca.ca_file,
        **changes,
    }
    return SmtpSettings(**fields)  # type: ignore[arg-type]
