"""``exchange demo`` without the demo extra: one sentence naming the install command."""

from __future__ import annotations

import sys

import pytest

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
