"""Drafts of records being sent: answers and files kept on the server, encrypted, per session.

A draft lives between the pages of the send journey in the node's data folder, never in the
cookie and never in hidden fields, so a tampered form can change only what its own fields
say. Each session has a folder named by its id's hash (which the store holds and which opens
nothing); each draft a folder in it named by a random id, holding ``state`` (the answers,
choices and the list of files) and ``files/`` (each uploaded file).

Everything is encrypted at rest with a key derived from the session's token, the cookie
value, which the node never stores: BLAKE2b keyed with the token gives the session's key,
and BLAKE2b keyed with that and the draft's id gives the draft's key for libsodium's
``SecretBox`` (XSalsa20-Poly1305). A file is encrypted piece by piece as it streams in. So
a draft is unreadable without the person's browser, and useless once the session ends.

A draft is deleted when it is abandoned; when it is sent, its answers and files are deleted
and only what the confirmation page shows is kept (the envelope's names and deadline, no
record content), so that sending the same draft again goes to that confirmation instead of
making a second envelope. Drafts of sessions that no longer exist are deleted by
:func:`sweep_drafts`, which the web pages run every minute (:func:`draft_sweeper`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import nacl.exceptions
import nacl.hash
import nacl.secret
from nacl.encoding import RawEncoder

from exchange.files import atomic_output
from exchange.logs import get_logger
from exchange.web.send.questions import Answers
from exchange.workers.supervisor import Supervisor

log = get_logger("exchange.web")

#: How often drafts of ended sessions are looked for, in seconds.
SWEEP_INTERVAL: Final = 60.0
_DRAFT_ID: Final = re.compile(r"[0-9a-f]{32}")
_OWNER: Final = re.compile(r"[0-9a-f]{64}")
_SESSION_PERSON: Final = b"exch-web-drafts1"
_DRAFT_PERSON: Final = b"exch-web-draft-k"
_LENGTH: Final = struct.Struct(">I")
#: Each piece of an encrypted file: at most this much plaintext, then nonce and tag.
PIECE: Final = 64 * 1024
#: What secret-box encryption adds to each piece: its nonce and its tag.
_SEALED_OVERHEAD: Final = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES
#: Bytes read at a time when a draft file is checked against its digest.
_VERIFY_READ: Final = 1024 * 1024


def _key(material: bytes, person: bytes, key: bytes = b"") -> bytes:
    return nacl.hash.blake2b(material, digest_size=32, key=key, person=person, encoder=RawEncoder)


def session_key(token: str) -> bytes:
    """Return the key of a session's drafts, derived from its token (the cookie value)."""
    return _key(token.encode("utf-8"), _SESSION_PERSON)


@dataclass
class Upload:
    """A file added to a draft: its id, sanitised name, type, size, digest and manifest words."""

    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    title: str
    document_kind: str = ""

    def as_json(self) -> dict[str, Any]:
        """Return the upload as JSON values."""
        return dict(self.__dict__)


@dataclass
class Draft:
    """A record being sent: what it is, the answers so far, the files and the choices."""

    id: str
    kind: str
    #: ``new``, ``reply`` (to ``target``, an inbox item) or ``correct`` (``target``, sent).
    mode: str = "new"
    target: str | None = None
    answers: Answers = field(default_factory=Answers)
    uploads: list[Upload] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    purpose: str = ""
    categories: list[str] = field(default_factory=list)
    lawful_basis: str = ""
    reason: str = ""
    #: The pages answered at least once (so "Check your answers" knows what is left).
    seen: list[str] = field(default_factory=list)
    #: Set once sent: what the confirmation page shows (names and dates, no content).
    sent: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the draft as JSON values."""
        return {
            "kind": self.kind,
            "mode": self.mode,
            "target": self.target,
            "answers": self.answers.as_json(),
            "uploads": [u.as_json() for u in self.uploads],
            "recipients": self.recipients,
            "purpose": self.purpose,
            "categories": self.categories,
            "lawful_basis": self.lawful_basis,
            "reason": self.reason,
            "seen": self.seen,
            "sent": self.sent,
        }

    @classmethod
    def from_json(cls, draft_id: str, doc: dict[str, Any]) -> Draft:
        """Return a draft kept by :meth:`as_json`."""
        return cls(
            id=draft_id,
            kind=str(doc["kind"]),
            mode=str(doc.get("mode", "new")),
            target=doc.get("target"),
            answers=Answers.from_json(doc.get("answers", {})),
            uploads=[Upload(**u) for u in doc.get("uploads", [])],
            recipients=[str(r) for r in doc.get("recipients", [])],
            purpose=str(doc.get("purpose", "")),
            categories=[str(c) for c in doc.get("categories", [])],
            lawful_basis=str(doc.get("lawful_basis", "")),
            reason=str(doc.get("reason", "")),
            seen=[str(s) for s in doc.get("seen", [])],
            sent=doc.get("sent"),
        )


class DraftFile:
    """A draft's file, kept as encrypted pieces, read as a content source at any offset.

    What the content checks and the record container read an uploaded file through
    (:class:`exchange.records.content_checks.Source`). The pieces' places are found once
    from their length prefixes; a read decrypts only the pieces it needs, and one piece is
    kept. A piece that does not decrypt raises ``ValueError``.
    """

    def __init__(self, handle: BinaryIO, box: nacl.secret.SecretBox) -> None:
        self._fd = handle.fileno()
        self._box = box
        self._starts: list[int] = []
        self._places: list[tuple[int, int]] = []
        position = plain = 0
        while len(header := os.pread(self._fd, _LENGTH.size, position)) == _LENGTH.size:
            (length,) = _LENGTH.unpack(header)
            if length < _SEALED_OVERHEAD:
                raise ValueError("a draft file does not match what was uploaded")
            self._starts.append(plain)
            self._places.append((position + _LENGTH.size, length))
            plain += length - _SEALED_OVERHEAD
            position += _LENGTH.size + length
        self._size = plain
        self._cached: tuple[int, bytes] = (-1, b"")

    @property
    def size(self) -> int:
        """The number of bytes of the file."""
        return self._size

    def _piece(self, index: int) -> bytes:
        if self._cached[0] != index:
            at, length = self._places[index]
            sealed = os.pread(self._fd, length, at)
            try:
                self._cached = (index, bytes(self._box.decrypt(sealed)))
            except nacl.exceptions.CryptoError:
                raise ValueError("a draft file does not match what was uploaded") from None
        return self._cached[1]

    def read_at(self, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset`` (fewer only at the end)."""
        count = max(0, min(count, self._size - offset))
        parts = []
        while count > 0:
            index = bisect.bisect_right(self._starts, offset) - 1
            within = offset - self._starts[index]
            part = self._piece(index)[within : within + count]
            if not part:
                raise ValueError("a draft file does not match what was uploaded")
            parts.append(part)
            offset += len(part)
            count -= len(part)
        return b"".join(parts)


class DraftStore:
    """The drafts of every session, in a folder of the node's data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._locks: dict[str, asyncio.Lock] = {}

    def _owner(self, id_hash: bytes) -> Path:
        return self.folder / id_hash.hex()

    def _place(self, id_hash: bytes, draft_id: str) -> Path:
        if _DRAFT_ID.fullmatch(draft_id) is None:
            raise KeyError(draft_id)
        return self._owner(id_hash) / draft_id

    @staticmethod
    def _box(token: str, draft_id: str) -> nacl.secret.SecretBox:
        return nacl.secret.SecretBox(
            _key(draft_id.encode("ascii"), _DRAFT_PERSON, session_key(token))
        )

    def lock(self, draft_id: str) -> asyncio.Lock:
        """Return the lock that makes sending a draft happen once."""
        return self._locks.setdefault(draft_id, asyncio.Lock())

    def create(self, id_hash: bytes, token: str, draft: Draft) -> Draft:
        """Give ``draft`` a new id, keep it, and return it."""
        draft.id = secrets.token_hex(16)
        place = self._place(id_hash, draft.id)
        (place / "files").mkdir(parents=True, mode=0o700)
        self.save(id_hash, token, draft)
        return draft

    def save(self, id_hash: bytes, token: str, draft: Draft) -> None:
        """Write the draft's state, encrypted, replacing what was there."""
        place = self._place(id_hash, draft.id)
        text = json.dumps(draft.as_json(), ensure_ascii=False, separators=(",", ":"))
        with atomic_output(place / "state", overwrite=True) as out:
            out.write(bytes(self._box(token, draft.id).encrypt(text.encode("utf-8"))))

    def load(self, id_hash: bytes, token: str, draft_id: str) -> Draft | None:
        """Return the session's draft ``draft_id``, or None if it has none by that id."""
        try:
            place = self._place(id_hash, draft_id)
            sealed = (place / "state").read_bytes()
            plain = self._box(token, draft_id).decrypt(sealed)
        except (KeyError, OSError, nacl.exceptions.CryptoError):
            return None
        return Draft.from_json(draft_id, json.loads(plain))

    def delete(self, id_hash: bytes, draft_id: str) -> None:
        """Delete a draft and its files."""
        with contextlib.suppress(KeyError):
            shutil.rmtree(self._place(id_hash, draft_id), ignore_errors=True)
        self._locks.pop(draft_id, None)

    def forget_content(
        self, id_hash: bytes, token: str, draft: Draft, sent: dict[str, Any]
    ) -> None:
        """Keep only what the confirmation shows of a sent draft; delete its answers and files."""
        kept = Draft(id=draft.id, kind=draft.kind, mode=draft.mode, target=draft.target)
        kept.sent = sent
        self.save(id_hash, token, kept)
        shutil.rmtree(self._place(id_hash, draft.id) / "files", ignore_errors=True)

    # --- files --------------------------------------------------------------------------

    def file_path(self, id_hash: bytes, draft_id: str, upload_id: str) -> Path:
        """Return where a draft's file is kept."""
        if _DRAFT_ID.fullmatch(upload_id) is None:
            raise KeyError(upload_id)
        return self._place(id_hash, draft_id) / "files" / upload_id

    @contextlib.contextmanager
    def file_writer(
        self, id_hash: bytes, token: str, draft_id: str
    ) -> Iterator[tuple[str, Callable[[bytes], None]]]:
        """Yield a new file's id and a function that encrypts and writes one piece of it.

        The file is kept only if the block ends cleanly; otherwise nothing is left.
        """
        upload_id = secrets.token_hex(16)
        path = self.file_path(id_hash, draft_id, upload_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        box = self._box(token, draft_id)

        def write(out: BinaryIO, piece: bytes) -> None:
            sealed = bytes(box.encrypt(piece))
            out.write(_LENGTH.pack(len(sealed)) + sealed)

        with atomic_output(path) as out:
            yield upload_id, lambda piece: write(out, piece)

    @contextlib.contextmanager
    def open_file(
        self, id_hash: bytes, token: str, draft_id: str, upload: Upload, *, verify: bool = True
    ) -> Iterator[DraftFile]:
        """Yield a draft file as a content source, decrypted a piece at a time when read.

        With ``verify``, the file is first read through once and checked against the size and
        SHA-256 recorded when it was uploaded (``ValueError`` if it differs), so what is sealed
        is what was uploaded; nothing is held whole.
        """
        with self.file_path(id_hash, draft_id, upload.id).open("rb") as handle:
            file = DraftFile(handle, self._box(token, draft_id))
            if verify:
                digest = hashlib.sha256()
                for at in range(0, file.size, _VERIFY_READ):
                    digest.update(file.read_at(at, _VERIFY_READ))
                if file.size != upload.size or digest.hexdigest() != upload.sha256:
                    raise ValueError("a draft file does not match what was uploaded")
            yield file

    def delete_file(self, id_hash: bytes, draft_id: str, upload_id: str) -> None:
        """Delete one of a draft's files."""
        with contextlib.suppress(KeyError):
            self.file_path(id_hash, draft_id, upload_id).unlink(missing_ok=True)

    def owners(self) -> list[bytes]:
        """Return the session id hashes that have drafts."""
        if not self.folder.is_dir():
            return []
        return [
            bytes.fromhex(p.name)
            for p in self.folder.iterdir()
            if p.is_dir() and _OWNER.fullmatch(p.name)
        ]

    def delete_owner(self, id_hash: bytes) -> None:
        """Delete every draft of a session."""
        shutil.rmtree(self._owner(id_hash), ignore_errors=True)


async def sweep_drafts(
    drafts: DraftStore, session_exists: Callable[[bytes], Awaitable[bool]]
) -> int:
    """Delete the drafts of every session that no longer exists; return how many sessions."""
    swept = 0
    for id_hash in drafts.owners():
        if not await session_exists(id_hash):
            await asyncio.to_thread(drafts.delete_owner, id_hash)
            swept += 1
    if swept:
        log.info("drafts.swept", sessions=swept)
    return swept


@contextlib.asynccontextmanager
async def draft_sweeper(
    drafts: DraftStore,
    session_exists: Callable[[bytes], Awaitable[bool]],
    interval: float = SWEEP_INTERVAL,
    supervisor: Supervisor | None = None,
) -> AsyncIterator[None]:
    """Sweep drafts of ended sessions every ``interval`` seconds while the block runs.

    The sweep is a task of the node's ``supervisor``: a failed round is logged once per
    cause, counted and tried again after the back-off.
    """
    stop = asyncio.Event()
    task = (supervisor or Supervisor()).every(
        "drafts-sweep", "the sweep of abandoned drafts", interval,
        lambda: sweep_drafts(drafts, session_exists), stop, stage="sweep",
    )  # fmt: skip
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
