"""A running node serves the web pages beside its APIs, which keep their answers."""

from __future__ import annotations

import pytest

from tests.web.world import SCHOOL, World

#: The tests only read: they share the module's nodes (Hillside's is the one asked).
pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


async def test_node_serves_the_start_page(world: World) -> None:
    """The node's / is the start page, with the pages' security headers."""
    async with world.http.get(world.base(SCHOOL) + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "Secure exchange" in await response.text()


async def test_node_apis_keep_their_json_404s(world: World) -> None:
    """Unknown staff API and peer protocol paths answer their own JSON errors, not pages."""
    http = world.http
    base = world.base(SCHOOL)
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


async def test_node_health_gets_no_page_headers(world: World) -> None:
    """The health endpoint (on the operations listener) answers without the pages' policy."""
    async with world.http.get(world.ops_base(SCHOOL) + "/healthz") as response:
        assert response.status == 200
        assert "Content-Security-Policy" not in response.headers
