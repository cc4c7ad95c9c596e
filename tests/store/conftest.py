"""What the store tests share: organisations, a clock, an envelope row, stores, a PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exchange.keys.ids import OrgId
from exchange.model import EnvelopeRecord
from exchange.store import SqliteStore
from tests.store_engines import ENGINES, open_store, second_opening

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
NURSES = OrgId("ods:X26ABC")
#: The fixed clock of the store tests (unix seconds, in 2027).
T0 = 1_800_000_000.0
#: The process id the store tests claim outbox items as, and the length of its leases.
OWNER = "process-a"
LEASE = 60.0


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


@pytest.fixture(params=ENGINES)
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Open a fresh store, on each engine in turn (tests/store_engines.py)."""
    async with open_store(request.param, tmp_path / "node", request) as opened:
        yield opened


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """Open a fresh SQLite store in a temporary folder (for what only SQLite has)."""
    opened = await SqliteStore.open(tmp_path / "node")
    yield opened
    await opened.close()


@pytest.fixture(params=ENGINES)
async def pair(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, Any]]:
    """Open one store twice, as two ``exchange serve`` processes would, on each engine."""
    async with open_store(request.param, tmp_path / "node", request) as first:
        second = await second_opening(first, tmp_path / "other")
        try:
            yield first, second
        finally:
            await second.close()
