"""A running node serves the web pages beside its APIs, which keep their answers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams

pytestmark = pytest.mark.network

SCHOOL = OrgId("urn:106123")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[Deployment, aiohttp.ClientSession]]:
    """Start one school node over TLS, with a client that trusts its test CA."""
    deployment = await start_deployment(
        tmp_path / "web",
        [OrgSpec(SCHOOL, "Hillside Primary School", "school", "school")],
        kdf=KdfParams.fast_for_tests(),
    )
    assert deployment.ca_file is not None
    context = ssl.create_default_context(cafile=str(deployment.ca_file))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            yield deployment, http
    finally:
        await deployment.stop()


async def test_node_serves_the_start_page(
    node: tuple[Deployment, aiohttp.ClientSession],
) -> None:
    """The node's / is the start page, with the pages' security headers."""
    deployment, http = node
    async with http.get(deployment.url("school") + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "Secure exchange" in await response.text()


async def test_node_apis_keep_their_json_404s(
    node: tuple[Deployment, aiohttp.ClientSession],
) -> None:
    """Unknown staff API and peer protocol paths answer their own JSON errors, not pages."""
    deployment, http = node
    base = deployment.url("school")
    async with http.get(base + "/api/v1/nope") as response:
        assert (response.status, await response.json()) == (
            404,
            {"error": {"status": 404, "message": "Not Found"}},
        )
    async with http.get(base + "/peer/v1/nope") as response:
        assert (response.status, await response.json()) == (
            404,
            {"error": "404", "message": "Not Found"},
        )


async def test_node_health_gets_no_page_headers(
    node: tuple[Deployment, aiohttp.ClientSession],
) -> None:
    """The health endpoint answers as before, without the pages' policy."""
    deployment, http = node
    async with http.get(deployment.url("school") + "/healthz") as response:
        assert response.status == 200
        assert "Content-Security-Policy" not in response.headers
