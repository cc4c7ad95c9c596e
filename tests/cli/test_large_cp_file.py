"""A 200 MB scanned CP file, sent with ``exchange send`` and opened with ``exchange inbox open``.

A whole paper file scanned is one large PDF. The records format takes a file of up to 1 GiB;
these two loopback nodes have ``[limits] max_envelope_bytes`` raised to 512 MiB, as a node
that carries such files sets it (docs/node.md). Hillside sends the file to Moorside Academy,
served by the LA's node; a DSL there opens it into a folder, and it is the same file byte for
byte. The run's time and the test process's peak memory (both nodes run in it) are printed,
for sizing nodes until every hop streams.
"""

from __future__ import annotations

import hashlib
import resource
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.demo.loopback import PASSPHRASE_ENV, Deployment
from tests.cli.processes import exchange
from tests.cli.schools import (
    NEW_SCHOOL,
    SCHOOL,
    TWO_SCHOOLS,
    delivered,
    send_argv,
    staff_env,
    write_cp_record,
)
from tests.node.conftest import deployed

pytestmark = [pytest.mark.network, pytest.mark.subprocess, pytest.mark.slow]

MIB = 1024 * 1024
SIZE = 200 * 1000 * 1000


@pytest.fixture
async def large_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    """Start the school node and the LA node with 512 MiB envelopes."""
    monkeypatch.setenv(PASSPHRASE_ENV, "replaced by start_deployment")
    users = {SCHOOL: ["dsl"], NEW_SCHOOL: ["dsl"]}
    async with deployed(
        tmp_path / "nodes", users, orgs=TWO_SCHOOLS, max_envelope_bytes=512 * MIB
    ) as world:
        yield world


def write_scan(path: Path, size: int) -> str:
    """Write a synthetic scanned PDF of exactly ``size`` bytes, a MiB at a time; return its digest.

    A small valid PDF (one empty page) whose bulk is a stream of scan-like bytes: it starts
    ``%PDF-``, ends with ``%%EOF``, and holds no HTML, ZIP end record or ``MZ`` program.
    """
    head = (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n"
        b"4 0 obj << /Length LENGTH >>\nstream\n"
    )
    tail = b"\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    # The stream's length has as many digits as the file's size (both about 200 million).
    length = size - (len(head) - len(b"LENGTH") + len(str(size)) + len(tail))
    head = head.replace(b"LENGTH", str(length).encode())
    assert len(head) + length + len(tail) == size
    digest = hashlib.sha256()
    piece = bytes(range(32, 127)) * (MIB // 95) + b"\n"
    with path.open("wb") as out:
        for part in (head, *_pieces(piece, length), tail):
            out.write(part)
            digest.update(part)
    assert path.stat().st_size == size
    return digest.hexdigest()


def _pieces(piece: bytes, length: int) -> list[bytes]:
    full, rest = divmod(length, len(piece))
    return [piece] * full + [piece[:rest]]


def _peak_mib(who: int) -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(who).ru_maxrss * scale / MIB


async def test_a_200_mb_scanned_cp_file_goes_end_to_end(
    large_nodes: Deployment, tmp_path: Path
) -> None:
    """Sent with ``exchange send``, delivered, opened with ``exchange inbox open``: identical."""
    record = tmp_path / "cp-file.json"
    write_cp_record(record, titles=("Whole CP file, scanned",))
    scan = tmp_path / "scan.pdf"
    digest = write_scan(scan, SIZE)
    started = time.monotonic()

    ran = await exchange(*send_argv(record, scan), "--json", env=staff_env(large_nodes, SCHOOL))
    assert ran.status == 0, ran
    sent_at = time.monotonic()
    envelope = ran.out.split('"digest": "', 1)[1][:64]
    await delivered(large_nodes, envelope)
    delivered_at = time.monotonic()

    out = tmp_path / "opened"
    ran = await exchange(
        "inbox", "open", envelope, "--out", str(out), env=staff_env(large_nodes, NEW_SCHOOL)
    )
    assert ran.status == 0, ran
    opened_at = time.monotonic()
    opened = out / "scan.pdf"
    assert opened.stat().st_size == SIZE
    assert opened.stat().st_mode & 0o777 == 0o600
    with opened.open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == digest

    print(
        f"\n200 MB CP file: send {sent_at - started:.1f} s, delivery "
        f"{delivered_at - sent_at:.1f} s, open {opened_at - delivered_at:.1f} s; peak RSS: "
        f"test process with both nodes {_peak_mib(resource.RUSAGE_SELF):.0f} MiB, "
        f"largest command {_peak_mib(resource.RUSAGE_CHILDREN):.0f} MiB"
    )
