"""The built wheel, installed in a fresh virtual environment, runs the demo and a node.

The module builds the wheel from a copy of the project (so a stale ``build/`` folder cannot
leak into it), installs it with its ``demo`` extra into a new virtual environment, and runs
the installed ``exchange`` command from a folder outside the project: nothing it needs may
be found through the source tree. Dependencies come from the package index as for any
install; pip's cache keeps the run short.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.network]

ROOT = Path(__file__).resolve().parents[1]
#: Generous bounds for a shared two-core machine; a healthy run takes a fraction of each.
BUILD_TIMEOUT = 600.0
RUN_TIMEOUT = 300.0
SERVE_TIMEOUT = 60.0
PASSPHRASE = "a long passphrase for the wheel test's keys"  # noqa: S105 - a test fixture
SERVING_RE = re.compile(
    r"serving la:356 on port (\d+); /healthz, /readyz and /metrics on 127\.0\.0\.1:(\d+)"
)


@dataclass(frozen=True)
class Installed:
    """The built wheel and the fresh environment it is installed in."""

    wheel: Path
    bin: Path
    build_log: str

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.bin / "python"

    @property
    def exchange(self) -> Path:
        """The installed ``exchange`` command."""
        return self.bin / "exchange"


def _env(home: Path, bin_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """Return the environment of a process that sees nothing of this test run's setup."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("EXCHANGE_")
        and key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
    }
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["EXCHANGE_STATE_DIR"] = str(home / "state")
    env.update(extra)
    return env


def _run(argv: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run ``argv``; fail with its output unless it exits 0; return its standard output."""
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, timeout=timeout,
        check=False, text=True,
    )  # fmt: skip
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel and install it, with its demo extra, into a new environment."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(
        ROOT, source, symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".cache", "build", "dist", "*.egg-info", "__pycache__",
            ".*_cache", ".hypothesis",
        ),
    )  # fmt: skip
    dist = work / "dist"
    env = _env(work)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", str(source), "-w", str(dist)],
        cwd=work, env=env, capture_output=True, timeout=BUILD_TIMEOUT, check=False, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=work, env=env, timeout=BUILD_TIMEOUT)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"{wheel}[demo]"],
         cwd=work, env=env, timeout=BUILD_TIMEOUT)  # fmt: skip
    return Installed(wheel, venv / "bin", built.stdout + built.stderr)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Return an empty folder outside the project to run the installed command in."""
    assert not tmp_path.resolve().is_relative_to(ROOT)
    return tmp_path


def test_wheel_holds_only_the_exchange_package(installed: Installed) -> None:
    """Every file in the wheel is under exchange/ or its metadata: no keys, connectors, tests."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert tops == {"exchange", "safeguarding_exchange-0.1.0.dist-info"}


def test_wheel_carries_the_files_a_node_reads(installed: Installed) -> None:
    """The shipped rule files and the record schemas are package data in the wheel."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    for rule in ("policy.toml", "calendar.toml", "retention.toml"):
        assert f"exchange/shipped/{rule}" in names
    schemas = {n for n in names if n.startswith("exchange/records/schemas/")}
    assert {Path(n).name for n in schemas} == {
        p.name for p in (ROOT / "exchange" / "records" / "schemas").glob("*.json")
    }


def test_aiosmtpd_is_required_only_by_the_demo_extra(installed: Installed) -> None:
    """The wheel's metadata requires aiosmtpd only for the demo extra."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        metadata = wheel.read("safeguarding_exchange-0.1.0.dist-info/METADATA").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    smtpd = [line for line in requires if "aiosmtpd" in line]
    assert smtpd
    assert all('extra == "demo"' in line or 'extra == "test"' in line for line in smtpd)


def test_the_licence_is_an_spdx_expression_and_the_build_warns_of_nothing(
    installed: Installed,
) -> None:
    """``project.license`` is the SPDX string setuptools asks for, not the deprecated table."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        metadata = wheel.read("safeguarding_exchange-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: LicenseRef-Proprietary" in metadata.splitlines()
    assert "BuildBackendWarning" not in installed.build_log
    assert "deprecated" not in installed.build_log.lower()


def test_the_installed_package_is_the_wheels(installed: Installed, outside: Path) -> None:
    """Run from outside the project, ``exchange`` is imported from the environment."""
    where = _run([installed.python, "-c", "import exchange; print(exchange.__file__)"],
                 cwd=outside, env=_env(outside), timeout=RUN_TIMEOUT)  # fmt: skip
    assert Path(where.strip()).is_relative_to(installed.bin.parent)


def test_demo_runs_from_the_installed_wheel(installed: Installed, outside: Path) -> None:
    """``exchange demo`` runs every part to the end from a folder outside the project."""
    out = _run([installed.exchange, "demo"], cwd=outside,
               env=_env(outside, installed.bin), timeout=RUN_TIMEOUT)  # fmt: skip
    assert "== Part 4: policy, deadlines, recall, the register and subject access ==" in out
    assert "demo finished" in out


def test_demo_without_its_extra_says_how_to_install_it(installed: Installed, outside: Path) -> None:
    """With aiosmtpd hidden, the installed command prints the one-line install advice."""
    hide = (
        "import sys; sys.modules['aiosmtpd'] = None\n"
        "from exchange.cli.main import main\n"
        "raise SystemExit(main(['demo']))\n"
    )
    done = subprocess.run(
        [str(installed.python), "-c", hide], cwd=outside, env=_env(outside),
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    advice = "pip install 'safeguarding-exchange[demo]'"
    assert done.stderr.splitlines() == [
        f"exchange: the demo needs packages this installation lacks: {advice}"
    ]


def _make_node(installed: Installed, folder: Path, env: dict[str, str]) -> Path:
    """Create keys, a signed directory and a node configuration in ``folder``."""
    commands = [
        ["authority", "create", "--name", "wheel-directory", "--out", "authority.key"],
        ["keys", "create", "--org", "la:356", "--name", "Example Borough Council",
         "--kind", "la", "--out", "la.key"],
        ["keys", "create", "--org", "la:356", "--name", "Example Borough Council ledger",
         "--kind", "la", "--out", "ledger.key"],
        ["directory", "sign", "--authority", "authority.key", "--version", "1",
         "--out", "directory.note", "la.key.pub.json"],
    ]  # fmt: skip
    for argv in commands:
        _run([installed.exchange, *argv], cwd=folder, env=env, timeout=RUN_TIMEOUT)
    config = folder / "node.toml"
    config.write_text(
        "[node]\n"
        'name = "wheel-test"\n'
        'listen = "127.0.0.1:0"\n'
        'public_url = "http://127.0.0.1:0"\n'
        'data_dir = "data"\n'
        "\n[directory]\n"
        'file = "directory.note"\n'
        'trust = "authority.key.vkey"\n'
        "\n[ledger]\n"
        'key = "ledger.key"\n'
        'passphrase_env = "EXCHANGE_PASSPHRASE"\n'
        'origin = "wheel-test.invalid/ledger"\n'
        # Plain HTTP, said explicitly; the operations listener on a free port.
        "\n[server]\n"
        "behind_proxy = true\n"
        "\n[ops]\n"
        'listen = "127.0.0.1:0"\n'
        "\n[[tenants]]\n"
        'org = "la:356"\n'
        'keys = ["la.key"]\n'
        'passphrase_env = "EXCHANGE_PASSPHRASE"\n'
    )
    return config


@pytest.fixture
def serving(
    installed: Installed, outside: Path
) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """Start ``exchange serve`` on a configuration outside the project.

    Yield it, its port and its operations listener's port.
    """
    env = _env(
        outside, installed.bin,
        EXCHANGE_PASSPHRASE=PASSPHRASE, EXCHANGE_AUTHORITY_PASSPHRASE=PASSPHRASE,
    )  # fmt: skip
    node = outside / "node"
    node.mkdir()
    config = _make_node(installed, node, env)
    proc = subprocess.Popen(
        [str(installed.exchange), "serve", "--config", str(config)],
        cwd=outside, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    # A node that never says it is serving is killed, so the read below cannot hang.
    watchdog = threading.Timer(SERVE_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        assert proc.stderr is not None
        ports = None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            found = SERVING_RE.search(line)
            if found:
                ports = int(found.group(1)), int(found.group(2))
                break
        assert ports is not None, "".join(seen)
        yield proc, *ports
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_starts_from_a_config_outside_the_project_and_stops_on_sigterm(
    serving: tuple[subprocess.Popen[str], int, int],
) -> None:
    """The installed node answers /readyz, and SIGTERM stops it with status 0.

    /readyz answers 200 on the operations listener, 404 on the main one (plain HTTP, behind
    a TLS proxy).
    """
    proc, port, ops_port = serving
    with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/readyz", timeout=10) as answer:
        assert answer.status == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10)
    refused.value.close()
    assert refused.value.code == 404
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=SERVE_TIMEOUT)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
