"""Background jobs that run once in a group of ``exchange serve`` processes, not once each.

Several processes of one organisation may share one store. Some of their periodic jobs must
then run in one process only (signing checkpoints, queueing chases, collecting from MESH and
relay mailboxes, ...): each such job has a lease in the store (``job_leases``), and a process
runs a round of the job only while it holds the job's lease (:class:`JobTurn`):

- before a round the process takes the lease (or renews it, if it is its own already);
  while another process holds it, the process skips the round and looks again after
  ``renew`` seconds, so it takes the job over soon after its holder dies;
- while the round runs the process renews the lease every ``renew`` seconds;
- after the round it keeps the lease until its next round is due (the interval, plus
  ``lease`` to spare), so the job does not wander between processes and its rounds keep
  their interval;
- at a graceful stop it gives the lease up, and another process takes the job at once.

A process that dies holding a job loses it when the lease runs out; the next holder runs the
job again from what the store says is done, so each job must be safe to run again (each
one's per-item record is described in docs/node.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from exchange.logs import get_logger

log = get_logger("exchange.jobs")


def new_process_id() -> str:
    """Return a new random id for one ``exchange serve`` process (the owner of its leases)."""
    return secrets.token_hex(8)


class JobLeases(Protocol):
    """Where job leases are kept: the node's store (exchange.store.leases)."""

    async def take_job(self, name: str, owner: str, now: float, lease: float) -> bool:
        """Take or renew the lease on job ``name`` for ``owner``; False while another holds it."""
        ...

    async def release_job(self, name: str, owner: str) -> bool:
        """Give up ``owner``'s lease on job ``name``; return whether it held one."""
        ...


@dataclass(frozen=True)
class GroupJobs:
    """The group-wide jobs of one process: its id (``owner``), the store, the lease times."""

    leases: JobLeases
    owner: str
    clock: Callable[[], float]
    lease: float = 60.0
    renew: float = 20.0

    def turn(self, name: str) -> JobTurn:
        """Return the lease of job ``name`` as this process sees it."""
        return JobTurn(self, name)


@dataclass(frozen=True)
class JobTurn:
    """One group-wide job's lease, for the process of ``jobs``."""

    jobs: GroupJobs
    name: str

    @property
    def poll(self) -> float:
        """Seconds between looks at a job another process holds."""
        return self.jobs.renew

    async def _take(self, lease: float) -> bool:
        jobs = self.jobs
        return await jobs.leases.take_job(self.name, jobs.owner, jobs.clock(), lease)

    async def take(self) -> bool:
        """Take or renew the job's lease; False while another process holds it."""
        return await self._take(self.jobs.lease)

    async def holding(self, round_: Callable[[], Awaitable[object]], interval: float) -> None:
        """Run ``round_`` (the lease taken), renewing the lease until it ends.

        After a round that ended well, the lease is kept until the next round is due.
        """
        renewer = asyncio.create_task(self._renew_while_running(), name=f"{self.name}-lease")
        try:
            await round_()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        await self._take(interval + self.jobs.lease)

    async def _renew_while_running(self) -> None:
        """Renew the lease every ``renew`` seconds; say so once if it was lost."""
        while True:
            await asyncio.sleep(self.jobs.renew)
            try:
                held = await self.take()
            except Exception as exc:  # noqa: BLE001 - the round's own writes report the fault
                log.warning("job.renew-failed", task=self.name, error_class=type(exc).__name__)
                continue
            if not held:
                # Another process took the job over (this one stalled past its lease): the
                # round finishes, and the job's records keep the two from doing an item twice.
                log.warning("job.lease-lost", task=self.name)
                return

    async def release(self) -> None:
        """Give the job up (a graceful stop); a failure is logged, the lease then runs out."""
        try:
            await self.jobs.leases.release_job(self.name, self.jobs.owner)
        except Exception as exc:  # noqa: BLE001 - the stop goes on; the lease runs out instead
            log.warning("job.release-failed", task=self.name, error_class=type(exc).__name__)
