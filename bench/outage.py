"""Benchmark of draining a backlog after an outage (docs/performance.md, "After an outage").

Run ``python bench/outage.py`` (``--n`` items, ``--outage`` seconds, ``--quick``).

Two real nodes on loopback (the school and the LA, in this process, with the production
delivery settings: back-off from 2 s doubling to 10 minutes) and the school's staff API:

1. **Reference**: with the LA up, ``n`` referrals are submitted (16 at a time) and the time
   until the school's outbox has delivered them all gives the rate the pair sustains.
2. **After an outage, as built**: the LA node stops; ``n`` referrals are submitted and fail
   for ``--outage`` seconds (each waiting on its own back-off); the LA starts again and
   one more referral is submitted. The drain time is from the restart until every item is
   delivered; its rate is ``n / drain`` and the ratio is against the reference's rate.
3. **After an outage, timers only**: the same with the outbox's "destination answers
   again" step switched off in this process (how the node behaved before), for comparison.

Target: the backlog drains at ≥ 0.8 of the reference rate.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import aiohttp

from exchange.config import load_config
from exchange.demo.loopback import Deployment, start_deployment
from exchange.keys.keyfile import KdfParams
from exchange.logs import configure
from exchange.node.runtime import Node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.node.conftest import LA, ORGS, SCHOOL
from tests.node.helpers import client, submit

TARGET: Final = 0.8
IN_FLIGHT: Final = 16


async def _submit_many(http: aiohttp.ClientSession, world: Deployment, n: int, tag: str) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with gate:
            await submit(http, world, f'{{"synthetic": "{tag} {i}"}}'.encode(), [LA])

    await asyncio.gather(*(one(i) for i in range(n)))


async def _delivered(world: Deployment) -> int:
    counts = await world.nodes["school"].service.store.outbox_counts()
    return counts.get("delivered", 0)


async def _until_delivered(world: Deployment, total: int, limit: float) -> float:
    start = time.monotonic()
    while await _delivered(world) < total:
        if time.monotonic() - start > limit:
            raise TimeoutError(f"{total - await _delivered(world)} items not delivered")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def _outage(
    world: Deployment, http: aiohttp.ClientSession, n: int, outage: float, tag: str
) -> float:
    """Stop the LA, queue ``n``, wait ``outage`` s, restart it; return the drain time."""
    before = await _delivered(world)
    await world.nodes["la"].stop()
    await _submit_many(http, world, n, tag)
    await asyncio.sleep(outage)
    world.nodes["la"] = Node(load_config(world.folder / "node-la.toml"))
    await world.nodes["la"].start()
    back = time.monotonic()
    await submit(http, world, f'{{"synthetic": "{tag} after"}}'.encode(), [LA])
    await _until_delivered(world, before + n + 1, limit=900.0)
    return time.monotonic() - back


async def _run(n: int, outage: float) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        world = await start_deployment(
            Path(tmp), ORGS, users={SCHOOL: ["dsl"]}, kdf=KdfParams.fast_for_tests()
        )
        try:
            async with client(world) as http:
                start = time.monotonic()
                await _submit_many(http, world, n, "reference")
                await _until_delivered(world, n, limit=600.0)
                reference = time.monotonic() - start
                built = await _outage(world, http, n, outage, "built")
                worker: Any = world.nodes["school"].worker

                async def timers_only(*_: object) -> None:
                    return None

                worker._answering_again = timers_only
                timers = await _outage(world, http, n, outage, "timers")
        finally:
            await world.stop()
    ref_rate = n / reference
    rows = [
        ("reference: LA up throughout (submit and deliver)", reference, ref_rate, None),
        ("after the outage, as built (drain)", built, (n + 1) / built, True),
        ("after the outage, back-off timers only (drain)", timers, (n + 1) / timers, False),
    ]
    lines = [
        f"{n} referrals, outage {outage:g} s, delivery settings as shipped",
        "",
        "| run | seconds | items/s | ratio to reference | target ≥ 0.8 |",
        "|---|---:|---:|---:|---|",
    ]
    for name, seconds, rate, judged in rows:
        ratio = rate / ref_rate
        verdict = "" if judged is None else ("PASS" if ratio >= TARGET else "MISS")
        if judged is False:
            verdict = f"({verdict.lower()}: before)"
        lines.append(f"| {name} | {seconds:.1f} | {rate:.1f} | {ratio:.2f} | {verdict} |")
    return lines


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="referrals per run (default 300)")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the LA is down")
    parser.add_argument("--quick", action="store_true", help="100 referrals, 20 s outage")
    args = parser.parse_args()
    configure(level=logging.WARNING)
    n, outage = (100, 20.0) if args.quick else (args.n, args.outage)
    print("\n".join(asyncio.run(_run(n, outage))))


if __name__ == "__main__":
    main()
