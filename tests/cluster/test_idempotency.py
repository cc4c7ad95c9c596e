"""One Idempotency-Key sent to two `exchange serve` processes at once makes one envelope.

A client that gets no answer retries with the same key, and behind a load balancer the retry
may reach another process while the first request is still running there. Each key must
make exactly one envelope, and each answer must be the envelope's 202 or a refusal to try
again (409 while the first request runs), never a failure of the node.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from tests.node.conftest import LA, SCHOOL
from tests.node.helpers import auth, submission
from tests.postgres_server import PostgresServer
from tests.store_engines import fresh_database

from .harness import Cluster, ServeProcess, running_cluster

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

KEYS = 20


async def post_with_key(
    cluster: Cluster, process: ServeProcess, number: int, key: str
) -> tuple[int, str | None]:
    """Submit referral ``number`` with ``key``; return the status and the digest if any."""
    body = submission(f'{{"synthetic": "idempotency", "n": {number}}}'.encode(), [LA])
    headers = {**auth(cluster.world, SCHOOL, "dsl"), "Idempotency-Key": key}
    async with cluster.http.post(
        process.base + "/api/v1/envelopes", json=body, headers=headers
    ) as resp:
        answer = await resp.json()
        return resp.status, answer.get("digest") if resp.status == 202 else None


async def test_a_key_sent_to_both_processes_at_once_makes_one_envelope(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    async with (
        fresh_database(postgres_server) as dsn,
        running_cluster(tmp_path / "cluster", dsn) as cluster,
    ):
        digests: dict[str, set[str]] = {}
        for number in range(KEYS):
            key = secrets.token_hex(16)
            answers = await asyncio.gather(
                *(post_with_key(cluster, p, number, key) for p in cluster.processes)
            )
            statuses = sorted(status for status, _ in answers)
            assert statuses in ([202, 202], [202, 409]), (number, answers)
            digests[key] = {d for _, d in answers if d is not None}
            # Asked again, either process gives the first answer.
            again = [await post_with_key(cluster, p, number, key) for p in cluster.processes]
            assert {d for _, d in again} == digests[key], (number, again)
        assert all(len(found) == 1 for found in digests.values())
        sent = await cluster.query("SELECT COUNT(*) FROM sent")
        assert sent[0][0] == KEYS
