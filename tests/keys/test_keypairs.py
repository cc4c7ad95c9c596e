"""Tests for exchange.keys.keypairs: enrolment checks, secrecy of private keys, signatures."""

from __future__ import annotations

import base64

import pytest

from exchange.keys.errors import InvalidPublicKeyError
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import (
    BadSignatureError,
    EncryptionKey,
    EncryptionPublicKey,
    OrgKeyPair,
    SigningKey,
    SigningPublicKey,
)

# libsodium's list of small-order X25519 u-coordinates (crypto_scalarmult/curve25519
# blacklist): 0, 1, the two points of order 8, and p-1, p, p+1.
_X25519_SMALL_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]
# X25519 ignores the top bit, so the same points spelled with it set must be refused too.
_X25519_SMALL_ORDER_TOP_BIT = [
    h[:-2] + f"{int(h[-2:], 16) | 0x80:02x}" for h in _X25519_SMALL_ORDER
]

# libsodium's list of small-order Ed25519 y-coordinates (ge25519_has_small_order): 0 and 1,
# the two y values of the order-8 points, and p-1, p, p+1. Each is tried with both signs of x.
_ED25519_SMALL_ORDER_Y = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]
_ED25519_SMALL_ORDER = _ED25519_SMALL_ORDER_Y + [
    h[:-2] + f"{int(h[-2:], 16) | 0x80:02x}" for h in _ED25519_SMALL_ORDER_Y
]


def _secret_spellings(secret: bytes) -> list[str]:
    """Return the forms in which a leaked secret would most likely appear in text."""
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        repr(secret),
    ]


@pytest.mark.parametrize("hex_point", _X25519_SMALL_ORDER + _X25519_SMALL_ORDER_TOP_BIT)
def test_x25519_small_order_point_is_refused(hex_point: str) -> None:
    """Every small-order X25519 u-coordinate, with or without the top bit, is refused."""
    with pytest.raises(InvalidPublicKeyError):
        EncryptionPublicKey.from_bytes(bytes.fromhex(hex_point))


@pytest.mark.parametrize("hex_point", _ED25519_SMALL_ORDER)
def test_ed25519_small_order_point_is_refused(hex_point: str) -> None:
    """Every small-order Ed25519 encoding (the identity included) is refused."""
    with pytest.raises(InvalidPublicKeyError):
        SigningPublicKey.from_bytes(bytes.fromhex(hex_point))


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_signing_public_key_of_wrong_length_is_refused(length: int) -> None:
    """An Ed25519 public key that is not 32 bytes is refused with its length named."""
    with pytest.raises(InvalidPublicKeyError, match=f"not {length}"):
        SigningPublicKey.from_bytes(b"\x09" * length)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_encryption_public_key_of_wrong_length_is_refused(length: int) -> None:
    """An X25519 public key that is not 32 bytes is refused with its length named."""
    with pytest.raises(InvalidPublicKeyError, match=f"not {length}"):
        EncryptionPublicKey.from_bytes(b"\x09" * length)


@pytest.mark.parametrize("length", [0, 31, 33])
def test_signing_key_seed_of_wrong_length_is_refused(length: int) -> None:
    """A signing key seed that is not 32 bytes is a ValueError."""
    with pytest.raises(ValueError, match="seed"):
        SigningKey(b"\x01" * length)


@pytest.mark.parametrize("length", [0, 31, 33])
def test_encryption_key_secret_of_wrong_length_is_refused(length: int) -> None:
    """An encryption secret that is not 32 bytes is a ValueError."""
    with pytest.raises(ValueError, match="secret"):
        EncryptionKey(b"\x01" * length)


def test_generated_public_keys_are_accepted() -> None:
    """Freshly generated public keys pass their own validation."""
    pair = OrgKeyPair.generate(OrgId("urn:106123"))
    assert SigningPublicKey.from_bytes(pair.signing.public.raw) == pair.signing.public
    assert EncryptionPublicKey.from_bytes(pair.encryption.public.raw) == pair.encryption.public


def test_signing_key_repr_and_str_hide_the_seed() -> None:
    """Neither repr nor str of a signing key contains its seed in any common spelling."""
    key = SigningKey.generate()
    seed = key.secret_bytes_for_storage()
    for text in (repr(key), str(key)):
        for spelling in _secret_spellings(seed):
            assert spelling not in text


def test_encryption_key_repr_and_str_hide_the_secret() -> None:
    """Neither repr nor str of an encryption key contains its secret in any common spelling."""
    key = EncryptionKey.generate()
    secret = key.secret_bytes_for_storage()
    for text in (repr(key), str(key)):
        for spelling in _secret_spellings(secret):
            assert spelling not in text


def test_org_key_pair_repr_hides_both_secrets() -> None:
    """The repr and str of a key pair contain neither private key."""
    pair = OrgKeyPair.generate(OrgId("la:356"))
    secrets_ = [
        pair.signing.secret_bytes_for_storage(),
        pair.encryption.secret_bytes_for_storage(),
    ]
    for text in (repr(pair), str(pair)):
        for secret in secrets_:
            for spelling in _secret_spellings(secret):
                assert spelling not in text


def test_signature_round_trip_verifies() -> None:
    """A signature made by a key verifies under its public key."""
    key = SigningKey.generate()
    key.public.verify(b"referral", key.sign(b"referral"))


def test_altered_message_raises_bad_signature() -> None:
    """A signature does not verify over a message with one byte changed."""
    key = SigningKey.generate()
    signature = key.sign(b"referral")
    with pytest.raises(BadSignatureError):
        key.public.verify(b"referrat", signature)


def test_altered_signature_raises_bad_signature() -> None:
    """A signature with one bit flipped does not verify."""
    key = SigningKey.generate()
    signature = bytearray(key.sign(b"referral"))
    signature[10] ^= 0x01
    with pytest.raises(BadSignatureError):
        key.public.verify(b"referral", bytes(signature))


def test_signature_of_wrong_length_raises_bad_signature() -> None:
    """A truncated signature is a bad signature, not a crash."""
    key = SigningKey.generate()
    with pytest.raises(BadSignatureError):
        key.public.verify(b"referral", key.sign(b"referral")[:63])


def test_signature_from_other_key_raises_bad_signature() -> None:
    """A signature by one key does not verify under another key."""
    key, other = SigningKey.generate(), SigningKey.generate()
    with pytest.raises(BadSignatureError):
        other.public.verify(b"referral", key.sign(b"referral"))


def test_signing_key_from_same_seed_is_equal() -> None:
    """Two signing keys built from the same seed are equal and share a public key."""
    key = SigningKey.generate()
    again = SigningKey(key.secret_bytes_for_storage())
    assert again == key
    assert again.public == key.public
