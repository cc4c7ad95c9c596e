"""MemoryReplayCache: remembers pairs for the window, expires them, refuses when full."""

from __future__ import annotations

import pytest

from exchange.peerauth import MemoryReplayCache, ReplayCacheFullError

T = 1_700_000_000


def test_first_sight_records_and_second_is_seen() -> None:
    """A new pair is recorded (False); the same pair again is seen (True)."""
    cache = MemoryReplayCache(300)
    assert cache.seen_or_record("k", "n", T, T) is False
    assert cache.seen_or_record("k", "n", T, T + 1) is True


def test_pairs_are_per_key() -> None:
    """The same nonce under another key is a different pair."""
    cache = MemoryReplayCache(300)
    assert cache.seen_or_record("k1", "n", T, T) is False
    assert cache.seen_or_record("k2", "n", T, T) is False


def test_entry_lives_until_created_plus_window() -> None:
    """An entry is seen up to created + window and forgotten after it."""
    cache = MemoryReplayCache(300)
    cache.seen_or_record("k", "n", T, T)
    assert cache.seen_or_record("k", "n", T, T + 300) is True
    assert cache.seen_or_record("k", "other", T + 301, T + 301) is False
    assert len(cache) == 1
    assert cache.seen_or_record("k", "n", T, T + 301) is False


def test_future_created_extends_the_entry() -> None:
    """A request dated ahead of the receiver's clock is remembered until its own window ends."""
    cache = MemoryReplayCache(300)
    cache.seen_or_record("k", "n", T + 200, T)
    assert cache.seen_or_record("k", "n", T + 200, T + 450) is True


def test_full_cache_refuses_with_503() -> None:
    """With max_entries live entries, a new pair is refused rather than an old one dropped."""
    cache = MemoryReplayCache(300, max_entries=2)
    cache.seen_or_record("k", "1", T, T)
    cache.seen_or_record("k", "2", T, T)
    with pytest.raises(ReplayCacheFullError) as info:
        cache.seen_or_record("k", "3", T, T)
    assert info.value.status == 503
    assert cache.seen_or_record("k", "1", T, T) is True


def test_full_cache_accepts_again_after_expiry() -> None:
    """Expired entries free their room."""
    cache = MemoryReplayCache(300, max_entries=1)
    cache.seen_or_record("k", "1", T, T)
    assert cache.seen_or_record("k", "2", T + 301, T + 301) is False


@pytest.mark.parametrize(("window", "entries"), [(0, 1), (-1, 1), (300, 0)])
def test_bad_configuration_is_refused(window: int, entries: int) -> None:
    """The window and the bound must be positive."""
    with pytest.raises(ValueError, match="must be a positive integer"):
        MemoryReplayCache(window, max_entries=entries)
