"""Sealing: turn content into an envelope for 1–16 recipients (docs/envelope.md §5).

:class:`Sealer` is sans-I/O and streams: ``start`` returns the header, each ``feed`` returns
the chunks completed so far, ``finish`` returns the rest and the envelope's digest. Memory
use is one chunk whatever the content size. :func:`seal` does the same for bytes in memory.
The random source and the clock are parameters so that test vectors are reproducible.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from exchange.envelope.errors import SealError
from exchange.envelope.format import (
    CHUNK_DATA,
    CHUNK_FINAL,
    DEFAULT_CHUNK_SIZE,
    ENVELOPE_ID_LEN,
    KEY_LEN,
    MAX_RECIPIENTS,
    SIG_LEN,
    TRAILER_LEN,
    Slot,
    Trailer,
    encode_header,
    encode_trailer,
    is_valid_chunk_size,
    is_valid_record_kind,
    trailer_statement,
)
from exchange.envelope.hpke import IKM_LEN, seal_base
from exchange.envelope.labels import L_HEADER_SIG
from exchange.envelope.payload import PayloadCipher, encode_inner, key_commitment
from exchange.envelope.wrap import wrap_info
from exchange.keys.ids import OrgId, parse_org_id
from exchange.keys.keypairs import EncryptionPublicKey, OrgKeyPair

RandomSource = Callable[[int], bytes]

_CHUNK_PREFIX: Final = struct.Struct(">BI")


@dataclass(frozen=True, slots=True)
class Recipient:
    """An organisation to seal to, with the encryption key sealing should use."""

    org_id: OrgId
    key: EncryptionPublicKey


@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """What the sender keeps about an envelope it sealed: its names and sizes, no content."""

    envelope_id: bytes
    digest: bytes
    sender: OrgId
    recipients: tuple[OrgId, ...]
    record_kind: str
    created: int
    content_length: int
    envelope_length: int


class Sealer:
    """Streaming sealer of one envelope."""

    def __init__(
        self,
        sender: OrgKeyPair,
        recipients: Sequence[Recipient],
        *,
        record_kind: str,
        created: int,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        random: RandomSource = os.urandom,
    ) -> None:
        # Limits first, before any cryptography (rule header.recipient-count).
        if not 1 <= len(recipients) <= MAX_RECIPIENTS:
            raise SealError(
                f"an envelope needs 1 to {MAX_RECIPIENTS} recipients, not {len(recipients)}"
            )
        ordered = sorted(recipients, key=lambda r: r.org_id.encode("ascii"))
        for a, b in itertools.pairwise(ordered):
            if a.org_id == b.org_id:
                raise SealError(f"recipient {a.org_id} is named twice")
        for org_id, field in [
            (sender.org_id, "sender"),
            *((r.org_id, "recipient") for r in ordered),
        ]:
            try:
                parse_org_id(org_id, field=field)
            except ValueError as exc:
                raise SealError(str(exc)) from None
        if not is_valid_record_kind(record_kind):
            raise SealError("record kind must be 1-32 lower-case letters, digits or '-'")
        if not is_valid_chunk_size(chunk_size):
            raise SealError("chunk size must be a power of two from 64 to 1048576")
        if not 0 <= created < 1 << 63:
            raise SealError("created must be a non-negative number of seconds")

        self._sender = sender
        self._chunk_size = chunk_size
        self._created = created
        self._record_kind = record_kind
        envelope_id = _draw(random, ENVELOPE_ID_LEN)
        content_key = _draw(random, KEY_LEN)
        sender_key = sender.signing.public.key_id
        slots = []
        for r in ordered:
            info = wrap_info(envelope_id, sender.org_id, sender_key, r.org_id, r.key.key_id)
            enc, wrapped = seal_base(
                r.key.to_cryptography(), info, content_key, _draw(random, IKM_LEN)
            )
            slots.append(Slot(r.org_id, r.key.key_id, enc, wrapped))
        self._header = encode_header(
            envelope_id=envelope_id,
            created=created,
            sender=sender.org_id,
            sender_key=sender_key,
            record_kind=record_kind,
            chunk_size=chunk_size,
            commitment=key_commitment(content_key),
            slots=tuple(slots),
        )
        self._envelope_id = envelope_id
        self._recipients = tuple(r.org_id for r in ordered)
        self._header_hash = hashlib.sha256(self._header).digest()
        self._cipher = PayloadCipher(content_key, self._header_hash)
        self._buf = bytearray()
        self._index = 0
        self._content_length = 0
        self._ct_hash = hashlib.sha256()
        self._ct_length = 0
        self._started = False
        self._finished = False

    def __repr__(self) -> str:
        return f"Sealer(envelope_id={self._envelope_id.hex()}, sender={self._sender.org_id})"

    def start(self) -> bytes:
        """Return the header and its signature; call once, before ``feed``."""
        if self._started:
            raise RuntimeError("start() was already called")
        self._started = True
        sig = self._sender.signing.sign(L_HEADER_SIG + self._header_hash)
        return self._header + sig

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Add content; return the chunks it completes (possibly empty bytes)."""
        return b"".join(self.feed_pieces(data))

    def feed_pieces(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Like :meth:`feed`, but return the output as pieces for ``writelines``.

        Joining a megabyte of chunks costs a fresh allocation, and its page faults, for
        every feed; a writer that takes pieces avoids both (docs/performance.md).
        """
        if not self._started or self._finished:
            raise RuntimeError("feed() must come after start() and before finish()")
        self._content_length += len(data)
        size = self._chunk_size
        out: list[bytes] = []
        with memoryview(data) as view:
            pos = 0
            if self._buf:
                pos = min(size - len(self._buf), len(view))
                self._buf += view[:pos]
                if len(self._buf) < size:
                    return out
                self._chunk(out, CHUNK_DATA, bytes(self._buf))
                self._buf.clear()
            # Full chunks straight from the caller's bytes. A full chunk may always be sent
            # at once: only a short chunk must be the last data chunk, and the final chunk
            # is the separate inner block.
            while len(view) - pos >= size:
                self._chunk(out, CHUNK_DATA, view[pos : pos + size])
                pos += size
            self._buf += view[pos:]
        return out

    def finish(self) -> tuple[bytes, SealedEnvelope]:
        """Return the last chunks and the trailer, and what the sender keeps."""
        if not self._started or self._finished:
            raise RuntimeError("finish() must come after start(), once")
        self._finished = True
        parts: list[bytes] = []
        if self._buf:
            self._chunk(parts, CHUNK_DATA, bytes(self._buf))
            self._buf.clear()
        inner = encode_inner(self._header_hash, self._content_length)
        self._chunk(parts, CHUNK_FINAL, inner)
        ct_hash = self._ct_hash.digest()
        statement = trailer_statement(self._header_hash, ct_hash, self._ct_length, self._index)
        trailer = Trailer(
            ct_length=self._ct_length,
            chunk_count=self._index,
            ct_hash=ct_hash,
            final_sig=self._sender.signing.sign(statement),
        )
        parts.append(encode_trailer(trailer))
        tail = b"".join(parts)
        sealed = SealedEnvelope(
            envelope_id=self._envelope_id,
            digest=hashlib.sha256(statement).digest(),
            sender=self._sender.org_id,
            recipients=self._recipients,
            record_kind=self._record_kind,
            created=self._created,
            content_length=self._content_length,
            envelope_length=len(self._header) + SIG_LEN + self._ct_length + TRAILER_LEN,
        )
        return tail, sealed

    def _chunk(self, out: list[bytes], kind: int, plaintext: bytes | memoryview) -> None:
        """Seal one chunk and append its framing and ciphertext to ``out``, uncopied."""
        final = kind == CHUNK_FINAL
        ct = self._cipher.seal(self._index, plaintext, final=final)
        self._index += 1
        prefix = _CHUNK_PREFIX.pack(kind, len(ct))
        self._ct_hash.update(prefix)
        self._ct_hash.update(ct)
        self._ct_length += len(prefix) + len(ct)
        out += (prefix, ct)


def _draw(random: RandomSource, n: int) -> bytes:
    value = random(n)
    if len(value) != n:
        raise ValueError(f"the random source returned {len(value)} bytes, not {n}")
    return value


def seal(
    content: bytes,
    sender: OrgKeyPair,
    recipients: Sequence[Recipient],
    *,
    record_kind: str,
    created: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    random: RandomSource = os.urandom,
) -> tuple[bytes, SealedEnvelope]:
    """Seal ``content`` in memory; return the envelope bytes and what the sender keeps."""
    sealer = Sealer(
        sender,
        recipients,
        record_kind=record_kind,
        created=created,
        chunk_size=chunk_size,
        random=random,
    )
    head = sealer.start()
    body = sealer.feed(content)
    tail, sealed = sealer.finish()
    return head + body + tail, sealed
