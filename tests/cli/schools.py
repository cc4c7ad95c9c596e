"""Two schools on two loopback nodes, for the staff commands' tests (``send``, ``inbox``).

Hillside (urn:106123) on the school node sends CP files to Moorside Academy (urn:106124),
served by the LA node, over TLS with a private test CA. The commands run as processes with
the environment a member of staff would set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from exchange.demo.loopback import Deployment, OrgSpec
from exchange.keys.ids import OrgId
from tests.cli.processes import Ran, base_env, exchange
from tests.node.conftest import ORGS, SCHOOL
from tests.node.helpers import client, sent, until
from tests.node.records import cp_file

NEW_SCHOOL = OrgId("urn:106124")
TWO_SCHOOLS = (*ORGS, OrgSpec(NEW_SCHOOL, "Moorside Academy", "school", "la"))
REASON = "The pupil started at Moorside Academy; KCSIE requires the CP file."
MB = 1_000_000


def staff_env(
    world: Deployment, org: OrgId, role: str = "dsl", *, token: bool = True
) -> dict[str, str]:
    """Return the environment of a member of staff: node, CA and (unless not) token."""
    env = {
        **base_env(),
        "EXCHANGE_NODE_URL": world.url("school" if org == SCHOOL else "la"),
        "EXCHANGE_CACERT": str(world.ca_file),
    }
    if token:
        env["EXCHANGE_TOKEN"] = world.tokens[(org, role)]
    return env


def write_pdf(path: Path, size: int) -> bytes:
    """Write a synthetic PDF of ``size`` bytes to ``path``; return its bytes."""
    head, tail = b"%PDF-1.7\n", b"\n%%EOF\n"
    line = b"synthetic scanned page data 0123456789\n"
    body = (line * (size // len(line) + 1))[: size - len(head) - len(tail)]
    data = head + body + tail
    path.write_bytes(data)
    return data


def write_cp_record(path: Path, titles: tuple[str, ...] = ("Chronology",)) -> dict[str, object]:
    """Write a CP-file record listing one document per title; return it."""
    record = cp_file(documents=[{"kind": "chronology", "title": t} for t in titles])
    path.write_text(json.dumps(record))
    return record


def send_argv(record: Path, *attachments: Path) -> list[str]:
    """Return ``exchange send`` arguments for a CP file from Hillside to Moorside."""
    argv = ["send", "--kind", "cp-file-transfer", "--to", NEW_SCHOOL, "--record", str(record),
            "--purpose", "cp-file-transfer", "--category", "identity", "--category", "family",
            "--category", "safeguarding-concerns", "--reason", REASON]  # fmt: skip
    for attachment in attachments:
        argv += ["--attach", str(attachment)]
    return argv


async def send_cp_file(
    world: Deployment, folder: Path, size: int, *extra: str
) -> tuple[Ran, bytes]:
    """Send a CP file with one PDF of ``size`` bytes with ``exchange send``; return the run."""
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "cp-file.json"
    write_cp_record(record)
    data = write_pdf(folder / "chronology.pdf", size)
    ran = await exchange(*send_argv(record, folder / "chronology.pdf"), *extra,
                         env=staff_env(world, SCHOOL))  # fmt: skip
    assert ran.status == 0, ran
    return ran, data


async def delivered(world: Deployment, digest: str) -> None:
    """Wait until the school's item ``digest`` is delivered to every recipient."""
    async with client(world) as http:

        async def done() -> bool:
            item = await sent(http, world, digest)
            return all(r["delivery_state"] == "delivered" for r in item["recipients"])

        await until(done, timeout=60, what="delivery")


def sha256(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
