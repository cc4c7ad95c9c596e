"""HPKE base mode (RFC 9180) for wrapping a content key to one recipient.

Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, single-shot, empty aad.

The sender side is written here, on pyca/cryptography's X25519 and ChaCha20-Poly1305 and the
standard library's HMAC, because pyca's ``hpke.Suite.encrypt`` draws its ephemeral key
internally and test vectors need it fixed (``DeriveKeyPair(ikmE)``, RFC 9180 §7.1.3). The
recipient side is pyca's own ``Suite.decrypt``, so every envelope opened in the test suite
checks that the two implementations agree; the RFC's A.2.1 vector checks this one alone.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

_KEM_ID: Final = 0x0020
_KDF_ID: Final = 0x0001
_AEAD_ID: Final = 0x0003
_KEM_SUITE: Final = b"KEM" + struct.pack(">H", _KEM_ID)
_HPKE_SUITE: Final = b"HPKE" + struct.pack(">HHH", _KEM_ID, _KDF_ID, _AEAD_ID)
_VERSION: Final = b"HPKE-v1"
_MODE_BASE: Final = b"\x00"

ENC_LEN: Final = 32
IKM_LEN: Final = 32

_SUITE: Final = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


class UnwrapError(Exception):
    """HPKE decryption failed. Callers translate this into their opaque open error."""


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, hashlib.sha256)


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    # One HMAC block is enough: every output here is at most 32 bytes.
    return hmac.digest(prk, info + b"\x01", hashlib.sha256)[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, _VERSION + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, struct.pack(">H", length) + _VERSION + suite + label + info, length)


def derive_key_pair(ikm: bytes) -> X25519PrivateKey:
    """RFC 9180 §7.1.3 DeriveKeyPair for X25519."""
    dkp_prk = _labeled_extract(_KEM_SUITE, b"", b"dkp_prk", ikm)
    return X25519PrivateKey.from_private_bytes(_labeled_expand(_KEM_SUITE, dkp_prk, b"sk", b"", 32))


# Base mode has an empty psk_id, so its hash is a constant of the suite (RFC 9180 §5.1).
_PSK_ID_HASH: Final = _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")


def _key_schedule(shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    psk_id_hash = _PSK_ID_HASH
    info_hash = _labeled_extract(_HPKE_SUITE, b"", b"info_hash", info)
    context = _MODE_BASE + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE, secret, b"key", context, 32)
    base_nonce = _labeled_expand(_HPKE_SUITE, secret, b"base_nonce", context, 12)
    return key, base_nonce


def seal_base(
    recipient: X25519PublicKey, info: bytes, plaintext: bytes, ikm_e: bytes, aad: bytes = b""
) -> tuple[bytes, bytes]:
    """Single-shot HPKE ``Seal`` in base mode; return ``(enc, ciphertext)``.

    ``ikm_e`` is 32 bytes from the random source; the same ``ikm_e`` must never be used twice.
    """
    if len(ikm_e) != IKM_LEN:
        raise ValueError(f"ikm_e must be {IKM_LEN} bytes")
    sk_e = derive_key_pair(ikm_e)
    enc = sk_e.public_key().public_bytes_raw()
    dh = sk_e.exchange(recipient)  # raises ValueError for a small-order key (refused earlier)
    kem_context = enc + recipient.public_bytes_raw()
    eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(_KEM_SUITE, eae_prk, b"shared_secret", kem_context, 32)
    key, base_nonce = _key_schedule(shared_secret, info)
    # Sequence number 0: the nonce is base_nonce itself.
    return enc, ChaCha20Poly1305(key).encrypt(base_nonce, plaintext, aad)


def open_base(private: X25519PrivateKey, info: bytes, enc: bytes, ciphertext: bytes) -> bytes:
    """Single-shot HPKE ``Open`` (empty aad) by pyca/cryptography; raise :class:`UnwrapError`."""
    try:
        return _SUITE.decrypt(enc + ciphertext, private, info=info)
    except (InvalidTag, ValueError):
        raise UnwrapError from None
