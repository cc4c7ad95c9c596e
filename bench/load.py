"""Benchmark of back-pressure and staff reads under load (docs/performance.md, "Load").

Run ``python bench/load.py`` for the full run, ``--quick`` for a short one (under about
three minutes). ``--users`` staff users (50), ``--think`` seconds between their pages (1),
``--max-backlog`` the school's ``[delivery] max_backlog`` for the run (100), ``--rate``
the maximum the 80 % and 120 % phases are taken of (default: the one measured in (a); give
it to compare runs, or code before and after a change, at the same load).

Set-up (:mod:`bench.node`'s helpers): a school node and an LA node, each served in its own
process from the configuration files of a loopback deployment, over TLS on 127.0.0.1; the
client (this process) submits 10 KB referrals to the school's staff API
(``POST /api/v1/envelopes``, one keep-alive TLS session). Before the nodes start, the
school's store is filled with 2,000 sent and 2,000 received items
(:func:`bench.web_lists._fill`) and signed-in web sessions are made for the staff users.
The school's ``/metrics`` is read every half second: envelopes delivered (its counter), the
outbox backlog the busy rule counts, and submissions refused as busy.

Phases, in one run on the same two node processes:

- **reference**: the staff users alone on an idle node, each in a loop: ``GET /sent``, wait
  ``--think`` seconds (0.5 to 1.5 times, at random), ``GET /inbox``, wait; the pages are
  fetched with the session cookie by a separate client process (its own interpreter), and
  timed there from request to last byte;
- **(a) maximum sustainable rate**: 32 closed-loop submitters (a 503 waits as its
  ``Retry-After`` says, at most 2 s) for a fixed time; the rate is envelopes delivered per
  second over the second half;
- **(b) 80 % of it, open loop**: submissions started at a fixed interval whatever the
  answers (each its own request), for a fixed time: p50/p95 of submit → 202 (target p95
  < 50 ms), accepted/s against delivered/s, 503s, backlog over time;
- **(c) the same 80 % with the staff users** listing as in the reference: p50/p95 of each
  list (target p95 < 100 ms) as a ratio of the idle reference, and delivered/s as a ratio
  of (b) (target ≥ 0.8: at most 20 % slower);
- **(d) 120 % of the maximum**, open loop, with back-pressure on, then again after the
  school is restarted with ``max_backlog = 0`` (off): accepted/s, delivered/s and the
  backlog over time, bounded with it and growing without.

Between phases the outbox is left to drain. The load average is printed at the start; the
machine has 2 cores shared by the client and both nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import pstats
import random
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.node import (
    SCHOOL,
    World,
    client,
    cpu_seconds,
    create_world,
    machine_lines,
    percentile,
    referral_bodies,
    spawn,
    stop_child,
)
from bench.web_lists import _fill, _session
from exchange.config import DeliveryConfig, config_to_toml, load_config
from exchange.logs import configure
from exchange.node.runtime import Node
from exchange.store.sqlite import SqliteStore
from exchange.web.accounts import SESSION_COOKIE

SUBMIT_TARGET_MS: Final = 50.0
LIST_TARGET_MS: Final = 100.0
SLOWDOWN_TARGET: Final = 0.8
#: Closed-loop submitters of phase (a).
SATURATING: Final = 32
#: Distinct request bodies cycled through (each submission is sealed afresh anyway).
BODY_POOL: Final = 200
#: Items sent and received by the school before the run (what the lists page through).
FILLED: Final = 2000
#: Accounts the staff users' sessions are spread over.
ACCOUNTS: Final = 5
METRICS_EVERY: Final = 0.5


@dataclass(frozen=True)
class Timings:
    """How long each phase runs, in seconds."""

    reference: float
    saturate: float
    steady: float
    over: float

    @classmethod
    def of(cls, *, quick: bool) -> Timings:
        """Return the phases' lengths of a quick or a full run."""
        return cls(8, 15, 20, 15) if quick else cls(20, 40, 60, 40)


# --------------------------------------------------------------------------------------------
# The staff users' client process


def read_pages(args: Sequence[str]) -> None:
    """Run the staff users (``base cafile tokens-file seconds think``); print JSON timings."""
    base, cafile, tokens_file, seconds, think = args
    tokens = json.loads(Path(tokens_file).read_text())

    async def run() -> dict[str, object]:
        context = ssl.create_default_context(cafile=cafile)
        connector = aiohttp.TCPConnector(ssl=context, limit=len(tokens))
        timings: dict[str, list[float]] = {"/sent": [], "/inbox": []}
        errors = 0
        async with aiohttp.ClientSession(connector=connector) as http:

            async def get(path: str, token: str) -> float:
                nonlocal errors
                started = time.perf_counter()
                async with http.get(
                    base + path, headers={"Cookie": f"{SESSION_COOKIE}={token}"},
                    allow_redirects=False,
                ) as resp:  # fmt: skip
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                return time.perf_counter() - started

            async def user(token: str) -> None:
                await get("/sent", token)  # the TLS handshake and first page: not counted
                await asyncio.sleep(random.uniform(0, float(think)))
                while time.monotonic() < deadline:
                    for path in ("/sent", "/inbox"):
                        timings[path].append(await get(path, token))
                        await asyncio.sleep(float(think) * random.uniform(0.5, 1.5))

            deadline = time.monotonic() + float(seconds)
            print("ready", flush=True)
            await asyncio.gather(*(user(t) for t in tokens))
        return {"timings": timings, "errors": errors}

    print(json.dumps(asyncio.run(run())), flush=True)


@dataclass(frozen=True)
class Pages:
    """The staff users' page timings (seconds), by path."""

    timings: dict[str, list[float]]
    errors: int


class Readers:
    """The staff users' process, started for one phase."""

    def __init__(self, world: World, tokens_file: Path, seconds: float, think: float) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [
                sys.executable, str(Path(__file__).resolve()), "--read-pages", world.school_url,
                str(world.ca_file), str(tokens_file), str(seconds), str(think),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the staff users' process did not start")

    async def result(self) -> Pages:
        """Wait for the process to end; return its timings."""
        out, _ = await asyncio.to_thread(self.proc.communicate)
        doc = json.loads(out.strip().splitlines()[-1])
        return Pages(doc["timings"], doc["errors"])


# --------------------------------------------------------------------------------------------
# The school's /metrics


@dataclass(frozen=True)
class Sample:
    """One reading of the school's /metrics."""

    at: float
    delivered: int
    backlog: int
    busy: int


def _metric(text: str, name: str) -> int:
    found = re.search(rf"^{re.escape(name)} (\d+)$", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


async def sample(http: aiohttp.ClientSession, ops_url: str) -> Sample:
    async with http.get(ops_url + "/metrics") as resp:
        text = await resp.text()
    backlog = _metric(text, "exchange_outbox_backlog")
    if "exchange_outbox_backlog" not in text:
        # A node from before back-pressure (for a comparison): every item not yet delivered.
        waiting = ("queued", "attempting", "retry-wait")
        backlog = sum(_metric(text, f'exchange_outbox_items{{state="{s}"}}') for s in waiting)
    return Sample(
        at=time.monotonic(),
        delivered=_metric(text, 'exchange_deliveries_total{outcome="delivered"}'),
        backlog=backlog,
        busy=_metric(text, "exchange_submissions_busy_total"),
    )


@dataclass
class Watch:
    """Samples of /metrics taken every :data:`METRICS_EVERY` s while a phase runs."""

    samples: list[Sample] = field(default_factory=list)

    async def run(self, http: aiohttp.ClientSession, ops_url: str, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set, and once more then."""
        while not stop.is_set():
            self.samples.append(await sample(http, ops_url))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), METRICS_EVERY)
        self.samples.append(await sample(http, ops_url))

    def rate(self, start: float, end: float) -> float:
        """Envelopes delivered per second between two times (the nearest samples)."""
        inside = [s for s in self.samples if start <= s.at <= end]
        first, last = inside[0], inside[-1]
        return (last.delivered - first.delivered) / max(last.at - first.at, 1e-9)

    def backlog_at(self, start: float, every: float) -> list[int]:
        """Return the backlog at ``start``, ``start + every``, ... (the sample before each)."""
        out = []
        t = start
        while t <= self.samples[-1].at + 1e-9:
            before = [s for s in self.samples if s.at <= t + 1e-9]
            out.append(before[-1].backlog if before else 0)
            t += every
        return out


async def drain(http: aiohttp.ClientSession, ops_url: str, limit: float = 120.0) -> float:
    """Wait until the school's counted backlog is empty; return how long it took."""
    started = time.monotonic()
    while (await sample(http, ops_url)).backlog > 0:
        if time.monotonic() - started > limit:
            raise RuntimeError("the school's outbox did not drain")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------
# Submitting


@dataclass
class Submissions:
    """What one phase's submissions got back."""

    started: float = 0.0
    ended: float = 0.0
    accepted: list[float] = field(default_factory=list)
    busy: int = 0
    retry_after: list[int] = field(default_factory=list)

    def accepted_rate(self) -> float:
        """Return submissions accepted (202) per second of the phase."""
        return len(self.accepted) / max(self.ended - self.started, 1e-9)


class Submitter:
    """Posts referrals to the school's staff API, cycling through a pool of bodies."""

    def __init__(self, http: aiohttp.ClientSession, world: World) -> None:
        self.http = http
        self.url = world.school_url + "/api/v1/envelopes"
        self.headers = {
            "Authorization": f"Bearer {world.token}", "Content-Type": "application/json",
        }  # fmt: skip
        self.bodies = referral_bodies(BODY_POOL, 0)
        self.next = 0

    async def one(self, into: Submissions) -> int:
        """Submit the next body; note the answer in ``into``; return its status."""
        body = self.bodies[self.next % len(self.bodies)]
        self.next += 1
        started = time.perf_counter()
        async with self.http.post(self.url, data=body, headers=self.headers) as resp:
            await resp.read()
            if resp.status == 202:
                into.accepted.append(time.perf_counter() - started)
            elif resp.status == 503:
                into.busy += 1
                into.retry_after.append(int(resp.headers.get("Retry-After", "0")))
            else:
                raise RuntimeError(f"the school answered {resp.status}")
            return resp.status

    async def closed_loop(self, seconds: float, workers: int) -> Submissions:
        """Keep ``workers`` submissions in flight for ``seconds``."""
        out = Submissions(started=time.monotonic())
        deadline = out.started + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                if await self.one(out) == 503:
                    # As a client should: wait as Retry-After says (at most 2 s here).
                    await asyncio.sleep(min(out.retry_after[-1], 2))

        await asyncio.gather(*(worker() for _ in range(workers)))
        out.ended = time.monotonic()
        return out

    async def open_loop(self, seconds: float, rate: float) -> Submissions:
        """Start one submission every ``1 / rate`` s for ``seconds``, whatever the answers."""
        out = Submissions(started=time.monotonic())
        tasks: list[asyncio.Task[int]] = []
        n = 0
        while (due := out.started + n / rate) < out.started + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(self.one(out)))
            n += 1
        out.ended = time.monotonic()
        await asyncio.gather(*tasks)
        return out


# --------------------------------------------------------------------------------------------
# Set-up


def _delivery(max_backlog: int) -> DeliveryConfig:
    """Return the delivery settings with ``max_backlog`` (none on a node from before it)."""
    if "max_backlog" not in DeliveryConfig.__dataclass_fields__:
        return DeliveryConfig()  # the same bench run on the code before back-pressure
    return DeliveryConfig(max_backlog=max_backlog)


async def prepare(folder: Path, max_backlog: int, users: int) -> tuple[World, Path, Path]:
    """Create the deployment, fill the school's store, make the sessions; write both configs.

    Returns the world, the tokens file and the configuration with back-pressure off.
    """
    world = await create_world(folder, _delivery(max_backlog))
    config = load_config(world.school_config)
    store = await SqliteStore.open(config.data_dir)
    await _fill(store, FILLED, time.time())
    await store.close()
    node = Node(config)
    await node.start()
    try:
        accounts = [await _session(node.service, SCHOOL, f"reader{i}") for i in range(ACCOUNTS)]
        tokens = list(accounts)
        while len(tokens) < users:
            user = f"{SCHOOL}/reader{len(tokens) % ACCOUNTS}"
            token, _ = await node.service.accounts.start_verified_session(
                user, method="password+totp", second_factor=True
            )
            tokens.append(token)
    finally:
        await node.stop()
    tokens_file = folder / "sessions.json"
    tokens_file.write_text(json.dumps(tokens[:users]))
    off = folder / "bench-school-off.toml"
    off.write_text(config_to_toml(replace(config, delivery=_delivery(0))))
    return world, tokens_file, off


def serve(config: Path, profile: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    """Serve a node from ``config`` in its own process; return it and its /metrics base URL."""
    proc, line = spawn("--serve-node", str(config), str(profile) if profile else "-")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Results:
    """Everything the report prints."""

    reference: Pages | None = None
    max_rate: float = 0.0
    #: The maximum (b), (c) and (d) are taken of: ``max_rate``, or ``--rate``.
    base: float = 0.0
    saturate: Submissions | None = None
    saturate_cpu: dict[str, float] = field(default_factory=dict)
    steady: Submissions | None = None
    steady_delivered: float = 0.0
    steady_backlog: list[int] = field(default_factory=list)
    loaded: Submissions | None = None
    loaded_delivered: float = 0.0
    loaded_backlog: list[int] = field(default_factory=list)
    loaded_pages: Pages | None = None
    steady_cores: dict[str, float] = field(default_factory=dict)
    loaded_cores: dict[str, float] = field(default_factory=dict)
    over: dict[str, tuple[Submissions, float, list[int]]] = field(default_factory=dict)


async def phase(
    http: aiohttp.ClientSession, ops_url: str
) -> tuple[Watch, asyncio.Event, asyncio.Task[None]]:
    """Start sampling /metrics; set the event to stop, then await the task."""
    watch = Watch()
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(http, ops_url, stop))
    return watch, stop, task


async def saturate(
    http: aiohttp.ClientSession, ops: str, submitter: Submitter, seconds: float, *,
    pids: dict[str, int], results: Results,
) -> None:  # fmt: skip
    """Phase (a): the delivered rate with closed-loop submitters, and CPU per envelope."""
    watch, stop, task = await phase(http, ops)
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    sat = await submitter.closed_loop(seconds, SATURATING)
    stop.set()
    await task
    results.max_rate = watch.rate(sat.started + seconds / 2, sat.ended)
    delivered = watch.samples[-1].delivered - watch.samples[0].delivered
    results.saturate_cpu = {
        name: (cpu_seconds(pid) - cpu0[name]) / max(delivered, 1) * 1e3
        for name, pid in pids.items()
    }
    results.saturate = sat


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """Return the CPU seconds each node process has used so far."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def _cores(pids: dict[str, int], before: dict[str, float], done: Submissions) -> dict[str, float]:
    """Return the CPU each node used since ``before``, in cores, over the phase ``done``."""
    spent = max(time.monotonic() - done.started, 1e-9)
    return {name: (cpu - before[name]) / spent for name, cpu in _cpu(pids).items()}


async def steady(
    http: aiohttp.ClientSession, ops: str, submitter: Submitter, seconds: float, rate: float,
    *, every: int = 10,
) -> tuple[Submissions, float, list[int]]:  # fmt: skip
    """Open-loop submissions at ``rate``: what was accepted, delivered/s, the backlog.

    The backlog is read ``every`` times in the phase (and at its start).
    """
    watch, stop, task = await phase(http, ops)
    done = await submitter.open_loop(seconds, rate)
    stop.set()
    await task
    backlog = watch.backlog_at(done.started, seconds / every)
    return done, watch.rate(done.started + 2, done.ended), backlog


async def measure(world: World, tokens: Path, off: Path, args: argparse.Namespace) -> Results:
    """Serve the two nodes and run the phases; return what they measured."""
    t, users, think = args.timings, args.users, args.think
    results = Results()
    la, _ = serve(world.la_config)
    school, ops = serve(world.school_config, args.profile)
    pids = {"school": school.pid, "la": la.pid}
    try:
        async with client(world, 256) as http:
            submitter = Submitter(http, world)
            for _ in range(SATURATING):  # warm-up: TLS, first-use imports
                await submitter.one(Submissions())
            await drain(http, ops)
            print(f"reference: {users} staff users on the idle node, {t.reference:.0f} s")
            results.reference = await Readers(world, tokens, t.reference, think).result()
            print(f"(a) {SATURATING} closed-loop submitters, {t.saturate:.0f} s")
            await saturate(http, ops, submitter, t.saturate, pids=pids, results=results)
            await drain(http, ops)
            base = results.base = args.rate or results.max_rate
            rate = 0.8 * base
            print(f"(b) open loop at {rate:.0f}/s, {t.steady:.0f} s")
            cpu0 = _cpu(pids)
            results.steady, results.steady_delivered, results.steady_backlog = await steady(
                http, ops, submitter, t.steady, rate
            )
            results.steady_cores = _cores(pids, cpu0, results.steady)
            await drain(http, ops)
            print(f"(c) open loop at {rate:.0f}/s with {users} staff users, {t.steady:.0f} s")
            readers = Readers(world, tokens, t.steady + 2, think)
            await asyncio.sleep(1)
            cpu0 = _cpu(pids)
            results.loaded, results.loaded_delivered, results.loaded_backlog = await steady(
                http, ops, submitter, t.steady, rate
            )
            results.loaded_cores = _cores(pids, cpu0, results.loaded)
            results.loaded_pages = await readers.result()
            await drain(http, ops)
            over = 1.2 * base
            print(f"(d) open loop at {over:.0f}/s with back-pressure, {t.over:.0f} s")
            results.over["on"] = await steady(http, ops, submitter, t.over, over, every=5)
        stop_child(school)
        school, ops = serve(off)
        async with client(world, 256) as http:
            submitter = Submitter(http, world)
            await drain(http, ops)
            print(f"(d) open loop at {over:.0f}/s without back-pressure, {t.over:.0f} s")
            results.over["off"] = await steady(http, ops, submitter, t.over, over, every=5)
    finally:
        stop_child(school)
        stop_child(la)
    return results


# --------------------------------------------------------------------------------------------
# Report


def ms(values: Sequence[float], q: float) -> str:
    return f"{percentile(sorted(values), q) * 1e3:,.1f}" if values else "-"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_a(r: Results) -> None:
    """Print phase (a)."""
    assert r.saturate is not None
    print("## (a) Maximum sustainable rate\n")
    print("| measurement | value |")
    print("|---|---:|")
    print(f"| delivered/s over the second half ({SATURATING} closed-loop submitters) | "
          f"{r.max_rate:,.1f} |")  # fmt: skip
    print(f"| accepted/s | {r.saturate.accepted_rate():,.1f} |")
    print(f"| refused as busy (503) | {r.saturate.busy:,} |")
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in r.saturate_cpu.items())
    print(f"| CPU ms per delivered envelope | {cpu} |\n")


def report_bc(r: Results, every: float) -> None:
    """Print phases (b) and (c), and the pages against the idle reference."""
    b, c, idle, busy = r.steady, r.loaded, r.reference, r.loaded_pages
    assert b is not None
    assert c is not None
    assert idle is not None
    assert busy is not None
    print("## (b) 80 % of it, open loop; (c) the same with the staff users\n")
    print("| measurement | (b) | (c) with staff users | (c) / (b) |")
    print("|---|---:|---:|---:|")
    print(f"| offered /s | {0.8 * r.base:,.1f} | {0.8 * r.base:,.1f} | |")
    print(f"| accepted /s | {b.accepted_rate():,.1f} | {c.accepted_rate():,.1f} | "
          f"{c.accepted_rate() / b.accepted_rate():.2f} |")  # fmt: skip
    print(f"| delivered /s | {r.steady_delivered:,.1f} | {r.loaded_delivered:,.1f} | "
          f"{r.loaded_delivered / r.steady_delivered:.2f} |")  # fmt: skip
    print(f"| delivered / accepted | {r.steady_delivered / b.accepted_rate():.2f} | "
          f"{r.loaded_delivered / c.accepted_rate():.2f} | |")  # fmt: skip
    print(f"| refused as busy (503) | {b.busy} | {c.busy} | |")
    print(f"| submit → 202 p50 / p95 ms | {ms(b.accepted, 0.5)} / {ms(b.accepted, 0.95)} | "
          f"{ms(c.accepted, 0.5)} / {ms(c.accepted, 0.95)} | |")  # fmt: skip
    steady, loaded = " ".join(map(str, r.steady_backlog)), " ".join(map(str, r.loaded_backlog))
    print(f"| backlog every {every:g} s | {steady} | {loaded} | |")
    for name in r.steady_cores:
        before, during = r.steady_cores[name], r.loaded_cores[name]
        print(f"| {name} node CPU (cores) | {before:.2f} | {during:.2f} | {during / before:.2f} |")
    pages = sum(len(v) for v in busy.timings.values())
    extra = (r.loaded_cores["school"] - r.steady_cores["school"]) * (c.ended - c.started)
    print(
        f"| school CPU per staff page (ms, (c) − (b)) | | {extra / max(pages, 1) * 1e3:.1f} | |\n"
    )
    print("| staff page | idle: p50 / p95 ms | under load (c): p50 / p95 ms | p95 load / idle |")
    print("|---|---:|---:|---:|")
    for path in ("/sent", "/inbox"):
        before, during = idle.timings[path], busy.timings[path]
        ratio = percentile(sorted(during), 0.95) / percentile(sorted(before), 0.95)
        print(f"| `{path}` ({len(during)} requests) | {ms(before, 0.5)} / {ms(before, 0.95)} | "
              f"{ms(during, 0.5)} / {ms(during, 0.95)} | {ratio:.2f} |")  # fmt: skip
    if busy.errors or idle.errors:
        print(f"\nPages not answered 200: {idle.errors} idle, {busy.errors} under load.")


def report_d(r: Results, every: float) -> None:
    """Print phase (d), back-pressure on and off."""
    on, off = r.over["on"], r.over["off"]
    print("\n## (d) 120 % of the maximum, open loop: back-pressure on and off\n")
    print("| measurement | on | off |")
    print("|---|---:|---:|")
    print(f"| offered /s | {1.2 * r.base:,.1f} | {1.2 * r.base:,.1f} |")
    print(f"| accepted /s | {on[0].accepted_rate():,.1f} | {off[0].accepted_rate():,.1f} |")
    print(f"| delivered /s | {on[1]:,.1f} | {off[1]:,.1f} |")
    print(f"| refused as busy (503) | {on[0].busy:,} | {off[0].busy:,} |")
    retry = on[0].retry_after
    print(f"| Retry-After given (median s) | {statistics.median(retry) if retry else '-'} | - |")
    print(f"| backlog every {every:g} s | {' '.join(map(str, on[2]))} | "
          f"{' '.join(map(str, off[2]))} |")  # fmt: skip
    print(f"| backlog at the end | {on[2][-1]:,} | {off[2][-1]:,} |")
    print(f"| submit → 202 p50 / p95 ms | {ms(on[0].accepted, 0.5)} / {ms(on[0].accepted, 0.95)} "
          f"| {ms(off[0].accepted, 0.5)} / {ms(off[0].accepted, 0.95)} |")  # fmt: skip


def report_targets(r: Results) -> None:
    """Print each target, met or missed."""
    assert r.steady is not None
    assert r.loaded_pages is not None
    pages = r.loaded_pages.timings
    p95_submit = percentile(sorted(r.steady.accepted), 0.95) * 1e3
    p95_lists = max(percentile(sorted(pages[p]), 0.95) for p in ("/sent", "/inbox")) * 1e3
    slowdown = r.loaded_delivered / r.steady_delivered
    on, off = r.over["on"], r.over["off"]
    print("\n## Targets\n")
    print(f"- submit p95 at 80 %: {p95_submit:.1f} ms (< {SUBMIT_TARGET_MS:g}): "
          f"{verdict(p95_submit < SUBMIT_TARGET_MS)}")  # fmt: skip
    kept_up = r.steady_delivered / r.steady.accepted_rate()
    print(f"- accepted = delivered at 80 %: {kept_up:.2f} (delivered / accepted)")
    print(f"- lists p95 under load: {p95_lists:.1f} ms (< {LIST_TARGET_MS:g}): "
          f"{verdict(p95_lists < LIST_TARGET_MS)}")  # fmt: skip
    print(f"- deliveries with staff users / without: {slowdown:.2f} (≥ {SLOWDOWN_TARGET}): "
          f"{verdict(slowdown >= SLOWDOWN_TARGET)}")  # fmt: skip
    print(f"- backlog at 120 %: {on[2][-1]:,} with back-pressure, {off[2][-1]:,} without")


def report(r: Results, args: argparse.Namespace, load: tuple[float, float, float]) -> None:
    """Print the Markdown report."""
    print(f"\n# Load benchmark{' (--quick)' if args.quick else ''}\n")
    print("\n".join(machine_lines()))
    print(
        f"- load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; the client, "
        "the staff users' client, the school node and the LA node are separate processes"
    )
    print(
        f"- 10 KB referrals, school → LA over HTTPS push; school `max_backlog` "
        f"{args.max_backlog}; {args.users} staff users, {args.think:g} s (±50 %) between pages; "
        f"the school holds {FILLED:,} sent and {FILLED:,} received items\n"
    )
    report_a(r)
    report_bc(r, args.steady / 10)
    report_d(r, args.over / 5)
    report_targets(r)


def print_profile(path: Path) -> None:
    """Print where the school node's main thread spent its time."""
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).sort_stats(key).print_stats(30)
        print(f"\n## cProfile: the school node, by {key}\n\n```\n{out.getvalue().strip()}\n```")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases (under ~3 minutes)")
    parser.add_argument("--users", type=int, default=50, help="staff users (50)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds between pages (1)")
    parser.add_argument("--max-backlog", type=int, default=100, help="the school's max_backlog")
    parser.add_argument(
        "--rate", type=float, default=None,
        help="the maximum the 80 %% and 120 %% phases are taken of (default: measured in (a))",
    )  # fmt: skip
    parser.add_argument("--tmp", default=None, help="folder for the deployment")
    parser.add_argument(
        "--profile", default=None, help="profile the school node (main thread) into this file"
    )
    parser.add_argument("--serve-node", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--read-pages", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read_pages:
        read_pages(args.read_pages)
        return 0
    if args.users < 1 or args.max_backlog < 1 or args.think < 0:
        parser.error("--users and --max-backlog must be positive, --think not negative")
    load = os.getloadavg()
    configure(json=True, stream=Path(os.devnull).open("w"))  # noqa: SIM115 - for the process
    args.timings = timings = Timings.of(quick=args.quick)
    args.steady, args.over = timings.steady, timings.over
    if args.profile:
        args.profile = Path(args.profile).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-load-", dir=args.tmp) as tmp:
        world, tokens, off = asyncio.run(prepare(Path(tmp) / "world", args.max_backlog, args.users))
        results = asyncio.run(measure(world, tokens, off, args))
    report(results, args, load)
    if args.profile:
        print_profile(args.profile)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
