"""Tests for exchange.keys.keyfile: passphrase-encrypted organisation key files."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import nacl.bindings
import nacl.pwhash.argon2id
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.keys import keyfile
from exchange.keys.errors import KeyFileError, WrongPassphraseError
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import (
    MAX_KEY_FILE_LEN,
    MAX_MEMLIMIT,
    MAX_OPSLIMIT,
    MIN_MEMLIMIT,
    MIN_OPSLIMIT,
    KdfParams,
    decode_key_file,
    encode_key_file,
    read_key_file_public,
)
from exchange.keys.keypairs import OrgKeyPair

PASSPHRASE = b"correct horse battery staple"
FAST = KdfParams.fast_for_tests()

# One pair and one file for the whole module: Argon2id, even at minimum cost, is the slow part.
PAIR = OrgKeyPair.generate(OrgId("la:356"))
FILE = encode_key_file(PAIR, PASSPHRASE, params=FAST)
OTHER = OrgKeyPair.generate(OrgId("urn:106123"))


def _doc() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FILE)
    return loaded


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _secret_spellings() -> list[str]:
    spellings = []
    for secret in (
        PAIR.signing.secret_bytes_for_storage(),
        PAIR.encryption.secret_bytes_for_storage(),
    ):
        spellings += [secret.hex(), base64.b64encode(secret).decode(), repr(secret)]
    return spellings


def test_round_trip_returns_the_same_pair() -> None:
    """Decoding an encoded key file with its passphrase returns the same key pair."""
    assert decode_key_file(FILE, PASSPHRASE) == PAIR


def test_output_is_json_text_ending_in_newline() -> None:
    """The key file is UTF-8 JSON ending in a newline, with the documented fields."""
    assert FILE.endswith(b"\n")
    doc = _doc()
    assert doc["format"] == "exchange-org-key/v1"
    assert doc["org"] == "la:356"
    assert doc["kdf"]["alg"] == "argon2id13"
    assert doc["cipher"] == "xchacha20poly1305-ietf"
    assert doc["signing_key_id"] == PAIR.signing.public.key_id.hex()


def test_fixed_salt_and_nonce_give_identical_files() -> None:
    """With salt and nonce given, encoding is deterministic (for test vectors)."""
    kwargs: dict[str, Any] = {"params": FAST, "salt": bytes(16), "nonce": bytes(24)}
    assert encode_key_file(PAIR, PASSPHRASE, **kwargs) == encode_key_file(
        PAIR, PASSPHRASE, **kwargs
    )


def test_random_salt_and_nonce_differ_between_files() -> None:
    """Two encodings of one pair use different salts and nonces."""
    again = json.loads(encode_key_file(PAIR, PASSPHRASE, params=FAST))
    assert again["kdf"]["salt"] != _doc()["kdf"]["salt"]
    assert again["nonce"] != _doc()["nonce"]


def test_default_params_are_rfc9106_second_option() -> None:
    """The default KDF parameters are three passes over 64 MiB."""
    assert KdfParams.default() == KdfParams(opslimit=3, memlimit=64 * 1024 * 1024)


def test_public_fields_read_without_passphrase() -> None:
    """read_key_file_public returns the org id and public keys without decrypting."""
    assert read_key_file_public(FILE) == (PAIR.org_id, PAIR.signing.public, PAIR.encryption.public)


def test_wrong_passphrase_is_refused() -> None:
    """A wrong passphrase raises WrongPassphraseError with the documented sentence."""
    with pytest.raises(WrongPassphraseError, match="does not open this key file"):
        decode_key_file(FILE, b"wrong")


def test_empty_passphrase_is_refused_when_encoding() -> None:
    """Encoding with an empty passphrase is a ValueError."""
    with pytest.raises(ValueError, match="passphrase"):
        encode_key_file(PAIR, b"", params=FAST)


@pytest.mark.parametrize(("salt", "nonce"), [(bytes(15), bytes(24)), (bytes(16), bytes(23))])
def test_wrong_length_salt_or_nonce_is_refused(salt: bytes, nonce: bytes) -> None:
    """A caller-supplied salt or nonce of the wrong length is a ValueError."""
    with pytest.raises(ValueError, match=r"salt|nonce"):
        encode_key_file(PAIR, PASSPHRASE, params=FAST, salt=salt, nonce=nonce)


@pytest.mark.parametrize(
    ("path", "new_value"),
    [
        (("org",), "la:357"),
        (("kdf", "opslimit"), MIN_OPSLIMIT + 1),
        (("kdf", "memlimit"), MIN_MEMLIMIT * 2),
        (("kdf", "salt"), "flip"),
        (("nonce",), "flip"),
        (("ciphertext",), "flip"),
    ],
)
def test_altered_authenticated_field_fails_to_open(path: tuple[str, ...], new_value: Any) -> None:
    """Changing a clear field bound into the AEAD makes the file fail as altered."""
    doc = _doc()
    target = doc
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = _flip_b64(target[path[-1]]) if new_value == "flip" else new_value
    with pytest.raises(WrongPassphraseError):
        decode_key_file(_dump(doc), PASSPHRASE)


def test_swapped_public_keys_from_another_pair_fail_to_open() -> None:
    """Replacing the clear public keys and key ids with another pair's fails to open."""
    doc = _doc()
    other = json.loads(encode_key_file(OTHER, PASSPHRASE, params=FAST))
    for name in ("signing_public", "encryption_public", "signing_key_id", "encryption_key_id"):
        doc[name] = other[name]
    with pytest.raises(WrongPassphraseError):
        decode_key_file(_dump(doc), PASSPHRASE)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("format", "exchange-org-key/v2", "format"),
        ("cipher", "aes-256-gcm", "cipher"),
        ("signing_key_id", "00" * 32, "signing_key_id"),
        ("encryption_key_id", "00" * 32, "encryption_key_id"),
        ("org", "not an id", "org"),
        ("org", 356, "org"),
        ("nonce", "AAAA", "nonce"),
        ("nonce", "not base64!", "nonce"),
        ("ciphertext", base64.b64encode(bytes(79)).decode(), "ciphertext"),
        ("signing_public", base64.b64encode(bytes(32)).decode(), "signing_public"),
        ("encryption_public", base64.b64encode(bytes(32)).decode(), "encryption_public"),
        ("kdf", [], "kdf"),
    ],
)
def test_malformed_clear_field_names_the_field(name: str, value: Any, message: str) -> None:
    """A malformed clear field raises KeyFileError naming that field."""
    doc = _doc()
    doc[name] = value
    with pytest.raises(KeyFileError, match=message) as info:
        decode_key_file(_dump(doc), PASSPHRASE)
    assert not isinstance(info.value, WrongPassphraseError)


def test_non_canonical_base64_is_refused() -> None:
    """A base64 field whose unused trailing bits are set is refused."""
    doc = _doc()
    salt = doc["kdf"]["salt"]  # 16 bytes: 22 characters then "==", 4 spare bits.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    doc["kdf"]["salt"] = salt[:21] + last[last.index(salt[21]) ^ 1] + "=="
    with pytest.raises(KeyFileError, match=r"kdf\.salt"):
        decode_key_file(_dump(doc), PASSPHRASE)


@pytest.mark.parametrize("name", ["org", "nonce", "kdf"])
def test_missing_field_is_named(name: str) -> None:
    """A missing field raises KeyFileError naming it."""
    doc = _doc()
    del doc[name]
    with pytest.raises(KeyFileError, match=name):
        decode_key_file(_dump(doc), PASSPHRASE)


def test_unknown_field_is_named() -> None:
    """An extra field raises KeyFileError naming it."""
    doc = _doc()
    doc["comment"] = "hello"
    with pytest.raises(KeyFileError, match="comment"):
        decode_key_file(_dump(doc), PASSPHRASE)


def test_repeated_field_is_refused() -> None:
    """A JSON object that repeats a field name is refused rather than resolved silently."""
    text = FILE.decode().replace('"org": "la:356"', '"org": "la:356", "org": "la:357"')
    with pytest.raises(KeyFileError, match="repeats the field 'org'"):
        decode_key_file(text.encode(), PASSPHRASE)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("opslimit", MIN_OPSLIMIT - 1),
        ("opslimit", MAX_OPSLIMIT + 1),
        ("memlimit", MIN_MEMLIMIT - 1),
        ("memlimit", MAX_MEMLIMIT + 1),
        ("memlimit", 100 * 1024**3),
        ("opslimit", True),
        ("opslimit", 3.0),
        ("memlimit", "65536"),
    ],
)
def test_kdf_params_out_of_range_are_refused(name: str, value: Any) -> None:
    """KDF parameters outside the accepted range are refused before any derivation."""
    doc = _doc()
    doc["kdf"][name] = value
    with pytest.raises(KeyFileError, match=f"kdf.{name}"):
        decode_key_file(_dump(doc), PASSPHRASE)


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [(0, MIN_MEMLIMIT), (MAX_OPSLIMIT + 1, MIN_MEMLIMIT), (1, MIN_MEMLIMIT - 1)],
)
def test_kdf_params_constructor_refuses_out_of_range(opslimit: int, memlimit: int) -> None:
    """KdfParams cannot be built outside the accepted range."""
    with pytest.raises(ValueError, match="limit"):
        KdfParams(opslimit=opslimit, memlimit=memlimit)


def test_oversize_file_is_refused_before_parsing() -> None:
    """A file over the size limit is refused with the limit named."""
    with pytest.raises(KeyFileError, match=str(MAX_KEY_FILE_LEN)):
        decode_key_file(b" " * (MAX_KEY_FILE_LEN + 1), PASSPHRASE)


@pytest.mark.parametrize(
    "data", [b"", b"   \n", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 50_000, b"1" * 5000]
)
def test_garbage_is_refused_with_key_file_error(data: bytes) -> None:
    """Empty, truncated, non-object, non-UTF-8, deeply nested and huge-number inputs are refused."""
    with pytest.raises(KeyFileError):
        read_key_file_public(data)


def test_mismatched_private_and_public_keys_are_refused() -> None:
    """A file whose authenticated public keys do not belong to its private keys is refused."""
    # Only a writer holding the passphrase can make such a file; build one by hand, encrypting
    # OTHER's secrets under PAIR's clear (and authenticated) public fields.
    doc = _doc()
    salt, nonce = base64.b64decode(doc["kdf"]["salt"]), base64.b64decode(doc["nonce"])
    key = nacl.pwhash.argon2id.kdf(
        32, PASSPHRASE, salt, opslimit=FAST.opslimit, memlimit=FAST.memlimit
    )
    aad = keyfile._aad(PAIR.org_id, PAIR.signing.public, PAIR.encryption.public, FAST, salt)
    secrets_ = (
        OTHER.signing.secret_bytes_for_storage() + OTHER.encryption.secret_bytes_for_storage()
    )
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(secrets_, aad, nonce, key)
    doc["ciphertext"] = base64.b64encode(ciphertext).decode()
    with pytest.raises(KeyFileError, match="do not match its public keys"):
        decode_key_file(_dump(doc), PASSPHRASE)


def test_secret_never_appears_in_the_file_or_any_repr() -> None:
    """The private keys appear in neither the file, nor the pair's repr, nor any error raised."""
    texts = [FILE.decode(), repr(PAIR), str(PAIR), repr(FAST)]
    for bad in (b"wrong",):
        try:
            decode_key_file(FILE, bad)
        except KeyFileError as exc:
            texts += [str(exc), repr(exc)]
    for text in texts:
        for spelling in _secret_spellings():
            assert spelling not in text


def test_wrong_passphrase_error_does_not_echo_the_passphrase() -> None:
    """The wrong-passphrase error does not contain the passphrase tried."""
    with pytest.raises(WrongPassphraseError) as info:
        decode_key_file(FILE, b"my-secret-guess")
    assert "my-secret-guess" not in str(info.value)


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_key_file_error(data: bytes) -> None:
    """Any bytes given to the decoder raise KeyFileError and nothing else."""
    with contextlib.suppress(KeyFileError):
        read_key_file_public(data)


@given(st.integers(min_value=0, max_value=len(FILE) - 1), st.integers(1, 255))
def test_any_single_byte_change_is_refused_or_harmless(position: int, delta: int) -> None:
    """Changing one byte of a key file gives KeyFileError or, for whitespace, the same pair."""
    data = bytearray(FILE)
    data[position] = (data[position] + delta) % 256
    try:
        decoded = decode_key_file(bytes(data), PASSPHRASE)
    except KeyFileError:
        return
    assert decoded == PAIR
