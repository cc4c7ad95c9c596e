"""The node service's refusals, meant for the API.

Errors meant for the API are :class:`ServiceError` subclasses carrying an HTTP status and a
plain sentence that never holds record content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from exchange.store.damage import StoreDamagedError

# The store's damage reaches the API and the pages through the service's errors.
__all__ = ["StoreDamagedError"]


class ServiceError(Exception):
    """A refusal the API reports with ``status`` and a plain, content-free sentence."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFoundError(ServiceError):
    """No such item for this organisation (also used to hide other organisations' items)."""

    status = 404


class ForbiddenError(ServiceError):
    """The user's role does not allow the action."""

    status = 403


class ConflictError(ServiceError):
    """The action contradicts the item's state (e.g. acknowledging a rejected item)."""

    status = 409


class DamagedItemError(ServiceError):
    """The node's stored copy of an item is damaged: it cannot be opened or decided."""

    status = 409

    def __init__(self) -> None:
        super().__init__(
            "this node's stored copy of the item is damaged, so it cannot be opened, "
            "acknowledged or rejected; ask the sender to send it again, and tell the person "
            "who runs the node"
        )


class GoneError(ServiceError):
    """The item was recalled by its sender, or destroyed under retention.

    It can no longer be opened or decided.
    """

    status = 410


class UnprocessableError(ServiceError):
    """A well-formed request refused by a rule: ``rule`` names it; ``problems`` lists fields.

    The API adds both to the error object (``{"error": {..., "rule", "problems"}}``).
    """

    status = 422

    def __init__(
        self, message: str, *, rule: str, problems: Sequence[Mapping[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = {"rule": rule}
        if problems:
            self.details["problems"] = [dict(p) for p in problems]


class TooLargeError(UnprocessableError):
    """A submission larger than the node's ``[limits] max_envelope_bytes`` lets it send.

    Answered 413; the message names the limit in bytes and the setting, the rule is
    :data:`TOO_LARGE_RULE`.
    """

    status = 413

    def __init__(self, message: str) -> None:
        super().__init__(message, rule=TOO_LARGE_RULE)


#: The rule of a submission over the node's size limit.
TOO_LARGE_RULE = "limits.max-envelope-bytes"


class NotYetError(ServiceError):
    """Something dated in the future by a fast clock: refused for now, taken once it is due.

    ``rule`` names the time rule (``receipt.time``, ``created.not-future``);
    ``retry_after`` is how many seconds until it is due. The API answers 503 with a
    ``Retry-After``, so the peer's outbox or the collector tries again.
    """

    status = 503

    def __init__(self, message: str, *, rule: str, retry_after: int) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.retry_after = max(1, retry_after)


class InvalidTokenError(ServiceError):
    """A bearer token the node knows but no longer accepts (expired or revoked).

    Answered 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 §3.1).
    """

    status = 401
