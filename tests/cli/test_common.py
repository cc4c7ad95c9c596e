"""Passphrase prompting and error translation details."""

from __future__ import annotations

import getpass
import io
import sys

import pytest

from exchange.cli import common
from exchange.cli.errors import UsageError, describe


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_prompts_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variable, a terminal user is asked (twice when creating)."""
    monkeypatch.delenv("EXCHANGE_PASSPHRASE")
    monkeypatch.setattr(sys, "stdin", _Terminal())
    answers = iter(["typed", "typed"])
    monkeypatch.setattr(getpass, "getpass", lambda _prompt: next(answers))
    assert common.passphrase("EXCHANGE_PASSPHRASE", "? ", confirm=True) == b"typed"


def test_mismatched_confirmation_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two different answers when creating a key are refused."""
    monkeypatch.delenv("EXCHANGE_PASSPHRASE")
    monkeypatch.setattr(sys, "stdin", _Terminal())
    answers = iter(["one", "two"])
    monkeypatch.setattr(getpass, "getpass", lambda _prompt: next(answers))
    with pytest.raises(UsageError, match="differ"):
        common.passphrase("EXCHANGE_PASSPHRASE", "? ", confirm=True)


def test_unknown_exceptions_show_only_their_type() -> None:
    """An unexpected exception's message (which could hold anything) is not shown."""
    status, message = describe(TypeError("secret content here"))
    assert status == 1
    assert "secret" not in message
    assert "TypeError" in message


def test_messages_are_one_line() -> None:
    """A message with newlines is flattened to one line."""
    _, message = describe(ValueError("first\nsecond"))
    assert message == "first second"


def test_interrupt_status() -> None:
    """Ctrl-C exits 130."""
    assert describe(KeyboardInterrupt()) == (130, "interrupted")


def test_unrecognised_arguments_name_options_but_never_values() -> None:
    """A value typed in the wrong place (a token, a UPN) is counted, not repeated."""
    parser = common.Parser(prog="exchange test")
    parser.add_argument("--token-env")
    with pytest.raises(UsageError) as caught:
        parser.parse_args(["--tok", "SECRET-VALUE", "W356200124001"])
    message = str(caught.value)
    assert "SECRET-VALUE" not in message
    assert "W356200124001" not in message
    assert message.startswith("unrecognised arguments: --tok and 2 other values (not shown)")
