"""Errors raised when a node-to-node request fails authentication (spec: docs/protocol.md §6).

The tree::

    PeerAuthError                 base: ``status`` (an HTTP status hint) and ``rule``
    ├── MalformedRequestError     400: a header is missing, too long or not of its syntax
    ├── BodyTooLargeError         413: the body is longer than the receiver accepts
    ├── NotAuthenticatedError     401: no usable signature, a stale one, or one that fails
    │   ├── ClockSkewError        401: ``created`` is outside the window: a clock is off
    │   ├── UnknownSignerError    401: the keyid names no organisation or key valid then
    │   └── ReplayError           401: the nonce was already used within the window
    ├── ReplayCacheFullError      503: the replay cache is full; the sender should retry later
    └── UploadsBusyError          503: too many uploads at once; retry after ``retry_after``

Every error is raised because of what the peer sent (or, for 503, the receiver's state);
misuse by the caller of :func:`~exchange.peerauth.sign_request` or
:func:`~exchange.peerauth.verify_request` raises ``TypeError`` or ``ValueError`` instead.
Messages are plain sentences that name the header and parameter that was wrong and the rule
id in brackets; they never repeat a header's value, a signature or a key.
"""

from __future__ import annotations

from typing import ClassVar, Final

#: The one sentence every failed cryptographic check produces, so a forger learns nothing
#: from the message about which part of the signature base differed.
OPAQUE_SIGNATURE_FAILURE: Final = (
    "the request signature does not verify: the request is not authentic or was altered"
)


class PeerAuthError(Exception):
    """Base class of every peer-authentication error.

    ``status`` is the HTTP status the receiver should answer with, ``rule`` the rule id of
    docs/protocol.md that was broken, and ``hint`` an optional note for the operator.
    """

    status: ClassVar[int] = 401

    def __init__(self, rule: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{message} [{rule}]")
        self.rule = rule
        self.hint = hint


class MalformedRequestError(PeerAuthError):
    """A header the profile needs is missing, too long, or does not parse."""

    status = 400


class BodyTooLargeError(PeerAuthError):
    """The request body is longer than the receiver's limit."""

    status = 413


class NotAuthenticatedError(PeerAuthError):
    """The request carries no acceptable signature (missing, stale, or not verifying)."""

    status = 401


class ClockSkewError(NotAuthenticatedError):
    """The signature's ``created`` time is outside the receiver's window: a clock is off.

    It is refused like any stale signature, but the answer says so in a form a machine reads
    (``problem`` is :data:`CLOCK_PROBLEM`, and the answer's ``Date`` is the receiver's
    clock), so the sender waits and tries again instead of giving up (docs/protocol.md §6).
    """

    problem: ClassVar[str] = "signature.time"


#: The ``problem`` of an answer refusing a request because of its time (a clock is off).
CLOCK_PROBLEM: Final = ClockSkewError.problem


class UnknownSignerError(NotAuthenticatedError):
    """The keyid's organisation or key is unknown, revoked, or not valid at ``created``.

    ``reason`` is :attr:`exchange.keys.errors.KeyLookupError.reason` (``unknown-organisation``,
    ``unknown-key``, ``revoked`` or ``not-valid``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(
            f"keyid.{reason}",
            message,
            hint="check that the sender's key is in the current signed directory",
        )
        self.reason = reason


class ReplayError(NotAuthenticatedError):
    """The (keyid, nonce) pair was already accepted within the replay window."""

    def __init__(self) -> None:
        super().__init__(
            "nonce.replayed",
            "the Signature-Input nonce was already used by this key: the request is a replay",
        )


class ReplayCacheFullError(PeerAuthError):
    """The replay cache holds its maximum number of entries; nothing can be recorded."""

    status = 503

    def __init__(self, limit: int) -> None:
        super().__init__(
            "replay.cache-full",
            f"the replay cache holds its limit of {limit} nonces; retry the request later",
            hint="raise the cache's max_entries or shorten the window if this recurs",
        )


class UploadsBusyError(PeerAuthError):
    """Too many uploads are being received, in total or from one organisation; retry later.

    ``retry_after`` is the number of seconds the answer's ``Retry-After`` header asks the
    sender to wait. ``scope`` is ``"total"`` or ``"peer"``.
    """

    status = 503

    def __init__(self, scope: str, limit: int, retry_after: int) -> None:
        whose = "from all peers together" if scope == "total" else "from your organisation"
        super().__init__(
            f"uploads.busy-{scope}",
            f"this node is already receiving its limit of {limit} uploads {whose}; "
            f"retry after {retry_after} seconds",
            hint="raise [server] peer_uploads or total_uploads if this recurs under normal load",
        )
        self.scope = scope
        self.retry_after = retry_after
