"""Limits on concurrent uploads: per peer organisation and in total (docs/protocol.md §3).

A receiver holds a request body in a temporary file (and then in memory) from the moment it
starts to read it until the service has handled it, so the number of bodies in flight bounds
what peers can make it hold. :class:`UploadLimits` counts them without waiting: a request
over a limit is refused at once with :class:`~exchange.peerauth.errors.UploadsBusyError`
(503 with ``Retry-After``), and the sender's outbox retries it later. The total limit is
taken before the headers are verified, so a flood of unsigned requests is refused without
verification work queueing up; the per-peer limit only once the signature has named the
peer, since an unverified ``keyid`` names nobody. Not thread-safe; use it from one event
loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from exchange.keys.ids import OrgId
from exchange.peerauth.errors import UploadsBusyError

#: Defaults: a peer's outbox sends a few envelopes at once; a hosting LA's node hears from
#: dozens of schools, but rarely from more than a handful in the same second.
DEFAULT_PER_PEER: Final = 4
DEFAULT_TOTAL: Final = 16
#: Seconds a refused sender is asked to wait before it tries again.
DEFAULT_RETRY_AFTER: Final = 5


class UploadLimits:
    """Counts uploads in flight, per peer and in total, and refuses those over a limit."""

    def __init__(
        self,
        per_peer: int = DEFAULT_PER_PEER,
        total: int = DEFAULT_TOTAL,
        *,
        retry_after: int = DEFAULT_RETRY_AFTER,
    ) -> None:
        for name, value in (("per_peer", per_peer), ("total", total), ("retry_after", retry_after)):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        self.per_peer = per_peer
        self.total = total
        self.retry_after = retry_after
        self._in_flight = 0
        self._by_peer: dict[OrgId, int] = {}

    @property
    def in_flight(self) -> int:
        """Return the number of uploads being received or handled now."""
        return self._in_flight

    def from_peer(self, org: OrgId) -> int:
        """Return the number of uploads from ``org`` being received or handled now."""
        return self._by_peer.get(org, 0)

    @contextmanager
    def any_upload(self) -> Iterator[None]:
        """Hold one of the ``total`` places while the block runs, or refuse (503) at once."""
        if self._in_flight >= self.total:
            raise UploadsBusyError("total", self.total, self.retry_after)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    @contextmanager
    def upload_from(self, org: OrgId) -> Iterator[None]:
        """Hold one of ``org``'s ``per_peer`` places while the block runs, or refuse (503)."""
        held = self._by_peer.get(org, 0)
        if held >= self.per_peer:
            raise UploadsBusyError("peer", self.per_peer, self.retry_after)
        self._by_peer[org] = held + 1
        try:
            yield
        finally:
            left = self._by_peer[org] - 1
            if left:
                self._by_peer[org] = left
            else:
                del self._by_peer[org]
