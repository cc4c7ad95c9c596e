"""Several ``exchange serve`` processes of one school on one PostgreSQL database.

:func:`running_cluster` starts a loopback deployment (exchange/demo/loopback.py) of a school
and a local authority. The school's store is the PostgreSQL database it is given; its
in-process node is stopped once the deployment is up, and the school is then served by
:data:`PROCESSES` real ``exchange serve --config`` child processes (:class:`ServeProcess`),
each from a copy of the school's configuration file with a listening port of its own (the
first keeps the port the directory gives; the operations listeners are on free ports,
read from each process's log). The local authority stays in the test's own process, on
SQLite: it is the peer every envelope is delivered to.

Each process has a data folder of its own, as on separate machines (docs/scaling.md): the
bodies are in the database, and the folder holds only the process's spooled uploads and a
copy of the node's one ``register.key``, made by the deployment's first start.

The test spreads its submissions over the processes' own URLs (:meth:`Cluster.submit`),
kills and restarts them (:meth:`ServeProcess.kill`, :meth:`ServeProcess.start`) and reads
the outcome straight from the school's database (:meth:`Cluster.query`) and the local
authority's store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg

from exchange.config import DeliveryConfig, TasksConfig, config_to_toml, load_config
from exchange.config_database import DatabaseConfig
from exchange.demo.loopback import Deployment, start_deployment
from exchange.files import write_new_file
from exchange.keys.keyfile import KdfParams
from exchange.ledger.events import EventType, decode_event
from tests.node.conftest import LA, ORGS, SCHOOL
from tests.node.helpers import auth, client, served_ops_url, submission, until
from tests.postgres_server import free_port

#: The organisations: the school (served by the processes) and the LA (in this process).
CLUSTER_ORGS: Final = tuple(s for s in ORGS if s.org in {SCHOOL, LA})
#: ``exchange serve`` processes serving the school.
PROCESSES: Final = 2
EXCHANGE: Final = Path(sys.executable).with_name("exchange")
#: Submissions in flight at once, and the seconds one is retried for (Cluster.submit_paced).
IN_FLIGHT: Final = 8
RETRY_FOR: Final = 10.0

#: Short leases, so that another process takes over a killed one's attempts within seconds.
CLUSTER_DELIVERY: Final = DeliveryConfig(
    batch=16, concurrency=4, timeout=5.0, backoff_base=0.05, backoff_max=0.5, poll_interval=0.02,
    lease=2.0, lease_renew=0.5,
)  # fmt: skip
#: A checkpoint every second, its job lease short: a job running in two processes at once
#: would show as checkpoints signed closer together than the interval.
CLUSTER_TASKS: Final = TasksConfig(
    backoff_base=0.2, backoff_max=1.0, unready_after=60.0, checkpoint_interval=1.0,
    job_lease=2.0, job_renew=0.5,
)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """A process's answer to a submission."""

    status: int
    retry_after: str | None
    body: dict[str, Any]


class ServeProcess:
    """One ``exchange serve`` process of the school, started from its own configuration."""

    def __init__(self, name: str, config: Path, port: int) -> None:
        self.name = name
        self.config = config
        self.base = f"https://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0
        self.ops: str | None = None

    @property
    def alive(self) -> bool:
        """Whether the process is running (it may not answer yet)."""
        return self.proc is not None and self.proc.returncode is None

    @property
    def log(self) -> Path:
        """The log of the current (or last) run."""
        return self.config.with_name(f"{self.name}-run-{self.runs}.log")

    async def start(self, http: aiohttp.ClientSession, *, timeout: float = 30.0) -> None:
        """Start ``exchange serve`` and wait until its /readyz answers 200."""
        self.runs += 1
        self.ops = None
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(EXCHANGE), "serve", "--config", str(self.config),
                stdout=out, stderr=out, env=dict(os.environ),
            )  # fmt: skip

        async def ready() -> bool:
            assert self.alive, f"{self.name} exited: {self.log.read_text(errors='replace')}"
            self.ops = self.ops or served_ops_url(self.log)
            return self.ops is not None and await self.readyz(http) == 200

        await until(ready, timeout=timeout, what=f"{self.name} to start")

    async def readyz(self, http: aiohttp.ClientSession) -> int | None:
        """Return the status of the process's /readyz, or None if it does not answer."""
        if self.ops is None:
            return None
        try:
            async with http.get(self.ops + "/readyz", timeout=aiohttp.ClientTimeout(5)) as resp:
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    def signal(self, number: int) -> None:
        """Send the process a signal (SIGTERM: its graceful stop begins)."""
        assert self.proc is not None
        self.proc.send_signal(number)

    async def kill(self) -> None:
        """SIGKILL the process (no shutdown code runs) and wait for it to be gone.

        A process that ended meanwhile (its graceful stop finished first) is left as it is.
        """
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        status = await asyncio.wait_for(self.proc.wait(), timeout=30.0)
        assert status in {0, -signal.SIGKILL}, f"{self.name} ended with {status}"

    async def terminate(self) -> None:
        """SIGTERM (the graceful stop) and wait; a process that does not exit is killed."""
        if not self.alive:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = await asyncio.wait_for(self.proc.wait(), timeout=60.0)
            assert status == 0, f"{self.name} stopped with {status}: {self.log.read_text()}"
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class Cluster:
    """The running deployment, the school's processes and its database."""

    world: Deployment
    processes: list[ServeProcess]
    dsn: str
    http: aiohttp.ClientSession

    async def answer(
        self, number: int, process: ServeProcess, key: str | None = None
    ) -> Answer | None:
        """Submit referral ``number`` to the LA through ``process``; None without an answer.

        ``key``: the request's ``Idempotency-Key``.
        """
        body = submission(f'{{"synthetic": "cluster test", "n": {number}}}'.encode(), [LA])
        headers = auth(self.world, SCHOOL, "dsl")
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            async with self.http.post(
                process.base + "/api/v1/envelopes", json=body, headers=headers,
                timeout=aiohttp.ClientTimeout(30),
            ) as resp:  # fmt: skip
                return Answer(resp.status, resp.headers.get("Retry-After"), await resp.json())
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            return None

    async def submit(
        self, number: int, process: ServeProcess, key: str | None = None
    ) -> str | None:
        """Submit referral ``number`` through ``process``; return its digest if answered 202.

        No answer (the process died, or was never up) or any other status is None: the
        envelope was not accepted as far as the client knows.
        """
        answer = await self.answer(number, process, key)
        if answer is None or answer.status != 202:
            return None
        return str(answer.body["digest"])

    async def submit_paced(self, numbers: Sequence[int], pace: float, accepted: list[str]) -> None:
        """Submit a referral per number, one every ``pace`` seconds, alternating processes.

        Each accepted digest is appended to ``accepted`` as it comes. A submission a process
        does not answer 202 (it is dead or dying, or the database is away) is made again
        through the next process with the same ``Idempotency-Key``, as a client would, for
        up to about :data:`RETRY_FOR` seconds; then it is given up. So each number makes
        one envelope at most, whichever process committed it.
        """
        gate = asyncio.Semaphore(IN_FLIGHT)
        start = time.monotonic()

        async def one(at: int, number: int) -> None:
            await asyncio.sleep(max(0.0, start + at * pace - time.monotonic()))
            async with gate:
                deadline = time.monotonic() + RETRY_FOR
                turn = number
                key = secrets.token_hex(16)
                while time.monotonic() < deadline:
                    process = self.processes[turn % len(self.processes)]
                    turn += 1
                    if process.alive and (digest := await self.submit(number, process, key)):
                        accepted.append(digest)
                        return
                    await asyncio.sleep(0.1)

        await asyncio.gather(*(one(at, n) for at, n in enumerate(numbers)))

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one query on the school's database (on a connection of its own)."""
        connection = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def outbox_states(self) -> dict[str, int]:
        """Count the school's outbox items by state."""
        rows = await self.query("SELECT state, COUNT(*) FROM outbox GROUP BY state")
        return {str(r[0]): int(r[1]) for r in rows}

    async def settled(self, expected: int) -> None:
        """Wait until at least ``expected`` items are in the outbox, every one delivered."""

        async def done() -> bool:
            try:
                states = await self.outbox_states()
            except (OSError, asyncpg.PostgresError):
                return False
            return states.get("delivered", 0) >= expected and set(states) == {"delivered"}

        await until(done, timeout=120.0, what="every delivery")

    async def stop_processes(self) -> None:
        """Stop every process gracefully."""
        for process in self.processes:
            await process.terminate()


def _process_configs(world: Deployment, dsn: str) -> list[ServeProcess]:
    """Write a configuration file per process; return the processes (not started)."""
    school = world.folder / "node-school.toml"
    config = load_config(school)
    processes = []
    for number in range(PROCESSES):
        # The first listens where the directory says the school is; the others elsewhere.
        port = config.port if number == 0 else free_port()
        data_dir = world.folder / f"data-school-{number}"
        data_dir.mkdir(mode=0o700)
        key = config.data_dir / "register.key"
        write_new_file(data_dir / key.name, key.read_bytes())
        own = replace(
            config,
            data_dir=data_dir,
            port=port,
            ops=replace(config.ops, port=0),
            database=DatabaseConfig(url=dsn, pool_size=4),
        )
        path = world.folder / f"node-school-{number}.toml"
        path.write_text(config_to_toml(own))
        processes.append(ServeProcess(f"school-{number}", path, port))
    return processes


@asynccontextmanager
async def running_cluster(folder: Path, dsn: str) -> AsyncIterator[Cluster]:
    """Start the deployment on the database ``dsn`` and the school's processes; stop them after.

    ``dsn`` may name several hosts (a failover pair): the processes then follow the primary.
    """
    world = await start_deployment(
        folder,
        CLUSTER_ORGS,
        users={SCHOOL: ["dsl"], LA: ["staff"]},
        delivery=CLUSTER_DELIVERY,
        tasks=CLUSTER_TASKS,
        kdf=KdfParams.fast_for_tests(),
        databases={"school": DatabaseConfig(url=dsn, pool_size=4)},
    )
    await world.nodes["school"].stop()
    processes = _process_configs(world, dsn)
    try:
        async with client(world) as http:
            cluster = Cluster(world, processes, dsn, http)
            await asyncio.gather(*(p.start(http) for p in processes))
            yield cluster
    finally:
        for process in processes:
            if process.alive:
                assert process.proc is not None
                process.proc.kill()
                await process.proc.wait()
        await world.stop()


def la_inbox(world: Deployment) -> list[str]:
    """Return the digests (hex) in the LA's inbox, one per row (its node stopped)."""
    path = world.folder / "data-la" / "node.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT digest FROM inbox WHERE owner = ?", (LA,)).fetchall()
    return [bytes(r[0]).hex() for r in rows]


def la_ledger_events(world: Deployment) -> list[bytes]:
    """Return the LA's ledger events that name an envelope (its node stopped)."""
    path = world.folder / "data-la" / "node.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT event FROM ledger WHERE envelope_digest IS NOT NULL")
        return [bytes(r[0]) for r in rows.fetchall()]


def logged_once(events: Sequence[bytes], digests: set[str], *types: EventType) -> None:
    """Check the ledger ``events`` hold each of ``types`` exactly once for each of ``digests``."""
    logged = Counter(
        (e.envelope_digest.hex(), e.type)
        for e in map(decode_event, events)
        if e.type in types and e.envelope_digest.hex() in digests
    )
    assert logged == {(d, t): 1 for d in digests for t in types}


async def verify_ledger(config: Path) -> str:
    """Run ``exchange ledger verify`` on a node's configuration; return what it printed."""
    proc = await asyncio.create_subprocess_exec(
        str(EXCHANGE), "ledger", "verify", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120.0)
    assert proc.returncode == 0, out.decode()
    assert b"ledger verified" in out, out.decode()
    return out.decode()


async def check_exactly_once(cluster: Cluster, accepted: Sequence[str]) -> set[str]:
    """Check every accepted envelope was delivered once and recorded once; return the sent.

    Call with every process and the deployment stopped. The school's sent items include
    every accepted one (an envelope stored just before its process died unanswered may be
    there too); each has one outbox item to the LA, delivered, one receipt, one
    ``submitted`` and one ``delivered`` event in the ledger; the LA holds each once, logged
    once.
    """
    sent = {bytes(r[0]).hex() for r in await cluster.query("SELECT digest FROM sent")}
    assert set(accepted) <= sent, "an accepted envelope is missing from the school's sent items"
    items = await cluster.query(
        "SELECT envelope_digest, state, destination FROM outbox WHERE kind = 'envelope'"
    )
    per_envelope: dict[str, int] = {}
    for row in items:
        digest = bytes(row[0]).hex()
        per_envelope[digest] = per_envelope.get(digest, 0) + 1
        assert row[1] == "delivered", (digest, row[1])
        assert row[2] == LA
    assert per_envelope == dict.fromkeys(sent, 1)
    receipts = await cluster.query(
        "SELECT envelope_digest, COUNT(*) FROM receipts GROUP BY envelope_digest"
    )
    assert {bytes(r[0]).hex(): int(r[1]) for r in receipts} == dict.fromkeys(sent, 1)
    # One `submitted` and one `delivered` event each (failed attempts log `attempted`).
    events = await cluster.query("SELECT event FROM ledger WHERE envelope_digest IS NOT NULL")
    logged_once([bytes(r[0]) for r in events], sent, EventType.SUBMITTED, EventType.DELIVERED)
    inbox = la_inbox(cluster.world)
    assert len(inbox) == len(set(inbox))
    assert set(inbox) == sent
    logged_once(la_ledger_events(cluster.world), sent, EventType.DELIVERED)
    return sent


async def checkpoint_gaps(cluster: Cluster, before: float) -> list[float]:
    """Return the seconds between consecutive checkpoints signed before ``before``."""
    rows = await cluster.query(
        "SELECT signed_at FROM checkpoints WHERE signed_at < $1 ORDER BY size", before
    )
    times = [float(r[0]) for r in rows]
    return [b - a for a, b in itertools.pairwise(times)]


async def takeovers(cluster: Cluster) -> int:
    """Count the attempts another process took over when their lease ran out.

    Each claim counts an attempt; a failed attempt logs an ``attempted`` event. An item
    claimed more often than it failed, plus its one successful attempt, was claimed again
    because the attempt's process died (or could not record the outcome) holding it.
    """
    items = await cluster.query("SELECT envelope_digest, attempts FROM outbox")
    events = await cluster.query("SELECT event FROM ledger WHERE envelope_digest IS NOT NULL")
    failed = Counter(
        e.envelope_digest
        for e in (decode_event(bytes(r[0])) for r in events)
        if e.type is EventType.ATTEMPTED
    )
    return sum(max(0, int(r[1]) - 1 - failed[bytes(r[0])]) for r in items)
