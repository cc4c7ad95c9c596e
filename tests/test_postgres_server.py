"""The tests' own PostgreSQL server starts on loopback, answers, and leaves nothing behind."""

from __future__ import annotations

import subprocess

import pytest

from tests.postgres_server import DATABASE, ROLE, running_postgres, server_binaries

pytestmark = [pytest.mark.network, pytest.mark.subprocess]


def test_a_fresh_cluster_answers_on_loopback_and_is_removed_after() -> None:
    psql = server_binaries() / "psql"
    with running_postgres() as server:
        folder = server.folder
        answer = subprocess.run(
            [str(psql), "-h", server.host, "-p", str(server.port), "-U", ROLE, "-d", DATABASE,
             "-Atc", "SELECT current_database(), inet_server_addr()"],
            check=True, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert answer.stdout.strip() == f"{DATABASE}|127.0.0.1"
        assert server.dsn == f"postgresql://{ROLE}@127.0.0.1:{server.port}/{DATABASE}"
    assert not folder.exists()
