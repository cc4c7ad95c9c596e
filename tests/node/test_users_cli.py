"""``exchange users add`` creates a user whose token works, storing only its hash."""

from __future__ import annotations

import asyncio

import pytest

from exchange.cli.main import main
from exchange.demo.loopback import Deployment
from tests.store_engines import node_database_bytes, node_sql

from .conftest import LA
from .test_exchange import _client


async def test_users_add_prints_a_token_that_authenticates(
    world: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed token opens the API as the new user, and only its hash is stored."""
    config = str(world.folder / "node-la.toml")
    argv = ["users", "add", "--config", config, "--org", LA, "--id", "w1@example",
            "--name", "Worker One", "--role", "staff"]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 40
    async with _client(world) as http:
        async with http.get(
            world.url("la") + "/api/v1/inbox", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 200
        async with http.get(
            world.url("la") + "/api/v1/inbox", headers={"Authorization": "Bearer " + "x" * 43}
        ) as resp:
            assert resp.status == 401
    rows = await node_sql(world, "la", "SELECT token_hash FROM users WHERE id = 'w1@example'")
    assert len(rows) == 1
    stored = await node_database_bytes(world, "la")
    assert token.encode() not in stored


async def test_users_add_refuses_an_organisation_the_node_does_not_serve(
    world: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Adding a user of another organisation is refused with one plain line."""
    argv = ["users", "add", "--config", str(world.folder / "node-la.toml"), "--org",
            "urn:106123", "--id", "x", "--name", "X", "--role", "dsl"]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 1
    assert capsys.readouterr().err == "exchange: this node does not serve urn:106123\n"
