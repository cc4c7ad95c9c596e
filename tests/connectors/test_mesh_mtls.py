"""Mutual TLS to MESH: the connector presents its client certificate and checks the server's.

The live MESH service requires a client certificate issued for the mailbox; the sandbox
speaks plain HTTP, so these tests put the stand-in MESH of test_mesh_hostile.py behind TLS
that requires a client certificate from a test CA.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.config import TlsConfig
from exchange.connectors.base import Delivered, RetryLater
from exchange.connectors.mesh import MeshConnector
from exchange.demo.loopback import certificate_authority, server_certificate

from .test_mesh_hostile import FakeMesh, config, envelope

pytestmark = pytest.mark.network

TIMEOUT = 5.0


def _authority(folder: Path, *names: str) -> dict[str, TlsConfig]:
    folder.mkdir(parents=True)
    key, ca = certificate_authority(folder)
    return {name: server_certificate(folder, name, key, ca) for name in names}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsConfig]:
    """Issue a MESH CA's server and client certificates, and another CA's client."""
    base = tmp_path_factory.mktemp("mesh-pki")
    issued = _authority(base / "mesh", "server", "client")
    issued.update({"stranger": _authority(base / "other", "stranger")["stranger"]})
    return issued


@pytest.fixture
async def mesh(pki: dict[str, TlsConfig]) -> AsyncIterator[FakeMesh]:
    server_tls = pki["server"]
    assert server_tls.ca is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(server_tls.ca))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(server_tls.cert), str(server_tls.key))
    server = FakeMesh()
    await server.start(ssl_context=context)
    yield server
    await server.stop()


async def _deliver(mesh: FakeMesh, **tls: str | None) -> object:
    connector = MeshConnector(config(mesh.url, allow_http=False, **tls))
    try:
        return await connector.deliver(envelope(), "X26ABC2", timeout=TIMEOUT)
    finally:
        await connector.close()


async def test_with_the_client_certificate_the_message_is_sent(
    mesh: FakeMesh, pki: dict[str, TlsConfig]
) -> None:
    client, server = pki["client"], pki["server"]
    outcome = await _deliver(
        mesh, client_cert=str(client.cert), client_key=str(client.key), ca_file=str(server.ca)
    )
    assert outcome == Delivered(transport_ref="MSG1")
    assert mesh.seen == ["handshake", "send"]


@pytest.mark.parametrize("who", [None, "stranger"])
async def test_without_an_accepted_client_certificate_nothing_is_sent(
    mesh: FakeMesh, pki: dict[str, TlsConfig], who: str | None
) -> None:
    """No certificate, or one from another CA: the handshake fails; retried, never sent."""
    tls: dict[str, str | None] = {"ca_file": str(pki["server"].ca)}
    if who is not None:
        tls.update(client_cert=str(pki[who].cert), client_key=str(pki[who].key))
    outcome = await _deliver(mesh, **tls)
    assert isinstance(outcome, RetryLater)
    assert "could not reach MESH" in outcome.reason
    assert mesh.seen == []


async def test_a_server_the_configured_ca_did_not_issue_is_refused(
    mesh: FakeMesh, pki: dict[str, TlsConfig]
) -> None:
    """The client checks the server too: a CA file that did not issue it fails the handshake."""
    client, stranger = pki["client"], pki["stranger"]
    outcome = await _deliver(
        mesh, client_cert=str(client.cert), client_key=str(client.key), ca_file=str(stranger.ca)
    )
    assert isinstance(outcome, RetryLater)
    assert mesh.seen == []
