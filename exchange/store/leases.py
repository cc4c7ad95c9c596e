"""Leases: how several ``exchange serve`` processes share one store without doing work twice.

Each process has a random id (its *owner* name, made once when it starts). Two kinds of
lease are kept, both as an owner and a time until which it holds:

- **Outbox items.** :meth:`LeaseTables.claim_due` moves due items to ``attempting`` under a
  lease for the claiming process, and also claims ``attempting`` items whose lease ran out
  (their process died or hangs). On PostgreSQL the rows are selected ``FOR UPDATE SKIP
  LOCKED``, so two processes claiming at once never take the same row; SQLite has one writer
  at a time, which makes the claim atomic already. The process renews the leases of the
  attempts it is still making (:meth:`LeaseTables.renew_leases`); the outcome of an attempt
  is written only while the row still names its process
  (:func:`exchange.store.rows.write_transition`). At a graceful stop the process gives back
  what it could not finish (:meth:`LeaseTables.requeue_attempting`).
- **Background jobs** that run once in the group (checkpoints, chases, collection, ...):
  :meth:`LeaseTables.take_job` takes or renews the lease on a job's name, and
  :meth:`LeaseTables.release_job` gives it up.

Times are the processes' own clocks (unix seconds): the machines of one group must keep
their clocks in step (NTP), to well within a lease.
"""

from __future__ import annotations

from collections.abc import Collection

from exchange.model import OutboxItem
from exchange.outbox import machine
from exchange.store.rows import Tables, outbox_rows, step_all, write_transition
from exchange.store.sql import Db


def _locked(db: Db) -> str:
    """Return the clause that locks the selected rows and skips those another claim holds."""
    return " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""


def claim_rows(db: Db, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
    """Claim up to ``limit`` items for ``owner`` until ``now + lease``; return them.

    Items whose lease ran out come first (their attempt is the oldest); then due items, in
    the order they fell due. An expired item marked for recall is ended (``recalled``), not
    claimed.
    """
    claim = machine.Claimed(owner, now + lease)
    claimed: list[OutboxItem] = []
    expired = outbox_rows(
        db,
        "state = 'attempting' AND (lease_until IS NULL OR lease_until <= ?) "
        f"ORDER BY id LIMIT ?{_locked(db)}",
        (now, limit),
    )
    for item in expired:
        if item.recall_requested_at is not None:
            write_transition(db, machine.step(item, machine.Restarted(), now))
            continue
        transition = machine.step(item, claim, now)
        if write_transition(db, transition):
            claimed.append(transition.after)
    if len(claimed) >= limit:
        return claimed
    # The condition of exchange.outbox.machine.is_due, as an indexed query.
    due = outbox_rows(
        db,
        "state IN ('queued', 'retry-wait') AND recall_requested_at IS NULL "
        f"AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?{_locked(db)}",
        (now, limit - len(claimed)),
    )
    for item in due:
        transition = machine.step(item, claim, now)
        if write_transition(db, transition):
            claimed.append(transition.after)
    return claimed


class LeaseTables(Tables):
    """The leases of outbox items and of the background jobs run once in a group."""

    async def claim_due(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        """Move up to ``limit`` due items (or items whose lease ran out) to ``attempting``.

        Each is leased to ``owner`` until ``now + lease``; the items are returned as claimed.
        """
        return await self._tx(lambda db: claim_rows(db, now, limit, owner, lease))

    async def renew_leases(self, owner: str, item_ids: Collection[int], until: float) -> int:
        """Extend ``owner``'s leases on the items ``item_ids`` to ``until``; return how many.

        An item another process has taken over (or whose attempt was recorded) is left as
        it is: it is not counted.
        """
        ids = sorted(item_ids)
        if not ids:
            return 0

        def tx(db: Db) -> int:
            marks = ", ".join("?" * len(ids))
            cursor = db.execute(
                "UPDATE outbox SET lease_until = ? WHERE lease_owner = ? "
                f"AND state = 'attempting' AND id IN ({marks})",
                (until, owner, *ids),
            )
            return cursor.rowcount

        return await self._tx(tx)

    async def requeue_attempting(self, owner: str, now: float) -> int:
        """Give back the items ``owner`` still has ``attempting``; return how many.

        A process stopping with attempts whose outcome it could not record calls this, so
        another process takes them at once rather than when their leases run out. An item
        marked for recall is ended instead (``recalled``).
        """

        def tx(db: Db) -> int:
            items = outbox_rows(db, "state = 'attempting' AND lease_owner = ?", (owner,))
            return len(step_all(db, items, machine.Restarted(), now))

        return await self._tx(tx)

    async def take_job(self, name: str, owner: str, now: float, lease: float) -> bool:
        """Take (or renew) the lease on job ``name`` for ``owner`` until ``now + lease``.

        Returns True if ``owner`` holds it now: the job had no holder, its holder's lease
        ran out, or ``owner`` held it already. False while another process holds it.
        """

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "INSERT INTO job_leases (name, owner, until) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "until = excluded.until "
                "WHERE job_leases.owner = excluded.owner OR job_leases.until <= ?",
                (name, owner, now + lease, now),
            )
            return cursor.rowcount == 1

        return await self._tx(tx)

    async def release_job(self, name: str, owner: str) -> bool:
        """Give up ``owner``'s lease on job ``name``; return whether it held one."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "DELETE FROM job_leases WHERE name = ? AND owner = ?", (name, owner)
            )
            return cursor.rowcount == 1

        return await self._tx(tx)
