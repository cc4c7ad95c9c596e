"""Memory of a node under unsigned peer uploads, against plain connections (issue 11, finding 7).

Run ``python bench/peer_uploads.py`` (24 uploads, the issue's case), ``--uploads N`` to
choose the number, ``--declared MIB`` for the body size each one declares.

What is measured:

- an LA node is created with :func:`start_deployment` (test CA, TLS on 127.0.0.1), stopped,
  and served again as ``exchange serve`` from the configuration file the deployment wrote,
  in its own process;
- attack: N clients at once each open a TLS connection, declare a ``--declared`` MiB
  envelope to ``/peer/v1/orgs/la:356/envelopes`` without a signature, and send its body in
  256 KiB pieces until the node answers; the node's resident memory (VmRSS) is sampled
  every 10 ms, and the growth is the peak minus the resident memory just before;
- reference, in the same run and against the same process: N clients at once each open a
  TLS connection and ask ``GET /sign-in`` (a small page): the memory N connections cost
  when no body is involved. Printed: both growths, their ratio (attack / reference; near 1
  means an unsigned upload costs no more than a connection), and the time to the last 401.

Each phase is preceded by a warm-up of 3 requests of its kind, not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams

LA = OrgId("la:356")
ORGS = (OrgSpec(OrgId("urn:106123"), "Hillside Primary School", "school", "school"),
        OrgSpec(LA, "Stockport front door", "la", "la"))  # fmt: skip
PIECE = b"\x00" * (256 * 1024)
MIB = 1024 * 1024


def rss(pid: int) -> int:
    """Return the resident memory of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def connect(world: Deployment) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TLS connection to the LA node."""
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    port = world.nodes["la"].port
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )


async def status_of(reader: asyncio.StreamReader) -> int:
    """Read an answer's status line and headers; return the status."""
    line = await asyncio.wait_for(reader.readline(), timeout=120)
    while await asyncio.wait_for(reader.readline(), timeout=120) not in {b"\r\n", b""}:
        pass
    return int(line.split()[1])


async def unsigned_upload(world: Deployment, declared: int) -> int:
    """Declare ``declared`` bytes, unsigned, and send them until the node answers."""
    reader, writer = await connect(world)
    port = world.nodes["la"].port
    writer.write(
        (
            f"POST /peer/v1/orgs/{LA}/envelopes HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/vnd.exchange.envelope\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
    )
    answered = asyncio.create_task(status_of(reader))

    async def send() -> None:
        sent = 0
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while sent < declared and not answered.done():
                writer.write(PIECE)
                await writer.drain()
                sent += len(PIECE)

    sending = asyncio.create_task(send())
    try:
        return await answered
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def health(world: Deployment) -> int:
    """Ask for the sign-in page on a new connection; return the status.

    The main listener serves no /healthz (the node's operations listener does).
    """
    reader, writer = await connect(world)
    port = world.nodes["la"].port
    writer.write(f"GET /sign-in HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    try:
        return await status_of(reader)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def growth(
    pid: int, n: int, one: Callable[[], Awaitable[int]]
) -> tuple[int, float, set[int]]:
    """Run ``one`` 3 times, then ``n`` at once; return (peak growth, seconds, statuses)."""
    for _ in range(3):
        await one()
    baseline = rss(pid)
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss(pid))
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    start = time.monotonic()
    statuses = await asyncio.gather(*(one() for _ in range(n)))
    took = time.monotonic() - start
    done.set()
    await sampler
    return peak - baseline, took, set(statuses)


async def main(uploads: int, declared: int) -> None:
    """Run the benchmark and print its report."""
    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as folder:
        world = await start_deployment(Path(folder), ORGS, kdf=KdfParams.fast_for_tests())
        await world.nodes["la"].stop()
        exchange = Path(sys.executable).with_name("exchange")
        config = world.folder / "node-la.toml"
        with Path(os.devnull).open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                str(exchange), "serve", "--config", str(config), stdout=sink, stderr=sink
            )
        try:
            for _ in range(300):
                with contextlib.suppress(OSError):
                    if await health(world) == 200:
                        break
                await asyncio.sleep(0.1)
            reference, _, ref_statuses = await growth(proc.pid, uploads, lambda: health(world))
            attack, took, statuses = await growth(
                proc.pid, uploads, lambda: unsigned_upload(world, declared)
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
            await world.stop()
    print(f"node: exchange serve, pid {proc.pid}; {uploads} connections at once")
    name = f"{uploads} x GET /sign-in"
    print(f"reference  {name:<32} +{reference / MIB:7.1f} MiB  {ref_statuses}")
    name = f"{uploads} x unsigned {declared // MIB} MiB upload"
    print(f"attack     {name:<32} +{attack / MIB:7.1f} MiB  {statuses}, closed in {took:.2f} s")
    ratio = attack / max(reference, MIB)
    print(f"ratio attack / reference: {ratio:.2f} (a growth under 1 MiB counts as 1 MiB)")
    print(f"ratio attack / bodies declared: {attack / (uploads * declared):.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=24)
    parser.add_argument("--declared", type=int, default=64, metavar="MIB")
    options = parser.parse_args()
    asyncio.run(main(options.uploads, options.declared * MIB))
