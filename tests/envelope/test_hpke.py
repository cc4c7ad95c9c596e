"""HPKE base mode: the RFC 9180 A.2.1 vector and interoperation with pyca/cryptography."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.envelope.hpke import UnwrapError, derive_key_pair, open_base, seal_base

# RFC 9180 appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base.
INFO = bytes.fromhex("4f6465206f6e2061204772656369616e2055726e")
IKM_E = bytes.fromhex("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b")
SK_E = bytes.fromhex("f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600")
PK_E = bytes.fromhex("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a")
SK_R = bytes.fromhex("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb")
PK_R = bytes.fromhex("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a")
PT = bytes.fromhex("4265617574792069732074727574682c20747275746820626561757479")
AAD = bytes.fromhex("436f756e742d30")
CT = bytes.fromhex(
    "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"
)

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
RECIPIENT = X25519PrivateKey.from_private_bytes(SK_R)


def test_derive_key_pair_matches_rfc() -> None:
    """DeriveKeyPair(ikmE) gives the RFC's ephemeral secret and public key."""
    sk_e = derive_key_pair(IKM_E)
    assert sk_e.private_bytes_raw() == SK_E
    assert sk_e.public_key().public_bytes_raw() == PK_E


def test_recipient_key_matches_rfc() -> None:
    """The RFC's skRm has the RFC's pkRm (a check on the vector as transcribed)."""
    assert RECIPIENT.public_key().public_bytes_raw() == PK_R


def test_seal_base_matches_rfc() -> None:
    """seal_base with the RFC's ikmE, info and aad gives its enc and sequence-0 ciphertext."""
    enc, ct = seal_base(X25519PublicKey.from_public_bytes(PK_R), INFO, PT, IKM_E, aad=AAD)
    assert enc == PK_E
    assert ct == CT


def test_seal_base_refuses_short_seed() -> None:
    """An ephemeral seed that is not 32 bytes is a caller error."""
    with pytest.raises(ValueError, match="ikm_e"):
        seal_base(RECIPIENT.public_key(), INFO, PT, IKM_E[:31])


def test_open_base_refuses_wrong_info() -> None:
    """A ciphertext opened with another info fails with UnwrapError."""
    enc, ct = seal_base(RECIPIENT.public_key(), INFO, PT, IKM_E)
    assert open_base(RECIPIENT, INFO, enc, ct) == PT
    with pytest.raises(UnwrapError):
        open_base(RECIPIENT, INFO + b"!", enc, ct)


def test_open_base_refuses_wrong_key() -> None:
    """A ciphertext opened with another recipient key fails with UnwrapError."""
    enc, ct = seal_base(RECIPIENT.public_key(), INFO, PT, IKM_E)
    with pytest.raises(UnwrapError):
        open_base(derive_key_pair(b"\x01" * 32), INFO, enc, ct)


@pytest.mark.parametrize("enc", ["00" * 32, "01" + "00" * 31, "ecff" + "ff" * 29 + "7f", ""])
def test_open_base_refuses_bad_enc(enc: str) -> None:
    """An encapsulated key of small order or of the wrong length fails with UnwrapError."""
    _, ct = seal_base(RECIPIENT.public_key(), INFO, PT, IKM_E)
    with pytest.raises(UnwrapError):
        open_base(RECIPIENT, INFO, bytes.fromhex(enc), ct)


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=200), info=st.binary(max_size=100))
def test_pyca_encrypt_opens_with_open_base(plaintext: bytes, info: bytes) -> None:
    """What pyca's Suite.encrypt produces, open_base opens."""
    sealed = SUITE.encrypt(plaintext, RECIPIENT.public_key(), info=info)
    assert open_base(RECIPIENT, info, sealed[:32], sealed[32:]) == plaintext


@settings(max_examples=50, deadline=None)
@given(
    plaintext=st.binary(max_size=200),
    info=st.binary(max_size=100),
    ikm=st.binary(min_size=32, max_size=32),
)
def test_seal_base_opens_with_pyca_decrypt(plaintext: bytes, info: bytes, ikm: bytes) -> None:
    """What seal_base produces, pyca's Suite.decrypt opens."""
    enc, ct = seal_base(RECIPIENT.public_key(), info, plaintext, ikm)
    assert enc == derive_key_pair(ikm).public_key().public_bytes_raw()
    assert SUITE.decrypt(enc + ct, RECIPIENT, info=info) == plaintext
