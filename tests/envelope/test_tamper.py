"""Tampering: every change to a sealed envelope is refused and releases no plaintext."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest

from exchange.envelope import Opener, OpenError, open_envelope, verify_envelope
from exchange.envelope.format import (
    SIG_LEN,
    TRAILER_LEN,
    Trailer,
    decode_header,
    encode_str8,
    encode_trailer,
    trailer_statement,
)
from exchange.envelope.labels import L_HEADER_SIG
from exchange.envelope.payload import PayloadCipher, encode_inner
from exchange.envelope.wrap import unwrap_content_key
from exchange.keys.keypairs import OrgKeyPair

SCHOOL = "urn:106123"
FRONT_DOOR = "la:356"
NURSES = "ods:X26ABC"
THIRD_PARTY = "la:357"
CONTENT = hashlib.shake_256(b"tamper content").digest(200)
CHUNK_SIZE = 64
SLOT_TAIL = 32 + 32 + 48  # recipient key id, enc, wrapped

# X25519 u-coordinates of small order (libsodium's blocklist), as a hostile enc might carry.
SMALL_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


def _build(generate: Any, world: Any, name: str = "tamper", **hooks: Any) -> Any:
    """Seal CONTENT from the school to la:356 and ods:X26ABC with the test-only sealer."""
    return generate.build_envelope(
        CONTENT,
        world.pairs[SCHOOL],
        world.recipients([FRONT_DOOR, NURSES]),
        created=world.now,
        chunk_size=CHUNK_SIZE,
        record_kind="referral",
        random=generate.ShakeRandom(name),
        hooks=generate.Hooks(**hooks),
    )


@pytest.fixture(scope="module")
def small(generate: Any, world: Any) -> Any:
    """Return a valid envelope of 200 bytes in 64-byte chunks for two recipients."""
    built = _build(generate, world)
    content, _ = open_envelope(built.envelope, world.directory, world.keys(NURSES), now=world.now)
    assert content == CONTENT
    assert len(built.chunks) == 5  # four data chunks and the final chunk
    return built


def _opens(world: Any, data: bytes, org: str) -> bytes:
    content, _ = open_envelope(data, world.directory, world.keys(org), now=world.now)
    return content


def _feed_in_pieces(opener: Opener, data: bytes, piece: int) -> bytes:
    out = [opener.feed(data[at : at + piece]) for at in range(0, len(data), piece)]
    opener.finish_opened()
    return b"".join(out)


def _assert_refused(world: Any, data: bytes, org: str = FRONT_DOOR, piece: int = 50) -> None:
    """Assert that opening ``data`` fails in memory and when streamed in pieces."""
    with pytest.raises(OpenError):
        open_envelope(data, world.directory, world.keys(org), now=world.now)
    opener = Opener(world.directory, world.keys(org), now=world.now)
    with pytest.raises(OpenError):
        _feed_in_pieces(opener, data, piece)


def _assert_opaque(world: Any, data: bytes, org: str) -> None:
    """Assert that opening ``data`` fails with exactly the opaque OpenError."""
    with pytest.raises(OpenError) as info:
        open_envelope(data, world.directory, world.keys(org), now=world.now)
    assert type(info.value) is OpenError


def _boundaries(built: Any) -> list[int]:
    """Return the offsets where header, signature, each chunk and the trailer start or end."""
    at = len(built.header)
    points = [0, 11, at, at + SIG_LEN]
    at += SIG_LEN
    for chunk in built.chunks:
        points += [at + 5, at + len(chunk)]
        at += len(chunk)
    points += [at + 16, len(built.envelope) - SIG_LEN, len(built.envelope) - 1]
    return points


def _flip(data: bytes, index: int, bit: int) -> bytes:
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]


def _reassemble(sender: OrgKeyPair, built: Any, chunks: list[bytes]) -> bytes:
    """Return the envelope with other framed chunks and a trailer the sender signs over them."""
    section = b"".join(chunks)
    header_hash = hashlib.sha256(built.header).digest()
    ct_hash = hashlib.sha256(section).digest()
    statement = trailer_statement(header_hash, ct_hash, len(section), len(chunks))
    trailer = Trailer(len(section), len(chunks), ct_hash, sender.signing.sign(statement))
    return built.header + built.header_sig + section + encode_trailer(trailer)


def _slot_span(header: bytes, org: str, key_id: bytes) -> tuple[int, int]:
    start = header.index(encode_str8(org) + key_id)
    return start, start + len(encode_str8(org)) + SLOT_TAIL


def test_every_byte_flipped_fails(small: Any, world: Any) -> None:
    """Flipping one bit of any byte (bit chosen by position) makes opening fail."""
    for index in range(len(small.envelope)):
        _assert_refused(world, _flip(small.envelope, index, index % 8))


@pytest.mark.slow
def test_every_bit_flipped_fails(small: Any, world: Any) -> None:
    """Flipping any single bit anywhere makes opening fail for either recipient."""
    for index in range(len(small.envelope)):
        for bit in range(8):
            tampered = _flip(small.envelope, index, bit)
            for org in (FRONT_DOOR, NURSES):
                with pytest.raises(OpenError):
                    open_envelope(tampered, world.directory, world.keys(org), now=world.now)


def test_truncation_at_boundaries_fails(small: Any, world: Any) -> None:
    """Cutting the envelope at any field or chunk boundary makes opening fail."""
    for cut in _boundaries(small):
        _assert_refused(world, small.envelope[:cut])


@pytest.mark.slow
def test_truncation_at_every_byte_fails(small: Any, world: Any) -> None:
    """Cutting the envelope after any number of bytes makes opening fail."""
    for cut in range(len(small.envelope)):
        _assert_refused(world, small.envelope[:cut], piece=64)


def test_trailing_bytes_fail(small: Any, world: Any) -> None:
    """Anything after the trailer makes opening fail."""
    for extra in (b"\x00", b"\x02", small.chunks[-1]):
        _assert_refused(world, small.envelope + extra)


def _chunk_edits(chunks: tuple[bytes, ...]) -> dict[str, list[bytes]]:
    c = list(chunks)
    return {
        "swap-two-full": [c[1], c[0], *c[2:]],
        "swap-full-and-short": [c[0], c[1], c[3], c[2], c[4]],
        "duplicate-full": [c[0], c[0], *c[1:]],
        "duplicate-final": [*c, c[-1]],
        "drop-first": c[1:],
        "drop-short": [*c[:3], c[4]],
        "drop-final": c[:-1],
        "final-first": [c[4], *c[:4]],
    }


@pytest.mark.parametrize("edit", list(_chunk_edits((b"",) * 5)))
def test_chunk_edits_fail(edit: str, small: Any, world: Any) -> None:
    """Reordered, duplicated or dropped chunks fail, with the old trailer."""
    chunks = _chunk_edits(small.chunks)[edit]
    section = b"".join(chunks)
    start = len(small.header) + SIG_LEN
    tampered = small.envelope[:start] + section + small.envelope[-TRAILER_LEN:]
    _assert_refused(world, tampered)


@pytest.mark.parametrize("edit", list(_chunk_edits((b"",) * 5)))
def test_chunk_edits_fail_even_when_the_sender_resigns(edit: str, small: Any, world: Any) -> None:
    """Reordered, duplicated or dropped chunks fail even under a valid trailer signature."""
    chunks = _chunk_edits(small.chunks)[edit]
    tampered = _reassemble(world.pairs[SCHOOL], small, chunks)
    for org in (FRONT_DOOR, NURSES):
        _assert_refused(world, tampered, org)


def test_slot_from_another_envelope_fails(generate: Any, world: Any) -> None:
    """A slot copied from another envelope, under a header the sender re-signed, never unwraps."""
    other = _build(generate, world, name="tamper-other")
    key_id = world.pairs[FRONT_DOOR].encryption.public.key_id
    o_start, o_end = _slot_span(other.header, FRONT_DOOR, key_id)

    def swap_slot(header: bytes) -> bytes:
        start, end = _slot_span(header, FRONT_DOOR, key_id)
        return header[:start] + other.header[o_start:o_end] + header[end:]

    swapped = _build(generate, world, edit_header=swap_slot)
    assert decode_header(swapped.header).slots[0] == decode_header(other.header).slots[0]
    _assert_opaque(world, swapped.envelope, FRONT_DOOR)
    # The rest of the envelope is sound: the other recipient opens it, a verifier accepts it.
    assert _opens(world, swapped.envelope, NURSES) == CONTENT
    verify_envelope(swapped.envelope, world.directory, now=world.now)


@pytest.mark.parametrize("enc", SMALL_ORDER)
def test_small_order_enc_fails_opaquely(enc: str, generate: Any, world: Any) -> None:
    """A slot whose encapsulated key has small order fails to unwrap with the opaque error."""
    key_id = world.pairs[FRONT_DOOR].encryption.public.key_id

    def replace_enc(header: bytes) -> bytes:
        start, _ = _slot_span(header, FRONT_DOOR, key_id)
        at = start + len(encode_str8(FRONT_DOOR)) + 32
        return header[:at] + bytes.fromhex(enc) + header[at + 32 :]

    built = _build(generate, world, edit_header=replace_enc)
    _assert_opaque(world, built.envelope, FRONT_DOOR)
    assert _opens(world, built.envelope, NURSES) == CONTENT


def test_header_resigned_by_another_sender_fails(small: Any, world: Any) -> None:
    """Another listed organisation claiming the envelope as its own cannot make it open."""
    thief = world.pairs[THIRD_PARTY]
    school = world.pairs[SCHOOL]
    old = encode_str8(SCHOOL) + school.signing.public.key_id
    new = encode_str8(THIRD_PARTY) + thief.signing.public.key_id
    header = small.header.replace(old, new)
    header = header[:9] + struct.pack(">H", len(header)) + header[11:]
    header_hash = hashlib.sha256(header).digest()
    section = b"".join(small.chunks)
    ct_hash = hashlib.sha256(section).digest()
    statement = trailer_statement(header_hash, ct_hash, len(section), len(small.chunks))
    trailer = Trailer(len(section), len(small.chunks), ct_hash, thief.signing.sign(statement))
    forged = (
        header + thief.signing.sign(L_HEADER_SIG + header_hash) + section + encode_trailer(trailer)
    )
    assert decode_header(header).sender == THIRD_PARTY
    # Every public check passes (relays cannot tell), but no recipient can unwrap.
    verify_envelope(forged, world.directory, now=world.now)
    for org in (FRONT_DOOR, NURSES):
        _assert_opaque(world, forged, org)


def test_trailer_from_another_envelope_fails(small: Any, generate: Any, world: Any) -> None:
    """An envelope carrying the trailer of another envelope of the same size fails."""
    other = _build(generate, world, name="tamper-other")
    assert len(other.envelope) == len(small.envelope)
    tampered = small.envelope[:-TRAILER_LEN] + other.envelope[-TRAILER_LEN:]
    _assert_refused(world, tampered)
    _assert_opaque(world, tampered, NURSES)


def test_header_signature_from_another_envelope_fails(
    small: Any, generate: Any, world: Any
) -> None:
    """An envelope carrying another envelope's valid header signature fails."""
    other = _build(generate, world, name="tamper-other")
    start = len(small.header)
    tampered = (
        small.envelope[:start]
        + other.envelope[start : start + SIG_LEN]
        + small.envelope[start + SIG_LEN :]
    )
    _assert_opaque(world, tampered, FRONT_DOOR)


def test_insider_forgery_fails_at_the_final_signature(small: Any, world: Any) -> None:
    """A recipient re-encrypting other content under the sender's header fails at sig.trailer."""
    header = decode_header(small.header)
    insider = world.pairs[FRONT_DOOR]
    (slot,) = [s for s in header.slots if s.recipient == FRONT_DOOR]
    content_key = unwrap_content_key(header, slot, insider.encryption)
    assert content_key == small.content_key

    forged_content = b"a different record, invented by one recipient" * 3
    header_hash = hashlib.sha256(small.header).digest()
    cipher = PayloadCipher(content_key, header_hash)
    pieces = [forged_content[i : i + CHUNK_SIZE] for i in range(0, len(forged_content), 64)]
    chunks = []
    for index, piece in enumerate(pieces):
        ct = cipher.seal(index, piece, final=False)
        chunks.append(struct.pack(">BI", 1, len(ct)) + ct)
    inner = encode_inner(header_hash, len(forged_content))
    ct = cipher.seal(len(pieces), inner, final=True)
    chunks.append(struct.pack(">BI", 2, len(ct)) + ct)
    section = b"".join(chunks)
    ct_hash = hashlib.sha256(section).digest()

    def with_signature(final_sig: bytes) -> bytes:
        trailer = Trailer(len(section), len(chunks), ct_hash, final_sig)
        return small.header + small.header_sig + section + encode_trailer(trailer)

    # The insider can reuse the sender's old final signature or sign with its own key.
    statement = trailer_statement(header_hash, ct_hash, len(section), len(chunks))
    for final_sig in (small.trailer.final_sig, insider.signing.sign(statement)):
        _assert_opaque(world, with_signature(final_sig), NURSES)
        _assert_refused(world, with_signature(final_sig), NURSES)
    # Only the final signature stands in the way: had the sender signed, it would open.
    resigned = with_signature(world.pairs[SCHOOL].signing.sign(statement))
    assert _opens(world, resigned, NURSES) == forged_content


@pytest.mark.parametrize("piece", [1, 7, 40, 64, 85, 1000])
def test_streaming_open_never_finishes_after_a_failure(piece: int, small: Any, world: Any) -> None:
    """Once a chunk fails, the opener refuses every further feed and never finishes."""
    start = len(small.header) + SIG_LEN + len(small.chunks[0]) + 20
    tampered = _flip(small.envelope, start, 0)
    opener = Opener(world.directory, world.keys(NURSES), now=world.now)
    outcomes = []
    for at in range(0, len(tampered), piece):
        try:
            opener.feed(tampered[at : at + piece])
            outcomes.append("fed")
        except OpenError:
            outcomes.append("failed")
        except RuntimeError:
            outcomes.append("dead")
    # Exactly one failure, then the opener refuses every further use, like h11's ERROR state.
    first = outcomes.index("failed")
    assert outcomes.count("failed") == 1
    assert all(o == "dead" for o in outcomes[first + 1 :])
    with pytest.raises(RuntimeError, match="already failed"):
        opener.finish_opened()
