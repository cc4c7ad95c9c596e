"""Log lines of a command: on standard error, warnings only, and nothing left behind.

A command's standard output is its result alone (a token, a list, JSON), so any log line
goes to standard error, and only warnings and worse unless the command sets up logging
itself (``exchange serve``). A command run inside another program, as the tests run them,
must leave that program's logging as it found it: logging bound to the standard error of
the moment, or filtered at WARNING, would lose later log lines or write to a closed file.
"""

from __future__ import annotations

import argparse
import io
import sys

import pytest
import structlog
from structlog.testing import capture_logs

from exchange.cli import main as cli_main
from exchange.logs import get_logger


def _parser_logging_twice() -> argparse.ArgumentParser:
    """Return a parser whose one command logs an info line and a warning, then prints."""

    def command(_: argparse.Namespace) -> int:
        log = get_logger("exchange.test")
        log.info("test.info_line")
        log.warning("test.warning_line")
        print("the result")
        return 0

    parser = argparse.ArgumentParser(prog="exchange")
    parser.set_defaults(handler=command)
    return parser


@pytest.fixture
def logging_command(monkeypatch: pytest.MonkeyPatch) -> None:
    structlog.reset_defaults()
    monkeypatch.setattr(cli_main, "build_parser", _parser_logging_twice)


@pytest.mark.usefixtures("logging_command")
def test_a_warning_goes_to_standard_error_and_info_nowhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main.main([]) == 0
    out, err = capsys.readouterr()
    assert out == "the result\n"
    assert "test.warning_line" in err
    assert "test.info_line" not in err + out


@pytest.mark.usefixtures("logging_command")
def test_the_command_leaves_logging_as_it_found_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli_main.main([]) == 0
    assert not structlog.is_configured()
    # The next command writes to standard error as it is then, not as it was.
    replaced = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replaced)
    assert cli_main.main([]) == 0
    assert "test.warning_line" in replaced.getvalue()
    # An info line logged afterwards is still seen (no WARNING filter was left behind).
    with capture_logs() as events:
        get_logger("exchange.test").info("test.after")
    structlog.reset_defaults()
    assert [e["event"] for e in events] == ["test.after"]


def test_logging_the_program_set_up_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """When logging is configured already, the command uses it and changes nothing."""
    structlog.reset_defaults()
    buffer = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cli_main, "build_parser", _parser_logging_twice)
            assert cli_main.main([]) == 0
        assert structlog.is_configured()
        assert "test.info_line" in buffer.getvalue()
        assert "test.warning_line" not in capsys.readouterr().err
    finally:
        structlog.reset_defaults()
