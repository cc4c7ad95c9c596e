"""What the node makes of PostgreSQL's failures: unreachable (retry), full, or failing."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from exchange.service.faults import fault_of
from exchange.store.postgres import PgIntegrityError


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        asyncpg.InternalClientError("unexpected connection_lost() call"),
    ],
)
def test_a_database_out_of_reach_is_unavailable_and_urgent(exc: Exception) -> None:
    """Restarting, failing over, refused: the node says so and asks to retry, not a bug."""
    fault = fault_of(exc)
    assert fault.kind == "store-unavailable"
    assert fault.urgent
    assert fault.words == "the node cannot reach its database"


def test_a_full_database_disk_is_storage_full() -> None:
    """PostgreSQL's SQLSTATE 53100 is the same fault as SQLite's full disk."""
    assert fault_of(asyncpg.DiskFullError("could not extend file")).kind == "storage-full"


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UndefinedColumnError("column does not exist"),
        PgIntegrityError("the change breaks the constraint outbox_pkey"),
        sqlite3.OperationalError("no such table"),
    ],
)
def test_other_database_errors_are_store_faults(exc: Exception) -> None:
    """Any other error of either engine is the database failing, named by kind only."""
    assert fault_of(exc).kind == "store"


def test_an_unrelated_error_names_only_its_class() -> None:
    """A bug is not a database fault; its message (which could quote data) is not repeated."""
    fault = fault_of(ValueError("urn:106123 Jane Doe"))
    assert fault.kind == "error"
    assert "Jane" not in fault.words
