"""Idempotent submissions on a real node: ``Idempotency-Key`` makes a retry safe.

A client whose connection was cut cannot tell whether its record was sealed. Sent again
with the same key and body, the node answers as it did the first time and seals nothing
new; the key survives a restart (it is committed with the envelope) and is forgotten after
a day. The same key with another body is refused (422), a key still in progress answers
409, and a malformed key is refused (400) without being repeated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.config import load_config
from exchange.demo.loopback import Deployment
from exchange.model import User
from exchange.node.runtime import Node
from exchange.service.errors import ServiceError
from exchange.service.idempotency import IdempotencyKey, parse_key

from .conftest import LA, SCHOOL
from .helpers import auth, client, submission, until

pytestmark = pytest.mark.network

KEY = "3f0c2a4e-6b1d-4c8e-9a57-0d2b8f1e7c11"


async def _post(
    http: aiohttp.ClientSession, world: Deployment, body: dict[str, Any], key: str | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = auth(world, SCHOOL, "dsl")
    if key is not None:
        headers["Idempotency-Key"] = key
    async with http.post(
        world.url("school") + "/api/v1/envelopes", json=body, headers=headers
    ) as resp:
        return resp.status, dict(await resp.json()), dict(resp.headers)


async def _sent_digests(world: Deployment) -> list[str]:
    items = await world.nodes["school"].service.store.list_sent(SCHOOL, limit=50)
    return [i.envelope.digest.hex() for i in items]


async def test_a_repeat_with_the_same_key_gets_the_first_answer(world: Deployment) -> None:
    """The second POST answers 202 with the first body, replayed; one envelope is delivered."""
    body = submission(b'{"synthetic": "once"}', [LA])
    async with client(world) as http:
        status, first, headers = await _post(http, world, body, KEY)
        assert status == 202
        assert "Idempotent-Replayed" not in headers
        status, second, headers = await _post(http, world, body, KEY)
        assert status == 202
        assert second == first
        assert headers["Idempotent-Replayed"] == "true"
        assert await _sent_digests(world) == [first["digest"]]

        async def delivered() -> bool:
            inbox = await world.nodes["la"].service.store.inbox(LA, limit=10)
            return len(inbox) == 1

        await until(delivered, what="the one delivery")
        # Without a key, the same body is a new submission, as before.
        status, third, headers = await _post(http, world, body, None)
        assert status == 202
        assert third["digest"] != first["digest"]
        assert "Idempotent-Replayed" not in headers
    inbox = await world.nodes["la"].service.store.inbox(LA, limit=10)
    assert first["digest"] in [i.envelope.digest.hex() for i in inbox]


async def test_the_same_key_with_another_body_is_refused(world: Deployment) -> None:
    """422 names the reuse; nothing new is sealed; keys are per caller."""
    async with client(world) as http:
        status, first, _ = await _post(http, world, submission(b'{"n": 1}', [LA]), KEY)
        assert status == 202
        status, answer, _ = await _post(http, world, submission(b'{"n": 2}', [LA]), KEY)
        assert status == 422
        assert answer["error"]["rule"] == "idempotency-key.reused"
        assert "was used for a different request" in answer["error"]["message"]
        assert KEY not in json.dumps(answer)
        assert await _sent_digests(world) == [first["digest"]]
        # Another account of the organisation has its own keys.
        headers = {**auth(world, SCHOOL, "dpo"), "Idempotency-Key": KEY}
        async with http.post(
            world.url("school") + "/api/v1/envelopes",
            json=submission(b'{"n": 2}', [LA]),
            headers=headers,
        ) as resp:
            # A DPO may not send; the refusal is the role's, not the key's.
            assert resp.status == 403


@pytest.mark.parametrize(
    "key",
    ["", " ", "x" * 129, "two words", "caf\u00e9"],
    ids=["empty", "space", "too-long", "inner-space", "not-ascii"],
)
async def test_a_malformed_key_is_refused_without_echo(world: Deployment, key: str) -> None:
    """400 names the header and its rule, never the value; nothing is sealed."""
    headers = {**auth(world, SCHOOL, "dsl"), "Idempotency-Key": key}
    async with (
        client(world) as http,
        http.post(
            world.url("school") + "/api/v1/envelopes",
            json=submission(b'{"n": 1}', [LA]),
            headers=headers,
        ) as resp,
    ):
        assert resp.status == 400
        text = await resp.text()
    assert "Idempotency-Key header must be 1 to 128 visible ASCII characters" in text
    if key.strip():
        assert key not in text
    assert await _sent_digests(world) == []


async def test_a_key_in_progress_answers_409(world: Deployment) -> None:
    """While the first request with a key runs, a second with the same key is refused."""
    body = submission(b'{"n": 1}', [LA])
    raw = json.dumps(body).encode()
    service = world.nodes["school"].service
    user = User(f"{SCHOOL}/dsl", SCHOOL, "dsl of x", "dsl")
    held = IdempotencyKey(KEY, hashlib.sha256(b"held").digest())
    with service.sending.idempotency.in_progress(user, held):
        headers = {
            **auth(world, SCHOOL, "dsl"),
            "Idempotency-Key": KEY,
            "Content-Type": "application/json",
        }
        async with (
            client(world) as http,
            http.post(world.url("school") + "/api/v1/envelopes", data=raw, headers=headers) as resp,
        ):
            assert resp.status == 409
            assert "still in progress" in await resp.text()
    assert await _sent_digests(world) == []


async def test_a_cut_connection_then_a_restart_then_a_retry_seals_once(world: Deployment) -> None:
    """The answer is lost after the commit; after a restart the retry gets it back."""
    body = submission(b'{"synthetic": "cut"}', [LA])
    async with client(world) as http:
        first = asyncio.create_task(_post(http, world, body, KEY))

        async def committed() -> bool:
            return bool(await _sent_digests(world))

        await until(committed, what="the first submission's commit")
        first.cancel()  # the client gives up: it never sees the answer
        [digest] = await _sent_digests(world)
    await world.nodes["school"].stop()
    world.nodes["school"] = Node(load_config(world.folder / "node-school.toml"))
    await world.nodes["school"].start()
    async with client(world) as http:
        status, answer, headers = await _post(http, world, body, KEY)
        assert status == 202
        assert answer["digest"] == digest
        assert headers["Idempotent-Replayed"] == "true"
        assert await _sent_digests(world) == [digest]

        # A day later the key is forgotten: the same request is a new submission.
        world.nodes["school"].service.clock = lambda: time.time() + 24 * 3600 + 60
        status, later, headers = await _post(http, world, body, KEY)
        assert status == 202
        assert later["digest"] != digest
        assert "Idempotent-Replayed" not in headers


#: The one refusal of a malformed key: a fixed sentence, so nothing sent is repeated.
MALFORMED = (
    "the Idempotency-Key header must be 1 to 128 visible ASCII characters without spaces, "
    "such as a UUID"
)


@given(st.text(max_size=140))
def test_parse_key_accepts_exactly_visible_ascii_up_to_128(value: str) -> None:
    """A key is 1 to 128 characters from ! to ~; anything else is the one fixed 400."""
    if 1 <= len(value) <= 128 and all("!" <= c <= "~" for c in value):
        assert parse_key(value, b"\0" * 32).key == value
        return
    with pytest.raises(ServiceError) as refused:
        parse_key(value, b"\0" * 32)
    assert refused.value.status == 400
    assert str(refused.value) == MALFORMED
