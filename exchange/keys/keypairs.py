"""Organisation key pairs: Ed25519 for signing, X25519 for encryption.

Public keys are validated when they are built from bytes, which is the moment of enrolment
(a directory entry, a key file, an envelope field): all-zero, non-canonical and small-order
keys are refused there, so no later code ever holds one. Private key types never show their
secret in ``repr`` or ``str``; the raw secret leaves an object only through
``secret_bytes_for_storage``, which the key-file encoder calls.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from exchange.keys.errors import InvalidPublicKeyError
from exchange.keys.ids import KeyId, OrgId, key_id

PUBLIC_KEY_LEN: Final = 32
SECRET_KEY_LEN: Final = 32
SIGNATURE_LEN: Final = 64

# 2**255 - 19, the field prime of Curve25519.
_P25519: Final = (1 << 255) - 19

# Any fixed clamped scalar works: every small-order point times a clamped scalar (a multiple
# of the cofactor 8) is the identity, whose X25519 encoding is all zero, which OpenSSL
# refuses. This is the check RFC 7748 section 6.1 recommends, done once at enrolment.
_PROBE_SCALAR: Final = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


class BadSignatureError(Exception):
    """A signature did not verify. Callers translate this into their own opaque error."""


@dataclass(frozen=True, slots=True)
class SigningPublicKey:
    """A validated Ed25519 public key."""

    raw: bytes
    key_id: KeyId = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id("ed25519", self.raw))

    @classmethod
    def from_bytes(cls, raw: bytes) -> SigningPublicKey:
        """Validate and wrap 32 raw bytes; raise :class:`InvalidPublicKeyError` if refused."""
        if len(raw) != PUBLIC_KEY_LEN:
            raise InvalidPublicKeyError(
                f"an Ed25519 public key must be {PUBLIC_KEY_LEN} bytes, not {len(raw)}"
            )
        if not any(raw):
            raise InvalidPublicKeyError("an all-zero Ed25519 public key is refused")
        # libsodium's check: canonical encoding, on the curve, in the prime-order subgroup
        # and not of small order. Small-order keys would let a forger make signatures that
        # verify for many messages.
        if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
            raise InvalidPublicKeyError(
                "the Ed25519 public key is not a valid prime-order point (small-order or "
                "non-canonical keys are refused)"
            )
        return cls(bytes(raw))

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise :class:`BadSignatureError` unless ``signature`` is valid over ``message``."""
        if len(signature) != SIGNATURE_LEN:
            raise BadSignatureError
        try:
            nacl.bindings.crypto_sign_open(signature + message, self.raw)
        except nacl.exceptions.BadSignatureError:
            raise BadSignatureError from None


@dataclass(frozen=True, slots=True)
class EncryptionPublicKey:
    """A validated X25519 public key."""

    raw: bytes
    key_id: KeyId = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id("x25519", self.raw))

    @classmethod
    def from_bytes(cls, raw: bytes) -> EncryptionPublicKey:
        """Validate and wrap 32 raw bytes; raise :class:`InvalidPublicKeyError` if refused."""
        if len(raw) != PUBLIC_KEY_LEN:
            raise InvalidPublicKeyError(
                f"an X25519 public key must be {PUBLIC_KEY_LEN} bytes, not {len(raw)}"
            )
        if not any(raw):
            raise InvalidPublicKeyError("an all-zero X25519 public key is refused")
        if int.from_bytes(raw, "little") >= _P25519:
            raise InvalidPublicKeyError(
                "the X25519 public key is not canonically encoded (its value is not below "
                "2^255 - 19)"
            )
        try:
            _PROBE_SCALAR.exchange(X25519PublicKey.from_public_bytes(raw))
        except ValueError:
            raise InvalidPublicKeyError(
                "the X25519 public key has small order and is refused"
            ) from None
        return cls(bytes(raw))

    def to_cryptography(self) -> X25519PublicKey:
        """Return the key as a pyca/cryptography object."""
        return X25519PublicKey.from_public_bytes(self.raw)


class SigningKey:
    """An Ed25519 private key. Its ``repr`` shows only the key id."""

    __slots__ = ("_key", "public")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SECRET_KEY_LEN:
            raise ValueError(f"seed must be {SECRET_KEY_LEN} bytes")
        self._key = nacl.signing.SigningKey(bytes(seed))
        self.public = SigningPublicKey.from_bytes(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        """Return a new key from the operating system's random source."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return bytes(self._key.sign(message).signature)

    def secret_bytes_for_storage(self) -> bytes:
        """Return the 32-byte seed. Only the key-file encoder should call this."""
        return bytes(self._key)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.public.key_id.hex()[:16]}…, secret=<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKey):
            return NotImplemented
        return hmac.compare_digest(bytes(self._key), bytes(other._key))

    def __hash__(self) -> int:
        return hash(self.public.raw)


class EncryptionKey:
    """An X25519 private key. Its ``repr`` shows only the key id."""

    __slots__ = ("_key", "public")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != SECRET_KEY_LEN:
            raise ValueError(f"secret must be {SECRET_KEY_LEN} bytes")
        self._key = X25519PrivateKey.from_private_bytes(bytes(secret))
        self.public = EncryptionPublicKey.from_bytes(self._key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls) -> EncryptionKey:
        """Return a new key from the operating system's random source."""
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    def to_cryptography(self) -> X25519PrivateKey:
        """Return the key as a pyca/cryptography object (for HPKE decryption)."""
        return self._key

    def secret_bytes_for_storage(self) -> bytes:
        """Return the 32-byte secret. Only the key-file encoder should call this."""
        return self._key.private_bytes_raw()

    def __repr__(self) -> str:
        return f"EncryptionKey(key_id={self.public.key_id.hex()[:16]}…, secret=<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EncryptionKey):
            return NotImplemented
        return hmac.compare_digest(
            self.secret_bytes_for_storage(), other.secret_bytes_for_storage()
        )

    def __hash__(self) -> int:
        return hash(self.public.raw)


@dataclass(frozen=True, slots=True)
class OrgKeyPair:
    """One generation of an organisation's keys: a signing key and an encryption key.

    An organisation that rotates has several of these; the directory lists the public halves
    with their validity windows.
    """

    org_id: OrgId
    signing: SigningKey = field(repr=True)
    encryption: EncryptionKey = field(repr=True)

    @classmethod
    def generate(cls, org_id: OrgId) -> OrgKeyPair:
        """Return fresh keys for ``org_id``."""
        return cls(org_id, SigningKey.generate(), EncryptionKey.generate())
