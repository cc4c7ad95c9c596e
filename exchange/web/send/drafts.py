"""Drafts of records being sent: answers and files kept in the node's store, encrypted, per session.

A draft lives between the pages of the send journey in the node's store, never in the
cookie and never in hidden fields, so a tampered form can change only what its own fields
say. Because it is in the store (:mod:`exchange.store.drafts`), not in a process, the
person's next page may reach any ``exchange serve`` process of the node. Each draft is named
by its session id's hash (which the store holds and which opens nothing) and a random id; it
holds its ``state`` (the answers, choices and the list of files), sealed, and each uploaded
file as sealed pieces.

Everything is encrypted before it reaches the store, with a key derived from the session's
token, the cookie value, which the node never stores: BLAKE2b keyed with the token gives
the session's key, and BLAKE2b keyed with that and the draft's id gives the draft's key for
libsodium's ``SecretBox`` (XSalsa20-Poly1305). A file is encrypted piece by piece as it
streams in, each piece a row of its own: never the whole file in memory. So a draft is
unreadable without the person's browser, and useless once the session ends.

A draft is deleted when it is abandoned; when it is sent, its answers and files are deleted
and only what the confirmation page shows is kept (the envelope's names and deadline, no
record content), so that sending the same draft again goes to that confirmation instead of
making a second envelope. The process sending a draft first claims it in the store
(:meth:`DraftStore.sending`), so two processes given the same draft at the same moment do
not both send it. Drafts of sessions that no longer exist are deleted by
:func:`sweep_drafts`, one statement of the store, which the web pages run every minute
(:func:`draft_sweeper`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import nacl.exceptions
import nacl.hash
import nacl.secret
from nacl.encoding import RawEncoder

from exchange.logs import get_logger
from exchange.store.base import DraftRowStore
from exchange.web.send.questions import Answers
from exchange.workers.supervisor import Supervisor

log = get_logger("exchange.web")

#: How often drafts of ended sessions are looked for, in seconds.
SWEEP_INTERVAL: Final = 60.0
#: How long a process's claim on a draft it is sending holds (should the process die).
SEND_CLAIM: Final = 300.0
#: How long a send waits for another process's claim on the same draft to end.
SEND_WAIT: Final = 30.0
_SEND_POLL: Final = 0.1
_DRAFT_ID: Final = re.compile(r"[0-9a-f]{32}")
_SESSION_PERSON: Final = b"exch-web-drafts1"
_DRAFT_PERSON: Final = b"exch-web-draft-k"
#: Each piece of an encrypted file: at most this much plaintext, then nonce and tag.
PIECE: Final = 64 * 1024
#: What secret-box encryption adds to each piece: its nonce and its tag.
_SEALED_OVERHEAD: Final = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES
#: Bytes read at a time when a draft file is checked against its digest.
_VERIFY_READ: Final = 1024 * 1024
_CHANGED: Final = "a draft file does not match what was uploaded"


class DraftBusyError(Exception):
    """Another process is sending the draft (its claim did not end in time)."""


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
    """A draft's file, kept as encrypted pieces in the store, read as a content source.

    What the content checks and the record container read an uploaded file through
    (:class:`exchange.records.content_checks.Source`), from a worker thread: each read asks
    the store, on the event loop, for the pieces it needs and decrypts only those; one piece
    is kept. A piece that does not decrypt raises ``ValueError``.
    """

    def __init__(
        self,
        lengths: list[int],
        fetch: Callable[[int, int], Coroutine[Any, Any, list[bytes]]],
        box: nacl.secret.SecretBox,
    ) -> None:
        self._fetch = fetch
        self._loop = asyncio.get_running_loop()
        self._box = box
        self._starts: list[int] = []
        plain = 0
        for length in lengths:
            if length < _SEALED_OVERHEAD:
                raise ValueError(_CHANGED)
            self._starts.append(plain)
            plain += length - _SEALED_OVERHEAD
        self._size = plain
        self._cached: tuple[int, bytes] = (-1, b"")

    @property
    def size(self) -> int:
        """The number of bytes of the file."""
        return self._size

    def _pieces(self, first: int, last: int) -> list[bytes]:
        """Return pieces ``first`` to ``last`` decrypted (blocking: from a worker thread)."""
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is self._loop:
                raise RuntimeError("a draft file is read from a worker thread, not the loop")
        if first == last == self._cached[0]:
            return [self._cached[1]]
        count = last - first + 1
        future = asyncio.run_coroutine_threadsafe(self._fetch(first, count), self._loop)
        sealed = future.result()
        if len(sealed) != count:
            raise ValueError(_CHANGED)
        try:
            plain = [bytes(self._box.decrypt(piece)) for piece in sealed]
        except nacl.exceptions.CryptoError:
            raise ValueError(_CHANGED) from None
        self._cached = (last, plain[-1])
        return plain

    def read_at(self, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset`` (fewer only at the end)."""
        count = max(0, min(count, self._size - offset))
        if count == 0:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_right(self._starts, offset + count - 1) - 1
        joined = b"".join(self._pieces(first, last))
        within = offset - self._starts[first]
        part = joined[within : within + count]
        if len(part) != count:
            raise ValueError(_CHANGED)
        return part

    def verify(self, upload: Upload) -> None:
        """Read the file through once; ``ValueError`` unless it is the upload's size and digest."""
        digest = hashlib.sha256()
        for at in range(0, self._size, _VERIFY_READ):
            digest.update(self.read_at(at, _VERIFY_READ))
        if self._size != upload.size or digest.hexdigest() != upload.sha256:
            raise ValueError(_CHANGED)


class FileWriter:
    """Encrypts a file as it streams in and keeps it in the store a piece at a time.

    What arrives is gathered into pieces of :data:`PIECE` bytes (a browser's upload comes in
    smaller parts), so at most one piece is held; each full piece is sealed and stored.
    """

    def __init__(
        self, store: DraftRowStore, place: tuple[bytes, str, str], box: nacl.secret.SecretBox
    ) -> None:
        self._store = store
        self._place = place
        self._box = box
        self._buffer = bytearray()
        self._count = 0

    async def _keep(self, piece: bytes) -> None:
        sealed = bytes(self._box.encrypt(piece))
        await self._store.add_draft_piece(*self._place, self._count, sealed)
        self._count += 1

    async def write(self, data: bytes) -> None:
        """Take the next bytes of the file; store every full piece."""
        self._buffer += data
        while len(self._buffer) >= PIECE:
            piece = bytes(self._buffer[:PIECE])
            del self._buffer[:PIECE]
            await self._keep(piece)

    async def finish(self) -> None:
        """Store what is left of the file."""
        if self._buffer:
            await self._keep(bytes(self._buffer))
            self._buffer.clear()


class DraftStore:
    """The drafts of every session, in the node's store, sealed with their session's key."""

    def __init__(self, store: DraftRowStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    @staticmethod
    def _id(draft_id: str) -> str:
        if _DRAFT_ID.fullmatch(draft_id) is None:
            raise KeyError(draft_id)
        return draft_id

    @staticmethod
    def _box(token: str, draft_id: str) -> nacl.secret.SecretBox:
        return nacl.secret.SecretBox(
            _key(draft_id.encode("ascii"), _DRAFT_PERSON, session_key(token))
        )

    def _seal(self, token: str, draft: Draft) -> bytes:
        text = json.dumps(draft.as_json(), ensure_ascii=False, separators=(",", ":"))
        return bytes(self._box(token, draft.id).encrypt(text.encode("utf-8")))

    async def create(self, id_hash: bytes, token: str, draft: Draft) -> Draft:
        """Give ``draft`` a new id, keep it, and return it."""
        draft.id = secrets.token_hex(16)
        await self.store.create_draft(id_hash, draft.id, self._seal(token, draft), self.clock())
        return draft

    async def save(self, id_hash: bytes, token: str, draft: Draft) -> None:
        """Write the draft's state, encrypted, replacing what was there."""
        await self.store.save_draft(
            id_hash, self._id(draft.id), self._seal(token, draft), self.clock()
        )

    async def load(self, id_hash: bytes, token: str, draft_id: str) -> Draft | None:
        """Return the session's draft ``draft_id``, or None if it has none by that id."""
        if _DRAFT_ID.fullmatch(draft_id) is None:
            return None
        sealed = await self.store.draft_state(id_hash, draft_id)
        if sealed is None:
            return None
        try:
            plain = self._box(token, draft_id).decrypt(sealed)
        except nacl.exceptions.CryptoError:
            return None
        return Draft.from_json(draft_id, json.loads(plain))

    async def delete(self, id_hash: bytes, draft_id: str) -> None:
        """Delete a draft and its files."""
        await self.store.delete_draft(id_hash, self._id(draft_id))

    async def forget_content(
        self, id_hash: bytes, token: str, draft: Draft, sent: dict[str, Any]
    ) -> None:
        """Keep only what the confirmation shows of a sent draft; delete its answers and files.

        This also ends the draft's claim for sending (:meth:`sending`).
        """
        kept = Draft(id=draft.id, kind=draft.kind, mode=draft.mode, target=draft.target)
        kept.sent = sent
        await self.store.finish_draft(
            id_hash, self._id(draft.id), self._seal(token, kept), self.clock()
        )

    @contextlib.asynccontextmanager
    async def sending(self, id_hash: bytes, draft_id: str) -> AsyncIterator[None]:
        """Hold the draft's claim for sending (or deleting) while the block runs.

        Claimed in the store, so that it holds across the node's processes: a second send of
        the draft waits for the first to end (:data:`SEND_WAIT` at most, then
        :class:`DraftBusyError`). The claim ends with the block, or by itself after
        :data:`SEND_CLAIM` should the process die.
        """
        draft_id = self._id(draft_id)
        waited = 0.0
        while True:
            now = self.clock()
            if await self.store.claim_draft(id_hash, draft_id, now, now + SEND_CLAIM):
                break
            if waited >= SEND_WAIT:
                raise DraftBusyError
            await asyncio.sleep(_SEND_POLL)
            waited += _SEND_POLL
        try:
            yield
        finally:
            # A sent draft's claim ended with its confirmation; a deleted one has no row.
            await self.store.release_draft(id_hash, draft_id)

    # --- files --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def file_writer(
        self, id_hash: bytes, token: str, draft_id: str
    ) -> AsyncIterator[tuple[str, Callable[[bytes], Awaitable[None]]]]:
        """Yield a new file's id and a function that encrypts and keeps the next bytes of it.

        The file is kept only if the block ends cleanly; otherwise nothing is left.
        """
        upload_id = secrets.token_hex(16)
        writer = FileWriter(
            self.store, (id_hash, self._id(draft_id), upload_id), self._box(token, draft_id)
        )
        try:
            yield upload_id, writer.write
            await writer.finish()
        except BaseException:
            await asyncio.shield(self.store.delete_draft_file(id_hash, draft_id, upload_id))
            raise

    async def open_file(
        self, id_hash: bytes, token: str, draft_id: str, upload: Upload, *, verify: bool = True
    ) -> DraftFile:
        """Return a draft file as a content source, decrypted a piece at a time when read.

        With ``verify``, the file is first read through once (in a worker thread) and checked
        against the size and SHA-256 recorded when it was uploaded (``ValueError`` if it
        differs), so what is sealed is what was uploaded; nothing is held whole.
        """
        place = (id_hash, self._id(draft_id), self._id(upload.id))
        lengths = await self.store.draft_piece_lengths(*place)

        async def fetch(first: int, count: int) -> list[bytes]:
            return await self.store.draft_pieces(*place, first, count)

        file = DraftFile(lengths, fetch, self._box(token, draft_id))
        if verify:
            await asyncio.to_thread(file.verify, upload)
        return file

    async def delete_file(self, id_hash: bytes, draft_id: str, upload_id: str) -> None:
        """Delete one of a draft's files."""
        with contextlib.suppress(KeyError):
            await self.store.delete_draft_file(id_hash, self._id(draft_id), self._id(upload_id))


async def sweep_drafts(drafts: DraftStore) -> int:
    """Delete the drafts of every session that no longer exists; return how many sessions."""
    swept = await drafts.store.sweep_drafts()
    if swept:
        log.info("drafts.swept", sessions=swept)
    return swept


@contextlib.asynccontextmanager
async def draft_sweeper(
    drafts: DraftStore, interval: float = SWEEP_INTERVAL, supervisor: Supervisor | None = None
) -> AsyncIterator[None]:
    """Sweep drafts of ended sessions every ``interval`` seconds while the block runs.

    The sweep is a task of the node's ``supervisor``: a failed round is logged once per
    cause, counted and tried again after the back-off. Each process of the node runs it; a
    round is one statement of the store, so rounds of several processes do not clash.
    """
    stop = asyncio.Event()
    task = (supervisor or Supervisor()).every(
        "drafts-sweep", "the sweep of abandoned drafts", interval,
        lambda: sweep_drafts(drafts), stop, stage="sweep",
    )  # fmt: skip
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
