"""What the store tests share: organisations, a clock, an envelope row, stores, a PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from exchange.keys.ids import OrgId
from exchange.model import EnvelopeRecord
from exchange.store import SqliteStore
from tests.postgres_server import PostgresServer, running_postgres

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
NURSES = OrgId("ods:X26ABC")
#: The fixed clock of the store tests (unix seconds, in 2027).
T0 = 1_800_000_000.0


def envelope(
    n: int = 1, *, sender: OrgId = SCHOOL, record_kind: str = "referral"
) -> EnvelopeRecord:
    """Return the ``n``-th synthetic envelope row, sent from ``sender`` to the LA and nurses."""
    return EnvelopeRecord(
        digest=hashlib.sha256(b"env%d" % n).digest(),
        envelope_id=bytes([n]) * 16,
        sender=sender,
        recipients=(LA, NURSES),
        record_kind=record_kind,
        created=int(T0),
        length=1000 + n,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """Open a fresh store in a temporary folder."""
    opened = await SqliteStore.open(tmp_path / "node")
    yield opened
    await opened.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Run one real PostgreSQL on loopback for the store tests of the session.

    A test using it needs the ``network`` and ``subprocess`` markers.
    """
    with running_postgres() as server:
        yield server
