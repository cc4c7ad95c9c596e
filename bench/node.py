"""End-to-end benchmark of two nodes on loopback (docs/performance.md, "Node").

Run ``python bench/node.py`` for the full run (1,000 envelopes), ``--quick`` for a short one
(200), ``--n N`` to choose the number, ``--concurrency C`` for the requests in flight and
``--profile`` to run both nodes under cProfile and print where their time goes.
``--store postgresql`` puts the school node's store in PostgreSQL, served by ``--processes N``
processes; ``--store all`` measures SQLite, PostgreSQL with one and PostgreSQL with two school
processes in one run and compares them; ``--json FILE`` writes the median results as well.

What is measured:

- a school node and an LA node are created with :func:`start_deployment` (test CA, TLS on
  127.0.0.1, ``KdfParams.fast_for_tests()``), stopped, and served again each in its own
  process from the configuration files the deployment wrote (the directory with routes
  substituted), as ``exchange serve`` would run them: the client, the school node and the
  LA node are three processes on the same machine, each with its own interpreter;
- N synthetic 10 KB referrals are submitted to the school's staff API
  (``POST /api/v1/envelopes``), ``--concurrency`` requests in flight over one keep-alive
  ``aiohttp`` client session with TLS; the school seals each, commits it and answers 202,
  its outbox worker pushes the envelope to the LA node, which verifies and stores it and
  answers with a signed ``delivered`` receipt that the school verifies and records;
- the end is observed by polling the school's ``/metrics`` (on its operations listener)
  until every outbox item is ``delivered``; then the ``recorded_at`` of each ``delivered``
  receipt is read from the school's store (SQLite, read-only). End-to-end rate = N / (last
  receipt recorded − first submit sent). Latency per envelope = its receipt's
  ``recorded_at`` − the time its 202 arrived at the client (the brief's "submit to
  receipt"); the 202 round trip itself is reported beside it. Client and nodes share one
  wall clock (``time.time``);
- with ``--store postgresql`` (or ``all``), a PostgreSQL server is started as the tests start
  one (:func:`tests.postgres_server.running_postgres`: its own cluster on 127.0.0.1, default
  settings) and each configuration gets a new database, named in the school's ``[database]
  url``; with several processes, the second and further run the same configuration but
  listen on ports of their own, and the client sends the submissions to them in turn. The
  LA node keeps SQLite. The server's CPU is that of its postmaster and every process under
  it (:func:`cluster_cpu_seconds`);
- in the same run, a bare ``aiohttp`` handler in its own process, on 127.0.0.1 with the
  school node's TLS certificate, reads the same 10 KB JSON bodies and answers 202, driven
  by the same client loop; reported as requests per second, with ours / bare;
- in the same run, the MESH sandbox's full cycle with NHS England's ``mesh-client``, as
  ``bench/mesh.py`` runs it (its functions, reused): the same number of sealed 10 KB
  envelopes sent by ``--mesh-concurrency`` threads, the inbox listed, each message
  downloaded and acknowledged; reported as messages per second, with ours / MESH. The
  sandbox's environment is built on first use (``make demo`` builds the same one);
  ``--no-mesh`` leaves this part out.

A warm-up of ``--concurrency`` envelopes (TLS handshakes, first-use imports) precedes each
timed run and is not counted. Node logging is the production configuration (JSON at INFO)
written to /dev/null.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import functools
import io
import json
import os
import platform
import pstats
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import asyncpg
from aiohttp import web

from exchange.config import DeliveryConfig, config_to_toml, load_config
from exchange.config_database import DatabaseConfig
from exchange.demo.loopback import OrgSpec, start_deployment
from exchange.demo.services import SandboxUnavailableError
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.logs import configure
from exchange.node.heap import freeze_start_up
from exchange.node.runtime import Node

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script, the bench folder is not a package path
    sys.path.insert(0, str(ROOT))

from bench import mesh  # noqa: E402

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

KB: Final = 1000
SCHOOL: Final = OrgId("urn:106123")
LA: Final = OrgId("la:356")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
)
TARGET_EPS: Final = 500
CONTENT_SIZE: Final = 10 * KB
READY_TIMEOUT: Final = 30.0
DELIVERY_TIMEOUT: Final = 600.0
#: The name of the PostgreSQL server's CPU in the results.
DATABASE: Final = "postgresql"
#: Seconds between two samples of what the database's backends wait for (``--pg-waits``).
WAIT_SAMPLE: Final = 0.05


# --------------------------------------------------------------------------------------------
# Child processes: a node, or the bare aiohttp handler


def serve_node(config_file: Path, profile_out: Path | None) -> None:
    """Run one node until SIGTERM (the body of ``exchange serve``, logs to /dev/null)."""
    sink = Path(os.devnull).open("w")  # noqa: SIM115 - lives as long as the process
    configure(json=True, stream=sink)
    config = load_config(config_file)
    prof = cProfile.Profile() if profile_out else None

    async def run() -> None:
        node = Node(config)
        await node.start()
        freeze_start_up()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        # The parent polls /metrics on the operations listener, on a port chosen now, and
        # sends to the main listener (chosen now too for a second process of one node).
        print(f"ready {node.ops_port} {node.port}", flush=True)
        if prof is not None:
            prof.enable()
        await stop.wait()
        if prof is not None:
            prof.disable()
        await node.stop()

    asyncio.run(run())
    if prof is not None and profile_out is not None:
        prof.dump_stats(profile_out)


def serve_bare(cert: Path, key: Path) -> None:
    """Answer 202 to any POST after reading its body; print the port, run until SIGTERM."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"}, status=202)

    async def run() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/bare", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(f"port {port}", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(run())


def spawn(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start this script with ``args`` in a child process; return it and its first line."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise RuntimeError(f"child {args[0]} exited before it was ready")
    return proc, line


def stop_child(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stat_fields(pid: int) -> list[str]:
    """Return the fields of ``/proc/<pid>/stat`` after the command name (state is [0])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU time of a process, from /proc."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_cpu_seconds(data: Path) -> float:
    """Return the CPU time of a PostgreSQL cluster: its postmaster and all its processes.

    The postmaster's pid is the first line of ``postmaster.pid`` in the data folder. Its
    children (a backend per connection, the checkpointer, the WAL writer, autovacuum ...)
    are counted while they live; once one exits and is reaped its time moves into the
    postmaster's "children" times (cutime, cstime), which are counted too, so the sum never
    loses a process that came and went between two readings.
    """
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    fields = stat_fields(postmaster)
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):  # gone since the listing
            child = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(child[1]) == postmaster:
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# Setup


@dataclass(frozen=True)
class Setup:
    """One configuration measured: the school node's store and its serving processes."""

    store: str  # "sqlite" or "postgresql"
    processes: int = 1

    @property
    def label(self) -> str:
        """Name the configuration in the report."""
        if self.store == "sqlite":
            return "SQLite"
        return f"PostgreSQL, {self.processes} school process{'es' if self.processes > 1 else ''}"


SQLITE: Final = Setup("sqlite")


@dataclass(frozen=True)
class World:
    """What the client needs to talk to the node processes."""

    folder: Path
    ca_file: Path
    la_url: str
    token: str
    school_config: Path
    la_config: Path
    school_db: Path
    cert: Path
    key: Path
    #: The school's PostgreSQL database, or None for SQLite (``school_db``).
    school_dsn: str | None = None
    #: The configuration of the school's second and further processes (listen port 0).
    school_extra_config: Path | None = None
    #: The main listener of each school process, once they are up.
    school_urls: tuple[str, ...] = ()
    #: The school's operations listener (/metrics) of its first process, once it is up.
    school_ops_url: str = ""


async def create_world(
    folder: Path, delivery: DeliveryConfig, database: DatabaseConfig | None = None
) -> World:
    """Create the deployment, stop its nodes, and write configs that carry the routes.

    ``database`` is the school node's store (the LA node keeps SQLite). A second school
    process gets the same configuration but listens on a port of its own; its operations
    listener, like the first one's, is on a port chosen at start.
    """
    deployment = await start_deployment(
        folder,
        ORGS,
        users={SCHOOL: ["dsl"]},
        delivery=delivery,
        kdf=KdfParams.fast_for_tests(),
        databases={"school": database or DatabaseConfig()},
    )
    await deployment.stop()
    assert deployment.ca_file is not None
    routed = folder / "directory-v2.note"
    configs = {}
    for name in ("school", "la"):
        config = replace(load_config(folder / f"node-{name}.toml"), directory_file=routed)
        path = folder / f"bench-{name}.toml"
        path.write_text(config_to_toml(config))
        configs[name] = config
    extra = folder / "bench-school-extra.toml"
    extra.write_text(config_to_toml(replace(configs["school"], port=0)))
    tls = configs["school"].tls
    assert tls is not None
    return World(
        folder=folder,
        ca_file=deployment.ca_file,
        la_url=f"https://127.0.0.1:{configs['la'].port}",
        token=deployment.tokens[(SCHOOL, "dsl")],
        school_config=folder / "bench-school.toml",
        la_config=folder / "bench-la.toml",
        school_db=configs["school"].data_dir / "node.sqlite3",
        cert=tls.cert,
        key=tls.key,
        school_dsn=database.url if database else None,
        school_extra_config=extra,
    )


def referral_record(number: int, description: str) -> dict[str, object]:
    """Return a valid synthetic referral record (docs/records.md §1)."""
    return {
        "kind": "referral",
        "version": 1,
        "referrer": {
            "name": "Alex Example",
            "role": "Designated Safeguarding Lead",
            "organisation": "urn:106123",
            "email": "dsl@school.example",
        },
        "consent": {"parents_informed": True, "consent_given": "yes"},
        "child": {
            "name": {"given_names": "Bench", "family_name": f"Child{number}"},
            "date_of_birth": "2015-03-14",
        },
        "concerns": ["neglect"],
        "description": description,
        "threshold_level": "level-3",
        "immediate_risk": False,
    }


def referral_bodies(count: int, start: int) -> list[bytes]:
    """Return ``count`` staff-API request bodies, each a distinct synthetic 10 KB referral."""
    bodies = []
    for i in range(start, start + count):
        skeleton = json.dumps(referral_record(i, "")).encode()
        filler = base64.b64encode(os.urandom(CONTENT_SIZE)).decode()
        record = referral_record(i, filler[: CONTENT_SIZE - len(skeleton)])
        assert len(json.dumps(record).encode()) == CONTENT_SIZE
        bodies.append(
            json.dumps(
                {
                    "recipients": [LA],
                    "purpose": "safeguarding-referral",
                    "record_kind": "referral",
                    "record": record,
                    "categories": ["identity", "safeguarding-concerns"],
                    "reason": "Synthetic benchmark referral.",
                }
            ).encode()
        )
    return bodies


# --------------------------------------------------------------------------------------------
# The client loop (the same for the node and the bare handler)


@dataclass
class Sent:
    """One request: when it was sent, when the 202 came, what it named."""

    started: float
    answered: float
    digest: str


async def drive(
    http: aiohttp.ClientSession, urls: Sequence[str], headers: dict[str, str],
    bodies: Sequence[bytes], concurrency: int,
) -> list[Sent]:  # fmt: skip
    """POST every body, ``concurrency`` in flight; every answer must be 202.

    With several ``urls`` (the processes of one node) the bodies go to them in turn.
    """
    queue = list(reversed(list(enumerate(bodies))))
    done: list[Sent] = []

    async def worker() -> None:
        while queue:
            number, body = queue.pop()
            url = urls[number % len(urls)]
            started = time.time()
            async with http.post(url, data=body, headers=headers) as resp:
                answer = await resp.read()
                answered = time.time()
                if resp.status != 202:
                    raise RuntimeError(f"{url} answered {resp.status}: {answer[:200]!r}")
            digest = json.loads(answer).get("digest", "")
            done.append(Sent(started, answered, digest))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def delivered_count(http: aiohttp.ClientSession, world: World) -> tuple[int, int]:
    """Return the school's outbox items delivered and dead, from /metrics."""
    async with http.get(world.school_ops_url + "/metrics") as resp:
        text = await resp.text()
    counts = {}
    for line in text.splitlines():
        if line.startswith("exchange_outbox_items{"):
            state = line.split('"')[1]
            counts[state] = int(line.rsplit(" ", 1)[1])
    return counts.get("delivered", 0), counts.get("dead", 0)


async def wait_delivered(http: aiohttp.ClientSession, world: World, total: int) -> float:
    """Poll /metrics every 20 ms until ``total`` items are delivered; return the time seen."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        delivered, dead = await delivered_count(http, world)
        if dead:
            raise RuntimeError(f"{dead} outbox items went dead")
        if delivered >= total:
            return time.time()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {delivered} of {total} delivered in time")
        await asyncio.sleep(0.02)


async def query_school(world: World, query: str) -> list[tuple[Any, ...]]:
    """Run one read-only query on the school's store (SQLite file or PostgreSQL database)."""
    if world.school_dsn is None:
        con = sqlite3.connect(f"file:{world.school_db}?mode=ro", uri=True)
        try:
            return [tuple(row) for row in con.execute(query).fetchall()]
        finally:
            con.close()
    connection = await asyncpg.connect(world.school_dsn)
    try:
        return [tuple(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


async def ledger_size(world: World) -> int:
    """Return the number of events in the school's ledger."""
    rows = await query_school(world, "SELECT size FROM ledger_head WHERE one = 1")
    return int(rows[0][0])


async def receipt_times(world: World, digests: Sequence[str]) -> dict[str, float]:
    """Return the ``recorded_at`` of each envelope's ``delivered`` receipt (sender's store)."""
    rows = await query_school(
        world, "SELECT envelope_digest, recorded_at FROM receipts WHERE status = 'delivered'"
    )
    recorded = {bytes(d).hex(): float(t) for d, t in rows}
    missing = [d for d in digests if d not in recorded]
    if missing:
        raise RuntimeError(f"{len(missing)} envelopes have no delivered receipt")
    return {d: recorded[d] for d in digests}


def client(world: World, concurrency: int) -> aiohttp.ClientSession:
    context = ssl.create_default_context(cafile=str(world.ca_file))
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    return aiohttp.ClientSession(connector=connector)


# --------------------------------------------------------------------------------------------
# The two measurements


@dataclass(frozen=True)
class NodeResult:
    """The end-to-end run."""

    n: int
    seconds: float
    submit_seconds: float
    e2e_latencies: list[float]
    submit_latencies: list[float]
    cpu: dict[str, float]
    poll_lag: float
    #: Events the school's ledger gained during the timed part (each append locks its head).
    ledger_events: int
    #: With ``--pg-waits``: samples taken, and per wait event the active backends seen in it.
    waits: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class BareResult:
    """The bare handler run."""

    n: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]


#: One run of one configuration: the nodes, the bare handler, the profiles kept.
Run = tuple[NodeResult, BareResult, dict[str, Path]]


async def sample_waits(dsn: str, stop: asyncio.Event) -> Counter[str]:
    """Count, every :data:`WAIT_SAMPLE` seconds until ``stop``, what active backends wait for.

    Each sample adds one to ``samples`` and one per active backend of the database (this
    one left out) to its wait event, ``type:event`` as ``pg_stat_activity`` names it, or to
    ``running`` when it waits for nothing (on CPU, or between two waits). A wait for a lock
    names the statement that waits (its first 60 characters; the statements are
    parametrised, so they hold no values). A lock a trigger waits for is shown under the
    statement that fired the trigger.
    """
    counts: Counter[str] = Counter()
    connection = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            rows = await connection.fetch(
                "SELECT COALESCE(wait_event_type || ':' || wait_event, 'running') || CASE "
                "WHEN wait_event_type = 'Lock' THEN ' (' || regexp_replace(left(query, 60), "
                "'\\s+', ' ', 'g') || ')' ELSE '' END FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'active' "
                "AND pid <> pg_backend_pid()"
            )
            counts["samples"] += 1
            counts.update(str(row[0]) for row in rows)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WAIT_SAMPLE)
    finally:
        await connection.close()
    return counts


async def run_nodes(
    world: World,
    n: int,
    concurrency: int,
    probes: dict[str, Callable[[], float]],
    *,
    waits: bool = False,
) -> NodeResult:
    """Submit, wait for every receipt, and read each process's CPU time through ``probes``.

    ``waits``: sample what the school database's backends wait for meanwhile (PostgreSQL).
    """
    urls = [url + "/api/v1/envelopes" for url in world.school_urls]
    headers = {"Authorization": f"Bearer {world.token}", "Content-Type": "application/json"}
    warm = referral_bodies(concurrency, 0)
    bodies = referral_bodies(n, concurrency)
    async with client(world, concurrency) as http:
        await drive(http, urls, headers, warm, concurrency)
        await wait_delivered(http, world, len(warm))
        ledger0 = await ledger_size(world)
        cpu0 = {name: probe() for name, probe in probes.items()}
        client0 = time.process_time()
        stop = asyncio.Event()
        sampler = None
        if waits and world.school_dsn is not None:
            sampler = asyncio.create_task(sample_waits(world.school_dsn, stop))
        sent = await drive(http, urls, headers, bodies, concurrency)
        seen = await wait_delivered(http, world, len(warm) + n)
        stop.set()
        waited = await sampler if sampler is not None else Counter[str]()
        cpu = {"client": time.process_time() - client0}
        cpu |= {name: probe() - cpu0[name] for name, probe in probes.items()}
    recorded = await receipt_times(world, [s.digest for s in sent])
    ledger_events = await ledger_size(world) - ledger0
    first = min(s.started for s in sent)
    last = max(recorded.values())
    return NodeResult(
        n=n,
        seconds=last - first,
        submit_seconds=max(s.answered for s in sent) - first,
        e2e_latencies=sorted(recorded[s.digest] - s.answered for s in sent),
        submit_latencies=sorted(s.answered - s.started for s in sent),
        cpu=cpu,
        poll_lag=seen - last,
        ledger_events=ledger_events,
        waits=waited,
    )


async def run_bare(world: World, port: int, n: int, concurrency: int, pid: int) -> BareResult:
    url = f"https://127.0.0.1:{port}/bare"
    headers = {"Authorization": f"Bearer {world.token}", "Content-Type": "application/json"}
    warm = referral_bodies(concurrency, 0)
    bodies = referral_bodies(n, concurrency)
    async with client(world, concurrency) as http:
        await drive(http, [url], headers, warm, concurrency)
        cpu0, server0 = time.process_time(), cpu_seconds(pid)
        sent = await drive(http, [url], headers, bodies, concurrency)
        cpu1, server1 = time.process_time(), cpu_seconds(pid)
    first = min(s.started for s in sent)
    return BareResult(
        n=n,
        seconds=max(s.answered for s in sent) - first,
        latencies=sorted(s.answered - s.started for s in sent),
        cpu={"client": cpu1 - cpu0, "server": server1 - server0},
    )


@dataclass(frozen=True)
class MeshResult:
    """The MESH sandbox's full cycle with mesh-client (or why it was not measured)."""

    n: int
    concurrency: int
    timing: mesh.Timing | None
    skipped: str = ""


def run_mesh(folder: Path, n: int, concurrency: int) -> MeshResult:
    """Time mesh-client's send → list → download → acknowledge of ``n`` 10 KB envelopes."""
    try:
        with mesh.running_sandbox(folder) as sandbox:
            parties = mesh.make_parties()
            payloads = folder / "payloads"
            warm = mesh.contents_for(CONTENT_SIZE, concurrency, "warm-up")
            contents = mesh.contents_for(CONTENT_SIZE, n, "timed")
            mesh.write_envelopes(payloads / "warm", parties, warm)
            mesh.write_envelopes(payloads / "timed", parties, contents)
            work = mesh.Workload(warm, contents, concurrency, 256 * 1024, mesh.sandbox_pid())
            sandbox.reset()
            timing = mesh.run_mesh_client(sandbox, payloads, work, compress=False)
    except (SystemExit, SandboxUnavailableError, RuntimeError, OSError) as exc:
        # The peer reference is not the node: say why it is missing and report the rest.
        return MeshResult(n, concurrency, None, skipped=str(exc).splitlines()[0][:200])
    return MeshResult(n, concurrency, timing)


def percentile(values: Sequence[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


# --------------------------------------------------------------------------------------------
# Report


def machine_lines() -> list[str]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("aiohttp", "structlog"))
    machine = (
        f"- machine: {os.cpu_count()} CPUs ({model}), {platform.machine()}, "
        f"{platform.system()} {platform.release()}"
    )
    return [
        machine,
        f"- Python {platform.python_version()}; {versions}; {ssl.OPENSSL_VERSION}",
    ]


def print_mesh(node: NodeResult, result: MeshResult) -> None:
    """Print the second peer reference: the MESH sandbox's full cycle with mesh-client."""
    if result.timing is None:
        print(f"\nMESH sandbox with mesh-client: not measured ({result.skipped}).")
        return
    eps = node.n / node.seconds
    timing = result.timing
    mps = result.n / timing.seconds
    nodes_cpu = sum(v for k, v in node.cpu.items() if k != "client") / node.n * 1e3
    print(
        f"\n| measurement | ours (2 nodes, end to end) | MESH sandbox + mesh-client "
        f"({result.concurrency} threads) | ours / MESH |"
    )
    print("|---|---:|---:|---:|")
    print(
        f"| per second: delivered and receipted / sent, listed, downloaded, acknowledged | "
        f"{eps:,.0f} envelopes/s | {mps:,.0f} messages/s | {eps / mps:.2f} |"
    )
    print(
        f"| CPU ms per envelope / message: server side, client | {nodes_cpu:.2f} "
        f"(both nodes), {node.cpu['client'] / node.n * 1e3:.2f} | "
        f"{timing.sandbox_cpu / result.n * 1e3:.2f} (sandbox), "
        f"{timing.client_cpu / result.n * 1e3:.2f} | |"
    )
    print(
        f"\nMESH: {result.n} sealed envelopes of {CONTENT_SIZE // KB} KB content, the cycle of "
        "bench/mesh.py (mesh-client in the sandbox's own environment, timed inside its "
        "process); the sandbox is a development server, not NHS England's service."
    )


def store_line(setup: Setup) -> str:
    """Say where the school node keeps its store in ``setup``."""
    if setup.store == "sqlite":
        return "school and LA stores SQLite synchronous=FULL"
    return (
        f"school store PostgreSQL (one local server, default settings: fsync and "
        f"synchronous_commit on), {setup.processes} school process"
        f"{'es' if setup.processes > 1 else ''} sharing it, submissions sent to them in turn; "
        "LA store SQLite synchronous=FULL"
    )


def print_header(
    n: int,
    concurrency: int,
    delivery: DeliveryConfig,
    setups: Sequence[Setup],
    load: tuple[float, float],
    *,
    quick: bool,
) -> None:
    print(f"# Node benchmark{' (--quick)' if quick else ''}\n")
    print("\n".join(machine_lines()))
    print(
        f"- load average (1 minute) when the runs began: {load[0]:.2f}, when they ended: "
        f"{load[1]:.2f} (the bench's own processes included)"
    )
    stores = (
        "; ".join(store_line(s) for s in setups)
        if len(setups) == 1
        else ("configurations: " + ", ".join(s.label for s in setups) + " (below)")
    )
    print(
        f"- {n} envelopes of {CONTENT_SIZE // KB} KB to 1 recipient; {concurrency} "
        "requests in flight over one keep-alive TLS session; client, school node, LA node "
        f"(and the bare server) are separate processes; {stores}; outbox "
        f"batch {delivery.batch}, concurrency {delivery.concurrency}\n"
    )


def print_report(node: NodeResult, bare: BareResult) -> None:
    eps = node.n / node.seconds
    rps = bare.n / bare.seconds
    print("| measurement | ours (2 nodes, end to end) | bare aiohttp 202 | ours / bare |")
    print("|---|---:|---:|---:|")
    print(f"| per second | {eps:,.0f} envelopes/s | {rps:,.0f} requests/s | {eps / rps:.2f} |")
    print(
        f"| submit → 202 at the client: p50 / p95 ms | "
        f"{percentile(node.submit_latencies, 0.5) * 1e3:,.1f} / "
        f"{percentile(node.submit_latencies, 0.95) * 1e3:,.1f} | "
        f"{percentile(bare.latencies, 0.5) * 1e3:,.1f} / "
        f"{percentile(bare.latencies, 0.95) * 1e3:,.1f} | |"
    )
    print(
        f"| 202 → delivered receipt recorded: p50 / p95 ms | "
        f"{percentile(node.e2e_latencies, 0.5) * 1e3:,.1f} / "
        f"{percentile(node.e2e_latencies, 0.95) * 1e3:,.1f} | | |"
    )
    print(
        f"| submissions alone (first sent → last 202) | "
        f"{node.n / node.submit_seconds:,.0f} /s | {rps:,.0f} /s | "
        f"{node.n / node.submit_seconds / rps:.2f} |"
    )
    print(f"| wall time of the timed run | {node.seconds:.2f} s | {bare.seconds:.2f} s | |")
    cpu_cols = [f"{k} {v / node.n * 1e3:.2f}" for k, v in node.cpu.items()]
    bare_cpu = [f"{k} {v / bare.n * 1e3:.2f}" for k, v in bare.cpu.items()]
    print(f"| CPU ms per envelope / request | {', '.join(cpu_cols)} | {', '.join(bare_cpu)} | |")
    print(
        f"\nTarget ≥ {TARGET_EPS} envelopes/s end to end: "
        f"{'PASS' if eps >= TARGET_EPS else 'MISS'} ({eps:,.0f}/s). "
        f"The /metrics poll saw the last delivery {node.poll_lag * 1e3:.0f} ms after it was "
        "recorded (not counted: the end is the receipt's recorded_at)."
    )


def sender_cpu_ms(node: NodeResult) -> float:
    """Return the sending side's CPU ms per envelope: every school process and the database."""
    sender = sum(v for k, v in node.cpu.items() if k.startswith("school") or k == DATABASE)
    return sender / node.n * 1e3


def print_comparison(
    chosen: Sequence[tuple[Setup, NodeResult, BareResult]], meshed: MeshResult | None
) -> None:
    """Print one row per configuration, with its ratios to SQLite, bare aiohttp and MESH."""
    sqlite = next((node for setup, node, _ in chosen if setup == SQLITE), None)
    mesh_mps = None
    if meshed is not None and meshed.timing is not None:
        mesh_mps = meshed.n / meshed.timing.seconds
    print("\n## Configurations compared (median run of each)\n")
    print(
        "| configuration | envelopes/s | × SQLite | × bare | × MESH | submit → 202 p50 / p95 ms "
        "| CPU ms per envelope: each school process | PostgreSQL server | LA | client "
        "| sending side (school + database) | × SQLite | ledger events per envelope |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for setup, node, bare in chosen:
        eps = node.n / node.seconds

        def ms(name: str, node: NodeResult = node) -> str:
            return f"{node.cpu[name] / node.n * 1e3:.2f}" if name in node.cpu else "–"

        schools = ", ".join(ms(k) for k in node.cpu if k.startswith("school"))
        sender = sender_cpu_ms(node)
        versus = "–" if sqlite is None else f"{eps / (sqlite.n / sqlite.seconds):.2f}"
        cpu_versus = "–" if sqlite is None else f"{sender / sender_cpu_ms(sqlite):.2f}"
        by_mesh = "–" if mesh_mps is None else f"{eps / mesh_mps:.2f}"
        print(
            f"| {setup.label} | {eps:,.0f} | {versus} | {eps / (bare.n / bare.seconds):.2f} | "
            f"{by_mesh} | {percentile(node.submit_latencies, 0.5) * 1e3:,.1f} / "
            f"{percentile(node.submit_latencies, 0.95) * 1e3:,.1f} | {schools} | "
            f"{ms(DATABASE)} | {ms('la')} | {ms('client')} | {sender:.2f} | {cpu_versus} | "
            f"{node.ledger_events / node.n:.1f} |"
        )
    print(
        "\nSending side per core, if CPU were the only limit: "
        + "; ".join(
            f"{setup.label} {1e3 / sender_cpu_ms(node):,.0f} envelopes/s"
            for setup, node, _ in chosen
        )
        + " (1,000 ms ÷ the sending side's CPU ms per envelope; docs/performance.md says how "
        "this scales with processes and cores)."
    )


def print_profiles(paths: dict[str, Path]) -> None:
    for name, path in paths.items():
        if not path.exists():
            continue
        for key, label in (("tottime", "own time"), ("cumulative", "cumulative time")):
            out = io.StringIO()
            pstats.Stats(str(path), stream=out).sort_stats(key).print_stats(25)
            print(f"\n## cProfile: {name} node, by {label}\n\n```")
            print(out.getvalue().strip())
            print("```")


def print_waits(chosen: Sequence[tuple[Setup, NodeResult, BareResult]]) -> None:
    """Print what the school database's active backends waited for (``--pg-waits``)."""
    print(
        "\n## What the school database's backends waited for (--pg-waits)\n\n"
        f"Active backends of the school's database, sampled every {WAIT_SAMPLE * 1e3:.0f} ms "
        "during the timed part; the mean number in each wait (PostgreSQL's wait event names; "
        "`running`: waiting for nothing). `Lock:transactionid` and `Lock:tuple` are waits "
        "for a row another transaction holds until it commits, named by the statement that "
        "waits (or fired the trigger that waits); `IO:WALSync` and `LWLock:WALWrite` are "
        "waits for a commit's flush.\n"
    )
    print("| configuration | samples | active backends | waits (mean backends) |")
    print("|---|---:|---:|---|")
    for setup, node, _ in chosen:
        samples = node.waits.get("samples", 0)
        if setup.store == "sqlite" or not samples:
            continue
        events = sorted(
            ((k, v) for k, v in node.waits.items() if k != "samples"), key=lambda kv: -kv[1]
        )
        active = sum(v for _, v in events) / samples
        shown = "; ".join(f"{k} {v / samples:.2f}" for k, v in events[:8])
        print(f"| {setup.label} | {samples} | {active:.2f} | {shown} |")


async def new_database(server: PostgresServer, name: str) -> str:
    """Create an empty database ``name`` on ``server``; return its connection string."""
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.dsn.rsplit("/", 1)[0] + "/" + name


def school_names(setup: Setup) -> list[str]:
    """Return the names the school's processes are reported under."""
    if setup.processes == 1:
        return ["school"]
    return [f"school {i}" for i in range(1, setup.processes + 1)]


def start_school(
    world: World,
    setup: Setup,
    profiles: dict[str, Path],
    children: dict[str, subprocess.Popen[str]],
) -> World:
    """Start the school's processes (added to ``children``); return the world with their URLs."""
    urls = []
    ops_url = ""
    for i, name in enumerate(school_names(setup)):
        config = world.school_config if i == 0 else world.school_extra_config
        assert config is not None
        prof = str(profiles[name]) if name in profiles else "-"
        children[name], line = spawn("--serve-node", str(config), prof)
        _, ops_port, port = line.split()
        urls.append(f"https://127.0.0.1:{port}")
        ops_url = ops_url or f"http://127.0.0.1:{ops_port}"
    return replace(world, school_urls=tuple(urls), school_ops_url=ops_url)


def one_run(
    folder: Path,
    n: int,
    concurrency: int,
    delivery: DeliveryConfig,
    *,
    setup: Setup,
    server: PostgresServer | None,
    profile: bool,
    waits: bool = False,
) -> Run:
    """Create a deployment in ``folder``, run the nodes and then the bare handler.

    With ``setup.store`` "postgresql" the school's store is a new database on ``server``.
    The MESH reference runs once, after every run of the nodes (:func:`run_mesh`).
    """
    database = None
    if setup.store == "postgresql":
        assert server is not None
        name = f"bench_{folder.name.replace('-', '_')}"
        database = DatabaseConfig(url=asyncio.run(new_database(server, name)))
    world = asyncio.run(create_world(folder / "world", delivery, database))
    names = ["la", *school_names(setup)]
    profiles = (
        {name: folder / f"{name.replace(' ', '-')}.prof" for name in names} if profile else {}
    )
    children: dict[str, subprocess.Popen[str]] = {}
    try:
        prof = str(profiles["la"]) if profile else "-"
        children["la"], _ = spawn("--serve-node", str(world.la_config), prof)
        world = start_school(world, setup, profiles, children)
        probes: dict[str, Callable[[], float]] = {
            name: functools.partial(cpu_seconds, proc.pid) for name, proc in children.items()
        }
        if server is not None and database is not None:
            probes[DATABASE] = functools.partial(cluster_cpu_seconds, server.folder / "data")
        node = asyncio.run(run_nodes(world, n, concurrency, probes, waits=waits))
    finally:
        for proc in children.values():
            stop_child(proc)
    bare_proc, line = spawn("--serve-bare", str(world.cert), str(world.key))
    try:
        port = int(line.split()[1])
        bare = asyncio.run(run_bare(world, port, n, concurrency, bare_proc.pid))
    finally:
        stop_child(bare_proc)
    if profile:
        # Keep the profiles: the folder is removed when the run ends.
        kept = {}
        for name, path in profiles.items():
            if path.exists():
                kept[name] = (
                    Path(tempfile.gettempdir()) / f"bench-node-{path.stem}-{os.getpid()}.prof"
                )
                kept[name].write_bytes(path.read_bytes())
        profiles = kept
    return node, bare, profiles


@contextlib.contextmanager
def postgres_if_needed(setups: Sequence[Setup]) -> Iterator[PostgresServer | None]:
    """Start the PostgreSQL server of the tests if a configuration needs one."""
    if all(s.store == "sqlite" for s in setups):
        yield None
        return
    from tests.postgres_server import running_postgres

    with running_postgres() as server:
        yield server


def setups_of(store: str, processes: int) -> list[Setup]:
    """Return the configurations ``--store`` and ``--processes`` ask for."""
    if store == "sqlite":
        return [SQLITE]
    if store == "postgresql":
        return [Setup("postgresql", processes)]
    return [SQLITE, Setup("postgresql", 1), Setup("postgresql", max(processes, 2))]


# --------------------------------------------------------------------------------------------


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 envelopes instead of 1,000")
    parser.add_argument("--n", type=int, default=None, help="envelopes to send (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--repeat", type=int, default=None, help="runs (default 3; 1 with --quick)")
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql", "all"),
        default="sqlite",
        help="the school node's store; all = SQLite, PostgreSQL with 1 and with 2 (or "
        "--processes) school processes, in one run",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="school node processes sharing the PostgreSQL store (default 1)",
    )
    defaults = DeliveryConfig()
    parser.add_argument("--outbox-batch", type=int, default=defaults.batch, help="delivery.batch")
    parser.add_argument(
        "--outbox-concurrency",
        type=int,
        default=defaults.concurrency,
        help="delivery.concurrency",
    )
    parser.add_argument(
        "--profile", action="store_true", help="run the nodes under cProfile (main thread only)"
    )
    parser.add_argument(
        "--tmp",
        default=None,
        help="folder to create the deployment in (default: the system temporary directory)",
    )
    parser.add_argument(
        "--mesh-concurrency", type=int, default=4, help="mesh-client threads (as bench/mesh.py)"
    )
    parser.add_argument(
        "--no-mesh", action="store_true", help="leave out the MESH sandbox with mesh-client"
    )
    parser.add_argument(
        "--pg-waits",
        action="store_true",
        help="sample what the PostgreSQL backends wait for (the client's CPU then includes it)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the median results to this file"
    )
    parser.add_argument("--serve-node", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", nargs=2, help=argparse.SUPPRESS)
    return parser


def measure(
    args: argparse.Namespace, n: int, delivery: DeliveryConfig, setups: Sequence[Setup]
) -> dict[Setup, list[Run]]:
    """Run every configuration ``--repeat`` times; return each one's runs, slowest first."""
    reps = args.repeat or (1 if args.quick else 3)
    runs: dict[Setup, list[Run]] = {setup: [] for setup in setups}
    with postgres_if_needed(setups) as server:
        # Interleaved: each repetition runs every configuration, so noise falls on all alike.
        for _ in range(reps):
            for setup in setups:
                with tempfile.TemporaryDirectory(prefix="bench-node-", dir=args.tmp) as tmp:
                    run = one_run(
                        Path(tmp), n, args.concurrency, delivery,
                        setup=setup, server=server, profile=args.profile, waits=args.pg_waits,
                    )  # fmt: skip
                    runs[setup].append(run)
    for results in runs.values():
        results.sort(key=lambda r: r[0].n / r[0].seconds)
    return runs


def results_json(chosen: Sequence[tuple[Setup, NodeResult, BareResult]]) -> list[object]:
    """Return the median run of each configuration as plain data (``--json``)."""
    return [
        {
            "configuration": setup.label,
            "store": setup.store,
            "school_processes": setup.processes,
            "envelopes": node.n,
            "envelopes_per_second": node.n / node.seconds,
            "submit_p50_ms": percentile(node.submit_latencies, 0.5) * 1e3,
            "submit_p95_ms": percentile(node.submit_latencies, 0.95) * 1e3,
            "receipt_p50_ms": percentile(node.e2e_latencies, 0.5) * 1e3,
            "receipt_p95_ms": percentile(node.e2e_latencies, 0.95) * 1e3,
            "cpu_ms_per_envelope": {k: v / node.n * 1e3 for k, v in node.cpu.items()},
            "ledger_events_per_envelope": node.ledger_events / node.n,
            "database_waits": dict(node.waits),
            "bare_requests_per_second": bare.n / bare.seconds,
        }
        for setup, node, bare in chosen
    ]


def report(
    args: argparse.Namespace,
    n: int,
    delivery: DeliveryConfig,
    runs: dict[Setup, list[Run]],
    meshed: MeshResult | None,
    *,
    load: tuple[float, float],
) -> None:
    """Print the tables of the median run of each configuration (and write ``--json``)."""
    setups = list(runs)
    chosen = [(setup, *runs[setup][len(runs[setup]) // 2][:2]) for setup in setups]
    print_header(n, args.concurrency, delivery, setups, load, quick=args.quick)
    for setup, node, bare in chosen:
        if len(setups) > 1:
            print(f"\n## {setup.label}\n\n{store_line(setup)}.\n")
        print_report(node, bare)
    if setups != [SQLITE]:
        print_comparison(chosen, meshed)
    if args.pg_waits:
        print_waits(chosen)
    if meshed is not None:
        print_mesh(chosen[0][1], meshed)
    for setup, results in runs.items():
        if len(results) > 1:
            print(
                f"\n{setup.label}: all {len(results)} runs (a fresh deployment each), "
                "envelopes/s end to end: "
                + ", ".join(f"{r[0].n / r[0].seconds:,.0f}" for r in results)
                + "; bare requests/s: "
                + ", ".join(f"{r[1].n / r[1].seconds:,.0f}" for r in results)
                + ". The tables show the median run."
            )
    if args.profile:
        for setup, results in runs.items():
            if len(setups) > 1:
                print(f"\n# Profiles: {setup.label}")
            print_profiles(results[len(results) // 2][2])
    if args.json is not None:
        args.json.write_text(json.dumps(results_json(chosen), indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    if args.serve_node:
        config, prof = args.serve_node
        serve_node(Path(config), Path(prof) if prof != "-" else None)
        return 0
    if args.serve_bare:
        serve_bare(Path(args.serve_bare[0]), Path(args.serve_bare[1]))
        return 0

    configure(json=True, stream=Path(os.devnull).open("w"))  # noqa: SIM115 - for the process
    n = args.n or (200 if args.quick else 1000)
    if n < 1 or args.concurrency < 1 or args.mesh_concurrency < 1 or args.processes < 1:
        parser.error("--n, --concurrency, --mesh-concurrency and --processes must be positive")
    if args.processes > 1 and args.store == "sqlite":
        parser.error("--processes above 1 needs --store postgresql or all (SQLite is one process)")
    delivery = DeliveryConfig(batch=args.outbox_batch, concurrency=args.outbox_concurrency)
    load_before = os.getloadavg()[0]
    runs = measure(args, n, delivery, setups_of(args.store, args.processes))
    load = (load_before, os.getloadavg()[0])
    meshed = None
    if not args.no_mesh:
        with tempfile.TemporaryDirectory(prefix="bench-node-mesh-", dir=args.tmp) as tmp:
            meshed = run_mesh(Path(tmp), n, args.mesh_concurrency)
    report(args, n, delivery, runs, meshed, load=load)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
