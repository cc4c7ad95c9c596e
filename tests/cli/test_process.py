"""The command as a real process: no traceback reaches stderr, the docs example runs verbatim."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import AUTHORITY_PASSPHRASE, PASSPHRASE, T0, run

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DOCS = ROOT / "docs" / "cli.md"


def _env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("EXCHANGE_") and key not in {"PYTHONPATH"}
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # The code under test is this tree's, whichever checkout the environment was installed from.
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _exchange(
    *argv: str, cwd: Path, env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "exchange.cli.main", *argv],
        cwd=cwd, env=env, input=stdin, capture_output=True, timeout=120, check=False,
    )  # fmt: skip


def _one_line(proc: subprocess.CompletedProcess[bytes], status: int) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == status, (proc.returncode, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("exchange: ")
    return lines[0]


@pytest.fixture
def proc_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess world, made in-process for speed."""
    return _env(
        EXCHANGE_STATE_DIR=str(tmp_path / "state"),
        EXCHANGE_NOW=str(T0),
        EXCHANGE_PASSPHRASE=PASSPHRASE,
        EXCHANGE_AUTHORITY_PASSPHRASE=AUTHORITY_PASSPHRASE,
        EXCHANGE_DIRECTORY="directory.note",
        EXCHANGE_TRUST="authority.key.vkey",
    )


@pytest.mark.subprocess
@pytest.mark.usefixtures("world")
def test_refusals_in_a_real_process(proc_env: dict[str, str]) -> None:
    """Garbage, wrong passphrase, a usage error and a missing file: one line, no traceback."""
    cwd = Path.cwd()
    (cwd / "garbage.env").write_bytes(os.urandom(4096))
    _one_line(_exchange("open", "--key", "la.key", "--in", "garbage.env", "--out", "o.txt",
                        cwd=cwd, env=proc_env), 1)  # fmt: skip
    assert not (cwd / "o.txt").exists()
    _one_line(_exchange("inspect", cwd=cwd, env=proc_env, stdin=b""), 1)
    wrong = {**proc_env, "EXCHANGE_PASSPHRASE": "wrong"}
    line = _one_line(_exchange("seal", "--key", "school.key", "--to", "la:356", "--kind", "x",
                               "--out", "x.env", cwd=cwd, env=wrong, stdin=b"hi"), 1)  # fmt: skip
    assert "passphrase" in line
    _one_line(_exchange("seal", "--bogus", cwd=cwd, env=proc_env), 2)
    _one_line(_exchange(cwd=cwd, env=proc_env), 2)
    _one_line(_exchange("open", "--key", "missing.key", cwd=cwd, env=proc_env), 1)


@pytest.mark.subprocess
@pytest.mark.usefixtures("world")
def test_round_trip_through_pipes(proc_env: dict[str, str]) -> None:
    """Seal to stdout and open from stdin in real processes."""
    cwd = Path.cwd()
    sealed = _exchange("seal", "--key", "school.key", "--to", "la:356", "--kind", "referral",
                       cwd=cwd, env=proc_env, stdin=b"synthetic record\n")  # fmt: skip
    assert sealed.returncode == 0, sealed.stderr
    opened = _exchange("open", "--key", "la.key", cwd=cwd, env=proc_env, stdin=sealed.stdout)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == b"synthetic record\n"


@pytest.mark.subprocess
def test_help_in_a_real_process(tmp_path: Path) -> None:
    """--help exits 0 and describes the command."""
    proc = _exchange("--help", cwd=tmp_path, env=_env())
    assert proc.returncode == 0
    assert b"seal" in proc.stdout
    assert proc.stderr == b""


@pytest.mark.subprocess
def test_installed_entry_point(tmp_path: Path) -> None:
    """The `exchange` script installed in the venv runs main()."""
    script = VENV_BIN / "exchange"
    if not script.exists():
        pytest.skip("the package is not installed in this environment")
    proc = subprocess.run([str(script), "--version"], capture_output=True, check=False,
                          env=_env(), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0
    assert proc.stdout.startswith(b"exchange ")


def _shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.subprocess
def test_docs_worked_example_runs_verbatim(tmp_path: Path) -> None:
    """Every ```sh block of docs/cli.md runs in order with bash in an empty folder."""
    blocks = _shell_blocks(DOCS.read_text())
    assert len(blocks) >= 2
    script = "set -euo pipefail\n" + "\n".join(blocks)
    work = tmp_path / "example"
    work.mkdir()
    env = _env(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "xdg-state"))
    proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
    received = (work / "received.txt").read_text()
    assert received.startswith("Referral (synthetic example)")
    assert (work / "received-2.txt").read_text() == received
    assert (work / "received-old.txt").read_text() == received
    # The rollback state went to the XDG default, and remembers version 6 (the last shown).
    state = (tmp_path / "xdg-state" / "exchange" / "directory-versions.json").read_text()
    assert '"version": 6' in state


COMMANDS = [
    [], ["authority"], ["authority", "create"], ["keys"], ["keys", "create"], ["directory"],
    ["directory", "sign"], ["directory", "show"], ["seal"], ["open"], ["inspect"], ["demo"],
    ["init"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "exchange")
def test_every_command_has_help(command: list[str]) -> None:
    """Each command prints plain-English help and exits 0."""
    result = run(*command, "--help")
    assert result.status == 0
    assert "usage: exchange" in result.text
    assert len(result.text) > 150
    assert "--now" not in result.text
    assert "--kdf-profile" not in result.text


README = ROOT / "README.md"


@pytest.mark.subprocess
def test_readme_cli_example_runs_verbatim(tmp_path: Path) -> None:
    """The README's worked example (its sh blocks that call exchange) runs as pasted."""
    blocks = [b for b in _shell_blocks(README.read_text()) if "exchange " in b]
    assert blocks, "the README has no worked example"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = _env(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "xdg-state"))
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "received.txt").read_text().startswith("Referral (synthetic example)")
    # "Running a node": both folders made by `exchange init` pass `exchange config check`.
    ready = [line for line in proc.stderr.decode().splitlines() if "configuration is ready" in line]
    assert len(ready) == 2, proc.stderr.decode()
    assert (tmp_path / "oak-node" / "node.toml").is_file()
