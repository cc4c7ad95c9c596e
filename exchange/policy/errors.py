"""Errors raised by the policy package: configuration, calendar coverage and refusals.

The tree::

    PolicyError                   base of everything this package raises
    ├── PolicyConfigError         a configuration file breaks a rule; ``setting`` names it
    │                             (for example ``purposes.lac-health.recipient_kinds[1]``)
    ├── CalendarCoverageError     a date falls outside the years the calendar or the bank
    │                             holiday list covers, so no deadline can be trusted
    └── RefusedError              a refused decision was required to be allowed
                                  (:meth:`Decision.require`); ``decision`` holds it

A refusal is a value first (:class:`~exchange.policy.decisions.Decision`), because the sharing
register records refusals and decisions not to share as well as disclosures; ``RefusedError``
exists for callers that must not go on after a refusal. Messages are plain sentences naming
the setting, the rule or the date; they never contain a record's content. Misuse by the caller
(a naive datetime, a negative count) is ``TypeError``/``ValueError`` naming the argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exchange.policy.decisions import Decision


class PolicyError(Exception):
    """Base class of every error raised by the ``exchange.policy`` package."""


class PolicyConfigError(PolicyError):
    """A policy, calendar or retention file is invalid; ``setting`` names the setting."""

    def __init__(self, setting: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{setting} {message}" if setting else message)
        self.setting = setting
        self.hint = hint


class CalendarCoverageError(PolicyError):
    """A date is outside the period the configured calendar covers."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.hint = (
            "add the next academic year's term dates and the bank holidays for its calendar "
            "years to config/calendar.toml"
        )


class RefusedError(PolicyError):
    """A decision that had to be 'allowed' was not; ``decision`` says which rule decided."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.explanation)
        self.decision = decision
