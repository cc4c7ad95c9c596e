"""The content key schedule, the STREAM payload AEAD and the inner block (docs/envelope.md §5–6).

Chunk ``i`` is ChaCha20-Poly1305 under ``payload_key`` with nonce ``i`` (11 bytes,
big-endian) followed by a final flag, and the header hash as associated data. The content
key is fresh for every envelope, so counting nonces from zero never repeats a (key, nonce)
pair.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from exchange.envelope.errors import OpenError
from exchange.envelope.format import INNER_LEN
from exchange.envelope.labels import L_COMMITMENT, L_INNER, L_PAYLOAD_KEY

_MAX_COUNTER: Final = (1 << 88) - 1


def hkdf_expand_32(key: bytes, label: bytes) -> bytes:
    """HKDF-Expand(key, label, 32) with SHA-256: a single HMAC block (RFC 5869 §2.3)."""
    return hmac.digest(key, label + b"\x01", hashlib.sha256)


def key_commitment(content_key: bytes) -> bytes:
    """Return the commitment to ``content_key`` carried in the signed header."""
    return hkdf_expand_32(content_key, L_COMMITMENT)


def chunk_nonce(index: int, *, final: bool) -> bytes:
    """Return the 12-byte STREAM nonce of chunk ``index``."""
    if not 0 <= index <= _MAX_COUNTER:
        raise OverflowError("chunk counter exhausted")
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


class PayloadCipher:
    """Seals or opens the chunks of one envelope under its content key."""

    __slots__ = ("_aad", "_aead")

    def __init__(self, content_key: bytes, header_hash: bytes) -> None:
        self._aead = ChaCha20Poly1305(hkdf_expand_32(content_key, L_PAYLOAD_KEY))
        self._aad = header_hash

    def __repr__(self) -> str:
        return "PayloadCipher(<redacted>)"

    def seal(self, index: int, plaintext: bytes | memoryview, *, final: bool) -> bytes:
        """Encrypt one chunk."""
        return self._aead.encrypt(chunk_nonce(index, final=final), plaintext, self._aad)

    def open(self, index: int, ciphertext: bytes, *, final: bool) -> bytes:
        """Decrypt one chunk, or raise the opaque :class:`OpenError` (rule chunk.aead)."""
        try:
            return self._aead.decrypt(chunk_nonce(index, final=final), ciphertext, self._aad)
        except InvalidTag:
            raise OpenError from None


def encode_inner(header_hash: bytes, content_length: int) -> bytes:
    """Return the 58-byte inner block."""
    return L_INNER + header_hash + struct.pack(">Q", content_length)


def check_inner(inner: bytes, header_hash: bytes, content_length: int) -> None:
    """Raise the opaque :class:`OpenError` unless ``inner`` matches what was decrypted.

    Rules inner.header-hash and inner.content-length. The comparison is
    constant-time over the whole block so timing does not say which field differed.
    """
    expected = encode_inner(header_hash, content_length)
    if len(inner) != INNER_LEN or not hmac.compare_digest(inner, expected):
        raise OpenError
