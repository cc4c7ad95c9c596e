"""Passphrase-encrypted organisation key files (format ``exchange-org-key/v1``).

A key file is UTF-8 JSON holding an organisation id, its two public keys with their key ids,
the Argon2id parameters and salt, and an XChaCha20-Poly1305 ciphertext of the two private
keys (the Ed25519 seed then the X25519 secret). Every clear field is bound to the ciphertext
as associated data, so none can be swapped without the file failing to open; after
decryption the private keys must reproduce the clear public keys. Decoding checks the size
and every field before spending any effort on key derivation, and refuses KDF parameters a
hostile file could use to make us allocate huge amounts of memory. Reading and writing the
file (mode 0600) is the caller's job.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import struct
from dataclasses import dataclass
from typing import Any, Final

import nacl.bindings
import nacl.exceptions
import nacl.pwhash.argon2id

from exchange.keys.errors import InvalidPublicKeyError, KeyFileError, WrongPassphraseError
from exchange.keys.ids import OrgId, key_id_text, parse_org_id
from exchange.keys.keypairs import (
    SECRET_KEY_LEN,
    EncryptionKey,
    EncryptionPublicKey,
    OrgKeyPair,
    SigningKey,
    SigningPublicKey,
)
from exchange.keys.strictjson import StrictJsonError, loads_strict

FORMAT: Final = "exchange-org-key/v1"
KDF_ALG: Final = "argon2id13"
CIPHER: Final = "xchacha20poly1305-ietf"

#: Largest key file read. A real one is under 1 KiB; the limit stops a wrong file (or a
#: hostile one) from being parsed at length.
MAX_KEY_FILE_LEN: Final = 64 * 1024

#: Upper bounds on KDF parameters read from a file. RFC 9106's first recommended option
#: (2 GiB) is beyond what a node should be made to allocate by a file it was handed;
#: 1 GiB and 10 passes leave room for deliberate hardening above our default.
MAX_OPSLIMIT: Final = 10
MAX_MEMLIMIT: Final = 1024 * 1024 * 1024
MIN_OPSLIMIT: Final = int(nacl.pwhash.argon2id.OPSLIMIT_MIN)
MIN_MEMLIMIT: Final = int(nacl.pwhash.argon2id.MEMLIMIT_MIN)

SALT_LEN: Final = int(nacl.pwhash.argon2id.SALTBYTES)
NONCE_LEN: Final = int(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
_KEY_LEN: Final = 32
_TAG_LEN: Final = 16
_CIPHERTEXT_LEN: Final = 2 * SECRET_KEY_LEN + _TAG_LEN

#: Domain label that starts the associated data, so this AEAD input can never be mistaken
#: for any other in the system.
_AAD_LABEL: Final = b"exchange/v1/org-key-file\x00"

_FIELDS: Final = frozenset(
    {
        "format",
        "org",
        "signing_public",
        "encryption_public",
        "signing_key_id",
        "encryption_key_id",
        "kdf",
        "cipher",
        "nonce",
        "ciphertext",
    }
)
_KDF_FIELDS: Final = frozenset({"alg", "opslimit", "memlimit", "salt"})


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters: passes (``opslimit``) and memory in bytes (``memlimit``)."""

    opslimit: int
    memlimit: int

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("opslimit", self.opslimit, MIN_OPSLIMIT, MAX_OPSLIMIT),
            ("memlimit", self.memlimit, MIN_MEMLIMIT, MAX_MEMLIMIT),
        ):
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}")

    @classmethod
    def default(cls) -> KdfParams:
        """Return the parameters used for real key files."""
        # RFC 9106 section 4, second recommended option: Argon2id, t=3 passes, 64 MiB of
        # memory, for environments where 2 GiB is too much (a node's passphrase prompt).
        return cls(opslimit=3, memlimit=64 * 1024 * 1024)

    @classmethod
    def fast_for_tests(cls) -> KdfParams:
        """Return libsodium's minimum parameters. For tests only: they offer no protection."""
        return cls(opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)


DEFAULT_KDF_PARAMS: Final = KdfParams.default()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _frame(*parts: bytes) -> bytes:
    """Length-prefix each part (4-byte big-endian), so no two field lists encode alike."""
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


def _aad(
    org: str,
    signing: SigningPublicKey,
    encryption: EncryptionPublicKey,
    params: KdfParams,
    salt: bytes,
) -> bytes:
    """Return the associated data: a deterministic encoding of every clear field.

    The key ids and nonce are not included: the key ids are checked against the public keys
    and the nonce is an input of the AEAD itself.
    """
    return _AAD_LABEL + _frame(
        FORMAT.encode("ascii"),
        org.encode("ascii"),
        signing.raw,
        encryption.raw,
        KDF_ALG.encode("ascii"),
        struct.pack(">QQ", params.opslimit, params.memlimit),
        salt,
        CIPHER.encode("ascii"),
    )


def _derive(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    return bytes(
        nacl.pwhash.argon2id.kdf(
            _KEY_LEN, passphrase, salt, opslimit=params.opslimit, memlimit=params.memlimit
        )
    )


def _check_passphrase(passphrase: bytes) -> None:
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    if not passphrase:
        raise ValueError("passphrase must not be empty")


def encode_key_file(
    pair: OrgKeyPair,
    passphrase: bytes,
    *,
    params: KdfParams = DEFAULT_KDF_PARAMS,
    salt: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Return the key file for ``pair`` encrypted under ``passphrase`` (UTF-8 JSON + newline).

    ``salt`` and ``nonce`` are random unless given; pass them only to make test vectors.
    """
    _check_passphrase(passphrase)
    salt = secrets.token_bytes(SALT_LEN) if salt is None else salt
    nonce = secrets.token_bytes(NONCE_LEN) if nonce is None else nonce
    if len(salt) != SALT_LEN:
        raise ValueError(f"salt must be {SALT_LEN} bytes")
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"nonce must be {NONCE_LEN} bytes")
    org = parse_org_id(pair.org_id, field="pair.org_id")
    signing, encryption = pair.signing.public, pair.encryption.public
    key = _derive(passphrase, salt, params)
    plaintext = pair.signing.secret_bytes_for_storage() + pair.encryption.secret_bytes_for_storage()
    ciphertext = bytes(
        nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, _aad(org, signing, encryption, params, salt), nonce, key
        )
    )
    document = {
        "format": FORMAT,
        "org": org,
        "signing_public": _b64(signing.raw),
        "encryption_public": _b64(encryption.raw),
        "signing_key_id": key_id_text(signing.key_id),
        "encryption_key_id": key_id_text(encryption.key_id),
        "kdf": {
            "alg": KDF_ALG,
            "opslimit": params.opslimit,
            "memlimit": params.memlimit,
            "salt": _b64(salt),
        },
        "cipher": CIPHER,
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
    }
    return (json.dumps(document, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True)
class _Parsed:
    """The clear fields of a key file, checked."""

    org: OrgId
    signing: SigningPublicKey
    encryption: EncryptionPublicKey
    params: KdfParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes


def _object(value: Any, field: str, names: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KeyFileError(f"{field} must be a JSON object")
    missing = sorted(names - value.keys())
    if missing:
        raise KeyFileError(f"{field} is missing the field {missing[0]!r}")
    unknown = sorted(value.keys() - names)
    if unknown:
        raise KeyFileError(f"{field} has an unknown field {unknown[0]!r}")
    return value


def _text(obj: dict[str, Any], name: str, prefix: str = "") -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise KeyFileError(f"{prefix}{name} must be a string")
    return value


def _bytes_field(obj: dict[str, Any], name: str, length: int, prefix: str = "") -> bytes:
    text = _text(obj, name, prefix)
    label = prefix + name
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise KeyFileError(f"{label} must be standard base64") from None
    # Python's decoder ignores non-zero trailing bits; requiring the canonical spelling
    # keeps every field to one encoding.
    if _b64(raw) != text:
        raise KeyFileError(f"{label} must be canonical standard base64")
    if len(raw) != length:
        raise KeyFileError(f"{label} must decode to {length} bytes, not {len(raw)}")
    return raw


def _int_field(obj: dict[str, Any], name: str, low: int, high: int) -> int:
    value = obj[name]
    # bool is a subclass of int in Python; a JSON true must not pass as 1.
    if type(value) is not int or not low <= value <= high:
        raise KeyFileError(f"kdf.{name} must be an integer from {low} to {high}")
    return value


def _parse_kdf(value: Any) -> tuple[KdfParams, bytes]:
    """Check the ``kdf`` object and return its parameters and salt."""
    kdf = _object(value, "kdf", _KDF_FIELDS)
    if _text(kdf, "alg", "kdf.") != KDF_ALG:
        raise KeyFileError(f"kdf.alg must be {KDF_ALG!r}")
    params = KdfParams(
        opslimit=_int_field(kdf, "opslimit", MIN_OPSLIMIT, MAX_OPSLIMIT),
        memlimit=_int_field(kdf, "memlimit", MIN_MEMLIMIT, MAX_MEMLIMIT),
    )
    salt = _bytes_field(kdf, "salt", SALT_LEN, "kdf.")
    return params, salt


def _parse(data: bytes) -> _Parsed:
    """Check the size and every clear field; raise :class:`KeyFileError` naming the field."""
    if not isinstance(data, bytes):
        raise TypeError("data must be bytes")
    if len(data) > MAX_KEY_FILE_LEN:
        raise KeyFileError(f"the key file is larger than the limit of {MAX_KEY_FILE_LEN} bytes")
    if not data.strip():
        raise KeyFileError("the key file is empty")
    try:
        doc = loads_strict(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise KeyFileError("the key file is not UTF-8 text") from None
    except StrictJsonError as exc:
        raise KeyFileError(f"the key file {exc}") from None
    doc = _object(doc, "the key file", _FIELDS)
    if _text(doc, "format") != FORMAT:
        raise KeyFileError(f"format must be {FORMAT!r}; this file has another format")
    try:
        org = parse_org_id(_text(doc, "org"), field="org")
    except ValueError as exc:
        raise KeyFileError(str(exc)) from None
    try:
        signing = SigningPublicKey.from_bytes(_bytes_field(doc, "signing_public", 32))
    except InvalidPublicKeyError as exc:
        raise KeyFileError(f"signing_public is refused: {exc}") from None
    try:
        encryption = EncryptionPublicKey.from_bytes(_bytes_field(doc, "encryption_public", 32))
    except InvalidPublicKeyError as exc:
        raise KeyFileError(f"encryption_public is refused: {exc}") from None
    if _text(doc, "signing_key_id") != key_id_text(signing.key_id):
        raise KeyFileError("signing_key_id does not match signing_public")
    if _text(doc, "encryption_key_id") != key_id_text(encryption.key_id):
        raise KeyFileError("encryption_key_id does not match encryption_public")
    params, salt = _parse_kdf(doc["kdf"])
    if _text(doc, "cipher") != CIPHER:
        raise KeyFileError(f"cipher must be {CIPHER!r}")
    return _Parsed(
        org=org,
        signing=signing,
        encryption=encryption,
        params=params,
        salt=salt,
        nonce=_bytes_field(doc, "nonce", NONCE_LEN),
        ciphertext=_bytes_field(doc, "ciphertext", _CIPHERTEXT_LEN),
    )


def decode_key_file(data: bytes, passphrase: bytes) -> OrgKeyPair:
    """Decrypt a key file and return the organisation's key pair.

    Raise :class:`KeyFileError` naming the field if the file is malformed, and
    :class:`WrongPassphraseError` if the passphrase is wrong or the file was altered.
    """
    _check_passphrase(passphrase)
    parsed = _parse(data)
    key = _derive(passphrase, parsed.salt, parsed.params)
    aad = _aad(parsed.org, parsed.signing, parsed.encryption, parsed.params, parsed.salt)
    try:
        plaintext = bytes(
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                parsed.ciphertext, aad, parsed.nonce, key
            )
        )
    except nacl.exceptions.CryptoError:
        # One error for a wrong passphrase and for tampering: the AEAD cannot tell them apart.
        raise WrongPassphraseError(
            "the passphrase does not open this key file, or the file was altered"
        ) from None
    signing = SigningKey(plaintext[:SECRET_KEY_LEN])
    encryption = EncryptionKey(plaintext[SECRET_KEY_LEN:])
    if signing.public != parsed.signing or encryption.public != parsed.encryption:
        raise KeyFileError("the key file's private keys do not match its public keys")
    return OrgKeyPair(parsed.org, signing, encryption)


def read_key_file_public(data: bytes) -> tuple[OrgId, SigningPublicKey, EncryptionPublicKey]:
    """Return the organisation id and public keys of a key file without its passphrase.

    These fields are not authenticated until the file is decrypted; use them for display
    and for building a directory entry, which the authority checks separately.
    """
    parsed = _parse(data)
    return parsed.org, parsed.signing, parsed.encryption
