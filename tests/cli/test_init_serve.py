"""A node folder made by ``exchange init`` serves: ``exchange serve`` starts and answers."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.cli.conftest import PASSPHRASE
from tests.node_folder import LEDGER_PASSPHRASE, ready_node_folder

pytestmark = [pytest.mark.subprocess, pytest.mark.network]

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"serving .* on port (\d+)")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    # The code under test is this tree's, whatever the virtual environment points at.
    env["PYTHONPATH"] = str(ROOT)
    env["EXCHANGE_PASSPHRASE"] = PASSPHRASE
    env["EXCHANGE_LEDGER_PASSPHRASE"] = LEDGER_PASSPHRASE
    return env


def _port(proc: subprocess.Popen[str]) -> int:
    """Return the port the node says it serves on (the process is killed after 60 s)."""
    timer = threading.Timer(60, proc.kill)
    timer.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            found = STARTED.search(line)
            if found:
                return int(found.group(1))
    finally:
        timer.cancel()
    pytest.fail(f"the node did not start (status {proc.wait()})")


def test_the_folder_serves(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The node starts from node.toml as init wrote it and answers HTTPS with the test CA."""
    node = ready_node_folder(
        isolated, monkeypatch, "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange.cli.main", "serve", "--config", str(node.config)],
        cwd=isolated, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = _port(proc)
        context = ssl.create_default_context(cafile=str(node.folder / "tls" / "ca.pem"))
        url = f"https://localhost:{port}/sign-in"
        with urllib.request.urlopen(url, context=context, timeout=30) as answer:
            assert answer.status == 200
            assert b"Sign in" in answer.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
