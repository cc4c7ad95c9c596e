"""Large envelopes between nodes: memory and speed of every hop (issue 14, target 4, the hops).

Run ``python bench/large_hops.py`` (100 MiB and 1 GiB on every route, each run 3 times,
the median time kept, and each process's highest peak), ``--quick`` (16 and 100 MiB once,
under three minutes), ``--sizes 100,1024`` (MiB), ``--routes https,relay,mesh`` and
``--repeat N`` to choose.

What is measured, each route with the sizes given:

- **https**: a sender process pushes a sealed envelope from its file to the LA node
  (``exchange serve`` in its own process, from the configuration a loopback deployment
  wrote) over TLS; the time ends at the ``delivered`` receipt (the body verified and stored).
- **relay**: the sender deposits it at the LA node's relay; the receiving school's node
  (``exchange serve`` too) collects it, verifies and stores it; the time ends when its
  inbox lists it.
- **mesh**: the sender sends it to NHS MESH (the real sandbox, as the MESH tests start it)
  in chunks of ``--mesh-chunk`` MiB (20 by default; the live service takes at most 100 MB
  per request and 20 GB per message); the LA node collects it for the school nurses; the
  time ends when the LA node's inbox lists it. The sandbox keeps messages in memory: its
  own memory is shown, it is not ours.

The collecting nodes look for new items every 0.2 s (``collect_interval``; 5 s by default),
so that the time is the hop's, not the wait for the next round.

The sender process does what a node's delivery worker does with a stored body: one read to
check it and hash it (Content-Digest), then the connector sends it from the file. Every
process's peak resident memory (``VmHWM``, reset before each run through
``/proc/PID/clear_refs``) is printed for each size: constant memory is the same peak at
100 MiB and at 1 GiB. Throughput is the envelope's bytes over the time.

References measured in the same run, as ratios: reading the envelope file and hashing it
with SHA-256 (one process, the least any hop does), and a bare aiohttp streamed upload over
TLS on loopback (a client posting the file, a handler writing it to disk and syncing it).
The machine has 2 cores shared with other work: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script, the bench folder is not a package path
    sys.path.insert(0, str(ROOT))

from exchange.config import DeliveryConfig, MeshTenantConfig, RelayConfig  # noqa: E402
from exchange.connectors.base import Connector, Delivered, Message  # noqa: E402
from exchange.connectors.bodies import body_sha256, file_body  # noqa: E402, file_body
from exchange.connectors.https import HttpsPushConnector, request_signer  # noqa: E402
from exchange.connectors.mesh import MeshConfig, MeshConnector  # noqa: E402
from exchange.connectors.relay_mailbox import RelayMailboxConnector  # noqa: E402
from exchange.demo.loopback import (  # noqa: E402
    PASSPHRASE_ENV,
    Deployment,
    OrgSpec,
    start_deployment,
)
from exchange.demo.services import (  # noqa: E402
    SANDBOX_VENV,
    SandboxUnavailableError,
    build_sandbox_env,
)
from exchange.demo.services import running_sandbox as run_sandbox  # noqa: E402
from exchange.envelope import Recipient  # noqa: E402
from exchange.files import seal_file  # noqa: E402
from exchange.keys.ids import OrgId  # noqa: E402
from exchange.keys.keyfile import KdfParams, decode_key_file  # noqa: E402
from exchange.keys.keypairs import OrgKeyPair  # noqa: E402

MIB: Final = 1024 * 1024
SCHOOL: Final = OrgId("urn:106123")
LA: Final = OrgId("la:356")
NURSES: Final = OrgId("ods:X26ABC")
RECEIVING: Final = OrgId("urn:106124")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(LA, "Stockport front door", "la", "la"),
    OrgSpec(NURSES, "School nursing team", "nhs", "la"),
    OrgSpec(RECEIVING, "Moorside Primary School", "school", "receiving"),
)
#: The sandbox's preconfigured mailboxes, its published password, and our shared key.
MESH_SENDER: Final = "X26ABC1"
MESH_RECIPIENT: Final = "X26ABC2"
MESH_PASSWORD: Final = "password"  # noqa: S105 - the sandbox's published test password
MESH_KEY: Final = "ExchangeBenchKey"
WORKFLOW: Final = "EXCHANGE_TEST"
#: Where each route delivers, and the node that stores it.
DESTINATION: Final = {
    "https": (LA, "la"),
    "relay": (RECEIVING, "receiving"),
    "mesh": (NURSES, "la"),
}
TIMEOUT: Final = 1800.0


# --- memory of processes --------------------------------------------------------------------


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field}")


def reset_peak(pid: int) -> None:
    """Reset the process's peak resident memory (VmHWM) to what it holds now."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak(pid: int) -> int:
    """Return the process's peak resident memory since its last reset, in bytes."""
    return _status(pid, "VmHWM")


# --- the roles run as subprocesses ----------------------------------------------------------


def _org_pair(folder: Path, org: OrgId) -> OrgKeyPair:
    (path,) = folder.glob(f"{org.replace(':', '-')}-*.key")
    return decode_key_file(path.read_bytes(), os.environ[PASSPHRASE_ENV].encode())


async def send_role(args: argparse.Namespace) -> None:
    """Deliver one envelope file as the school's node would; print the seconds it took."""
    folder = Path(args.world)
    pair = _org_pair(folder, SCHOOL)
    sign = request_signer(lambda _org: pair, lambda: int(time.time()))
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    path = Path(args.envelope)
    destination = OrgId(args.destination)
    started, wall = time.perf_counter(), time.time()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        connector: Connector
        if args.route == "https":
            connector = HttpsPushConnector(session, sign)
        elif args.route == "relay":
            connector = RelayMailboxConnector(session, sign)
        else:
            connector = MeshConnector(
                MeshConfig(
                    base_url=args.address_base, mailbox=MESH_SENDER, password=MESH_PASSWORD,
                    shared_key=MESH_KEY.encode(), organisation=SCHOOL, envelope_workflow=WORKFLOW,
                    chunk_size=args.mesh_chunk * MIB, allow_http=True,
                )
            )  # fmt: skip
        # What the delivery worker does first: one read of the stored body, hashed.
        sha256 = await body_sha256(file_body(path))
        message = Message(
            "envelope", bytes.fromhex(args.digest), SCHOOL, destination,
            file_body(path, sha256),
        )  # fmt: skip
        outcome = await connector.deliver(message, args.address, timeout=TIMEOUT)
        await connector.close()
    if not isinstance(outcome, Delivered):
        raise SystemExit(f"not delivered: {outcome}")
    print(json.dumps({"seconds": time.perf_counter() - started, "start": wall}), flush=True)


async def ref_server_role(args: argparse.Namespace) -> None:
    """Serve POST /upload over TLS: write the body to a file, sync it, answer 200."""
    folder = Path(args.world)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "la.crt", folder / "la.key.pem")
    out_folder = Path(args.out)

    async def upload(request: web.Request) -> web.Response:
        path = out_folder / "upload.bin"
        with path.open("wb") as out:
            async for piece in request.content.iter_chunked(1024 * 1024):
                await asyncio.to_thread(out.write, piece)
            await asyncio.to_thread(os.fsync, out.fileno())
        path.unlink()
        return web.Response(text="stored")

    app = web.Application(client_max_size=1 << 40)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


async def ref_client_role(args: argparse.Namespace) -> None:
    """POST the file to the reference server, streamed by aiohttp; print the seconds."""
    folder = Path(args.world)
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    path = Path(args.envelope)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        with path.open("rb") as body:
            async with session.post(args.address, data=body) as resp:
                assert resp.status == 200, resp.status
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


# --- the parent -----------------------------------------------------------------------------


@dataclasses.dataclass
class Process:
    """A process whose memory is measured."""

    name: str
    pid: int


@dataclasses.dataclass
class Row:
    """One measured run."""

    route: str
    size: int
    seconds: float
    peaks: dict[str, int]


def _content(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            step = min(MIB, left)
            out.write(os.urandom(step))
            left -= step


def seal_for(world: Deployment, folder: Path, size: int, to: OrgId) -> tuple[Path, str]:
    """Seal ``size`` bytes of random content from the school to ``to``; return file and digest."""
    assert world.directory is not None
    now = int(time.time())
    content = folder / "content.bin"
    _content(content, size)
    out = folder / f"envelope-{to.replace(':', '-')}-{size}.bin"
    recipient = Recipient(to, world.directory.current_keys(to, now).encryption)
    pair = _org_pair(world.folder, SCHOOL)
    with content.open("rb") as stream:
        sealed = seal_file(stream, out, pair, [recipient], record_kind="cp-file", created=now)
    content.unlink()
    return out, sealed.digest.hex()


@contextlib.contextmanager
def serving(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``exchange serve`` with ``config`` in its own process."""
    exchange = Path(sys.executable).with_name("exchange")
    with log.open("wb") as sink:
        proc = subprocess.Popen(  # noqa: S603 - our own command line
            [str(exchange), "serve", "--config", str(config)], stdout=sink, stderr=sink
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _ready(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"exchange serve exited ({proc.returncode})")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url + "/sign-in") as resp:
                if resp.status < 500:
                    return
        await asyncio.sleep(0.2)
    raise SystemExit("a node did not start")


async def _listed(
    http: aiohttp.ClientSession, world: Deployment, node: str, org: OrgId, digest: str
) -> None:
    """Wait until ``org``'s inbox on ``node`` lists ``digest``."""
    headers = {"Authorization": f"Bearer {world.tokens[(org, 'staff')]}"}
    while True:
        async with http.get(world.url(node) + "/api/v1/inbox", headers=headers) as resp:
            if resp.status == 200:
                doc = await resp.json()
                if any(item.get("digest") == digest for item in doc.get("items", [])):
                    return
        await asyncio.sleep(0.05)


def _role(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, __file__, *argv], stdout=subprocess.PIPE
    )


async def _finish(proc: subprocess.Popen[bytes]) -> tuple[dict[str, float], int]:
    """Wait for a role process; return what it printed and its peak memory."""
    sender_peak = 0
    while proc.poll() is None:
        sender_peak = max(sender_peak, _safe_peak(proc.pid))
        await asyncio.sleep(0.05)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"a sender failed: {out}")
    return json.loads(out.strip().splitlines()[-1]), sender_peak


def _safe_peak(pid: int) -> int:
    try:
        return peak(pid)
    except (OSError, RuntimeError):
        return 0


@dataclasses.dataclass
class Bench:
    """What every run needs: the deployment, the processes measured, a client, MESH."""

    world: Deployment
    folder: Path
    processes: Sequence[Process]
    http: aiohttp.ClientSession
    mesh_url: str | None
    mesh_chunk: int


async def run_route(bench: Bench, route: str, size: int) -> Row:
    """Send one envelope of ``size`` content bytes over ``route``; return what was measured."""
    world, processes = bench.world, bench.processes
    to, node = DESTINATION[route]
    envelope, digest = seal_for(world, bench.folder, size, to)
    for p in processes:
        reset_peak(p.pid)
    argv = ["--role", "send", "--route", route, "--world", str(world.folder),
            "--envelope", str(envelope), "--digest", digest, "--destination", to,
            "--mesh-chunk", str(bench.mesh_chunk)]  # fmt: skip
    if route in {"https", "relay"}:
        argv += ["--address", world.url("la")]
    else:
        assert bench.mesh_url is not None
        argv += ["--address", MESH_RECIPIENT, "--address-base", bench.mesh_url]
    proc = _role(*argv)
    printed, sender_peak = await _finish(proc)
    await _listed(bench.http, world, node, to, digest)
    # From the first byte read by the sender (its start-up not counted) to the inbox.
    seconds = max(printed["seconds"], time.time() - printed["start"])
    peaks = {"sender": sender_peak, **{p.name: peak(p.pid) for p in processes}}
    envelope.unlink()
    return Row(route, size, seconds, peaks)


def hash_reference(folder: Path, size: int) -> float:
    """Return the seconds to read a ``size``-byte file and hash it (the least a hop does)."""
    path = folder / "ref.bin"
    _content(path, size)
    started = time.perf_counter()
    running = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(MIB):
            running.update(piece)
    seconds = time.perf_counter() - started
    path.unlink()
    return seconds


async def upload_reference(world: Deployment, folder: Path, size: int) -> Row:
    """Stream a file with a bare aiohttp client to a bare aiohttp handler over TLS."""
    path = folder / "ref-upload.bin"
    _content(path, size)
    out = folder / "ref-out"
    out.mkdir(exist_ok=True)
    server = _role("--role", "ref-server", "--world", str(world.folder), "--out", str(out))
    try:
        assert server.stdout is not None
        port = json.loads(await asyncio.to_thread(server.stdout.readline))["port"]
        reset_peak(server.pid)
        address = f"https://127.0.0.1:{port}/upload"
        client = _role("--role", "ref-client", "--world", str(world.folder),
                       "--envelope", str(path), "--address", address)  # fmt: skip
        printed, client_peak = await _finish(client)
        peaks = {"sender": client_peak, "server": peak(server.pid)}
        return Row("bare aiohttp", size, printed["seconds"], peaks)
    finally:
        server.terminate()
        server.wait()
        path.unlink()


@contextlib.contextmanager
def maybe_sandbox(folder: Path, want: bool) -> Iterator[tuple[str | None, int | None]]:
    """Run the MESH sandbox if asked and available; yield its URL and pid (or Nones)."""
    if not want:
        yield None, None
        return
    try:
        python = build_sandbox_env(ROOT / SANDBOX_VENV)
    except SandboxUnavailableError as exc:
        print(f"MESH sandbox unavailable, mesh route skipped: {exc}")
        yield None, None
        return
    with run_sandbox(python, folder, MESH_KEY) as sandbox:
        pid = _pid_listening(sandbox.url)
        yield sandbox.url, pid


def _pid_listening(url: str) -> int | None:
    """Return the pid of the sandbox's uvicorn (the child listening on the URL's port)."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"mesh_sandbox.api:app" in cmdline and port.encode() in cmdline:
                return int(proc.name)
    return None


@contextlib.asynccontextmanager
async def deployment(
    folder: Path, mesh_url: str | None, mesh_chunk: int, max_bytes: int
) -> AsyncIterator[Deployment]:
    """Create the loopback deployment (in-process nodes stopped; served again by the caller)."""
    mesh = None
    routes: dict[OrgId, tuple[tuple[str, str], ...]] = {RECEIVING: (("mailbox", "la"),)}
    if mesh_url is not None:
        os.environ["BENCH_MESH_PASSWORD"] = MESH_PASSWORD
        os.environ["BENCH_MESH_KEY"] = MESH_KEY
        mesh = {
            NURSES: MeshTenantConfig(
                url=mesh_url, mailbox=MESH_RECIPIENT, password_env="BENCH_MESH_PASSWORD",  # noqa: S106
                shared_key_env="BENCH_MESH_KEY", workflow=WORKFLOW,
                chunk_size=mesh_chunk * MIB, allow_http=True,
            )
        }  # fmt: skip
        routes[NURSES] = (("mesh", MESH_RECIPIENT),)
    world = await start_deployment(
        folder, ORGS, users={LA: ["staff"], NURSES: ["staff"], RECEIVING: ["staff"]},
        kdf=KdfParams.fast_for_tests(), routes=routes, relays={"la": RelayConfig()},
        mesh=mesh, max_envelope_bytes=max_bytes, delivery=DeliveryConfig(collect_interval=0.2),
    )  # fmt: skip
    try:
        for name in ("school", "la", "receiving"):
            await world.nodes[name].stop()
        yield world
    finally:
        await world.stop()


def median_row(runs: Sequence[Row]) -> Row:
    """Return the run of median time, with each process's highest peak over all the runs."""
    ordered = sorted(runs, key=lambda row: row.seconds)
    middle = ordered[(len(ordered) - 1) // 2]
    peaks = {name: max(run.peaks[name] for run in runs) for name in middle.peaks}
    return dataclasses.replace(middle, peaks=peaks)


def _mb_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def print_table(rows: Sequence[Row], refs: dict[int, tuple[float, Row]]) -> None:
    """Print the Markdown table: per route and size, time, MB/s, ratios and peak memory."""
    print()
    print("| route | size | seconds | MB/s | ÷ read+SHA-256 | ÷ bare aiohttp upload | "
          "peak RSS per process (MiB) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        hashed, upload = refs[row.size]
        speed = _mb_s(row.size, row.seconds)
        peaks = ", ".join(f"{name} {value / MIB:.0f}" for name, value in row.peaks.items())
        print(
            f"| {row.route} | {row.size // MIB} MiB | {row.seconds:.2f} | {speed:.0f} | "
            f"{speed / _mb_s(row.size, hashed):.2f} | "
            f"{speed / _mb_s(row.size, upload.seconds):.2f} | {peaks} |"
        )
    for size, (hashed, upload) in sorted(refs.items()):
        peaks = ", ".join(f"{name} {value / MIB:.0f}" for name, value in upload.peaks.items())
        print(
            f"| reference: read + SHA-256 | {size // MIB} MiB | {hashed:.2f} | "
            f"{_mb_s(size, hashed):.0f} | 1.00 | | |"
        )
        print(
            f"| reference: bare aiohttp TLS upload to disk | {size // MIB} MiB | "
            f"{upload.seconds:.2f} | {_mb_s(size, upload.seconds):.0f} | | 1.00 | {peaks} |"
        )


async def main(args: argparse.Namespace) -> None:
    """Measure every route at every size, with the references, and print the table."""
    sizes = [int(s) * MIB for s in args.sizes.split(",")]
    routes = [r for r in args.routes.split(",") if r]
    print(f"load average before: {os.getloadavg()[0]:.2f}; sizes {args.sizes} MiB; "
          f"routes {', '.join(routes)}; MESH chunks {args.mesh_chunk} MiB")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-hops-") as tmp:
        folder = Path(tmp)
        rows: list[Row] = []
        refs: dict[int, tuple[float, Row]] = {}
        with maybe_sandbox(folder, "mesh" in routes) as (mesh_url, sandbox_pid):
            if mesh_url is None:
                routes = [r for r in routes if r != "mesh"]
            async with deployment(
                folder / "world", mesh_url, args.mesh_chunk, max(sizes) + 64 * MIB
            ) as world:
                logs = folder / "logs"
                logs.mkdir()
                with (
                    serving(world.folder / "node-la.toml", logs / "la.log") as la,
                    serving(world.folder / "node-receiving.toml", logs / "receiving.log") as rc,
                ):
                    processes = [Process("la node", la.pid), Process("receiving node", rc.pid)]
                    if sandbox_pid is not None:
                        processes.append(Process("MESH sandbox (not ours)", sandbox_pid))
                    context = ssl.create_default_context(cafile=str(world.ca_file))
                    connector = aiohttp.TCPConnector(ssl=context)
                    async with aiohttp.ClientSession(connector=connector) as http:
                        await _ready(http, world.url("la"), la)
                        await _ready(http, world.url("receiving"), rc)
                        bench = Bench(world, folder, processes, http, mesh_url, args.mesh_chunk)
                        for size in sizes:
                            hashes, uploads = [], []
                            for _ in range(args.repeat):
                                hashes.append(hash_reference(folder, size))
                                uploads.append(await upload_reference(world, folder, size))
                            refs[size] = (statistics.median(hashes), median_row(uploads))
                            for route in routes:
                                print(f"{route}, {size // MIB} MiB ...", flush=True)
                                runs = [
                                    await run_route(bench, route, size) for _ in range(args.repeat)
                                ]
                                rows.append(median_row(runs))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print_table(rows, refs)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (the roles' options included)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 and 100 MiB only")
    parser.add_argument("--sizes", default="100,1024", help="content sizes in MiB")
    parser.add_argument("--routes", default="https,relay,mesh")
    parser.add_argument("--mesh-chunk", type=int, default=20, help="MESH chunk size in MiB")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each; the median time is kept"
    )
    parser.add_argument("--role", default="main", help=argparse.SUPPRESS)
    for name in ("world", "envelope", "digest", "destination", "address", "address-base",
                 "out", "route"):  # fmt: skip
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = "16,100"
        args.repeat = 1
    return args


if __name__ == "__main__":
    ARGS = parse()
    ROLES = {"send": send_role, "ref-server": ref_server_role, "ref-client": ref_client_role}
    asyncio.run(ROLES.get(ARGS.role, main)(ARGS))
