"""Whether a directory note offered to a node may replace the one it uses now.

A node learns of new directory versions from the authority's HTTPS address and from its own
``[directory] file``. Each note offered is judged against the current one, by version and by
the SHA-256 of the note's bytes:

- it must verify against the trusted authority key(s) and parse (else ``invalid``);
- a higher version is ``newer``: adopt it;
- the same version with the same bytes is ``same``: nothing to do;
- a lower version is a ``rollback``: refused, because an attacker who can answer for the
  authority's address (or replace a file) could otherwise bring back a revoked key;
- the same version with different bytes is a ``fork``: refused, because the authority must
  never sign two different directories under one version, so one of them is not its own,
  or the authority's key is being misused.

Pure: bytes and keys in, a value out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from exchange.keys.directory import Directory, load_directory
from exchange.keys.errors import KeysError
from exchange.keys.notes import NoteVerifier

Verdict = Literal["newer", "same", "rollback", "fork", "invalid"]

#: The verdicts that refuse the note offered.
REFUSALS: Final[frozenset[str]] = frozenset({"rollback", "fork", "invalid"})


def note_digest(note: bytes) -> bytes:
    """Return the SHA-256 of a directory note's bytes (what the ledger records)."""
    return hashlib.sha256(note).digest()


@dataclass(frozen=True)
class Succession:
    """What to do with a note offered: the verdict, and what it said (when it verified).

    ``reason`` is one plain sentence for a refusal (never the note's content); ``directory``
    is the parsed note when it verified.
    """

    verdict: Verdict
    digest: bytes
    version: int | None = None
    directory: Directory | None = None
    reason: str = ""

    @property
    def refused(self) -> bool:
        """Whether the note is refused (a rollback, a fork, or one that does not verify)."""
        return self.verdict in REFUSALS


def judge_note(
    note: bytes,
    trusted: Sequence[NoteVerifier],
    *,
    current_version: int,
    current_digest: bytes,
) -> Succession:
    """Judge ``note`` against the directory in use (its version and note digest)."""
    digest = note_digest(note)
    try:
        directory = load_directory(note, trusted)
    except KeysError as exc:
        return Succession("invalid", digest, reason=str(exc))
    version = directory.version
    if version > current_version:
        return Succession("newer", digest, version, directory)
    if version < current_version:
        return Succession(
            "rollback", digest, version, directory,
            f"the directory offered is version {version}, older than version "
            f"{current_version} in use; a rollback is refused",
        )  # fmt: skip
    if digest != current_digest:
        return Succession(
            "fork", digest, version, directory,
            f"the directory offered is version {version}, the version in use, but its bytes "
            "differ; two directories with one version are refused as a fork",
        )  # fmt: skip
    return Succession("same", digest, version, directory)
