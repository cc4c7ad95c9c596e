"""Benchmark of the node's ledger on a large log: checkpoints, bundles and memory.

Run ``python bench/ledger.py`` (``--events N`` to choose the log size, 100,000 by default).
It fills a SQLite store in a temporary folder with N events, in transactions of 1,000, then
prints, for a :class:`~exchange.service.ledger.NodeLedger` opened on it:

- how long ``load()`` takes, then the first checkpoint (which checks every stored event
  against the stored tree once), then a checkpoint after one more event;
- how long a proof bundle for one event takes (``bundle_for``, which checkpoints first)
  and the bundles of one envelope under the last checkpoint (``bundles_for``);
- the Python memory a fresh ledger holds after ``load()`` and one ``bundle_for``
  (``tracemalloc``: what stays allocated, with the ledger still alive).

Times are the best of three on a shared machine; they are printed, not checked.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

from exchange.keys.ids import OrgId
from exchange.keys.keypairs import SigningKey
from exchange.keys.notes import NoteSigner
from exchange.ledger.events import EventType
from exchange.model import EnvelopeDigest
from exchange.service.ledger import NodeLedger, ledger_event
from exchange.store import SqliteStore

ORIGIN = "exchange.example/node/bench"
T0 = 1_767_225_600
BATCH = 1000


def _event(i: int) -> bytes:
    digest = EnvelopeDigest(i.to_bytes(32, "big"))
    return ledger_event(EventType.SUBMITTED, T0 + i, OrgId("la:356"), digest)


async def _best(what: str, action: Callable[[], Awaitable[object]]) -> None:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        await action()
        times.append(time.perf_counter() - start)
    print(f"{what:<52} {min(times) * 1000:10.2f} ms")


async def run(events: int) -> None:
    """Fill a store with ``events`` events and print the ledger's times and memory."""
    signer = NoteSigner(ORIGIN, SigningKey(b"\x07" * 32))
    with tempfile.TemporaryDirectory() as folder:
        store = await SqliteStore.open(Path(folder))
        try:
            for start in range(0, events, BATCH):
                await store.append_ledger(
                    [_event(i) for i in range(start, min(events, start + BATCH))]
                )
            print(f"log of {await store.ledger_size()} events")
            ledger = NodeLedger(store, signer, time.time)
            start = time.perf_counter()
            await ledger.load()
            print(f"{'load()':<52} {(time.perf_counter() - start) * 1000:10.2f} ms")
            start = time.perf_counter()
            await ledger.checkpoint()
            print(f"{'first checkpoint()':<52} {(time.perf_counter() - start) * 1000:10.2f} ms")
            size = events

            async def grow_and_checkpoint() -> None:
                nonlocal size
                await store.append_ledger([_event(size)])
                size += 1
                await ledger.checkpoint()

            await _best("checkpoint() after one more event", grow_and_checkpoint)
            middle = _event(events // 2)
            await _best(
                "bundle_for(one event) (checkpoints first)", lambda: ledger.bundle_for(middle)
            )
            digest = [EnvelopeDigest((events // 3).to_bytes(32, "big"))]
            await _best("bundles_for(one envelope)", lambda: ledger.bundles_for(digest))
            # Memory, measured apart since tracing slows everything down: a fresh ledger.
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            fresh = NodeLedger(store, signer, time.time)
            await fresh.load()
            await fresh.bundle_for(middle)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            del fresh
            print(f"{'memory the ledger holds (tracemalloc)':<52} {held / 1024:10.1f} KiB")
        finally:
            await store.close()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    asyncio.run(run(parser.parse_args().events))


if __name__ == "__main__":
    main()
