"""Plaintext handed to the event loop in batches: the same bytes, then the same failure."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from exchange.service.opened_bodies import StreamBrokenError, in_thread

PIECE = 64 * 1024


async def _collect(pieces: Iterator[bytes]) -> list[bytes]:
    return [batch async for batch in in_thread(pieces)]


async def test_pieces_are_joined_into_batches_of_about_a_mib() -> None:
    """Forty 64 KiB pieces come as three batches (16, 16, 8 pieces), in order, unchanged."""
    pieces = [bytes([n]) * PIECE for n in range(40)]
    batches = await _collect(iter(pieces))
    assert [len(b) for b in batches] == [16 * PIECE, 16 * PIECE, 8 * PIECE]
    assert b"".join(batches) == b"".join(pieces)


async def test_nothing_gives_no_batch() -> None:
    assert await _collect(iter([])) == []


async def test_a_failure_part_way_comes_after_the_pieces_before_it() -> None:
    """What was made before a failure is given first; the failure is raised after it."""

    def pieces() -> Iterator[bytes]:
        yield b"a" * PIECE
        yield b"b" * PIECE
        raise StreamBrokenError("OpenError")

    stream = in_thread(pieces())
    assert await anext(stream) == b"a" * PIECE + b"b" * PIECE
    with pytest.raises(StreamBrokenError):
        await anext(stream)


async def test_a_failure_before_any_piece_is_raised_at_once() -> None:
    def pieces() -> Iterator[bytes]:
        raise LookupError("no such attachment")
        yield b""  # pragma: no cover - makes this a generator

    with pytest.raises(LookupError, match="no such attachment"):
        await _collect(pieces())


async def test_abandoning_the_stream_waits_for_the_batch_being_made() -> None:
    """A caller that stops part-way (the client went) leaves no batch running behind it."""
    made: list[int] = []

    def pieces() -> Iterator[bytes]:
        for n in range(64):
            time.sleep(0.005)  # slow enough that an unawaited batch is still being made
            made.append(n)
            yield bytes([n]) * PIECE

    stream = in_thread(pieces())
    first = await anext(stream)
    assert len(first) == 16 * PIECE
    await stream.aclose()
    assert len(made) == 32  # the first batch, and the one made ahead while it was sent
