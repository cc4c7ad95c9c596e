"""Errors raised by the record layer (docs/records.md §6).

The tree::

    RecordError
    ├── RecordValidationError   a record broke its schema: ``problems`` lists each broken
    │                           rule with the field's path (at most MAX_PROBLEMS of them)
    └── ContainerError          the container bytes broke a rule of docs/records.md §4:
                                ``rule`` and ``offset`` say which and where

Catch ``RecordError`` to handle every refusal of received content alike. Misuse by the
caller (an unknown kind passed as an argument, a value of the wrong Python type) is a
``ValueError`` or ``TypeError`` naming the argument instead. Messages never quote the
record's content: they name the field, the rule and, for containers, the byte offset.
"""

from __future__ import annotations

from dataclasses import dataclass


class RecordError(Exception):
    """Base class of every refusal of a record or a record container."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: where (a dotted path such as ``child.nhs_number``), which, and why.

    ``rule`` is the JSON Schema keyword (``required``, ``maxLength``, ``enum``...), or
    ``format:<name>`` for a format (``format:nhs-number``), or one of the document rules
    ``document.size`` and ``document.json``. ``message`` never contains the value.
    """

    path: str
    rule: str
    message: str


class RecordValidationError(RecordError, ValueError):
    """A record does not satisfy the schema of its kind."""

    def __init__(self, kind: str, problems: list[Problem], *, truncated: bool = False) -> None:
        self.kind = kind
        self.problems = list(problems)
        self.truncated = truncated
        more = " (and more not listed)" if truncated else ""
        listed = "; ".join(p.message for p in self.problems)
        super().__init__(
            f"the {kind} record is invalid: {len(self.problems)} problem(s){more}: {listed}"
        )


class ContainerError(RecordError, ValueError):
    """Record-container bytes break a rule of the format."""

    def __init__(self, rule: str, offset: int, message: str) -> None:
        super().__init__(f"record container error at byte {offset} [{rule}]: {message}")
        self.rule = rule
        self.offset = offset
