"""The staff commands import on Windows: no POSIX-only module is imported at module level.

Windows has no ``fcntl``, ``termios``, ``pwd``, ``grp`` or ``resource``. A fresh interpreter
with those modules blocked (``sys.modules[name] = None`` makes ``import name`` raise
``ImportError``, as on Windows) must import every module under ``exchange/cli``, and everything
they import, and run ``exchange --help``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import exchange.cli

pytestmark = pytest.mark.subprocess

#: Standard library modules that exist only on POSIX systems.
#: (``posix`` itself is left alone: the standard library imports it whenever os.name is posix.)
POSIX_ONLY = ("fcntl", "termios", "pwd", "grp", "resource", "tty", "pty", "syslog")

CLI_DIR = Path(exchange.cli.__file__).resolve().parent
CLI_MODULES = sorted(
    "exchange.cli" if path.stem == "__init__" else f"exchange.cli.{path.stem}"
    for path in CLI_DIR.glob("*.py")
)

BLOCK = f"import sys\nfor name in {POSIX_ONLY!r}:\n    sys.modules[name] = None\n"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_block_makes_posix_modules_unimportable() -> None:
    """The blocking really stops ``import fcntl`` (so the other tests prove something)."""
    result = _run(
        """
        try:
            import fcntl
        except ImportError:
            print("blocked")
        """
    )
    assert (result.returncode, result.stdout.strip()) == (0, "blocked"), result.stderr


def test_the_cli_modules_are_all_listed() -> None:
    """The walk finds the CLI's modules, the staff commands and the entry point among them."""
    staff = {"staff_cmd", "staff_client", "staff_options", "staff_words", "send_cmd", "inbox_cmd",
             "upload", "progress"}  # fmt: skip
    expected = {"exchange.cli.main", "exchange.cli.state"} | {f"exchange.cli.{m}" for m in staff}
    assert expected <= set(CLI_MODULES)


@pytest.mark.parametrize("module", CLI_MODULES)
def test_cli_module_imports_without_posix_only_modules(module: str) -> None:
    """Each CLI module, and all it imports, imports with the POSIX-only modules missing."""
    result = _run(
        f"""
        import importlib
        importlib.import_module({module!r})
        loaded = sorted(name for name in {POSIX_ONLY!r} if sys.modules.get(name) is not None)
        print("loaded:", loaded)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded: []"


@pytest.mark.parametrize(
    "command", [[], ["send"], ["inbox", "list"], ["inbox", "open"]], ids=" ".join
)
def test_exchange_help_runs_without_posix_only_modules(command: list[str]) -> None:
    """``exchange [COMMAND] --help`` prints the usage with the POSIX-only modules missing."""
    result = _run(
        f"""
        sys.argv = ["exchange", *{command!r}, "--help"]
        from exchange.cli.main import main
        try:
            code = main()
        except SystemExit as stop:
            code = stop.code
        sys.exit(code or 0)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "usage: exchange" in result.stdout


def test_directory_state_lock_says_plainly_when_no_locking_exists(tmp_path: Path) -> None:
    """With neither fcntl nor msvcrt, updating the version record is refused in plain words."""
    result = _run(
        f"""
        from pathlib import Path
        from exchange.cli.errors import CliError
        from exchange.cli.state import _locked
        try:
            with _locked(Path({str(tmp_path)!r})):
                print("locked")
        except CliError as error:
            print("refused:", error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: this system offers no file locking")
