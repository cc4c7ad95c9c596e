"""Leases: processes sharing one store claim each outbox item once and run each job once.

Each test opens the store folder twice where it matters (two connections, as two ``exchange
serve`` processes would), with owners ``process-a`` and ``process-b``.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from exchange.model import NewOutbox, OutboxItem
from exchange.outbox import machine
from exchange.store import SqliteStore

from .conftest import LEASE, OWNER, SCHOOL, T0, envelope

OTHER = "process-b"
ROUTE = machine.RouteTaken(0, 1, "mesh")

#: One process claiming from a store folder as ``owner``: it says ``ready``, waits for a line
#: on its standard input, claims two items at a time until none is left, and prints their ids.
CLAIMER = f"""
import asyncio, json, sys
from pathlib import Path
from exchange.store.opening import open_node_store

async def main(folder, owner, url):
    store = await open_node_store(Path(folder), database_url=url or None)
    print("ready", flush=True)
    sys.stdin.readline()
    taken = []
    try:
        while batch := await store.claim_due({T0!r}, 2, owner, {LEASE!r}):
            taken += [item.id for item in batch]
            await asyncio.sleep(0.002)
    finally:
        await store.close()
    print(json.dumps(taken), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


async def _queue(store: SqliteStore, count: int) -> None:
    """Queue ``count`` envelopes, each to two recipients (two outbox items each)."""
    for n in range(1, count + 1):
        env = envelope(n)
        await store.record_submission(
            env, submitted_by="user-1", now=T0,
            outbox=[NewOutbox("envelope", env.digest, SCHOOL, r) for r in env.recipients],
            ledger_events=[],
        )  # fmt: skip


async def _row(store: SqliteStore, item_id: int) -> OutboxItem:
    """Return outbox item ``item_id`` as stored now."""
    row = await store.outbox_item(item_id)
    assert row is not None
    return row


async def test_two_users_claiming_at_once_never_claim_the_same_item(
    pair: tuple[SqliteStore, SqliteStore],
) -> None:
    """Two owners claiming in small batches at the same time share the items, none twice."""
    first, second = pair
    await _queue(first, 30)

    async def drain(store: SqliteStore, owner: str) -> list[int]:
        taken: list[int] = []
        while batch := await store.claim_due(T0, 3, owner, LEASE):
            assert {i.lease_owner for i in batch} == {owner}
            taken += [i.id for i in batch]
            await asyncio.sleep(0.005)  # as an attempt would: the other gets the lock
        return taken

    a, b = await asyncio.gather(drain(first, OWNER), drain(second, OTHER))
    assert sorted(a + b) == list(range(1, 61))
    assert not set(a) & set(b)
    assert a, "the first owner claimed nothing"
    assert b, "the second owner claimed nothing"


async def test_a_live_lease_is_kept_and_an_expired_one_taken_over(store: SqliteStore) -> None:
    """Another owner claims an attempting item only once its lease has run out."""
    await _queue(store, 1)
    claimed = await store.claim_due(T0, 10, OWNER, LEASE)
    assert [(i.lease_owner, i.lease_until) for i in claimed] == [(OWNER, T0 + LEASE)] * 2
    assert await store.claim_due(T0 + LEASE - 0.001, 10, OTHER, LEASE) == []
    taken = await store.claim_due(T0 + LEASE, 1, OTHER, LEASE)
    assert [(i.id, i.lease_owner, i.attempts) for i in taken] == [(claimed[0].id, OTHER, 2)]
    # The limit counts the taken-over items too: the second waits for the next claim.
    [second] = await store.claim_due(T0 + LEASE, 1, OTHER, LEASE)
    assert second.id == claimed[1].id


async def test_renewing_keeps_an_item_from_being_taken_over(store: SqliteStore) -> None:
    """Renewed leases hold past the first expiry; another owner's renewal changes nothing."""
    await _queue(store, 1)
    first, second = await store.claim_due(T0, 10, OWNER, LEASE)
    assert await store.renew_leases(OTHER, {first.id, second.id}, T0 + 500) == 0
    assert await store.renew_leases(OWNER, {first.id}, T0 + 2 * LEASE) == 1
    assert await store.renew_leases(OWNER, set(), T0 + 2 * LEASE) == 0
    [taken] = await store.claim_due(T0 + LEASE, 10, OTHER, LEASE)
    assert taken.id == second.id
    row = await _row(store, first.id)
    assert (row.lease_owner, row.lease_until) == (OWNER, T0 + 2 * LEASE)


async def test_the_outcome_of_an_owner_whose_lease_was_lost_is_refused(
    store: SqliteStore,
) -> None:
    """Once another owner took the item over, the first owner's outcome changes nothing."""
    await _queue(store, 1)
    [stale] = await store.claim_due(T0, 1, OWNER, LEASE)
    [fresh] = await store.claim_due(T0 + LEASE, 1, OTHER, LEASE)
    assert fresh.id == stale.id
    late = machine.step(stale, machine.HandedOver(ROUTE, "mesh-1"), T0 + LEASE + 1)
    assert not await store.apply_transition(late)
    row = await _row(store, stale.id)
    assert (row.state, row.lease_owner, row.transport_ref) == ("attempting", OTHER, None)
    assert await store.ledger_events(0, 10) == []
    # The new owner's outcome is written, and ends the lease.
    done = machine.step(fresh, machine.HandedOver(ROUTE, "mesh-2"), T0 + LEASE + 2)
    assert await store.apply_transition(done)
    row = await _row(store, stale.id)
    assert (row.state, row.lease_owner, row.lease_until) == ("delivered", None, None)


async def test_giving_back_takes_only_the_owners_items(store: SqliteStore) -> None:
    """A stopping owner's items go back to the queue; another owner's stay attempting."""
    await _queue(store, 1)
    [mine] = await store.claim_due(T0, 1, OWNER, LEASE)
    [theirs] = await store.claim_due(T0, 1, OTHER, LEASE)
    assert await store.requeue_attempting(OWNER, T0 + 1) == 1
    assert (await _row(store, mine.id)).state == "queued"
    assert (await _row(store, theirs.id)).lease_owner == OTHER
    [again] = await store.claim_due(T0 + 1, 10, OTHER, LEASE)
    assert again.id == mine.id


async def test_a_job_is_held_by_one_owner_until_its_lease_runs_out(
    pair: tuple[SqliteStore, SqliteStore],
) -> None:
    """take_job: one holder at a time, renewed by its holder, taken over once expired."""
    first, second = pair
    assert await first.take_job("checkpoints", OWNER, T0, 60.0)
    assert not await second.take_job("checkpoints", OTHER, T0 + 59.9, 60.0)
    assert await second.take_job("chase", OTHER, T0, 60.0)  # another job, another lease
    assert await first.take_job("checkpoints", OWNER, T0 + 30, 60.0)  # renewed to T0 + 90
    assert not await second.take_job("checkpoints", OTHER, T0 + 89.9, 60.0)
    assert await second.take_job("checkpoints", OTHER, T0 + 90, 60.0)
    assert not await first.take_job("checkpoints", OWNER, T0 + 91, 60.0)


async def test_a_released_job_is_free_at_once_and_only_its_holder_releases_it(
    store: SqliteStore,
) -> None:
    """release_job by another owner changes nothing; by the holder, frees the job."""
    assert await store.take_job("collect", OWNER, T0, 60.0)
    assert not await store.release_job("collect", OTHER)
    assert not await store.take_job("collect", OTHER, T0 + 1, 60.0)
    assert await store.release_job("collect", OWNER)
    assert await store.take_job("collect", OTHER, T0 + 1, 60.0)


@pytest.mark.subprocess
async def test_two_processes_on_one_store_file_claim_each_item_once(store: SqliteStore) -> None:
    """Two real processes claiming from one SQLite file at once share the items, none twice."""
    await _queue(store, 40)
    claimers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLAIMER,
            str(store.folder),
            owner,
            getattr(store, "dsn", ""),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for owner in (OWNER, OTHER)
    ]
    async with asyncio.timeout(60):
        for claimer in claimers:
            assert claimer.stdout is not None
            assert await claimer.stdout.readline() == b"ready\n"
        outputs = [claimer.communicate(b"go\n") for claimer in claimers]
        taken = [json.loads(out) for out, _ in await asyncio.gather(*outputs)]
    assert [claimer.returncode for claimer in claimers] == [0, 0]
    a, b = taken
    assert sorted(a + b) == list(range(1, 81))
    assert not set(a) & set(b)
    owners = {i.lease_owner for i in [await _row(store, n) for n in range(1, 81)]}
    assert owners == {OWNER, OTHER}
