"""Fixtures for the CLI tests: an isolated environment, an in-process runner and a world.

Every test runs in its own temporary folder with its own state directory, a fixed clock
(``EXCHANGE_NOW``) and passphrases in the environment. Keys are made with the hidden
``--kdf-profile test`` so Argon2id does not dominate the run time.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange.cli.main import main
from exchange.demo.loopback import PASSPHRASE_ENV, Deployment

#: 2026-01-01T00:00:00Z, the clock of every test unless it says otherwise.
T0 = 1_767_225_600
PASSPHRASE = "organisation passphrase for tests"  # noqa: S105 - a test fixture
AUTHORITY_PASSPHRASE = "authority passphrase for tests"  # noqa: S105 - a test fixture
RECORD = b"Referral (synthetic): concern raised by the class teacher about Pupil X.\n"


@dataclass(frozen=True)
class Result:
    """What one run of the command produced."""

    status: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        """Standard output as text."""
        return self.out.decode("utf-8")

    @property
    def err_lines(self) -> list[str]:
        """Standard error as lines."""
        return self.err.splitlines()


def run(*argv: str, stdin: bytes = b"") -> Result:
    """Run ``exchange argv...`` in this process with the given standard input."""
    saved = sys.stdin, sys.stdout, sys.stderr
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    sys.stdout, sys.stderr = stdout, stderr
    try:
        status = main(list(argv))
        stdout.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    buffer = stdout.buffer
    assert isinstance(buffer, io.BytesIO)
    return Result(status, buffer.getvalue(), stderr.getvalue())


def assert_refused(result: Result, status: int = 1, *fragments: str) -> str:
    """Check a failure: the status, and exactly one ``exchange: `` line naming ``fragments``."""
    assert result.status == status, result
    lines = result.err_lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("exchange: "), lines
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert RECORD.decode() not in result.err
    assert PASSPHRASE not in result.err
    return lines[0]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in an empty folder with a fixed clock and its own state."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("EXCHANGE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("EXCHANGE_NOW", str(T0))
    monkeypatch.setenv("EXCHANGE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("EXCHANGE_AUTHORITY_PASSPHRASE", AUTHORITY_PASSPHRASE)
    for name in ("EXCHANGE_DIRECTORY", "EXCHANGE_TRUST"):
        monkeypatch.delenv(name, raising=False)
    return work


def make_authority(name: str = "test-authority", out: str = "authority.key") -> str:
    """Create an authority key; return its verifier key."""
    result = run("authority", "create", "--name", name, "--out", out, "--kdf-profile", "test")
    assert result.status == 0, result
    return result.text.strip()


def make_keys(org: str, out: str, kind: str = "school", *extra: str) -> dict[str, object]:
    """Create an organisation key; return its public entry."""
    result = run(
        "keys", "create", "--org", org, "--name", f"Test {org}", "--kind", kind,
        "--out", out, "--kdf-profile", "test", *extra,
    )  # fmt: skip
    assert result.status == 0, result
    entry: dict[str, object] = json.loads(Path(out + ".pub.json").read_text())
    return entry


def sign(version: int, out: str, *entries: str, extra: tuple[str, ...] = ()) -> Result:
    """Sign a directory with authority.key."""
    return run(
        "directory", "sign", "--authority", "authority.key", "--version", str(version),
        "--out", out, *extra, *entries,
    )  # fmt: skip


def key_ids(entry: dict[str, object], generation: int = 0) -> tuple[str, str]:
    """Return the (signing, encryption) key ids of one generation of a public entry."""
    keys = entry["keys"]
    assert isinstance(keys, list)
    gen = keys[generation]
    return gen["signing_key_id"], gen["encryption_key_id"]


@dataclass(frozen=True)
class World:
    """An authority, a school, an LA and an NHS team in a signed directory (version 1)."""

    folder: Path
    vkey: str
    school: dict[str, object]
    la: dict[str, object]
    nhs: dict[str, object]

    def listing(self) -> set[str]:
        """Return every name in the folder (hidden partial files included)."""
        return {p.name for p in self.folder.iterdir()}


@pytest.fixture
def world(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """Build the standard world and point the environment at its directory."""
    vkey = make_authority()
    school = make_keys("urn:106123", "school.key", "school")
    la = make_keys("la:356", "la.key", "la")
    nhs = make_keys("ods:X26ABC", "nhs.key", "nhs")
    signed = sign(1, "directory.note", "school.key.pub.json", "la.key.pub.json", "nhs.key.pub.json")
    assert signed.status == 0, signed
    monkeypatch.setenv("EXCHANGE_DIRECTORY", "directory.note")
    monkeypatch.setenv("EXCHANGE_TRUST", "authority.key.vkey")
    (isolated / "record.txt").write_bytes(RECORD)
    return World(isolated, vkey, school, la, nhs)


def seal_record(
    out: str = "record.env", *to: str, key: str = "school.key", kind: str = "referral"
) -> Result:
    """Seal record.txt from ``key`` to ``to`` (default la:356)."""
    recipients = [arg for org in (to or ("la:356",)) for arg in ("--to", org)]
    return run(
        "seal", "--key", key, *recipients, "--kind", kind, "--in", "record.txt", "--out", out
    )


@pytest.fixture
async def schools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    """Start the school node (Hillside) and the LA node (with Moorside Academy) over TLS."""
    # Imported here: the in-process tests of this folder need none of the node machinery.
    from tests.cli.schools import NEW_SCHOOL, TWO_SCHOOLS
    from tests.node.conftest import SCHOOL, deployed

    # start_deployment puts the key passphrase in the environment; this restores it after.
    monkeypatch.setenv(PASSPHRASE_ENV, "replaced by start_deployment")
    users = {SCHOOL: ["dsl"], NEW_SCHOOL: ["dsl", "dpo"]}
    async with deployed(tmp_path / "nodes", users, orgs=TWO_SCHOOLS) as deployment:
        yield deployment
