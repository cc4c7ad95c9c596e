"""Running ``exchange`` as a separate process, while the test's nodes keep serving.

The staff commands block on the network, so they run as ``python -m exchange.cli.main``
processes; :func:`exchange` checks each run printed no traceback and no secret.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Ran:
    """What one process run of ``exchange`` produced."""

    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """Standard output as lines."""
        return self.out.splitlines()


def base_env() -> dict[str, str]:
    """Return this process's environment without any ``EXCHANGE_`` variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}


#: How the process starts the command; a test may run it under a wrapper instead.
MODULE = ("-m", "exchange.cli.main")


async def exchange(
    *argv: str,
    env: dict[str, str],
    secrets: tuple[str, ...] = (),
    stdin: bytes | None = None,
    start: tuple[str, ...] = MODULE,
) -> Ran:
    """Run ``exchange argv...`` as a process; check it printed no traceback and no secret."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *start, *argv,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
    assert proc.returncode is not None
    ran = Ran(proc.returncode, out.decode("utf-8"), err.decode("utf-8"))
    assert "Traceback" not in ran.err
    for secret in (env.get("EXCHANGE_TOKEN", ""), *secrets):
        if secret:
            assert secret not in ran.out
            assert secret not in ran.err
    return ran


def refused(ran: Ran, status: int = 1, *fragments: str) -> str:
    """Check a failure: the status and exactly one ``exchange: `` line naming ``fragments``."""
    assert ran.status == status, ran
    lines = ran.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("exchange: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert ran.out == ""
    return lines[0]
