"""Replay protection: remember each (keyid, nonce) pair for as long as its request is fresh.

A verified request is fresh while its ``created`` time is within the receiver's clock skew
(docs/protocol.md §5), so a cache that keeps every pair until ``created + window`` with
``window >= max_skew`` sees every replay that could otherwise be accepted. The port is one
method, :meth:`ReplayCache.seen_or_record`, so the store can back it with a table later; the
in-memory :class:`MemoryReplayCache` ships here for single-process nodes and for tests.
"""

from __future__ import annotations

import heapq
from typing import Final, Protocol

from exchange.peerauth.errors import ReplayCacheFullError

#: Default bound on remembered nonces. At 300 s of window this admits about 3,300 requests
#: per second from all peers together, far above what a hosting LA's node receives, while
#: keeping the cache to tens of megabytes at worst.
DEFAULT_MAX_ENTRIES: Final = 1_000_000


class ReplayCache(Protocol):
    """Remembers (key, nonce) pairs of accepted requests for a window of time."""

    def seen_or_record(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Return True if (key, nonce) was recorded and has not expired; else record it.

        ``created`` is the request's signed creation time and ``now`` the receiver's clock,
        both in unix seconds. The check and the record are one atomic step. An
        implementation that cannot record raises
        :class:`~exchange.peerauth.errors.ReplayCacheFullError` (or another
        :class:`~exchange.peerauth.errors.PeerAuthError`) instead of answering False.
        """
        ...


class MemoryReplayCache:
    """An in-memory :class:`ReplayCache` with a time window and a bounded size.

    An entry expires once ``now > created + window_seconds``. ``window_seconds`` must be at
    least the verifier's ``max_skew``, or a replay of a request signed up to ``max_skew``
    seconds ago could be accepted after its entry expired. When ``max_entries`` unexpired
    entries are held, new requests are refused with
    :class:`~exchange.peerauth.errors.ReplayCacheFullError` (HTTP 503): refusing is safe,
    while dropping an entry early would let its request be replayed. Not thread-safe; use
    it from one event loop.
    """

    def __init__(self, window_seconds: int, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if type(window_seconds) is not int or window_seconds <= 0:
            raise ValueError("window_seconds must be a positive integer")
        if type(max_entries) is not int or max_entries <= 0:
            raise ValueError("max_entries must be a positive integer")
        self.window_seconds = window_seconds
        self.max_entries = max_entries
        self._expiry: dict[tuple[str, str], int] = {}
        self._queue: list[tuple[int, str, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def _expire(self, now: int) -> None:
        while self._queue and self._queue[0][0] < now:
            expires, key, nonce = heapq.heappop(self._queue)
            # A pair is only ever in the queue once, so its dict entry is this one.
            if self._expiry.get((key, nonce)) == expires:
                del self._expiry[key, nonce]

    def seen_or_record(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Return True if (key, nonce) is remembered; otherwise remember it and return False."""
        self._expire(now)
        if (key, nonce) in self._expiry:
            return True
        if len(self._expiry) >= self.max_entries:
            raise ReplayCacheFullError(self.max_entries)
        # Keep the entry while the request could still pass the skew check, and at least
        # one window from now, so a clock that steps back cannot revive an old request.
        expires = max(created, now) + self.window_seconds
        self._expiry[key, nonce] = expires
        heapq.heappush(self._queue, (expires, key, nonce))
        return False
