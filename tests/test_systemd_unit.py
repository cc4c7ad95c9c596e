"""The hardened systemd unit in docs/deploy/: its directives, its command line, systemd's checks.

Statically, always: every hardening directive docs/node.md promises is there with its value,
and ``ExecStart`` is a command line the real ``exchange`` parser takes as ``serve --config``,
with only the data and directory folders of that node folder writable. Where
``systemd-analyze`` is installed (``.ci/run`` installs Debian's ``systemd`` package, so CI
never skips): ``verify`` finds nothing to say, and ``security`` rates the unit's exposure
low. And the demo runs under the rule ``MemoryDenyWriteExecute=yes`` sets (tests/mdwe.py):
libsodium, OpenSSL and CPython never need writable, executable memory.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from exchange.cli import node_cmd
from exchange.cli.errors import UsageError
from exchange.cli.main import build_parser
from tests.ci import in_ci

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "docs" / "deploy" / "exchange.service"
MDWE = ROOT / "tests" / "mdwe.py"
TIMEOUT = 300.0

#: Each directive the unit must hold in [Service], with its exact value.
HARDENING = {
    "Type": "exec",
    "User": "exchange",
    "Group": "exchange",
    "Restart": "on-failure",
    "UMask": "0077",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "MemoryDenyWriteExecute": "yes",
    "EnvironmentFile": "/etc/exchange/node.env",
}


def directives(text: str) -> list[tuple[str, str, str]]:
    """Return the unit's ``(section, key, value)`` lines in order (comments left out)."""
    section, found = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line}"
        found.append((section, key.strip(), value.strip()))
    return found


def service(key: str) -> list[str]:
    """Return every value ``key`` has in the unit's [Service] section."""
    return [v for s, k, v in directives(UNIT.read_text("utf-8")) if s == "Service" and k == key]


@pytest.mark.parametrize(("key", "value"), HARDENING.items())
def test_hardening_directive_is_set(key: str, value: str) -> None:
    assert service(key) == [value]


def test_system_calls_are_those_of_a_system_service() -> None:
    filters = service("SystemCallFilter")
    assert filters[0] == "@system-service"
    assert all(f.startswith("~") for f in filters[1:])  # later lines only take calls away


def test_exec_start_is_exchange_serve_with_its_configuration() -> None:
    (line,) = service("ExecStart")
    program, *argv = shlex.split(line)
    assert PurePosixPath(program).is_absolute()
    assert PurePosixPath(program).name == "exchange"
    args = build_parser().parse_args(argv)  # refuses a flag the real command lacks
    assert args.handler is node_cmd.serve_command
    config = PurePosixPath(args.config)
    assert config.is_absolute()
    assert service("WorkingDirectory") == [str(config.parent)]
    # Writable: only the node folder's data and directory folders (docs/node.md).
    assert service("ReadWritePaths") == [f"{config.parent / 'data'} {config.parent / 'directory'}"]


def test_a_renamed_flag_would_not_pass() -> None:
    """The command-line check above can fail: the parser refuses what serve does not take."""
    with pytest.raises(UsageError, match="required: --config"):
        build_parser().parse_args(["serve", "--configuration", "/var/lib/exchange/node.toml"])


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        reason = "systemd-analyze is not installed (Debian's systemd package)"
        if in_ci():
            pytest.fail(f"{reason}: .ci/run should have installed it", pytrace=False)
        pytest.skip(reason)
    return tool


def _installable_copy(folder: Path, text: str) -> Path:
    """Write the unit with ExecStart's program replaced by a stand-in that exists.

    ``systemd-analyze verify`` checks that the program is executable; on a test machine
    /opt/exchange/venv is not there. Nothing else changes.
    """
    stand_in = folder / "exchange"
    stand_in.write_text("#!/bin/sh\n", "utf-8")
    stand_in.chmod(0o755)
    (line,) = service("ExecStart")
    program = shlex.split(line)[0]
    copy = folder / "exchange.service"
    copy.write_text(text.replace(f"ExecStart={program} ", f"ExecStart={stand_in} "), "utf-8")
    assert copy.read_text("utf-8") != text
    return copy


@pytest.mark.subprocess
@pytest.mark.parametrize("broken", [False, True], ids=["as-shipped", "misspelt-directive"])
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path, broken: bool) -> None:
    """Verify is silent on the unit; one misspelt directive is enough to make it speak."""
    tool = _analyze()
    text = UNIT.read_text("utf-8")
    if broken:
        text = text.replace("ProtectSystem=strict", "ProtectSytem=strict")
    unit = _installable_copy(tmp_path, text)
    done = subprocess.run(
        [tool, "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    said = (done.stdout + done.stderr).strip()
    if broken:
        assert "ProtectSytem" in said
    else:
        assert done.returncode == 0, said
        assert said == ""


@pytest.mark.subprocess
def test_systemd_analyze_rates_the_exposure_low(tmp_path: Path) -> None:
    """``systemd-analyze security`` rates the unit 1.5 or less of 10 ("OK")."""
    tool = _analyze()
    unit = _installable_copy(tmp_path, UNIT.read_text("utf-8"))
    done = subprocess.run(
        [tool, "security", "--offline=yes", "--threshold=15", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def _under_mdwe(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, str(MDWE), sys.executable, *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip


@pytest.mark.subprocess
@pytest.mark.network
def test_the_demo_runs_with_memory_deny_write_execute(tmp_path: Path) -> None:
    """Keys (libsodium's Argon2id), sealing, TLS nodes and SQLite run under the rule."""
    if platform.machine() != "x86_64":
        pytest.skip("tests/mdwe.py holds the filter for x86-64 only")
    probe = "import mmap; mmap.mmap(-1, 4096, prot=7)"  # read, write and execute at once
    refused = _under_mdwe("-c", probe, cwd=tmp_path)
    if refused.returncode == 3:
        pytest.skip(refused.stderr.strip())
    assert "PermissionError" in refused.stderr  # the filter is on: the check can fail
    demo = _under_mdwe("-m", "exchange.cli.main", "demo", "--no-serve", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "demo finished" in demo.stdout
    assert "Traceback" not in demo.stderr
