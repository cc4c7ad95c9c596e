"""New directory versions reaching a running node: offered, judged, adopted or refused.

A node learns of a new signed directory in three ways: the authority's HTTPS address
(``[directory] url``, fetched every ``refresh_interval`` and when an administrator asks), a
changed ``[directory] file`` (written by ``exchange directory refresh`` or by hand), and its
start. Every note offered is judged by :func:`exchange.keys.succession.judge_note`:

- a newer version is adopted without a restart: written atomically to ``[directory] file``
  (so a restart uses it), recorded in the store with one ``directory-adopted`` ledger event
  per organisation served (the note's SHA-256, ``version:<N>``), then put in use
  (``apply``: the service context and everything that caches directory data), and logged as
  ``directory.adopted``;
- the same version and bytes change nothing;
- a rollback, a fork, a note that does not verify, and a fetch that fails (too large, too
  slow, unreachable) are refused: the current directory stays, ``directory.refused`` is
  logged as an error naming the outcome, and ``/metrics`` counts it by reason.

At start, :meth:`DirectoryUpdates.record_start` compares the file's version with the last
version recorded in the store: a newer file is recorded as adopted, an older one (a rollback
while the node was stopped) or a different note under the recorded version stops the start.
The fetch itself is a port (``fetch``), so this module opens no socket.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from exchange.files import InputTooLargeError, read_limited, replace_file
from exchange.keys.directory import Directory
from exchange.keys.notes import DEFAULT_MAX_NOTE_LEN, NoteVerifier
from exchange.keys.succession import Succession, judge_note, note_digest
from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import EnvelopeDigest, User
from exchange.policy import LONDON
from exchange.service.context import ServiceContext
from exchange.service.errors import ForbiddenError
from exchange.service.ledger import ledger_event
from exchange.store.directory import AdoptedVersion

log = get_logger("exchange.directory")

#: The largest directory note a node reads or fetches (50,000 organisations fit in far less).
MAX_NOTE_LEN: Final = DEFAULT_MAX_NOTE_LEN

#: Why a note was refused, as counted in /metrics (``exchange_directory_refused_total``).
REFUSAL_REASONS: Final = ("rollback", "fork", "invalid", "oversize", "timeout", "unreachable")

Fetch = Callable[[], Awaitable[bytes]]
Outcome = Literal["adopted", "unchanged", "refused"]


class DirectoryFetchError(Exception):
    """The published directory could not be fetched.

    ``reason`` is one of ``oversize``, ``timeout`` or ``unreachable`` (counted in /metrics);
    the message is one plain sentence naming the address's host, never a response body.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DirectoryStartError(Exception):
    """The ``[directory] file`` is older than, or forks, the version the node adopted."""


@dataclass
class DirectoryStatus:
    """What /metrics shows of directory updates: last good fetch, refusals by reason."""

    last_fetch_at: float | None = None
    refused: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class RefreshResult:
    """The outcome of one look for a new directory, and the version in use after it.

    ``reason`` names a refusal (one of :data:`REFUSAL_REASONS`).
    """

    outcome: Outcome
    version: int
    reason: str = ""


def _london_time(moment: float) -> str:
    """Return ``moment`` as a date and time in Europe/London, for an operator's message."""
    return datetime.fromtimestamp(moment, UTC).astimezone(LONDON).strftime("%d %B %Y %H:%M")


class DirectoryUpdates:
    """Judges directory notes offered to the node and adopts the newer ones.

    ``digest`` is the SHA-256 of the note in use; ``file`` returns the ``[directory] file``
    path (read at each use: the loopback harness moves it); ``apply`` puts a verified
    directory in use everywhere; ``fetch`` gets the published note (None: no ``url``).
    """

    def __init__(
        self,
        context: ServiceContext,
        *,
        trusted: Sequence[NoteVerifier],
        digest: bytes,
        file: Callable[[], Path],
        apply: Callable[[Directory], None],
        fetch: Fetch | None = None,
    ) -> None:
        self.context = context
        self.trusted = tuple(trusted)
        self.digest = digest
        self.file = file
        self.apply = apply
        self.fetch = fetch
        self.status = DirectoryStatus()
        #: The digest of the file's bytes when last read, so only a change is offered.
        self._file_seen = digest
        self._lock = asyncio.Lock()

    @property
    def version(self) -> int:
        """The version of the directory in use."""
        return self.context.directory.version

    def _judge(self, note: bytes) -> Succession:
        return judge_note(
            note, self.trusted, current_version=self.version, current_digest=self.digest
        )

    # --- at start ------------------------------------------------------------------------

    async def record_start(self) -> None:
        """Record the version loaded at start, or refuse a file older than the one adopted."""
        store = self.context.store
        directory = self.context.directory
        latest = await store.latest_directory()
        if latest is not None and directory.version < latest.version:
            raise DirectoryStartError(
                f"directory.file holds version {directory.version}, older than version "
                f"{latest.version} this node adopted at {_london_time(latest.adopted_at)}; a "
                "rollback is refused: put back that version or a newer one"
            )
        if latest is not None and directory.version == latest.version:
            if latest.digest != self.digest:
                raise DirectoryStartError(
                    f"directory.file holds a version {directory.version} that differs from the "
                    f"version {latest.version} this node adopted; a fork is refused: put back "
                    "the note the authority published"
                )
            return
        await self._record(directory, self.digest)
        log.info("directory.adopted", version=directory.version, source="start")

    # --- adoption ------------------------------------------------------------------------

    def adopt_in_memory(self, note: bytes) -> Directory:
        """Put a newer ``note`` in use without writing or recording it (loopback harness)."""
        succession = self._judge(note)
        if succession.directory is None or succession.verdict != "newer":
            raise ValueError(succession.reason or "the directory offered is not newer")
        self._use(succession.directory, succession.digest)
        return succession.directory

    def _use(self, directory: Directory, digest: bytes) -> None:
        self.apply(directory)
        self.digest = digest

    async def _record(self, directory: Directory, digest: bytes) -> None:
        now = self.context.now()
        events = [
            ledger_event(
                EventType.DIRECTORY_ADOPTED, now, org, EnvelopeDigest(digest),
                reason=f"version:{directory.version}",
            )
            for org in sorted(self.context.tenants)
        ]  # fmt: skip
        adopted = AdoptedVersion(directory.version, digest, float(now))
        await self.context.store.record_directory(adopted, ledger_events=events)

    async def offer(self, note: bytes, *, source: str) -> RefreshResult:
        """Judge ``note`` (from ``source``: url, file) and adopt it if it is newer."""
        async with self._lock:
            succession = self._judge(note)
            if succession.refused:
                return self._refuse(succession.verdict, source, succession.reason)
            directory = succession.directory
            if succession.verdict != "newer" or directory is None:
                return RefreshResult("unchanged", self.version)
            # The file first: a crash after it restarts on the new version, which is then
            # recorded at start; the record before use, so nothing runs on an unrecorded one.
            await asyncio.to_thread(replace_file, self.file(), note, mode=0o644)
            self._file_seen = succession.digest
            await self._record(directory, succession.digest)
            self._use(directory, succession.digest)
            log.info(
                "directory.adopted", version=directory.version, source=source,
                digest=succession.digest.hex(),
            )  # fmt: skip
            return RefreshResult("adopted", directory.version)

    def _refuse(self, reason: str, source: str, why: str) -> RefreshResult:
        self.status.refused[reason] += 1
        log.error(
            "directory.refused", outcome=reason, source=source, version=self.version, error=why
        )
        return RefreshResult("refused", self.version, reason)

    # --- one round -----------------------------------------------------------------------

    def _read_file(self) -> bytes:
        return read_limited(self.file(), MAX_NOTE_LEN, what="directory.file")

    async def _file_round(self) -> RefreshResult | None:
        """Offer ``[directory] file`` if its bytes changed since it was last read."""
        try:
            note = await asyncio.to_thread(self._read_file)
        except InputTooLargeError as exc:
            return self._refuse("oversize", "file", str(exc))
        except OSError as exc:
            # The note in use stays; the file is rewritten at the next adoption.
            log.warning("directory.file-unreadable", error_class=type(exc).__name__)
            return None
        result = None
        digest = note_digest(note)
        if digest != self._file_seen:
            result = await self.offer(note, source="file")
            self._file_seen = digest
        return result

    async def refresh(self) -> RefreshResult:
        """Look for a new directory: the file if it changed, then the published address."""
        result = await self._file_round()
        if self.fetch is not None:
            try:
                note = await self.fetch()
            except DirectoryFetchError as exc:
                return self._refuse(exc.reason, "url", str(exc))
            self.status.last_fetch_at = self.context.clock()
            result = await self.offer(note, source="url")
        return result or RefreshResult("unchanged", self.version)

    async def check_now(self, actor: User) -> RefreshResult:
        """Look for a new directory now, as an administrator asked (the admin page)."""
        if actor.role != "admin":
            raise ForbiddenError("Only an administrator can check for a new directory")
        self.context.tenant(actor.org)
        return await self.refresh()
