"""Errors raised when sealing or opening envelopes (spec: docs/envelope.md §8).

The tree::

    EnvelopeError
    ├── SealError               the caller asked for an envelope the format cannot express
    └── OpenError               the envelope could not be opened or verified; the message is
        │                       one fixed sentence for every cryptographic failure
        ├── FormatError         a structural rule was broken: ``rule`` and ``offset`` say which
        ├── SenderError         the sender or its key is unknown, revoked or not valid then
        └── NotRecipientError   none of the reader's keys is addressed by the envelope

Catch ``OpenError`` to handle every failure to open alike. Messages never contain content,
keys or anything decrypted.
"""

from __future__ import annotations

from typing import Final

#: The one sentence every cryptographic failure produces (docs/envelope.md §8).
OPAQUE_OPEN_FAILURE: Final = (
    "the envelope could not be opened: it is not authentic or it was altered"
)


class EnvelopeError(Exception):
    """Base class of every envelope error."""


class SealError(EnvelopeError, ValueError):
    """The arguments to seal cannot make a valid envelope (too many recipients, ...)."""


class OpenError(EnvelopeError):
    """The envelope could not be opened or verified."""

    rule: str | None = None

    def __init__(self, message: str = OPAQUE_OPEN_FAILURE) -> None:
        super().__init__(message)


class FormatError(OpenError):
    """The bytes break a structural rule of the format."""

    def __init__(self, rule: str, offset: int, message: str) -> None:
        super().__init__(f"envelope format error at byte {offset} [{rule}]: {message}")
        self.rule = rule
        self.offset = offset


class SenderError(OpenError):
    """The sender, or the key it signed with, is not trusted for this envelope."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"envelope sender refused [{rule}]: {message}")
        self.rule = rule


class NotRecipientError(OpenError):
    """The reader's organisation, or its key, is not addressed by the envelope."""

    rule = "recipient.addressed"
