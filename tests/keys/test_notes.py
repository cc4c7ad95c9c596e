"""Tests for exchange.keys.notes: the C2SP signed-note format with Ed25519 keys."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.keys.errors import NoteError
from exchange.keys.keypairs import SigningKey
from exchange.keys.notes import (
    MAX_SIGNATURES,
    InvalidNoteSignatureError,
    NoteSigner,
    NoteVerifier,
    UnsignedNoteError,
    UntrustedNoteError,
    add_signature,
    open_note,
    parse_verifier_key,
    verify_note,
)

# Known-answer vectors from golang.org/x/mod/sumdb/note (note_test.go: TestNewVerifier,
# TestNewSigner, TestSign, TestOpen), the reference implementation of the format.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
    "pRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)
PETER_NOTE = (TEXT + "\n" + PETER_SIG).encode()


def _peter_signer() -> NoteSigner:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    return NoteSigner("PeterNeumann", SigningKey(seed))


def _signer(name: str = "authority.example/directory") -> NoteSigner:
    return NoteSigner(name, SigningKey.generate())


# --- verifier keys ---------------------------------------------------------------------


def test_reference_verifier_key_parses() -> None:
    """The reference implementation's verifier key parses with its name and key hash."""
    verifier = parse_verifier_key(PETER_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_hash == bytes.fromhex("c74f20a3")


def test_reference_verifier_key_round_trips() -> None:
    """A parsed verifier key prints back to exactly the same string."""
    assert parse_verifier_key(PETER_VKEY).vkey() == PETER_VKEY


def test_signer_from_reference_seed_has_reference_verifier_key() -> None:
    """The reference signer seed gives the reference verifier key."""
    assert _peter_signer().verifier.vkey() == PETER_VKEY


def test_every_truncation_of_the_verifier_key_is_refused() -> None:
    """Every proper substring of a verifier key is refused, as in the reference tests."""
    for start in range(len(PETER_VKEY)):
        for end in range(start + 1, len(PETER_VKEY) + 1):
            if (start, end) == (0, len(PETER_VKEY)):
                continue
            with pytest.raises(NoteError):
                parse_verifier_key(PETER_VKEY[start:end])


def test_every_single_character_change_of_the_verifier_key_is_refused() -> None:
    """Incrementing any one character of a verifier key makes it refused."""
    for i in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(NoteError):
            parse_verifier_key(mangled)


@pytest.mark.parametrize(
    ("vkey", "part"),
    [
        ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "key"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "algorithm"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key hash"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "name"),
        ("PeterNeumann+c74f20a3", "form"),
    ],
)
def test_malformed_verifier_key_error_names_the_part(vkey: str, part: str) -> None:
    """A malformed verifier key is refused with a message naming the part at fault."""
    with pytest.raises(NoteError, match=part):
        parse_verifier_key(vkey)


def test_verifier_key_with_small_order_public_key_is_refused() -> None:
    """A verifier key holding the Ed25519 identity point is refused even with a correct hash."""
    identity = bytes([1]) + bytes(31)
    key_hash = hashlib.sha256(b"x\n\x01" + identity).digest()[:4]
    encoded = base64.b64encode(b"\x01" + identity).decode()
    with pytest.raises(NoteError, match="public key"):
        parse_verifier_key(f"x+{key_hash.hex()}+{encoded}")


@given(st.text(max_size=120))
def test_arbitrary_verifier_key_text_raises_only_note_error(text: str) -> None:
    """Parsing any string either succeeds or raises NoteError, never anything else."""
    with contextlib.suppress(NoteError):
        parse_verifier_key(text)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b"])
def test_invalid_key_name_is_refused(name: str) -> None:
    """Key names that are empty or contain spaces or '+' are refused when building a verifier."""
    with pytest.raises(ValueError, match="key name"):
        NoteSigner(name, SigningKey.generate())


# --- signing ---------------------------------------------------------------------------


def test_signing_reproduces_the_reference_note() -> None:
    """Signing the reference text with the reference key gives the reference note exactly."""
    assert _peter_signer().sign(TEXT) == PETER_NOTE


def test_reference_note_opens() -> None:
    """The reference note opens under the reference verifier key and yields its text."""
    assert open_note(PETER_NOTE, [parse_verifier_key(PETER_VKEY)]) == TEXT


def test_reference_note_with_two_signatures_opens_for_either_key() -> None:
    """The reference two-signature note opens under either signer's key."""
    note = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    assert open_note(note, [parse_verifier_key(ENOCH_VKEY)]) == TEXT


def test_verify_note_reports_every_trusted_signer() -> None:
    """verify_note returns each trusted verifier whose signature verified."""
    peter, enoch = parse_verifier_key(PETER_VKEY), parse_verifier_key(ENOCH_VKEY)
    note = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    assert verify_note(note, [peter, enoch]) == (TEXT, (peter, enoch))


@given(
    st.lists(
        st.text(alphabet=st.characters(codec="utf-8", min_codepoint=0x20), max_size=40),
        min_size=1,
        max_size=8,
    )
)
def test_sign_then_open_round_trips(lines: list[str]) -> None:
    """Any valid text (blank lines included) signed and opened comes back unchanged."""
    text = "\n".join(lines) + "\n"
    signer = NoteSigner("rt.example", SigningKey(bytes(range(32))))
    assert open_note(signer.sign(text), [signer.verifier]) == text


@pytest.mark.parametrize("text", ["", "no newline", "tab\there\n", "nul\x00\n"])
def test_signing_invalid_text_is_refused(text: str) -> None:
    """Text that is empty, lacks a final newline or holds control characters cannot be signed."""
    with pytest.raises(ValueError, match="note text"):
        _signer().sign(text)


def test_signer_repr_hides_the_seed() -> None:
    """A signer's repr shows its name and key hash, never its seed."""
    key = SigningKey.generate()
    signer = NoteSigner("a.example", key)
    seed = key.secret_bytes_for_storage()
    for text in (repr(signer), str(signer)):
        assert seed.hex() not in text
        assert base64.b64encode(seed).decode() not in text


def test_add_signature_adds_a_second_signer() -> None:
    """A cosignature added to a note lets it open under the cosigner's key."""
    first, second = _signer("a.example"), _signer("b.example")
    note = add_signature(first.sign("hello\n"), second)
    assert verify_note(note, [first.verifier, second.verifier])[1] == (
        first.verifier,
        second.verifier,
    )


def test_add_signature_replaces_the_same_signers_line() -> None:
    """Adding a signature by a key that already signed leaves one line for that key."""
    signer = _signer()
    note = add_signature(signer.sign("hello\n"), signer)
    assert note.count("\u2014".encode()) == 1


# --- opening: refusals -----------------------------------------------------------------


def test_note_without_signature_lines_is_not_signed() -> None:
    """A text with no signature block is refused as not signed."""
    with pytest.raises(UnsignedNoteError, match="the note is not signed"):
        open_note(TEXT.encode(), [parse_verifier_key(PETER_VKEY)])


def test_note_with_empty_signature_block_is_not_signed() -> None:
    """A text followed by a blank line and nothing else is refused as not signed."""
    with pytest.raises(UnsignedNoteError):
        open_note((TEXT + "\n").encode(), [parse_verifier_key(PETER_VKEY)])


def test_note_signed_only_by_unknown_keys_is_untrusted() -> None:
    """A note whose signatures are all from unknown keys is refused as untrusted."""
    with pytest.raises(UntrustedNoteError, match="trusted key"):
        open_note(PETER_NOTE, [parse_verifier_key(ENOCH_VKEY)])


def test_note_with_no_verifiers_is_untrusted() -> None:
    """With an empty list of verifiers nothing is trusted."""
    with pytest.raises(UntrustedNoteError):
        open_note(PETER_NOTE, [])


def test_trusted_signature_that_fails_rejects_the_note() -> None:
    """A signature by a known name and key hash that does not verify rejects the whole note."""
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidNoteSignatureError, match="line 4"):
        open_note((TEXT + "\n" + bad).encode(), [parse_verifier_key(PETER_VKEY)])


def test_bad_trusted_signature_fails_even_beside_a_good_one() -> None:
    """A good signature does not excuse a failing one from the same trusted key."""
    enoch_bad = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = (TEXT + "\n" + PETER_SIG + enoch_bad).encode()
    verifiers = [parse_verifier_key(PETER_VKEY), parse_verifier_key(ENOCH_VKEY)]
    with pytest.raises(InvalidNoteSignatureError):
        open_note(note, verifiers)


def test_altered_text_fails_verification() -> None:
    """Changing one character of the signed text makes the trusted signature fail."""
    altered = PETER_NOTE.replace(b"cryptography", b"cryptographY")
    with pytest.raises(InvalidNoteSignatureError):
        open_note(altered, [parse_verifier_key(PETER_VKEY)])


def test_unknown_signature_beside_a_trusted_one_is_ignored() -> None:
    """A malformed-signature line from an unknown key is ignored if a trusted one verifies."""
    enoch_bad = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = (TEXT + "\n" + PETER_SIG + enoch_bad).encode()
    assert open_note(note, [parse_verifier_key(PETER_VKEY)]) == TEXT


def test_too_many_signature_lines_are_refused() -> None:
    """More than the limit of signature lines is refused before any verification."""
    note = (TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1)).encode()
    with pytest.raises(NoteError, match=f"more than {MAX_SIGNATURES}"):
        open_note(note, [parse_verifier_key(PETER_VKEY)])


def test_the_limit_of_signature_lines_is_accepted() -> None:
    """Exactly the limit of signature lines is accepted."""
    note = (TEXT + "\n" + PETER_SIG * MAX_SIGNATURES).encode()
    assert open_note(note, [parse_verifier_key(PETER_VKEY)]) == TEXT


def test_oversized_note_is_refused() -> None:
    """A note longer than max_len is refused before parsing."""
    with pytest.raises(NoteError, match="longer than"):
        open_note(PETER_NOTE, [parse_verifier_key(PETER_VKEY)], max_len=len(PETER_NOTE) - 1)


def test_duplicate_verifiers_with_different_keys_are_refused() -> None:
    """Two verifiers sharing a name and key hash but not a key are a caller error."""
    peter = parse_verifier_key(PETER_VKEY)
    real_hash = peter.key_hash

    # Key hashes are only 4 bytes and can be made to collide; simulate that here.
    class Colliding(NoteVerifier):
        @property
        def key_hash(self) -> bytes:
            return real_hash

    colliding = Colliding("PeterNeumann", SigningKey.generate().public)
    with pytest.raises(ValueError, match="verifiers"):
        open_note(PETER_NOTE, [peter, colliding])


@pytest.mark.parametrize(
    ("note", "where"),
    [
        (TEXT + "\n" + PETER_SIG[:-1], "end with a newline"),
        ("\x01" + TEXT + "\n" + PETER_SIG, "control character on line 1"),
        (TEXT + "\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQ=\n", "line 4"),
        (TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "line 5"),
        (TEXT + "\n" + "\u2014 PeterNeumann\n", "line 4"),
        (TEXT + "\n" + "\u2014 PeterNeumann x08go/=\n", "line 4"),
        (TEXT + "\n" + "\u2014 PeterNeumann x08g\n", "line 4"),
    ],
)
def test_malformed_note_names_the_line(note: str, where: str) -> None:
    """Each malformation from the reference tests is refused with the line it is on."""
    with pytest.raises(NoteError, match=where):
        open_note(note.encode(), [parse_verifier_key(PETER_VKEY)])


def test_invalid_utf8_is_refused_with_its_line() -> None:
    """Bytes that are not UTF-8 are refused, naming the line."""
    with pytest.raises(NoteError, match="UTF-8 \\(line 2\\)"):
        open_note(b"ok\n\xff\n\n" + PETER_SIG.encode(), [parse_verifier_key(PETER_VKEY)])


@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_note_error(data: bytes) -> None:
    """open_note on any bytes raises NoteError (or returns text), never anything else."""
    with contextlib.suppress(NoteError):
        open_note(data, [parse_verifier_key(PETER_VKEY)])


@given(st.integers(min_value=0, max_value=len(PETER_NOTE) - 1), st.integers(1, 255))
def test_any_single_byte_change_is_refused(position: int, delta: int) -> None:
    """Changing any one byte of a signed note makes it fail to open."""
    data = bytearray(PETER_NOTE)
    data[position] = (data[position] + delta) % 256
    with pytest.raises(NoteError):
        open_note(bytes(data), [parse_verifier_key(PETER_VKEY)])
