"""Deterministic generator of the envelope test vectors (docs/envelope.md §9).

Run ``python tests/vectors/generate.py`` from the repository root to (re)write
``tests/vectors/positive/*.json`` and ``tests/vectors/negative/*.json``; with ``--check`` it
writes nothing and exits with status 1 if any file on disk differs from what it would write
(or if a file is missing or left over). Nothing here reads the clock or the operating
system's random source, so every run produces the same bytes:

- **Keys.** Every organisation's key generation has an Ed25519 seed
  ``SHA-256(KEY_LABEL ‖ "ed25519" ‖ 0x00 ‖ org id ‖ 0x00 ‖ generation)`` and an X25519
  secret ``SHA-256(KEY_LABEL ‖ "x25519" ‖ 0x00 ‖ org id ‖ 0x00 ‖ generation)``.
- **Random source** (docs/envelope.md §5.1). One SHAKE-256 stream per vector,
  ``SHAKE-256(RANDOM_LABEL ‖ vector name)``, read from the start: each draw takes the next
  bytes of the stream. Every draw is recorded, in order, in the vector's ``seal.random``.
- **Content** is ``SHAKE-256(CONTENT_LABEL ‖ vector name)`` truncated to the length wanted.
- **Clock.** ``NOW`` below is every vector's ``now``; envelopes are created 120 s before it
  unless the vector says otherwise.

Positive vectors are sealed by ``exchange.envelope.seal`` itself. Negative vectors are built
by :func:`build_envelope`, a test-only sealer made of the same building blocks
(``format.encode_header``, ``payload.PayloadCipher``, ``wrap.wrap_info``, ``hpke.seal_base``)
with hooks that put exactly one defect into an envelope that is otherwise consistent: every
hash, tag and count is recomputed and both signatures are made again by the sender's key, so
the only check that fails is the one named by the vector's ``rule``. The generator checks
that :func:`build_envelope` without hooks produces exactly what ``seal`` produces.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

# The shared clock, organisations, keys and --check (this script's folder is first on
# sys.path when it runs).
from vectorkit import (
    FRONT_DOOR,
    NOW,
    NURSES,
    SCHOOL,
    THIRD_PARTY,
    YEAR,
    Generation,
    current,
    find_generation,
    generator_main,
    key_json,
    render,
)
from vectorkit import directory_json as vectorkit_directory

from exchange.envelope import Recipient, seal
from exchange.envelope.format import (
    ENVELOPE_ID_LEN,
    KEY_LEN,
    Slot,
    Trailer,
    encode_header,
    encode_trailer,
    trailer_statement,
)
from exchange.envelope.hpke import IKM_LEN, seal_base
from exchange.envelope.labels import L_HEADER_SIG
from exchange.envelope.payload import PayloadCipher, encode_inner, key_commitment
from exchange.envelope.wrap import wrap_info
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import EncryptionPublicKey, OrgKeyPair, SigningKey

HERE: Final = Path(__file__).resolve().parent

RANDOM_LABEL: Final = b"exchange/v1/test-vector-random\x00"
CONTENT_LABEL: Final = b"exchange/v1/test-vector-content\x00"

CREATED: Final = NOW - 120

#: An organisation whose keys exist but which the directory does not list.
IMPOSTOR: Final = "urn:999999"
#: Extra schools, only to fill envelopes with 16 and 17 recipients.
FILLERS: Final = tuple(f"urn:1000{n:02d}" for n in range(1, 16))

FORMAT_NAME: Final = "exchange-envelope-v1-test-vector"


# --- keys and the directory -----------------------------------------------------------------


GENERATIONS: Final = (
    current(SCHOOL),
    # Expired a year before NOW: an envelope created at CREATED is outside its window.
    Generation(SCHOOL, "expired", NOW - 3 * YEAR, NOW - YEAR),
    # Inside its window but revoked: refused at every time.
    Generation(SCHOOL, "revoked", NOW - YEAR, NOW + YEAR, revoked=True),
    current(FRONT_DOOR),
    current(NURSES),
    current(THIRD_PARTY),
    current(IMPOSTOR, listed=False),
    *(current(org) for org in FILLERS),
)


def generation(org: str, name: str = "current") -> Generation:
    """Return the generation ``name`` of ``org``."""
    return find_generation(GENERATIONS, org, name)


def keys_json() -> list[dict[str, Any]]:
    """Return every key generation with its secrets, public keys and key ids (hex)."""
    return [key_json(gen, encryption_key_id=True) for gen in GENERATIONS]


def directory_json() -> list[dict[str, Any]]:
    """Return the directory: each listed generation's signing key, window and revocation."""
    return vectorkit_directory(GENERATIONS, ("signing_key_id", "signing_public"))


# --- deterministic inputs -------------------------------------------------------------------


class ShakeRandom:
    """The fixed random source of one vector: a SHAKE-256 stream, recorded as it is drawn."""

    def __init__(self, name: str) -> None:
        self._seed = RANDOM_LABEL + name.encode()
        self._pos = 0
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        """Return the next ``n`` bytes of the stream."""
        out = hashlib.shake_256(self._seed).digest(self._pos + n)[self._pos :]
        self._pos += n
        self.draws.append(out)
        return out


def content_for(name: str, length: int) -> bytes:
    """Return the fixed content of ``length`` bytes for vector ``name``."""
    if length == 0:
        return b""
    return hashlib.shake_256(CONTENT_LABEL + name.encode()).digest(length)


# --- the test-only sealer -------------------------------------------------------------------


@dataclass
class Hooks:
    """Where :func:`build_envelope` departs from a correct sealer; the defaults do not."""

    sort_slots: bool = True
    #: Envelope id bound into the HPKE info of this recipient's slot (a slot from elsewhere).
    wrap_foreign_id_for: str | None = None
    #: Commit to a key drawn after the slots instead of the content key.
    commit_to_other_key: bool = False
    #: Edits the encoded header before it is hashed and signed.
    edit_header: Callable[[bytes], bytes] | None = None
    #: Plaintext lengths of the data chunks (default: chunk_size pieces, the last shorter).
    split: Sequence[int] | None = None
    #: Chunk type byte by chunk index.
    chunk_types: dict[int, int] = field(default_factory=dict)
    #: Edits one data chunk's ciphertext: (index, ciphertext) -> ciphertext.
    edit_ciphertext: Callable[[int, bytes], bytes] | None = None
    #: Edits the 58-byte inner block before it is encrypted.
    edit_inner: Callable[[bytes], bytes] | None = None
    chunk_count_delta: int = 0
    #: Replaces the trailer's ct_hash (the statement is signed over the replacement).
    ct_hash: bytes | None = None
    header_signer: SigningKey | None = None
    trailer_signer: SigningKey | None = None
    #: Edits the finished envelope bytes (truncation, trailing data).
    edit_envelope: Callable[[bytes], bytes] | None = None


@dataclass(frozen=True)
class Built:
    """An envelope made by :func:`build_envelope`, with what a test may need to tamper more."""

    envelope: bytes
    digest: bytes
    content_key: bytes
    header: bytes
    header_sig: bytes
    chunks: tuple[bytes, ...]  # framed, final chunk included
    trailer: Trailer


def build_envelope(
    content: bytes,
    sender: OrgKeyPair,
    recipients: Sequence[Recipient],
    *,
    created: int,
    chunk_size: int,
    record_kind: str,
    random: Callable[[int], bytes],
    hooks: Hooks | None = None,
) -> Built:
    """Seal like ``exchange.envelope.seal`` (same draws, same bytes), applying ``hooks``."""
    h = hooks or Hooks()
    ordered = (
        sorted(recipients, key=lambda r: r.org_id.encode("ascii"))
        if h.sort_slots
        else list(recipients)
    )
    envelope_id = random(ENVELOPE_ID_LEN)
    content_key = random(KEY_LEN)
    sender_key = sender.signing.public.key_id
    slots = []
    for r in ordered:
        bound_id = envelope_id
        if r.org_id == h.wrap_foreign_id_for:
            bound_id = hashlib.sha256(b"another envelope" + envelope_id).digest()[:16]
        info = wrap_info(bound_id, sender.org_id, sender_key, r.org_id, r.key.key_id)
        enc, wrapped = seal_base(r.key.to_cryptography(), info, content_key, random(IKM_LEN))
        slots.append(Slot(r.org_id, r.key.key_id, enc, wrapped))
    committed = random(KEY_LEN) if h.commit_to_other_key else content_key
    header = encode_header(
        envelope_id=envelope_id,
        created=created,
        sender=sender.org_id,
        sender_key=sender_key,
        record_kind=record_kind,
        chunk_size=chunk_size,
        commitment=key_commitment(committed),
        slots=tuple(slots),
    )
    if h.edit_header is not None:
        header = h.edit_header(header)
    header_hash = hashlib.sha256(header).digest()
    header_sig = (h.header_signer or sender.signing).sign(L_HEADER_SIG + header_hash)

    cipher = PayloadCipher(content_key, header_hash)
    if h.split is None:
        pieces = [content[i : i + chunk_size] for i in range(0, len(content), chunk_size)]
    else:
        if sum(h.split) != len(content):
            raise ValueError("split must cover the content exactly")
        pieces, at = [], 0
        for n in h.split:
            pieces.append(content[at : at + n])
            at += n
    framed = []
    for i, piece in enumerate(pieces):
        ct = cipher.seal(i, piece, final=False)
        if h.edit_ciphertext is not None:
            ct = h.edit_ciphertext(i, ct)
        framed.append(struct.pack(">BI", h.chunk_types.get(i, 0x01), len(ct)) + ct)
    inner = encode_inner(header_hash, len(content))
    if h.edit_inner is not None:
        inner = h.edit_inner(inner)
    final_ct = cipher.seal(len(pieces), inner, final=True)
    framed.append(struct.pack(">BI", 0x02, len(final_ct)) + final_ct)

    section = b"".join(framed)
    ct_hash = h.ct_hash if h.ct_hash is not None else hashlib.sha256(section).digest()
    chunk_count = len(framed) + h.chunk_count_delta
    statement = trailer_statement(header_hash, ct_hash, len(section), chunk_count)
    trailer = Trailer(
        ct_length=len(section),
        chunk_count=chunk_count,
        ct_hash=ct_hash,
        final_sig=(h.trailer_signer or sender.signing).sign(statement),
    )
    envelope = header + header_sig + section + encode_trailer(trailer)
    if h.edit_envelope is not None:
        envelope = h.edit_envelope(envelope)
    return Built(
        envelope=envelope,
        digest=hashlib.sha256(statement).digest(),
        content_key=content_key,
        header=header,
        header_sig=header_sig,
        chunks=tuple(framed),
        trailer=trailer,
    )


def recipients_for(orgs: Sequence[str]) -> list[Recipient]:
    """Return the current encryption keys of ``orgs`` as recipients, in the order given."""
    return [Recipient(OrgId(org), generation(org).pair.encryption.public) for org in orgs]


def _public_key(org: str) -> EncryptionPublicKey:
    return generation(org).pair.encryption.public


# --- vectors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """The inputs of one vector."""

    name: str
    description: str
    length: int
    recipients: tuple[str, ...] = (FRONT_DOOR,)
    chunk_size: int = 64
    record_kind: str = "referral"
    sender: str = SCHOOL
    sender_generation: str = "current"
    created: int = CREATED


@dataclass(frozen=True)
class NegativeCase:
    """A negative vector: its inputs, its one defect and the error a reader must raise."""

    case: Case
    error: str
    opener: str = FRONT_DOOR
    #: What ``verify_envelope`` (no private key) must do: None means it accepts the envelope.
    verifier_error: str | None = None
    hooks: Callable[[], Hooks] = Hooks
    defect: str = ""


_SIXTEEN: Final = (NURSES, *FILLERS[::-2], FRONT_DOOR, *FILLERS[-2::-2])[:16]

POSITIVE: Final = (
    Case("empty", "Empty content: no data chunks, only the final chunk.", 0),
    Case("one-byte", "One byte of content: one short data chunk.", 1),
    Case("one-chunk", "Exactly one full chunk of 64 bytes.", 64),
    Case("chunk-plus-one", "One full chunk and a one-byte chunk.", 65),
    Case("several-chunks", "Five data chunks of 64 bytes and a short sixth.", 5 * 64 + 37),
    Case(
        "two-recipients",
        "Two recipients, given to seal out of order (seal sorts the slots).",
        200,
        recipients=(NURSES, FRONT_DOOR),
        record_kind="cp-file-transfer",
    ),
    Case(
        "sixteen-recipients",
        "The most recipients an envelope may have, given to seal out of order.",
        100,
        recipients=_SIXTEEN,
    ),
    Case(
        "default-chunk-size",
        "About 150 KB in the default 64 KiB chunks: two full chunks and a short third.",
        150_000,
        recipients=(FRONT_DOOR, NURSES),
        chunk_size=65_536,
    ),
)


def _set_header_len(header: bytes) -> bytes:
    return header[:9] + struct.pack(">H", len(header)) + header[11:]


def _flip_tag_of_chunk_1(index: int, ct: bytes) -> bytes:
    return ct[:-1] + bytes([ct[-1] ^ 0x01]) if index == 1 else ct


def _negatives() -> tuple[NegativeCase, ...]:
    third_party_key = generation(THIRD_PARTY).pair.signing
    base = Case("", "", 150)

    def case(rule: str, **kwargs: Any) -> Case:
        return replace(base, name=rule, **kwargs)

    return (
        NegativeCase(
            case("header.magic"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(edit_header=lambda h: b"\x88" + h[1:]),
            defect="The first magic byte is 0x88 instead of 0x89 (header re-signed).",
        ),
        NegativeCase(
            case("header.version"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(edit_header=lambda h: h[:8] + b"\x02" + h[9:]),
            defect="The version byte is 2 (header re-signed).",
        ),
        NegativeCase(
            case("header.length"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(edit_header=lambda h: _set_header_len(h + b"\x00")),
            defect=(
                "header_len counts one zero byte after the last slot, so the fields do not "
                "end at header_len (header re-signed)."
            ),
        ),
        NegativeCase(
            case("header.ids", record_kind="Referral"),
            "FormatError",
            verifier_error="FormatError",
            defect="The record kind 'Referral' has an upper-case letter (§3).",
        ),
        NegativeCase(
            case("header.chunk-size", chunk_size=100),
            "FormatError",
            verifier_error="FormatError",
            defect="chunk_size is 100, not a power of two; chunks are 100 bytes as it says.",
        ),
        NegativeCase(
            case("header.recipient-count", recipients=(FRONT_DOOR, NURSES, *FILLERS)),
            "FormatError",
            verifier_error="FormatError",
            defect="Seventeen correctly wrapped, sorted slots, one more than allowed.",
        ),
        NegativeCase(
            case("header.recipients-sorted", recipients=(NURSES, FRONT_DOOR)),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(sort_slots=False),
            defect="The slots are in descending order (ods:X26ABC before la:356).",
        ),
        NegativeCase(
            case("sender.known", sender=IMPOSTOR),
            "SenderError",
            verifier_error="SenderError",
            defect="Sealed by urn:999999, which the directory does not list.",
        ),
        NegativeCase(
            case("sender.key-valid", sender_generation="expired"),
            "SenderError",
            verifier_error="SenderError",
            defect="Signed with urn:106123's 'expired' key, whose window ended before created.",
        ),
        NegativeCase(
            case("sender.key-revoked", sender_generation="revoked"),
            "SenderError",
            verifier_error="SenderError",
            defect="Signed with urn:106123's 'revoked' key (inside its window, but revoked).",
        ),
        NegativeCase(
            case("created.not-future", created=NOW + 301),
            "SenderError",
            verifier_error="SenderError",
            defect="created is 301 s after now (300 s is the most allowed).",
        ),
        NegativeCase(
            case("sig.header"),
            "OpenError",
            verifier_error="OpenError",
            hooks=lambda: Hooks(header_signer=third_party_key),
            defect="header_sig is a valid signature by la:357's key, not the sender's.",
        ),
        NegativeCase(
            case("recipient.addressed"),
            "NotRecipientError",
            opener=THIRD_PARTY,
            defect="A correct envelope to la:356, opened by la:357.",
        ),
        NegativeCase(
            case("wrap.unwrap"),
            "OpenError",
            hooks=lambda: Hooks(wrap_foreign_id_for=FRONT_DOOR),
            defect=(
                "la:356's slot was wrapped with another envelope id in the HPKE info, as if "
                "copied from another envelope (header re-signed)."
            ),
        ),
        NegativeCase(
            case("key.commitment"),
            "OpenError",
            hooks=lambda: Hooks(commit_to_other_key=True),
            defect=(
                "The header commits to a key drawn after the slots, not to the content key "
                "the slot wraps and the chunks use."
            ),
        ),
        NegativeCase(
            case("chunk.type"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(chunk_types={1: 0x03}),
            defect="Data chunk 1 has type byte 0x03 (trailer re-signed over it).",
        ),
        NegativeCase(
            case("chunk.length"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(split=(65, 64, 21)),
            defect="Data chunk 0 holds 65 bytes of plaintext with chunk_size 64 (ct_len 81).",
        ),
        NegativeCase(
            case("chunk.order"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(split=(30, 64, 56)),
            defect="A short data chunk (30 bytes) is followed by a full one.",
        ),
        NegativeCase(
            case("chunk.aead"),
            "OpenError",
            hooks=lambda: Hooks(edit_ciphertext=_flip_tag_of_chunk_1),
            defect="One bit of data chunk 1's tag is flipped (trailer re-signed over it).",
        ),
        NegativeCase(
            case("inner.header-hash"),
            "OpenError",
            hooks=lambda: Hooks(
                edit_inner=lambda b: b[:18] + hashlib.sha256(b"another header").digest() + b[50:]
            ),
            defect="The inner block holds the hash of another header.",
        ),
        NegativeCase(
            case("inner.content-length"),
            "OpenError",
            hooks=lambda: Hooks(edit_inner=lambda b: b[:50] + struct.pack(">Q", 151) + b[58:]),
            defect="The inner block says 151 bytes of content; there are 150.",
        ),
        NegativeCase(
            case("trailer.counts"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(chunk_count_delta=1),
            defect="chunk_count is one more than the chunks present (statement signed so).",
        ),
        NegativeCase(
            case("trailer.ct-hash"),
            "OpenError",
            verifier_error="OpenError",
            hooks=lambda: Hooks(ct_hash=hashlib.sha256(b"other ciphertext").digest()),
            defect="ct_hash is the hash of other bytes (statement signed over it).",
        ),
        NegativeCase(
            case("sig.trailer"),
            "OpenError",
            verifier_error="OpenError",
            hooks=lambda: Hooks(trailer_signer=third_party_key),
            defect="final_sig is a valid signature of the statement by la:357's key.",
        ),
        NegativeCase(
            case("envelope.truncated"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(edit_envelope=lambda e: e[:-1]),
            defect="The last byte of the trailer is missing.",
        ),
        NegativeCase(
            case("envelope.trailing-data"),
            "FormatError",
            verifier_error="FormatError",
            hooks=lambda: Hooks(edit_envelope=lambda e: e + b"\x00"),
            defect="One zero byte follows the trailer.",
        ),
    )


NEGATIVE: Final = _negatives()


def _seal_json(case: Case, draws: Sequence[bytes]) -> dict[str, Any]:
    sender = generation(case.sender, case.sender_generation)
    return {
        "sender": case.sender,
        "sender_generation": case.sender_generation,
        "sender_key_id": sender.pair.signing.public.key_id.hex(),
        "created": case.created,
        "chunk_size": case.chunk_size,
        "record_kind": case.record_kind,
        "recipients": [
            {"org": org, "x25519_key_id": _public_key(org).key_id.hex()} for org in case.recipients
        ],
        "random": [d.hex() for d in draws],
    }


def _common(case: Case, kind: str) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "kind": kind,
        "name": case.name,
        "description": case.description,
        "now": NOW,
        "keys": keys_json(),
        "directory": directory_json(),
    }


def positive_vector(case: Case) -> dict[str, Any]:
    """Seal ``case`` with the real sealer and return its vector."""
    content = content_for(case.name, case.length)
    sender = generation(case.sender, case.sender_generation).pair
    random = ShakeRandom(case.name)
    envelope, sealed = seal(
        content,
        sender,
        recipients_for(case.recipients),
        record_kind=case.record_kind,
        created=case.created,
        chunk_size=case.chunk_size,
        random=random,
    )
    # The test-only sealer must agree with the real one byte for byte, or the negative
    # vectors would differ from real envelopes in more than their one defect.
    again = build_envelope(
        content,
        sender,
        recipients_for(case.recipients),
        created=case.created,
        chunk_size=case.chunk_size,
        record_kind=case.record_kind,
        random=ShakeRandom(case.name),
    )
    if again.envelope != envelope or again.digest != sealed.digest:
        raise AssertionError(f"build_envelope disagrees with seal for {case.name}")
    return {
        **_common(case, "positive"),
        "seal": _seal_json(case, random.draws),
        "openers": sorted(case.recipients),
        "content": content.hex(),
        "envelope": envelope.hex(),
        "digest": sealed.digest.hex(),
    }


def negative_vector(neg: NegativeCase) -> dict[str, Any]:
    """Build ``neg`` with its one defect and return its vector."""
    case = neg.case
    content = content_for(case.name, case.length)
    random = ShakeRandom(case.name)
    built = build_envelope(
        content,
        generation(case.sender, case.sender_generation).pair,
        recipients_for(case.recipients),
        created=case.created,
        chunk_size=case.chunk_size,
        record_kind=case.record_kind,
        random=random,
        hooks=neg.hooks(),
    )
    return {
        **_common(case, "negative"),
        "description": neg.defect,
        "rule": case.name,
        "error": neg.error,
        "opener": neg.opener,
        "verifier_error": neg.verifier_error,
        "seal": _seal_json(case, random.draws),
        "content": content.hex(),
        "envelope": built.envelope.hex(),
        "digest": built.digest.hex(),
    }


def all_files() -> dict[Path, str]:
    """Return every vector file's path and text."""
    files = {HERE / "positive" / f"{c.name}.json": render(positive_vector(c)) for c in POSITIVE}
    for neg in NEGATIVE:
        files[HERE / "negative" / f"{neg.case.name}.json"] = render(negative_vector(neg))
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Write the vectors, or with ``--check`` report whether the files on disk differ."""
    return generator_main(__doc__, all_files, HERE, HERE, argv)


if __name__ == "__main__":
    sys.exit(main())
