"""Machines' API tokens on a running loopback node: accepted as their role, refused once done.

A token made through the node's service acts with its role in its organisation; an expired,
revoked or unknown token is answered 401 with a plain reason and ``WWW-Authenticate: Bearer
error="invalid_token"``; its last use is written at most once a minute; it never reaches the
logs.
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from exchange import logs
from exchange.auth.api_token import london_day
from exchange.demo.loopback import Deployment
from exchange.keys.ids import OrgId
from exchange.model import Role

from .conftest import LA, SCHOOL, deployed
from .helpers import client, submission

pytestmark = pytest.mark.network

_DAY = 86400.0


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the school's and the LA's nodes with one person each."""
    async with deployed(tmp_path / "world", {SCHOOL: ["dsl"], LA: ["dsl"]}) as deployment:
        yield deployment


@pytest.fixture
async def http(world: Deployment) -> AsyncIterator[aiohttp.ClientSession]:
    """Yield an HTTPS client trusting the deployment's CA."""
    async with client(world) as session:
        yield session


async def _token(
    world: Deployment, node: str, org: OrgId, name: str, role: Role, days: int = 90
) -> str:
    _, secret = await world.nodes[node].service.api_tokens.create(
        name=name, org=org, role=role, created_by="test", days=days
    )
    return secret


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _refusal(
    http: aiohttp.ClientSession, url: str, token: str
) -> tuple[int, dict[str, Any], str | None]:
    async with http.get(url, headers=_bearer(token)) as resp:
        return resp.status, dict(await resp.json()), resp.headers.get("WWW-Authenticate")


async def test_a_machine_token_submits_and_reads_as_its_role(
    world: Deployment, http: aiohttp.ClientSession, structured_log: io.StringIO
) -> None:
    """A staff token of the school sends; a DPO token may not; the LA's DSL token reads."""
    sender = await _token(world, "school", SCHOOL, "mis-sender", "staff")
    dpo = await _token(world, "school", SCHOOL, "dpo-reports", "dpo")
    reader = await _token(world, "la", LA, "case-system", "dsl")
    body = submission(b"synthetic note", [LA])
    async with http.post(
        world.url("school") + "/api/v1/envelopes", json=body, headers=_bearer(sender)
    ) as resp:
        assert resp.status == 202, await resp.text()
    async with http.post(
        world.url("school") + "/api/v1/envelopes", json=body, headers=_bearer(dpo)
    ) as resp:
        assert resp.status == 403
        assert "the role dpo may not send records" in await resp.text()
    async with http.get(world.url("la") + "/api/v1/inbox", headers=_bearer(reader)) as resp:
        assert resp.status == 200, await resp.text()
    async with http.get(world.url("school") + "/api/v1/inbox", headers=_bearer(reader)) as resp:
        assert resp.status == 401  # a token is known only to the node that made it
    listed = await world.nodes["school"].service.api_tokens.listed(SCHOOL)
    assert {t.name: t.last_used_at is not None for t in listed} == {
        "mis-sender": True,
        "dpo-reports": True,
    }
    for token in (sender, dpo, reader):
        assert token not in structured_log.getvalue()


async def test_expired_token_is_refused_with_the_day_it_expired(
    world: Deployment, http: aiohttp.ClientSession
) -> None:
    """Past its expiry (the node's clock moved on) a token answers 401 saying when."""
    token = await _token(world, "la", LA, "short-lived", "dsl", days=1)
    service = world.nodes["la"].service
    made = (await service.api_tokens.listed(LA))[0]
    real = service.clock
    service.clock = lambda: real() + 2 * _DAY
    try:
        status, body, challenge = await _refusal(http, world.url("la") + "/api/v1/inbox", token)
    finally:
        service.clock = real
    assert status == 401
    assert body["error"]["message"] == f"this API token expired on {london_day(made.expires_at)}"
    assert challenge == 'Bearer error="invalid_token"'


async def test_revoked_token_is_refused(world: Deployment, http: aiohttp.ClientSession) -> None:
    """A revoked token answers 401 'this API token was revoked', at once."""
    token = await _token(world, "la", LA, "old-system", "dsl")
    url = world.url("la") + "/api/v1/inbox"
    async with http.get(url, headers=_bearer(token)) as resp:
        assert resp.status == 200
    await world.nodes["la"].service.api_tokens.revoke("old-system")
    status, body, challenge = await _refusal(http, url, token)
    assert status == 401
    assert body["error"]["message"] == "this API token was revoked"
    assert challenge == 'Bearer error="invalid_token"'


async def test_unknown_token_is_refused(world: Deployment, http: aiohttp.ClientSession) -> None:
    """A token the node never made answers 401 with the same challenge."""
    status, body, challenge = await _refusal(http, world.url("la") + "/api/v1/inbox", "x" * 43)
    assert status == 401
    assert body["error"]["message"] == "the bearer token is not valid"
    assert challenge == 'Bearer error="invalid_token"'


async def test_last_use_is_written_at_most_once_a_minute(
    world: Deployment, http: aiohttp.ClientSession
) -> None:
    """Two uses within a minute write one time; a use a minute later writes again."""
    token = await _token(world, "la", LA, "busy", "dsl")
    service = world.nodes["la"].service
    url = world.url("la") + "/api/v1/inbox"

    async def use() -> float | None:
        async with http.get(url, headers=_bearer(token)) as resp:
            assert resp.status == 200
        return (await service.api_tokens.listed(LA))[0].last_used_at

    first = await use()
    assert first is not None
    real = service.clock
    try:
        service.clock = lambda: first + 30
        assert await use() == first
        service.clock = lambda: first + 61
        assert await use() == first + 61
    finally:
        service.clock = real
