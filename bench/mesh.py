"""MESH benchmark: our connector against NHS England's mesh-client (docs/performance.md, "MESH").

Run ``python bench/mesh.py`` for the full run, ``--quick`` for a short one, ``--profile`` to
print where our side's time goes (cProfile of one extra run per payload size).

Both sides do the same send → list inbox → download → acknowledge cycle against the real
MESH sandbox (``mesh-sandbox``, started as the MESH tests and the demo start it, by
exchange/demo/services.py), mailbox X26ABC1 to X26ABC2, with the same payloads, the
same number of messages, the same chunk size and the same concurrency:

- **ours**: each of N records is sealed with :func:`exchange.envelope.seal` (school key to
  the LA) and sent with :meth:`MeshConnector.deliver`, ``concurrency`` sends in flight; then
  a second connector (X26ABC2) collects them, and ``concurrency`` workers each open and
  verify an envelope (:func:`exchange.envelope.open_envelope`, which checks the signatures)
  and ``acknowledge`` it;
- **mesh-client** (5.0.2, in the sandbox's virtual environment, so in a subprocess with that
  environment's Python): the same N envelopes, sealed beforehand, are sent by
  ``concurrency`` threads (one ``MeshClient`` per thread and mailbox); the inbox is listed;
  ``concurrency`` threads retrieve, read and acknowledge. Timed inside the subprocess, so
  interpreter start-up and imports are not counted.

Every run starts from a reset sandbox and an untimed warm-up of ``concurrency`` messages
(handshakes, connections). The time is first send → last acknowledgement. Each side is run
``--repeat`` times (default 3), interleaved with alternating order, and the median is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

from exchange.connectors.base import Collected, Delivered, Message
from exchange.connectors.mesh import MeshConfig, MeshConnector
from exchange.demo.services import (
    SANDBOX_REQUIREMENTS,
    SANDBOX_VENV,
    Sandbox,
    SandboxUnavailableError,
    build_sandbox_env,
)
from exchange.demo.services import running_sandbox as run_sandbox
from exchange.envelope import Recipient, open_envelope, seal
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script, the bench folder is not a package path
    sys.path.insert(0, str(ROOT))

from bench.envelope import BenchDirectory  # noqa: E402

KB: Final = 1000
KIB: Final = 1024
MIB: Final = 1024 * 1024
SCHOOL: Final = OrgId("urn:106123")
LA: Final = OrgId("la:356")
#: Two of the sandbox's preconfigured mailboxes, its published password, and our shared key.
SENDER: Final = "X26ABC1"
RECIPIENT: Final = "X26ABC2"
PASSWORD: Final = "password"  # noqa: S105 - the sandbox's published test password
SHARED_KEY: Final = "ExchangeBenchKey"
WORKFLOW: Final = "TEST_WORKFLOW"
RECORD_KIND: Final = "referral"
CREATED: Final = 1_767_225_600  # fixed clock: 2026-01-01T00:00:00Z
TIMEOUT: Final = 120.0
TARGET_RATIO: Final = 1.0
MESH_CLIENT_TIMEOUT: Final = 600.0


# --------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True)
class Parties:
    """The sending school, the receiving LA, and the directory the LA verifies with."""

    school: OrgKeyPair
    la: OrgKeyPair
    recipients: tuple[Recipient, ...]
    directory: BenchDirectory


def make_parties() -> Parties:
    school = OrgKeyPair.generate(SCHOOL)
    la = OrgKeyPair.generate(LA)
    return Parties(school, la, (Recipient(LA, la.encryption.public),), BenchDirectory(school))


def seal_one(parties: Parties, content: bytes) -> tuple[bytes, bytes]:
    """Seal ``content`` to the LA; return the envelope and its digest."""
    envelope, info = seal(
        content, parties.school, parties.recipients, record_kind=RECORD_KIND, created=CREATED
    )
    return envelope, info.digest


def contents_for(size: int, count: int, tag: str) -> list[bytes]:
    """Return ``count`` distinct synthetic records of ``size`` bytes (no personal data)."""
    out = []
    for i in range(count):
        head = f"synthetic {tag} record {i} ".encode()
        out.append(head + os.urandom(size - len(head)))
    return out


# --------------------------------------------------------------------------------------------
# The sandbox


@contextlib.contextmanager
def running_sandbox(folder: Path) -> Iterator[Sandbox]:
    """Start the MESH sandbox exactly as the MESH tests do; stop it afterwards."""
    try:
        python = build_sandbox_env(ROOT / SANDBOX_VENV)
    except SandboxUnavailableError as exc:
        raise SystemExit(f"the MESH sandbox could not be started: {exc}") from exc
    with run_sandbox(python, folder, SHARED_KEY) as sandbox:
        yield sandbox


def sandbox_pid() -> int | None:
    """Return the pid of our uvicorn child (the sandbox), for its CPU time."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me and b"mesh_sandbox.api:app" in cmdline:
            return int(entry.name)
    return None


def cpu_seconds(pid: int | None) -> float:
    """Return user + system CPU time of a process, from /proc (0 when unknown)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# Ours


def mesh_config(url: str, mailbox: str, org: OrgId, chunk_size: int) -> MeshConfig:
    return MeshConfig(
        base_url=url,
        mailbox=mailbox,
        password=PASSWORD,
        shared_key=SHARED_KEY.encode(),
        organisation=org,
        envelope_workflow=WORKFLOW,
        chunk_size=chunk_size,
        max_message_size=64 * MIB,
        allow_http=True,
    )


async def our_cycle(
    sender: MeshConnector,
    collector: MeshConnector,
    parties: Parties,
    contents: Sequence[bytes],
    concurrency: int,
) -> None:
    """Seal and send every record, then collect, open, verify and acknowledge them all."""
    expected = {hashlib.sha256(c).digest() for c in contents}
    pending = list(reversed(contents))

    async def send_worker() -> None:
        while pending:
            envelope, digest = seal_one(parties, pending.pop())
            message = Message("envelope", digest, SCHOOL, LA, envelope)
            outcome = await sender.deliver(message, RECIPIENT, timeout=TIMEOUT)
            if isinstance(outcome, Delivered):
                continue
            raise RuntimeError(f"deliver failed: {outcome}")

    async def receive_worker(queue: list[Collected]) -> None:
        while queue:
            item = queue.pop()
            # A body over 64 KiB comes in its spool; these are at most 1 MiB, read whole.
            body = item.body if isinstance(item.body, bytes) else item.body.read(2 * MIB)
            item.close()
            content, _ = open_envelope(body, parties.directory, [parties.la], now=CREATED)
            if hashlib.sha256(content).digest() not in expected:
                raise RuntimeError("an opened envelope holds content that was not sent")
            await collector.acknowledge(item.transport_ref, timeout=TIMEOUT)

    await asyncio.gather(*(send_worker() for _ in range(concurrency)))
    received = 0
    while received < len(contents):
        items = list(await collector.collect(limit=len(contents) - received, timeout=TIMEOUT))
        if not items:
            raise RuntimeError(f"only {received} of {len(contents)} messages arrived")
        received += len(items)
        items.reverse()
        await asyncio.gather(*(receive_worker(items) for _ in range(concurrency)))


@dataclass(frozen=True)
class Timing:
    """One timed run of one side: wall seconds and CPU seconds of client and sandbox."""

    seconds: float
    client_cpu: float
    sandbox_cpu: float


@dataclass(frozen=True)
class Workload:
    """What one run of either side does: the records, and the settings both sides share."""

    warm: Sequence[bytes]
    contents: Sequence[bytes]
    concurrency: int
    chunk_size: int
    server_pid: int | None


async def run_ours(
    url: str, parties: Parties, work: Workload, profile: cProfile.Profile | None = None
) -> Timing:
    """Warm up, then time one cycle of ``work.contents`` through our connector."""
    sender = MeshConnector(mesh_config(url, SENDER, SCHOOL, work.chunk_size))
    collector = MeshConnector(mesh_config(url, RECIPIENT, LA, work.chunk_size))
    try:
        await our_cycle(sender, collector, parties, work.warm, work.concurrency)
        cpu0, server0 = time.process_time(), cpu_seconds(work.server_pid)
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        await our_cycle(sender, collector, parties, work.contents, work.concurrency)
        seconds = time.perf_counter() - started
        if profile is not None:
            profile.disable()
        server_cpu = cpu_seconds(work.server_pid) - server0
        return Timing(seconds, time.process_time() - cpu0, server_cpu)
    finally:
        await sender.close()
        await collector.close()


# --------------------------------------------------------------------------------------------
# mesh-client, in the sandbox's environment

MESH_CLIENT_SCRIPT: Final = r"""
import hashlib, json, os, queue, sys, threading, time
from pathlib import Path
from mesh_client import MeshClient

url, sender, recipient, password, key, workflow, chunk, conc, folder, pid, gz = sys.argv[1:12]
chunk, conc, compress = int(chunk), int(conc), gz == "1"

def server_cpu():
    if pid == "-":
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def load(name):
    return [p.read_bytes() for p in sorted((Path(folder) / name).iterdir())]

warm, payloads = load("warm"), load("timed")

def client(mailbox):
    made = MeshClient(url, mailbox, password, shared_key=key.encode(), verify=False,
                      max_chunk_size=chunk, transparent_compress=compress)
    made.handshake()
    return made

senders = [client(sender) for _ in range(conc)]
receivers = [client(recipient) for _ in range(conc)]

def in_threads(work, items):
    todo = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    errors = []
    def run(index):
        try:
            while True:
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                work(index, item)
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]

def cycle(bodies):
    expected = {hashlib.sha256(b).digest() for b in bodies}
    got = []
    def send(index, body):
        senders[index].send_message(recipient, body, workflow_id=workflow,
                                    local_id=hashlib.sha256(body).hexdigest())
    def receive(index, message_id):
        msg = receivers[index].retrieve_message(message_id)
        got.append(hashlib.sha256(msg.read()).digest())
        msg.acknowledge()
    in_threads(send, bodies)
    ids = list(receivers[0].iterate_message_ids())
    in_threads(receive, ids)
    if len(got) != len(bodies) or set(got) != expected:
        raise SystemExit(f"received {len(got)} of {len(bodies)}, or different bytes")

cycle(warm)
cpu0, server0 = time.process_time(), server_cpu()
started = time.perf_counter()
cycle(payloads)
seconds = time.perf_counter() - started
cpu, server = time.process_time() - cpu0, server_cpu() - server0
print(json.dumps({"seconds": seconds, "cpu": cpu, "server_cpu": server}))
"""


def run_mesh_client(sandbox: Sandbox, folder: Path, work: Workload, *, compress: bool) -> Timing:
    """Run mesh-client's cycle over the envelopes in ``folder`` (warm and timed)."""
    done = subprocess.run(  # noqa: S603 - the sandbox environment's Python, our script
        [
            str(sandbox.python),
            "-c",
            MESH_CLIENT_SCRIPT,
            sandbox.url,
            SENDER,
            RECIPIENT,
            PASSWORD,
            SHARED_KEY,
            WORKFLOW,
            str(work.chunk_size),
            str(work.concurrency),
            str(folder),
            "-" if work.server_pid is None else str(work.server_pid),
            "1" if compress else "0",
        ],
        capture_output=True,
        text=True,
        timeout=MESH_CLIENT_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mesh-client failed: {done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return Timing(float(answer["seconds"]), float(answer["cpu"]), float(answer["server_cpu"]))


def write_envelopes(folder: Path, parties: Parties, contents: Sequence[bytes]) -> None:
    folder.mkdir(parents=True)
    for i, content in enumerate(contents):
        envelope, _ = seal_one(parties, content)
        (folder / f"{i:06d}.exchange").write_bytes(envelope)


# --------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class SizeResult:
    """Every run of both sides for one payload size."""

    label: str
    size: int
    n: int
    envelope_size: int
    chunks: int
    ours: list[Timing]
    theirs: list[Timing]


def median_timing(runs: Sequence[Timing]) -> Timing:
    return sorted(runs, key=lambda t: t.seconds)[len(runs) // 2]


def machine_lines() -> list[str]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    machine = (
        f"- machine: {os.cpu_count()} CPUs ({model}), {platform.machine()}, "
        f"{platform.system()} {platform.release()}; load average before the run "
        f"{os.getloadavg()[0]:.2f}"
    )
    software = (
        f"- Python {platform.python_version()}; aiohttp {metadata.version('aiohttp')}; "
        f"sandbox environment: {', '.join(SANDBOX_REQUIREMENTS)}"
    )
    return [machine, software]


def print_report(
    results: Sequence[SizeResult],
    concurrency: int,
    chunk_size: int,
    *,
    quick: bool,
    compress: bool,
) -> None:
    print(f"# MESH benchmark{' (--quick)' if quick else ''}\n")
    print("\n".join(machine_lines()))
    print(
        f"- send → list → download → acknowledge, X26ABC1 → X26ABC2 on the MESH sandbox "
        f"(127.0.0.1, plain HTTP, STORE_MODE=memory); concurrency {concurrency} on both sides; "
        f"chunk size {chunk_size // KIB} KiB (uncompressed) on both sides; mesh-client "
        f"transparent_compress={compress}; median of {len(results[0].ours)} runs per side, "
        "interleaved\n"
    )
    print(
        "| payload | N | envelope bytes (chunks) | ours env/s | mesh-client msg/s "
        "| ratio (ours/theirs) | target | result |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        ours, theirs = median_timing(r.ours), median_timing(r.theirs)
        eps, mps = r.n / ours.seconds, r.n / theirs.seconds
        ratio = eps / mps
        print(
            f"| {r.label} | {r.n} | {r.envelope_size:,} ({r.chunks}) | {eps:,.1f} | {mps:,.1f} "
            f"| {ratio:.2f} | ≥ {TARGET_RATIO:.1f} | {'met' if ratio >= TARGET_RATIO else 'MISS'} |"
        )
    print(
        "\n| payload | CPU ms per message: ours (client) | mesh-client (client) "
        "| sandbox, serving ours | sandbox, serving mesh-client |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in results:
        ours, theirs = median_timing(r.ours), median_timing(r.theirs)
        print(
            f"| {r.label} | {ours.client_cpu / r.n * 1e3:.2f} | "
            f"{theirs.client_cpu / r.n * 1e3:.2f} | {ours.sandbox_cpu / r.n * 1e3:.2f} | "
            f"{theirs.sandbox_cpu / r.n * 1e3:.2f} |"
        )
    print()
    for r in results:
        print(
            f"- {r.label}, every run (messages/s): ours "
            + ", ".join(f"{r.n / t.seconds:,.1f}" for t in r.ours)
            + "; mesh-client "
            + ", ".join(f"{r.n / t.seconds:,.1f}" for t in r.theirs)
        )


def print_profile(label: str, profile: cProfile.Profile) -> None:
    for key, name in (("tottime", "own time"), ("cumulative", "cumulative time")):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(key).print_stats(25)
        print(f"\n## cProfile of our side, {label}, by {name}\n\n```")
        print(out.getvalue().strip())
        print("```")


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (about 6 s)")
    parser.add_argument("--n-small", type=int, default=None, help="10 KB messages per run")
    parser.add_argument("--n-large", type=int, default=None, help="1 MiB messages per run")
    parser.add_argument("--concurrency", type=int, default=4, help="in flight, each side")
    parser.add_argument(
        "--chunk-size", type=int, default=256 * KIB, help="uncompressed bytes per chunk"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median kept)")
    parser.add_argument(
        "--profile", action="store_true", help="also profile one run of ours per size"
    )
    parser.add_argument(
        "--mesh-client-compress",
        action="store_true",
        help="mesh-client with transparent_compress=True (gzips what it sends, as we do)",
    )
    args = parser.parse_args(argv)
    n_small = args.n_small or (60 if args.quick else 400)
    n_large = args.n_large or (6 if args.quick else 30)
    if min(n_small, n_large, args.concurrency, args.repeat, args.chunk_size) < 1:
        parser.error("counts, concurrency, repeat and chunk size must be positive")

    parties = make_parties()
    sizes = (("10 KB", 10 * KB, n_small), ("1 MiB", MIB, n_large))
    profiles: dict[str, cProfile.Profile] = {}
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-mesh-") as tmp,
        running_sandbox(Path(tmp)) as sandbox,
    ):
        pid = sandbox_pid()
        for label, size, n in sizes:
            warm = contents_for(size, args.concurrency, "warm-up")
            contents = contents_for(size, n, "timed")
            folder = Path(tmp) / f"payloads-{size}"
            write_envelopes(folder / "warm", parties, warm)
            write_envelopes(folder / "timed", parties, contents)
            envelope_size = len(seal_one(parties, contents[0])[0])
            work = Workload(warm, contents, args.concurrency, args.chunk_size, pid)
            ours: list[Timing] = []
            theirs: list[Timing] = []
            for rep in range(args.repeat):
                for side in ("ours", "theirs") if rep % 2 == 0 else ("theirs", "ours"):
                    sandbox.reset()
                    if side == "ours":
                        ours.append(asyncio.run(run_ours(sandbox.url, parties, work)))
                    else:
                        theirs.append(
                            run_mesh_client(
                                sandbox, folder, work, compress=args.mesh_client_compress
                            )
                        )
            if args.profile:
                sandbox.reset()
                profiles[label] = cProfile.Profile()
                asyncio.run(run_ours(sandbox.url, parties, work, profiles[label]))
            results.append(
                SizeResult(
                    label,
                    size,
                    n,
                    envelope_size,
                    -(-envelope_size // args.chunk_size),
                    ours,
                    theirs,
                )
            )
    print_report(
        results,
        args.concurrency,
        args.chunk_size,
        quick=args.quick,
        compress=args.mesh_client_compress,
    )
    for label, profile in profiles.items():
        print_profile(label, profile)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
