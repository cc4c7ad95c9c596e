"""Signed notes in the C2SP signed-note format (https://c2sp.org/signed-note), Ed25519 only.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more signature
lines ``— <key name> <base64(4-byte key hash || signature)>``. The directory of organisations
and the ledger's checkpoints travel as signed notes, so a reader can check them with any
C2SP-compatible tool. This module signs notes, parses verifier keys
(``<name>+<8 hex key hash>+<base64(0x01 || public key)>``) and opens notes against a list of
trusted verifiers. It never returns a note's text unless a trusted signature verified, as the
specification requires. Errors are :class:`~exchange.keys.errors.NoteError` subclasses, so a caller
such as the directory loader can say precisely why a note was refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from exchange.keys.errors import (
    InvalidNoteSignatureError,
    InvalidPublicKeyError,
    NoteError,
    UnsignedNoteError,
    UntrustedNoteError,
)
from exchange.keys.keypairs import BadSignatureError, SigningKey, SigningPublicKey

#: Signature type byte for Ed25519 in key hashes and verifier keys (signed-note, "Signature
#: types").
ED25519_TYPE: Final = b"\x01"

#: Length of the key hash that prefixes every signature (signed-note, "Signatures").
KEY_HASH_LEN: Final = 4

#: Most signature lines we read. The specification requires accepting at least 16; 100 is the
#: limit of the Go reference implementation (golang.org/x/mod/sumdb/note).
MAX_SIGNATURES: Final = 100

#: Default size limit for a whole note. The directory is the largest note we expect
#: (50,000 organisations at well under 600 bytes each).
DEFAULT_MAX_NOTE_LEN: Final = 32 * 1024 * 1024

#: Longest key name accepted. The specification sets none; names are schema-less URLs.
MAX_NAME_LEN: Final = 256

_SIG_PREFIX: Final = "\u2014 "
# Control characters other than newline are forbidden anywhere in a note (signed-note,
# "Format").
_CONTROL_RE: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HASH_HEX_RE: Final = re.compile(r"[0-9a-f]{8}")


def _check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a valid key name (signed-note, "Format")."""
    if not isinstance(name, str):
        raise TypeError("the key name must be a string")
    if not name or len(name) > MAX_NAME_LEN:
        raise ValueError(f"the key name must be 1 to {MAX_NAME_LEN} characters")
    if "+" in name or any(ch.isspace() for ch in name) or _CONTROL_RE.search(name):
        raise ValueError("the key name must not contain '+', spaces or control characters")


def _b64decode_canonical(text: str) -> bytes:
    """Decode standard padded base64, refusing any other spelling of the same bytes.

    Python's decoder ignores non-zero trailing bits, so two strings could name one key or
    signature; re-encoding and comparing makes every encoding unique.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("not standard base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical standard base64")
    return raw


def key_hash(name: str, public: SigningPublicKey) -> bytes:
    """Return the 4-byte key hash of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_TYPE + public.raw).digest()[
        :KEY_HASH_LEN
    ]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted note-signing key: a key name and an Ed25519 public key."""

    name: str
    public: SigningPublicKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key hash that prefixes this key's signatures."""
        return key_hash(self.name, self.public)

    def vkey(self) -> str:
        """Return the verifier key string ``<name>+<hash hex>+<base64(0x01 || key)>``."""
        encoded = base64.b64encode(ED25519_TYPE + self.public.raw).decode("ascii")
        return f"{self.name}+{self.key_hash.hex()}+{encoded}"


def parse_verifier_key(text: str) -> NoteVerifier:
    """Parse a verifier key string, or raise :class:`NoteError` naming the part at fault."""
    if not isinstance(text, str):
        raise TypeError("the verifier key must be a string")
    # The name cannot contain '+', the hash is hex, and only the base64 part may hold '+'.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError("the verifier key must have the form <name>+<key hash>+<key>")
    name, hash_hex, key_b64 = parts
    try:
        _check_name(name)
    except ValueError as exc:
        raise NoteError(f"the verifier key's name is invalid: {exc}") from None
    if _HASH_HEX_RE.fullmatch(hash_hex) is None:
        raise NoteError("the verifier key's key hash must be 8 lower-case hexadecimal digits")
    try:
        raw = _b64decode_canonical(key_b64)
    except ValueError as exc:
        raise NoteError(f"the verifier key's key part is {exc}") from None
    if raw[:1] != ED25519_TYPE:
        raise NoteError("the verifier key's algorithm is not Ed25519 (type byte 0x01)")
    try:
        public = SigningPublicKey.from_bytes(raw[1:])
    except InvalidPublicKeyError as exc:
        raise NoteError(f"the verifier key's public key is refused: {exc}") from None
    verifier = NoteVerifier(name, public)
    if verifier.key_hash.hex() != hash_hex:
        raise NoteError("the verifier key's key hash does not match its name and public key")
    return verifier


def _check_text(text: str) -> None:
    """Raise ``ValueError`` unless ``text`` can be the text of a signed note."""
    if not isinstance(text, str):
        raise TypeError("the note text must be a string")
    if not text.endswith("\n"):
        raise ValueError("the note text must be non-empty and end with a newline")
    if _CONTROL_RE.search(text):
        raise ValueError("the note text must not contain control characters other than newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the note text must be encodable as UTF-8") from None


class NoteSigner:
    """Signs notes with one named Ed25519 key."""

    __slots__ = ("_key", "verifier")

    def __init__(self, name: str, key: SigningKey) -> None:
        self._key = key
        self.verifier = NoteVerifier(name, key.public)

    def signature_line(self, text: str) -> str:
        """Return this signer's signature line (with its newline) over ``text``."""
        _check_text(text)
        sig = self._key.sign(text.encode("utf-8"))
        encoded = base64.b64encode(self.verifier.key_hash + sig).decode("ascii")
        return f"{_SIG_PREFIX}{self.verifier.name} {encoded}\n"

    def sign(self, text: str) -> bytes:
        """Return the signed note: ``text``, a blank line and one signature line, as UTF-8."""
        return (text + "\n" + self.signature_line(text)).encode("utf-8")

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.verifier.name!r}, key_hash={self.verifier.key_hash.hex()})"

    __str__ = __repr__


@dataclass(frozen=True)
class _SignatureLine:
    """One parsed signature line."""

    line_no: int
    name: str
    key_hash: bytes
    signature: bytes
    text: str


def _split_note(note: bytes, max_len: int) -> tuple[str, list[_SignatureLine]]:
    """Check the note's framing and return its text and parsed signature lines."""
    if len(note) > max_len:
        raise NoteError(f"the note is longer than the limit of {max_len} bytes")
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = note[: exc.start].count(b"\n") + 1
        raise NoteError(f"the note is not valid UTF-8 (line {line_no})") from None
    bad = _CONTROL_RE.search(decoded)
    if bad is not None:
        line_no = decoded.count("\n", 0, bad.start()) + 1
        raise NoteError(f"the note contains a control character on line {line_no}")
    # The text is separated from the signatures by the last blank line (signed-note,
    # "Format"); the text keeps its final newline.
    split = decoded.rfind("\n\n")
    block = "" if split < 0 else decoded[split + 2 :]
    if not any(line.startswith(_SIG_PREFIX) for line in block.split("\n")):
        raise UnsignedNoteError("the note is not signed")
    text = decoded[: split + 1]
    first_line = text.count("\n") + 2
    if not block.endswith("\n"):
        last_line = first_line + block.count("\n")
        raise NoteError(f"the note must end with a newline (line {last_line})")
    raw_lines = block[:-1].split("\n")
    if len(raw_lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has more than {MAX_SIGNATURES} signature lines")
    lines = [_parse_signature_line(first_line + i, raw) for i, raw in enumerate(raw_lines)]
    return text, lines


def _parse_signature_line(line_no: int, raw: str) -> _SignatureLine:
    """Parse one signature line, or raise :class:`NoteError` naming its line number."""
    if not raw.startswith(_SIG_PREFIX):
        raise NoteError(f"line {line_no} of the note is not a signature line")
    name, sep, encoded = raw[len(_SIG_PREFIX) :].partition(" ")
    if not sep:
        raise NoteError(f"the signature line {line_no} has no signature after the key name")
    try:
        _check_name(name)
    except ValueError:
        raise NoteError(f"the signature line {line_no} has an invalid key name") from None
    try:
        sig = _b64decode_canonical(encoded)
    except ValueError:
        raise NoteError(f"the signature on line {line_no} is not canonical base64") from None
    if len(sig) <= KEY_HASH_LEN:
        raise NoteError(f"the signature on line {line_no} is too short")
    return _SignatureLine(line_no, name, sig[:KEY_HASH_LEN], sig[KEY_HASH_LEN:], raw)


def _index_verifiers(
    verifiers: Sequence[NoteVerifier],
) -> dict[tuple[str, bytes], NoteVerifier]:
    """Index verifiers by (name, key hash), refusing two different keys under one pair."""
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_hash)
        if slot in known and known[slot] != verifier:
            raise ValueError(
                f"verifiers: two different keys share the name {verifier.name!r} and key hash "
                f"{verifier.key_hash.hex()}"
            )
        known[slot] = verifier
    return known


def verify_note(
    note: bytes,
    verifiers: Sequence[NoteVerifier],
    *,
    max_len: int = DEFAULT_MAX_NOTE_LEN,
) -> tuple[str, tuple[NoteVerifier, ...]]:
    """Open ``note`` and return its text with the trusted verifiers whose signatures verified.

    Signatures from unknown keys are ignored (signed-note, "Signatures"); a signature whose
    name and key hash match a trusted key but which does not verify rejects the whole note.
    """
    known = _index_verifiers(verifiers)
    text, lines = _split_note(note, max_len)
    message = text.encode("utf-8")
    verified: list[NoteVerifier] = []
    for line in lines:
        verifier = known.get((line.name, line.key_hash))
        if verifier is None:
            continue
        try:
            # verify() refuses a signature of the wrong length as well as a forged one.
            verifier.public.verify(message, line.signature)
        except BadSignatureError:
            raise InvalidNoteSignatureError(
                f"the signature on line {line.line_no} by the trusted key {line.name} "
                "does not verify"
            ) from None
        if verifier not in verified:
            verified.append(verifier)
    if not verified:
        raise UntrustedNoteError("no signature on the note is from a trusted key")
    return text, tuple(verified)


def open_note(
    note: bytes,
    verifiers: Sequence[NoteVerifier],
    *,
    max_len: int = DEFAULT_MAX_NOTE_LEN,
) -> str:
    """Return the text of ``note`` if a signature from one of ``verifiers`` verifies.

    Raise :class:`UnsignedNoteError` if there are no signature lines,
    :class:`UntrustedNoteError` if none is from a trusted key,
    :class:`InvalidNoteSignatureError` if a trusted key's signature fails, and
    :class:`NoteError` naming the line for any other malformation.
    """
    text, _ = verify_note(note, verifiers, max_len=max_len)
    return text


def add_signature(note: bytes, signer: NoteSigner, *, max_len: int = DEFAULT_MAX_NOTE_LEN) -> bytes:
    """Return ``note`` with ``signer``'s signature added (replacing an earlier one by that key).

    Existing signatures are kept as they are and not verified here: whoever opens the note
    verifies the ones it trusts.
    """
    text, lines = _split_note(note, max_len)
    if len(lines) >= MAX_SIGNATURES:
        raise NoteError(f"the note already has {MAX_SIGNATURES} signature lines")
    own = (signer.verifier.name, signer.verifier.key_hash)
    kept = "".join(line.text + "\n" for line in lines if (line.name, line.key_hash) != own)
    return (text + "\n" + kept + signer.signature_line(text)).encode("utf-8")
