"""The PostgreSQL store while its server is away: one plain error, then back by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.service.faults import fault_of
from exchange.store.postgres import PostgresStore
from exchange.store.sql import DatabaseUnavailableError
from tests.postgres_server import pg_ctl, running_postgres

pytestmark = [pytest.mark.network, pytest.mark.subprocess]


async def test_a_store_whose_server_stops_says_so_and_works_again_once_it_is_back(
    tmp_path: Path,
) -> None:
    with running_postgres() as server:
        store = await PostgresStore.open(server.dsn, tmp_path / "data", pool_size=2)
        try:
            await store.check_writable(1.0)
            pg_ctl(server, "stop", "-m", "fast")
            for _ in range(3):  # the pooled connections, then new ones refused
                with pytest.raises(DatabaseUnavailableError) as refused:
                    await store.check_writable(2.0)
                assert str(refused.value) == "the node's database does not answer"
                assert fault_of(refused.value).kind == "store-unavailable"
            pg_ctl(server, "start")
            await store.check_writable(3.0)
            assert await store.ledger_size() == 0
        finally:
            await store.close()


def test_other_failures_are_not_called_a_database_outage() -> None:
    assert fault_of(ConnectionRefusedError()).kind == "error"
    assert fault_of(DatabaseUnavailableError("x")).words == "the node's database does not answer"
