"""The sans-I/O reader: hostile bytes in any split raise only the format's own errors."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exchange.envelope import FormatError, Opener, OpenError, SenderError, open_envelope
from exchange.envelope.format import MAGIC, MAX_HEADER_LEN, MIN_HEADER_LEN, PREFIX_LEN, SIG_LEN
from exchange.envelope.reader import ChunkRead, EnvelopeReader, HeaderRead, TrailerRead

SCHOOL = "urn:106123"
FRONT_DOOR = "la:356"
NURSES = "ods:X26ABC"
IMPOSTOR = "urn:999999"
THIRD_PARTY = "la:357"

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, start = [], 0
    for p in [*points, len(data)]:
        out.append(data[start:p])
        start = p
    return out


def _build(generate: Any, world: Any, sender: Any = None, **hooks: Any) -> bytes:
    built = generate.build_envelope(
        hashlib.shake_256(b"reader").digest(150),
        sender or world.pairs[SCHOOL],
        world.recipients([FRONT_DOOR, NURSES]),
        created=world.now,
        chunk_size=64,
        record_kind="referral",
        random=generate.ShakeRandom("reader"),
        hooks=generate.Hooks(**hooks),
    )
    return bytes(built.envelope)


@pytest.fixture(scope="module")
def valid(generate: Any, world: Any) -> bytes:
    """Return a valid envelope of 150 bytes in 64-byte chunks for two recipients."""
    return _build(generate, world)


def _header_len(envelope: bytes) -> int:
    (n,) = struct.unpack(">H", envelope[9:11])
    return int(n)


def _count_offset(header: bytes) -> int:
    """Return the offset of the recipient count in a header (sender and kind are str8)."""
    at = PREFIX_LEN + 16 + 8
    at += 1 + header[at] + 32  # sender, sender key id
    at += 1 + header[at] + 4 + 32  # record kind, chunk size, commitment
    return at


_hostile_bytes = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=600).map(lambda b: MAGIC + b"\x01" + b),
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=800)).map(
        lambda t: MAGIC + b"\x01" + struct.pack(">H", t[0]) + t[1]
    ),
)


@SETTINGS
@given(data=_hostile_bytes, cuts=st.lists(st.integers(0, 1000), max_size=12))
def test_reader_raises_only_format_errors(data: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes in arbitrary pieces make the reader raise only OpenError subclasses."""
    reader = EnvelopeReader()
    try:
        for piece in _pieces(data, cuts):
            reader.feed(piece)
        reader.close()
    except OpenError:
        return
    pytest.fail("arbitrary bytes were read as a whole envelope")


@SETTINGS
@given(data=_hostile_bytes, cuts=st.lists(st.integers(0, 1000), max_size=12))
def test_opener_raises_only_open_errors_on_noise(
    data: bytes, cuts: list[int], world: Any, stream: Any
) -> None:
    """Arbitrary bytes fed to an Opener raise only OpenError subclasses."""
    opener = Opener(world.directory, world.keys(FRONT_DOOR), now=world.now)
    with pytest.raises(OpenError):
        stream(opener, data, cuts)


@SETTINGS
@given(
    mutation=st.tuples(
        st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=4),
        st.one_of(st.none(), st.integers(0, 2000)),
    ),
    cuts=st.lists(st.integers(0, 2000), max_size=12),
)
def test_opener_raises_only_open_errors_on_edits(
    mutation: tuple[list[tuple[int, int]], int | None],
    cuts: list[int],
    valid: bytes,
    world: Any,
    stream: Any,
) -> None:
    """A valid envelope with bytes replaced or cut, in any pieces, fails only with OpenError."""
    edits, cut = mutation
    data = bytearray(valid)
    for index, value in edits:
        data[index % len(data)] = value
    if cut is not None:
        del data[cut % len(data) :]
    if bytes(data) == valid:
        return
    opener = Opener(world.directory, world.keys(NURSES), now=world.now)
    with pytest.raises(OpenError):
        stream(opener, bytes(data), cuts)


def test_reader_events_of_a_valid_envelope(valid: bytes) -> None:
    """A valid envelope reads as a header, three data chunks, the final chunk, the trailer."""
    reader = EnvelopeReader()
    events = reader.feed(valid)
    reader.close()
    assert isinstance(events[0], HeaderRead)
    assert [type(e) for e in events[1:5]] == [ChunkRead] * 4
    assert [e.final for e in events[1:5] if isinstance(e, ChunkRead)] == [False] * 3 + [True]
    assert isinstance(events[5], TrailerRead)
    assert len(events) == 6
    assert reader.done


@pytest.mark.parametrize("count", [0, 17, 255])
def test_bad_recipient_count_is_refused_before_any_slot(count: int, valid: bytes) -> None:
    """A recipient count outside 1..16 is refused before the slots (garbage here) are read."""
    header = bytearray(valid[: _header_len(valid)])
    at = _count_offset(bytes(header))
    assert header[at] == 2  # the two recipients of the valid envelope
    header[at] = count
    # Garbage where the slots are: reading a slot would fail header.ids, not the count rule.
    header[at + 1 :] = b"\xff" * (len(header) - at - 1)
    with pytest.raises(FormatError) as info:
        EnvelopeReader().feed(bytes(header))
    assert info.value.rule == "header.recipient-count"
    assert info.value.offset == at


def test_huge_count_in_a_maximal_header_is_refused_at_the_count(valid: bytes) -> None:
    """A 4096-byte header claiming 255 slots is refused at the count byte."""
    header = bytearray(valid[: _header_len(valid)])
    at = _count_offset(bytes(header))
    header = header[: at + 1] + bytearray(MAX_HEADER_LEN - at - 1)
    header[at] = 255
    header[9:11] = struct.pack(">H", MAX_HEADER_LEN)
    with pytest.raises(FormatError) as info:
        EnvelopeReader().feed(bytes(header))
    assert info.value.rule == "header.recipient-count"


@pytest.mark.parametrize("length", [0, MIN_HEADER_LEN - 1, MAX_HEADER_LEN + 1, 0xFFFF])
def test_header_length_out_of_range_is_refused_at_once(length: int) -> None:
    """A header_len outside 226..4096 is refused from the first eleven bytes alone."""
    with pytest.raises(FormatError) as info:
        EnvelopeReader().feed(MAGIC + b"\x01" + struct.pack(">H", length))
    assert info.value.rule == "header.length"
    assert info.value.offset == 9


def test_maximal_header_length_waits_for_more_bytes() -> None:
    """A header_len of exactly 4096 is accepted and the reader waits for the header."""
    reader = EnvelopeReader()
    assert reader.feed(MAGIC + b"\x01" + struct.pack(">H", MAX_HEADER_LEN)) == []
    with pytest.raises(FormatError) as info:
        reader.close()
    assert info.value.rule == "envelope.truncated"


def test_trailing_data_in_a_later_feed_is_refused(valid: bytes) -> None:
    """Bytes fed after the trailer was complete are refused as trailing data."""
    reader = EnvelopeReader()
    reader.feed(valid)
    with pytest.raises(FormatError) as info:
        reader.feed(b"\x00")
    assert info.value.rule == "envelope.trailing-data"
    assert info.value.offset == len(valid)


def test_empty_feeds_change_nothing(valid: bytes) -> None:
    """Feeding empty pieces between bytes gives the same events as one feed."""
    reader = EnvelopeReader()
    events = []
    for byte in valid:
        events += reader.feed(b"")
        events += reader.feed(bytes([byte]))
    events += reader.feed(b"")
    reader.close()
    assert [type(e) for e in events] == [type(e) for e in EnvelopeReader().feed(valid)]


# --- the order of checks (docs/envelope.md §7: "in this order") -----------------------------


def test_sender_is_checked_before_later_framing_in_memory(generate: Any, world: Any) -> None:
    """An unknown sender is refused (step 8) even when later bytes break a framing rule."""
    impostor = generate.generation(IMPOSTOR).pair
    envelope = _build(generate, world, sender=impostor) + b"\x00"
    with pytest.raises(OpenError) as info:
        open_envelope(envelope, world.directory, world.keys(FRONT_DOOR), now=world.now)
    assert type(info.value) is SenderError
    assert info.value.rule == "sender.known"


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 2000), max_size=6))
@example(cuts=[])
def test_outcome_does_not_depend_on_how_bytes_are_fed(
    cuts: list[int], generate: Any, world: Any, stream: Any
) -> None:
    """A bad header signature is reported before a later bad chunk type, however bytes arrive."""
    envelope = _build(
        generate,
        world,
        header_signer=generate.generation(THIRD_PARTY).pair.signing,
        chunk_types={1: 0x03},
    )
    opener = Opener(world.directory, world.keys(FRONT_DOOR), now=world.now)
    with pytest.raises(OpenError) as info:
        stream(opener, envelope, cuts)
    assert type(info.value) is OpenError  # sig.header (step 9), not chunk.type (step 12)


def test_header_then_signature_split_reports_the_signature(generate: Any, world: Any) -> None:
    """Fed header and signature first, a bad header signature is what is reported."""
    envelope = _build(
        generate,
        world,
        header_signer=generate.generation(THIRD_PARTY).pair.signing,
        chunk_types={1: 0x03},
    )
    split = _header_len(envelope) + SIG_LEN
    opener = Opener(world.directory, world.keys(FRONT_DOOR), now=world.now)
    with pytest.raises(OpenError) as info:
        opener.feed(envelope[:split])
    assert type(info.value) is OpenError


def _outcome(opener: Opener, data: bytes, cuts: list[int], stream: Any) -> object:
    """Return the content, or the class and rule of the error, of one open."""
    try:
        return stream(opener, data, cuts)
    except OpenError as exc:
        return type(exc), exc.rule


@SETTINGS
@given(
    edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=3),
    cuts=st.lists(st.integers(0, 2000), min_size=1, max_size=12),
)
def test_any_split_gives_the_same_outcome_as_one_feed(
    edits: list[tuple[int, int]], cuts: list[int], valid: bytes, world: Any, stream: Any
) -> None:
    """Content or error (class and rule) never depends on how the bytes were cut into feeds."""
    data = bytearray(valid)
    for index, value in edits:
        at = index % (len(valid) + 4)  # now and then past the end: trailing data
        if at < len(data):
            data[at] = value
        else:
            data.append(value)
    envelope = bytes(data)
    whole = _outcome(
        Opener(world.directory, world.keys(NURSES), now=world.now), envelope, [], stream
    )
    split = _outcome(
        Opener(world.directory, world.keys(NURSES), now=world.now), envelope, cuts, stream
    )
    assert split == whole


def test_empty_input_says_it_is_empty() -> None:
    """An empty input is refused as truncated with a message saying it is empty."""
    reader = EnvelopeReader()
    reader.feed(b"")
    with pytest.raises(FormatError, match=r"byte 0 \[envelope.truncated\]: the input is empty"):
        reader.close()
