"""Errors raised by the ``keys`` package.

The tree::

    KeysError                     base of everything this package raises
    ├── InvalidPublicKeyError     a public key is malformed, all-zero, non-canonical or small-order
    ├── KeyFileError              an encrypted key file is malformed or of an unknown version
    │   └── WrongPassphraseError  the passphrase does not open the key file
    ├── NoteError                 a signed note is malformed
    │   ├── UnsignedNoteError           it has no signature lines at all
    │   ├── UntrustedNoteError          no signature is from a trusted key
    │   └── InvalidNoteSignatureError   a trusted key's signature does not verify
    └── DirectoryError            a directory document is malformed, unsigned, badly signed or stale
        └── KeyLookupError        an organisation or key is unknown, revoked or not valid at a time

Messages are plain sentences naming the field or rule; they never contain key material.
"""

from __future__ import annotations


class KeysError(Exception):
    """Base class of every error raised by the ``keys`` package."""


class InvalidPublicKeyError(KeysError):
    """A public key was refused at enrolment or at parse time."""


class KeyFileError(KeysError):
    """An encrypted key file could not be read."""


class WrongPassphraseError(KeyFileError):
    """The passphrase did not decrypt the key file (or the file was altered)."""


class NoteError(KeysError):
    """A signed note is malformed or not signed by the expected key."""


class UnsignedNoteError(NoteError):
    """The note has no signature lines at all."""


class UntrustedNoteError(NoteError):
    """The note is well formed but no signature is from a trusted key."""


class InvalidNoteSignatureError(NoteError):
    """A signature from a trusted key (matching name and key hash) does not verify."""


class DirectoryError(KeysError):
    """A directory document was refused."""


class KeyLookupError(DirectoryError):
    """An organisation or key is unknown, revoked, or not valid at the time asked.

    ``reason`` is one of ``unknown-organisation``, ``unknown-key``, ``revoked``,
    ``not-valid`` (or ``unknown`` when the raiser did not say), so callers can map the
    failure to their own rule ids without parsing the message.
    """

    def __init__(self, message: str, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason
