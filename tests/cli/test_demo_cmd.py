"""``exchange demo``'s refusals: no demo extra, no demo, a bad ``--mesh-sandbox`` folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from exchange.demo.services import sandbox_folder_problem
from tests.cli.conftest import assert_refused, run


def _forget_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Drop the demo's modules so the command imports them again, as a fresh process would.
    for name in [m for m in sys.modules if m == "exchange.demo" or m.startswith("exchange.demo.")]:
        monkeypatch.delitem(sys.modules, name)


def test_demo_without_its_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """With aiosmtpd missing, the demo fails with one line naming the demo extra."""
    _forget_demo(monkeypatch)
    # A None entry makes the import fail; submodules are hidden too, as another test may
    # have imported them already.
    for name in [m for m in sys.modules if m.startswith("aiosmtpd.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "aiosmtpd", None)
    line = assert_refused(run("demo"), 1, "pip install 'safeguarding-exchange[demo]'")
    assert line.count(". ") == 0


def test_demo_missing_from_the_installation_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the demo package itself, the command says the demo is not installed."""
    _forget_demo(monkeypatch)
    monkeypatch.setitem(sys.modules, "exchange.demo.story", None)
    assert_refused(run("demo"), 1, "the demo is not part of this installation")


def test_mesh_sandbox_folder_of_files_is_refused_untouched(tmp_path: Path) -> None:
    """Building clears the folder, so one that holds files and is no venv is refused as is."""
    folder = tmp_path / "Documents"
    folder.mkdir()
    (folder / "letter.txt").write_text("keep me", "utf-8")
    line = assert_refused(
        run("demo", "--no-serve", "--mesh-sandbox", str(folder)), 1, "not a virtual environment"
    )
    assert "--mesh-sandbox" in line
    assert [p.name for p in folder.iterdir()] == ["letter.txt"]
    assert (folder / "letter.txt").read_text("utf-8") == "keep me"


def test_mesh_sandbox_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """A file where the environment's folder should be is refused, and left alone."""
    file = tmp_path / "venv"
    file.write_bytes(b"x")
    assert_refused(run("demo", "--mesh-sandbox", str(file)), 1, "is not a folder")
    assert file.read_bytes() == b"x"


@pytest.mark.parametrize("state", ["missing", "empty", "venv"])
def test_mesh_sandbox_folder_that_may_be_built_in(tmp_path: Path, state: str) -> None:
    """A missing or empty folder, or a virtual environment, may hold the sandbox."""
    folder = tmp_path / "venv"
    if state != "missing":
        folder.mkdir()
    if state == "venv":
        (folder / "pyvenv.cfg").write_text("home = /usr/bin\n", "utf-8")
        (folder / "lib").mkdir()
    assert sandbox_folder_problem(folder) is None
