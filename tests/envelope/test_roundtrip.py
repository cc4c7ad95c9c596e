"""Round trips: whatever is sealed, every recipient opens to the same content and digest."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exchange.envelope import (
    NotRecipientError,
    Opener,
    Recipient,
    Sealer,
    SealError,
    open_envelope,
    seal,
    verify_envelope,
)
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair

SCHOOL = "urn:106123"
FRONT_DOOR = "la:356"
NURSES = "ods:X26ABC"
THIRD_PARTY = "la:357"
FILLERS = tuple(f"urn:1000{n:02d}" for n in range(1, 16))
#: Sixteen possible recipients (the sender's own organisation is not among them).
CANDIDATES = (FRONT_DOOR, NURSES, *FILLERS[:14])
CHUNK_SIZES = (64, 128, 1024, 4096, 65_536)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _content(seed: int, length: int) -> bytes:
    return hashlib.shake_256(seed.to_bytes(8, "big")).digest(length) if length else b""


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    """Return ``data`` cut at the given offsets (taken modulo its length, sorted)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, start = [], 0
    for p in [*points, len(data)]:
        out.append(data[start:p])
        start = p
    return out


@st.composite
def _sealing(draw: Any) -> tuple[bytes, int, list[str]]:
    chunk_size = draw(st.sampled_from(CHUNK_SIZES))
    # Small chunk sizes get shorter content so that each example stays fast.
    limit = min(300_000, 48 * chunk_size)
    length = draw(st.one_of(st.integers(0, 3 * chunk_size + 1), st.integers(0, limit)))
    seed = draw(st.integers(0, 2**32))
    orgs = draw(st.permutations(CANDIDATES))[: draw(st.integers(1, 16))]
    return _content(seed, length), chunk_size, orgs


@SETTINGS
@given(case=_sealing())
@example(case=(_content(1, 300_000), 65_536, list(CANDIDATES)))
@example(case=(_content(2, 3 * 4096), 64, list(reversed(CANDIDATES))))
@example(case=(b"", 64, [FRONT_DOOR]))
def test_every_recipient_opens_the_same_content(case: Any, world: Any) -> None:
    """Any content to 1-16 recipients opens for each to the same content and digest."""
    content, chunk_size, orgs = case
    envelope, sealed = seal(
        content,
        world.pairs[SCHOOL],
        world.recipients(orgs),
        record_kind="referral",
        created=world.now - 5,
        chunk_size=chunk_size,
    )
    assert sealed.recipients == tuple(sorted(orgs))
    assert sealed.envelope_length == len(envelope)
    assert sealed.content_length == len(content)
    for org in orgs:
        opened_content, opened = open_envelope(
            envelope, world.directory, world.keys(org), now=world.now
        )
        assert opened_content == content
        assert opened.verified.digest == sealed.digest
        assert opened.content_length == len(content)
    assert verify_envelope(envelope, world.directory, now=world.now).digest == sealed.digest


@SETTINGS
@given(
    length=st.integers(0, 2000),
    chunk_size=st.sampled_from((64, 128)),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
    unjoined=st.booleans(),
)
def test_streaming_sealer_matches_seal(
    length: int, chunk_size: int, cuts: list[int], unjoined: bool, world: Any, generate: Any
) -> None:
    """Feeding the Sealer arbitrary pieces (feed or feed_pieces) gives exactly seal's bytes."""
    content = _content(length, length)
    args = {
        "record_kind": "referral",
        "created": world.now,
        "chunk_size": chunk_size,
    }
    recipients = world.recipients([NURSES, FRONT_DOOR])
    expected, sealed = seal(
        content, world.pairs[SCHOOL], recipients, random=generate.ShakeRandom("split"), **args
    )
    sealer = Sealer(world.pairs[SCHOOL], recipients, random=generate.ShakeRandom("split"), **args)
    parts = [sealer.start()]
    for piece in _splits(content, cuts):
        parts += sealer.feed_pieces(piece) if unjoined else [sealer.feed(piece)]
    tail, streamed = sealer.finish()
    assert b"".join(parts) + tail == expected
    assert streamed == sealed


@SETTINGS
@given(
    length=st.integers(0, 1500),
    cuts=st.lists(st.integers(0, 5000), max_size=30),
    unjoined=st.booleans(),
)
def test_streaming_opener_matches_open(
    length: int, cuts: list[int], unjoined: bool, world: Any
) -> None:
    """Feeding the Opener arbitrary pieces (feed or feed_pieces) yields content and digest."""
    content = _content(length + 7, length)
    envelope, sealed = seal(
        content,
        world.pairs[SCHOOL],
        world.recipients([FRONT_DOOR, NURSES]),
        record_kind="referral",
        created=world.now,
        chunk_size=64,
    )
    opener = Opener(world.directory, world.keys(NURSES), now=world.now)
    out: list[bytes] = []
    for piece in _splits(envelope, cuts):
        out += opener.feed_pieces(piece) if unjoined else [opener.feed(piece)]
    plaintext = b"".join(out)
    opened = opener.finish_opened()
    assert plaintext == content
    assert opened.verified.digest == sealed.digest
    assert opened.verified.envelope_length == len(envelope)


def test_non_recipient_is_refused(world: Any) -> None:
    """An organisation without a slot gets NotRecipientError, naming itself."""
    envelope, _ = seal(
        b"x" * 100,
        world.pairs[SCHOOL],
        world.recipients([FRONT_DOOR, NURSES]),
        record_kind="referral",
        created=world.now,
    )
    with pytest.raises(NotRecipientError, match="la:357"):
        open_envelope(envelope, world.directory, world.keys(THIRD_PARTY), now=world.now)


def test_recipient_with_other_key_is_refused(world: Any) -> None:
    """A recipient holding only another key generation is not addressed by the slot."""
    envelope, _ = seal(
        b"record",
        world.pairs[SCHOOL],
        world.recipients([FRONT_DOOR]),
        record_kind="referral",
        created=world.now,
    )
    other = OrgKeyPair.generate(OrgId(FRONT_DOOR))
    with pytest.raises(NotRecipientError):
        open_envelope(envelope, world.directory, [other], now=world.now)
    content, _ = open_envelope(
        envelope, world.directory, [other, world.pairs[FRONT_DOOR]], now=world.now
    )
    assert content == b"record"


def test_created_at_the_skew_limit_opens(world: Any) -> None:
    """An envelope created exactly 300 s ahead of the reader's clock is still accepted."""
    envelope, _ = seal(
        b"on the limit",
        world.pairs[SCHOOL],
        world.recipients([FRONT_DOOR]),
        record_kind="referral",
        created=world.now + 300,
    )
    content, _ = open_envelope(envelope, world.directory, world.keys(FRONT_DOOR), now=world.now)
    assert content == b"on the limit"


def _seal_to(world: Any, recipients: list[Recipient], **kwargs: Any) -> Any:
    args = {"record_kind": "referral", "created": world.now, **kwargs}
    return seal(b"content", world.pairs[SCHOOL], recipients, **args)


@pytest.mark.parametrize("count", [0, 17])
def test_seal_refuses_recipient_count(count: int, world: Any) -> None:
    """Sealing to no recipient or to more than sixteen raises SealError."""
    orgs = [FRONT_DOOR, NURSES, *FILLERS][:count]
    assert len(orgs) == count
    with pytest.raises(SealError):
        _seal_to(world, world.recipients(orgs))


def test_seal_refuses_duplicate_recipients(world: Any) -> None:
    """Naming a recipient twice raises SealError."""
    with pytest.raises(SealError, match="twice"):
        _seal_to(world, world.recipients([FRONT_DOOR, NURSES, FRONT_DOOR]))


@pytest.mark.parametrize("kind", ["", "Referral", "referral!", "a" * 33, "1referral", "réf"])
def test_seal_refuses_bad_record_kind(kind: str, world: Any) -> None:
    """A record kind outside [a-z][a-z0-9-]{0,31} raises SealError."""
    with pytest.raises(SealError):
        _seal_to(world, world.recipients([FRONT_DOOR]), record_kind=kind)


@pytest.mark.parametrize("size", [0, 1, 32, 63, 100, 65_535, 1 << 21])
def test_seal_refuses_bad_chunk_size(size: int, world: Any) -> None:
    """A chunk size that is not a power of two from 64 to 1 MiB raises SealError."""
    with pytest.raises(SealError):
        _seal_to(world, world.recipients([FRONT_DOOR]), chunk_size=size)


@pytest.mark.parametrize("created", [-1, 1 << 63])
def test_seal_refuses_bad_created(created: int, world: Any) -> None:
    """A creation time outside 0..2**63-1 raises SealError."""
    with pytest.raises(SealError):
        _seal_to(world, world.recipients([FRONT_DOOR]), created=created)


def test_seal_refuses_malformed_recipient_id(world: Any) -> None:
    """A recipient id that is not namespace:code is refused before sealing."""
    bad = Recipient(OrgId("LA 356"), world.pairs[FRONT_DOOR].encryption.public)
    with pytest.raises(ValueError, match="recipient"):
        _seal_to(world, [bad])


def test_seal_refuses_malformed_sender_id(world: Any) -> None:
    """A sender whose id breaks §3 is refused, not sealed into an unreadable envelope."""
    school = world.pairs[SCHOOL]
    sender = OrgKeyPair(OrgId("Not An Org"), school.signing, school.encryption)
    with pytest.raises(ValueError, match="sender"):
        seal(
            b"content",
            sender,
            world.recipients([FRONT_DOOR]),
            record_kind="referral",
            created=world.now,
        )
