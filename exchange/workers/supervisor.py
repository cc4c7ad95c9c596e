"""Supervised background work: every long-running task of a node keeps going, visibly.

The node's background tasks (the outbox worker, the collector, the checkpoint signer, the
chase, the sweeps of web sessions and drafts, the relay's purge) each run under one
:class:`Supervisor`, which keeps a :class:`TaskHealth` per task:

- a round that raises is caught; the task waits (exponential back-off from
  ``backoff_base``, doubling up to ``backoff_max``) and tries again, so it resumes by
  itself when the cause goes away (space freed on a full disk), with no restart;
- a failure is logged once per distinct cause (``task.failed``: the task, the stage that
  failed, the kind of fault and the error's class, never its message, which could quote
  anything), counted for ``/metrics`` by task and kind, and the end of a failing spell is
  logged once (``task.recovered``);
- :meth:`Supervisor.unready` gives the reasons, in plain words, why the node should not be
  called ready: a task failing for longer than ``unready_after``, or failing at all for an
  urgent fault (a full disk, a ledger that does not verify).

Tasks that are loops of their own (the outbox worker) report to their :class:`TaskHealth`
themselves; periodic tasks are run by :func:`periodically`. :meth:`Supervisor.start` wraps
either in a last safety net: a task that still ends by an exception is started again after
the back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from exchange.logs import get_logger
from exchange.service.faults import Fault, fault_of
from exchange.workers.jobs import JobTurn

log = get_logger("exchange.tasks")


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """How failed rounds are retried and when a failing task makes the node unready."""

    backoff_base: float = 1.0
    backoff_max: float = 60.0
    unready_after: float = 60.0


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a task fails now: the fault, the stage that failed and the error's class."""

    fault: Fault
    stage: str
    error_class: str


@dataclass
class TaskHealth:
    """The health of one background task: last success, failing since, why.

    ``name`` is the task's short name (logs, ``/metrics``); ``does`` says what it is in
    words ("the outbox"), for ``/readyz``. Times are from ``clock`` (monotonic seconds);
    ``last_success_at`` is also kept in wall-clock time for ``/metrics``.
    """

    name: str
    does: str
    policy: SupervisionPolicy = field(default_factory=SupervisionPolicy)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    last_success_at: float | None = None
    failing_since: float | None = None
    failure: Failure | None = None
    #: Failures in a row (the back-off's exponent); 0 while the task works.
    in_a_row: int = 0
    #: Failures since start, by fault kind.
    failures: Counter[str] = field(default_factory=Counter)
    _logged: set[tuple[str, str, str]] = field(default_factory=set, init=False, repr=False)

    @property
    def total_failures(self) -> int:
        """Every failure since start."""
        return sum(self.failures.values())

    def failed(self, exc: BaseException, stage: str) -> float:
        """Record a failure of ``stage``; return how long to wait before trying again."""
        fault = fault_of(exc)
        now = self.clock()
        if self.failing_since is None:
            self.failing_since = now
        self.failure = Failure(fault, stage, type(exc).__name__)
        self.in_a_row += 1
        self.failures[fault.kind] += 1
        cause = (fault.kind, stage, type(exc).__name__)
        if cause not in self._logged:
            self._logged.add(cause)
            # The class only: an exception's message could quote anything.
            log.error(
                "task.failed", task=self.name, stage=stage, cause=fault.kind,
                error_class=type(exc).__name__,
            )  # fmt: skip
        return self.delay()

    def delay(self) -> float:
        """Return the back-off after the failures in a row so far."""
        if self.in_a_row == 0:
            return 0.0
        policy = self.policy
        exponent = min(self.in_a_row - 1, 32)
        return float(min(policy.backoff_base * 2.0**exponent, policy.backoff_max))

    def succeeded(self, *, stage: str | None = None) -> None:
        """Record progress; with ``stage``, it ends only a failing spell of that stage."""
        if stage is not None and self.failure is not None and self.failure.stage != stage:
            return
        self.last_success_at = self.wall()
        if self.failing_since is not None:
            log.info(
                "task.recovered", task=self.name, count=self.in_a_row,
                duration_ms=round((self.clock() - self.failing_since) * 1000, 1),
            )  # fmt: skip
        self.failing_since = None
        self.failure = None
        self.in_a_row = 0
        self._logged.clear()

    def reason(self) -> str | None:
        """Return why the task cannot make progress, in plain words (None while it works)."""
        if self.failure is None:
            return None
        fault = self.failure.fault
        words = fault.words
        if fault.kind in {"store", "error"}:
            words += f" at {self.failure.stage}"
        return f"{self.does} cannot make progress: {words}"

    def unready(self) -> str | None:
        """Return the reason the node is not ready because of this task, if any."""
        if self.failure is None or self.failing_since is None:
            return None
        if self.failure.fault.urgent:
            return self.reason()
        if self.clock() - self.failing_since >= self.policy.unready_after:
            return self.reason()
        return None


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def periodically(
    health: TaskHealth,
    stop: asyncio.Event,
    interval: float,
    round_: Callable[[], Awaitable[object]],
    *,
    stage: str = "round",
    wait_first: bool = False,
    turn: JobTurn | None = None,
) -> None:
    """Run ``round_`` every ``interval`` seconds until ``stop``; retry a failed one sooner.

    A round that raises is a failure of ``stage``, retried after the back-off; a round that
    finishes counts as success unless something it did reported a failure meanwhile (a
    collector's message that could not be stored), so a task that half works is not
    reported well and then failing again at every round.

    With ``turn`` the job runs once in the group of processes sharing the store
    (:mod:`exchange.workers.jobs`): a round runs only while this process holds the job's
    lease; while another holds it, the round is skipped (a success: the job is in hand)
    and the lease looked at again after ``turn.poll`` seconds. At ``stop`` the lease is
    given up.
    """
    if wait_first:
        await pause(stop, interval)
    while not stop.is_set():
        before = health.total_failures
        try:
            if turn is None:
                await round_()
            elif await turn.take():
                await turn.holding(round_, interval)
            else:
                health.succeeded()
                await pause(stop, min(interval, turn.poll))
                continue
        except Exception as exc:  # noqa: BLE001 - the round is retried; the fault is logged
            await pause(stop, health.failed(exc, stage))
            continue
        if health.total_failures == before:
            health.succeeded()
        await pause(stop, interval)
    if turn is not None:
        await turn.release()


class Supervisor:
    """Starts the node's background tasks and keeps the health of each."""

    def __init__(
        self,
        policy: SupervisionPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy or SupervisionPolicy()
        self.clock = clock
        self.wall = wall
        self.tasks: dict[str, TaskHealth] = {}

    def health(self, name: str, does: str) -> TaskHealth:
        """Return the health of task ``name``, registering it the first time."""
        if name not in self.tasks:
            self.tasks[name] = TaskHealth(name, does, self.policy, self.clock, self.wall)
        return self.tasks[name]

    def start(
        self,
        name: str,
        does: str,
        body: Callable[[TaskHealth], Awaitable[None]],
        stop: asyncio.Event,
    ) -> asyncio.Task[None]:
        """Run ``body(health)`` as task ``name`` until ``stop``; start it again if it raises."""
        health = self.health(name, does)

        async def supervised() -> None:
            while not stop.is_set():
                try:
                    await body(health)
                except Exception as exc:  # noqa: BLE001 - started again; the fault is logged
                    await pause(stop, health.failed(exc, "run"))
                else:
                    return

        return asyncio.create_task(supervised(), name=name)

    def every(
        self,
        name: str,
        does: str,
        interval: float,
        round_: Callable[[], Awaitable[object]],
        stop: asyncio.Event,
        *,
        stage: str = "round",
        wait_first: bool = False,
        turn: JobTurn | None = None,
    ) -> asyncio.Task[None]:
        """Run ``round_`` every ``interval`` seconds as task ``name`` (see :func:`periodically`).

        With ``turn``, only in the process of the group that holds the job's lease.
        """

        async def body(health: TaskHealth) -> None:
            await periodically(
                health, stop, interval, round_, stage=stage, wait_first=wait_first, turn=turn
            )

        return self.start(name, does, body, stop)

    def unready(self) -> list[str]:
        """Return why the node is not ready because of its tasks, one sentence each."""
        return [r for h in self.tasks.values() if (r := h.unready()) is not None]
