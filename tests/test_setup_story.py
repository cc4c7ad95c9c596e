"""From nothing to two running nodes and a large CP file, with only the commands a user runs.

Issue 12's "done when", on loopback: ``exchange init`` twice (a school, and a local
authority that also hosts the receiving school), the directory authority signs and publishes
the directory at an HTTPS address, both running nodes pick up the version that lists them
all without a restart, the school's DSL sends a large scanned PDF as a CP file with
``exchange send``, the receiving school's DSL on the LA's node opens it with ``exchange inbox
open``, and ``exchange backup create`` / ``backup restore`` / ``ledger verify`` work on the
LA's node, which then opens the item again from the restored store.

Every step is the ``exchange`` command in its own process, as the README has it; the nodes
are ``exchange serve`` processes. The size of the scan is ``EXCHANGE_STORY_MB`` (200 by
default, as the issue says).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exchange.node.tls_material import make_test_ca
from tests.node.records import CHILD_NAME, UPN, cp_file

pytestmark = [pytest.mark.subprocess, pytest.mark.network, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PASSPHRASE = "organisation key passphrase for the story"  # noqa: S105 - a test fixture
LEDGER_PASSPHRASE = "ledger key passphrase for the story"  # noqa: S105 - a test fixture
AUTHORITY_PASSPHRASE = "authority key passphrase for the story"  # noqa: S105 - a test fixture
ADMIN_PASSWORD = "an initial administrator password"  # noqa: S105 - a test fixture
OAK, LA, BIRCH = "urn:106123", "la:356", "urn:106124"
SERVING = re.compile(r"serving .* on port (\d+); /healthz, /readyz and /metrics on [^:]+:(\d+)")
SIZE_MB = int(os.environ.get("EXCHANGE_STORY_MB", "200"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "EXCHANGE_PASSPHRASE": PASSPHRASE,
        "EXCHANGE_LEDGER_PASSPHRASE": LEDGER_PASSPHRASE,
        "EXCHANGE_AUTHORITY_PASSPHRASE": AUTHORITY_PASSPHRASE,
    }
    return env | extra


def exchange(cwd: Path, *argv: str, stdin: str = "", **env: str) -> str:
    """Run ``exchange ARGV`` in ``cwd``; return its standard output (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "exchange.cli.main", *argv],
        cwd=cwd, env=_env(**env), input=stdin, capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, (argv, done.returncode, done.stderr)
    # No traceback, ever, and no passphrase or password in what a command says.
    for secret in (PASSPHRASE, LEDGER_PASSPHRASE, AUTHORITY_PASSPHRASE, ADMIN_PASSWORD):
        assert secret not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


@contextlib.contextmanager
def publishing_server(folder: Path, tls: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTPS on loopback (the authority's web server); yield its URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "cert.pem", tls / "key.pem")

    def handler(*args: object) -> _Quiet:
        return _Quiet(*args, directory=str(folder))  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Serving:
    """An ``exchange serve`` process and the addresses it printed."""

    process: subprocess.Popen[str]
    port: int
    ops_port: int
    log: list[str]
    reader: threading.Thread | None = None

    def metric(self, name: str) -> float | None:
        """Return the value of metric ``name`` on the node's operations listener."""
        url = f"http://127.0.0.1:{self.ops_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return None if found is None else float(found.group(1))

    def stop(self) -> None:
        """Stop the node as systemd would (SIGTERM); it must end cleanly."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=120)
        if self.reader is not None:
            self.reader.join(timeout=30)
        if self.process.stderr is not None:
            self.process.stderr.close()
        assert status == 0, self.log[-20:]
        # The node's log never holds the child's details.
        text = "".join(self.log)
        for detail in (UPN, CHILD_NAME["family_name"], "2015-03-14"):
            assert detail not in text


def serve(folder: Path, config: str = "node.toml") -> Serving:
    """Start ``exchange serve`` for the node folder; return once it serves and is ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "exchange.cli.main", "serve", "--config", config],
        cwd=folder, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log: list[str] = []
    found = None
    assert process.stderr is not None
    deadline = threading.Timer(120, process.kill)
    deadline.start()
    try:
        for line in process.stderr:
            log.append(line)
            found = SERVING.search(line)
            if found:
                break
    finally:
        deadline.cancel()
    assert found, f"the node did not start: {''.join(log[-20:])}"
    # Keep reading its log, so that the pipe never fills.
    reader = threading.Thread(target=lambda: log.extend(process.stderr or ()), daemon=True)
    reader.start()
    node = Serving(process, int(found.group(1)), int(found.group(2)), log, reader)
    until(lambda: _ready(node), "the node to be ready")
    return node


def _ready(node: Serving) -> bool:
    try:
        url = f"http://127.0.0.1:{node.ops_port}/readyz"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def until(check: object, what: str, timeout: float = 120.0) -> None:
    """Wait until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def scanned_pdf(path: Path, size: int) -> str:
    """Write a synthetic scan of ``size`` bytes and more (a PDF's shape); return its SHA-256."""
    block = hashlib.sha256(b"synthetic scan").digest() * (1 << 15)  # 1 MiB, no markup
    head = b"%%PDF-1.4\n1 0 obj\n<< /Length %d >>\nstream\n" % size
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    digest = hashlib.sha256(head)
    with path.open("wb") as out:
        out.write(head)
        written = 0
        while written < size:
            piece = block[: size - written]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
        out.write(tail)
    digest.update(tail)
    return digest.hexdigest()


def cp_file_record(path: Path) -> None:
    """Write a synthetic CP-file record from Oak to Birch (no real child)."""
    record = cp_file(confirmed=_today(), documents=[
        {"kind": "chronology", "title": "Scanned child protection file"}
    ])  # fmt: skip
    path.write_text(json.dumps(record))


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _operators_settings(config: Path) -> None:
    """Set what these operators chose: fetch the directory every second, take large files.

    The defaults are hourly and 64 MiB envelopes.
    """
    text = config.read_text()
    assert "\nurl = " in text
    text = text.replace("\nurl = ", "\nrefresh_interval = 1\nurl = ", 1)
    config.write_text(text + "\n[limits]\nmax_envelope_bytes = 1073741824\n")


AUTHORITY = ["--authority", "authority/authority.key"]
TRUST = ["--trust", "authority/authority.key.vkey"]


@dataclass
class World:
    """The folder everything is in, the nodes' ports and the two DSLs' tokens."""

    work: Path
    oak_port: int = 0
    la_port: int = 0
    oak_token: str = ""
    birch_token: str = ""

    def birch(self) -> dict[str, str]:
        """Return the environment of Birch's DSL, who works on the LA's node."""
        return {
            "EXCHANGE_TOKEN": self.birch_token,
            "EXCHANGE_NODE_URL": f"https://localhost:{self.la_port}",
            "EXCHANGE_CACERT": "la/tls/ca.pem",
        }


def the_authority_and_its_web_server(work: Path) -> None:
    """Create the authority's key and its web server's certificate (the nodes get its CA)."""
    (work / "authority").mkdir()
    (work / "www").mkdir()
    exchange(work, "authority", "create", "--name", "example-directory",
             "--out", "authority/authority.key", "--kdf-profile", "test")  # fmt: skip
    web_tls = make_test_ca("localhost", datetime.now(UTC))
    assert web_tls.ca_pem is not None
    (work / "web-tls").mkdir()
    (work / "web-tls" / "cert.pem").write_bytes(web_tls.cert_pem)
    (work / "web-tls" / "key.pem").write_bytes(web_tls.key_pem)
    (work / "directory-ca.pem").write_bytes(web_tls.ca_pem)


def two_node_folders(world: World, url: str) -> None:
    """``exchange init`` a school's node, and a council's node that hosts Birch."""
    work = world.work
    world.oak_port, world.la_port = _free_port(), _free_port()
    common = [
        *TRUST, "--tls", "test-ca", "--directory-url", url, "--directory-ca", "directory-ca.pem",
        "--ops-listen", "127.0.0.1:0", "--admin-password-stdin", "--kdf-profile", "test",
    ]  # fmt: skip
    exchange(work, "init", "oak", "--public-url", f"https://localhost:{world.oak_port}",
             "--listen", f"127.0.0.1:{world.oak_port}",
             "--org", OAK, "--name", "Oak Primary School", "--kind", "school",
             "--admin-email", "office@oak.example", "--admin-name", "Oak administrator",
             *common, stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
    exchange(work, "init", "la", "--public-url", f"https://localhost:{world.la_port}",
             "--listen", f"127.0.0.1:{world.la_port}",
             "--org", LA, "--name", "Example Borough Council", "--kind", "la",
             "--org", BIRCH, "--name", "Birch Primary School", "--kind", "school",
             "--admin-email", "it@la.example", "--admin-name", "Council administrator",
             *common, stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
    # Each node trusts the other's test CA when it calls it.
    for here, there in (("oak", "la"), ("la", "oak")):
        with (work / here / "tls" / "peers-ca.pem").open("ab") as peers:
            peers.write((work / there / "tls" / "ca.pem").read_bytes())
        _operators_settings(work / here / "node.toml")


def the_first_directory_and_the_staff(world: World) -> None:
    """Publish version 1 (Oak only: the council's entries have not reached the authority)."""
    work = world.work
    exchange(work, "directory", "sign", *AUTHORITY, "--version", "1",
             "--out", "authority/directory-v1.note", "oak/urn-106123.pub.json")  # fmt: skip
    exchange(work, "directory", "publish", "--in", "authority/directory-v1.note",
             "--to", "www", *TRUST)  # fmt: skip
    for node in ("oak", "la"):
        exchange(work, "directory", "refresh", "--config", f"{node}/node.toml")
        exchange(work, "config", "check", "--config", f"{node}/node.toml")
    world.oak_token = exchange(work, "users", "add", "--config", "oak/node.toml", "--org", OAK,
                               "--id", "dsl@oak", "--name", "Oak DSL",
                               "--role", "dsl").strip()  # fmt: skip
    world.birch_token = exchange(work, "users", "add", "--config", "la/node.toml",
                                 "--org", BIRCH, "--id", "dsl@birch", "--name", "Birch DSL",
                                 "--role", "dsl").strip()  # fmt: skip
    assert world.oak_token
    assert world.birch_token


def the_council_joins(world: World, *nodes: Serving) -> None:
    """Add the council and the school it hosts, publish; the running nodes take it."""
    work = world.work
    exchange(work, "directory", "add-org", *AUTHORITY, "--from", "authority/directory-v1.note",
             "--entry", "la/la-356.pub.json", "--out", "authority/directory-v2.note")  # fmt: skip
    exchange(work, "directory", "add-org", *AUTHORITY, "--from", "authority/directory-v2.note",
             "--entry", "la/urn-106124.pub.json",
             "--out", "authority/directory-v3.note")  # fmt: skip
    exchange(work, "directory", "publish", "--in", "authority/directory-v3.note",
             "--to", "www", *TRUST)  # fmt: skip
    for node in nodes:
        until(lambda n=node: n.metric("exchange_directory_version") == 3.0, "version 3")  # type: ignore[misc]


def oak_sends_the_scan(world: World) -> tuple[str, str]:
    """Send the scanned CP file to Birch with ``exchange send``; return its digests."""
    work = world.work
    scan = work / "scan.pdf"
    sent_digest = scanned_pdf(scan, SIZE_MB * 1024 * 1024)
    cp_file_record(work / "cp-file.json")
    sent = exchange(
        work, "send", "--node", f"https://localhost:{world.oak_port}",
        "--cacert", "oak/tls/ca.pem", "--kind", "cp-file-transfer", "--to", BIRCH,
        "--record", "cp-file.json", "--attach", str(scan),
        "--purpose", "cp-file-transfer", "--category", "identity",
        "--category", "safeguarding-concerns",
        "--reason", "The pupil has moved school; the file must follow.",
        "--new-school-confirmed", _today(), "--json", EXCHANGE_TOKEN=world.oak_token,
    )  # fmt: skip
    return str(json.loads(sent)["digest"]), sent_digest


def restore_the_council_node(world: World, backup: str) -> None:
    """Restore the backup into a new data folder and check its ledger."""
    work = world.work
    config = (work / "la" / "node.toml").read_text()
    restored = config.replace('data_dir = "data"', 'data_dir = "data-restored"')
    assert restored != config
    (work / "la" / "restored.toml").write_text(restored)
    exchange(work, "backup", "restore", backup, "--config", "la/restored.toml",
             "--register-key", "la/data/register.key")  # fmt: skip
    exchange(work, "ledger", "verify", "--config", "la/restored.toml")


def test_from_nothing_to_a_large_cp_file_and_a_restored_node(tmp_path: Path) -> None:
    """The issue's "done when", step by step, every step a command."""
    world = World(tmp_path)
    work = world.work
    the_authority_and_its_web_server(work)
    with publishing_server(work / "www", work / "web-tls") as site:
        two_node_folders(world, f"{site}/directory.note")
        the_first_directory_and_the_staff(world)
        oak, la = serve(work / "oak"), serve(work / "la")
        try:
            assert oak.metric("exchange_directory_version") == 1.0
            the_council_joins(world, oak, la)
            digest, sent_digest = oak_sends_the_scan(world)

            def arrived() -> bool:
                listed = exchange(work, "inbox", "list", "--json", **world.birch())
                return digest in listed

            until(arrived, "the CP file to reach Birch", timeout=600)
            exchange(work, "inbox", "open", digest, "--out", "received", **world.birch())
            _same_scan(work / "received", sent_digest)
            # A backup while the node runs; then the node is lost.
            made = exchange(work, "backup", "create", "--config", "la/node.toml",
                            "--out", "backups")  # fmt: skip
            [backup] = [line for line in made.splitlines() if "backups" in line]
            exchange(work, "backup", "verify", backup)
        finally:
            oak.stop()
            la.stop()
    restore_the_council_node(world, backup)
    again = serve(work / "la", "restored.toml")
    try:
        exchange(work, "inbox", "open", digest, "--out", "received-again", **world.birch())
        _same_scan(work / "received-again", sent_digest)
    finally:
        again.stop()


def _same_scan(folder: Path, expected: str) -> None:
    """Check the folder holds the record and the scan, private to the user, unchanged."""
    assert folder.stat().st_mode & 0o777 == 0o700
    files = sorted(p for p in folder.iterdir() if p.is_file())
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    [pdf] = [p for p in files if p.suffix == ".pdf"]
    digest = hashlib.sha256()
    with pdf.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == expected
