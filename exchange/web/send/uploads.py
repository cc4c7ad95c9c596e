"""Files added to a draft: read from the multipart stream in pieces, checked, kept encrypted.

The upload form's body is never read whole: the CSRF check has read its first part (the
token) and left the rest of the stream (:data:`~exchange.web.security.MULTIPART`), and the
file part is read here a piece at a time, hashed, checked and encrypted to the draft's
store as it comes (:meth:`~exchange.web.send.drafts.DraftStore.file_writer`). The node's
own body limit does not apply to a stream read this way, so this module has its own, the
largest file the node takes for the draft's kind (``per_file``, from the node's
``[limits] max_envelope_bytes``: :mod:`exchange.sharing.limits`): as soon as a file passes
it what was written is deleted, and the rest of the body is read and thrown away, up to as
much again and no more, so the browser gets the answer instead of a broken connection
while a hostile client cannot make the node read without end. Nothing is held whole in
memory while the file arrives: each piece is hashed, looked at and written encrypted.

The file's type is found from its first bytes: a PDF, PNG or JPEG by its signature, a Word
(DOCX) or OpenDocument text (ODT) file by its ZIP entries, plain text by being UTF-8 without
control characters. Then the whole file is checked as the record container checks it
(:func:`exchange.records.content_checks.source_fault`, a piece at a time: zip bombs,
damaged structure, polyglots), and a file that fails is not kept, with the rule's sentence
on the page. The name a browser gives is only used, sanitised, as the file's name.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Final, NoReturn

from aiohttp import BodyPartReader, MultipartReader, web

from exchange.records import sanitise_file_name
from exchange.records.content_checks import (
    DOCX,
    JPEG,
    ODT,
    PDF,
    PNG,
    TEXT,
    source_fault,
    starts_like,
)
from exchange.web.send.drafts import PIECE, DraftFile, DraftStore, Upload

#: The longest text field of the upload form (a title is at most 200 characters).
MAX_FIELD: Final = 4096
#: The file types in words, as the page says them before upload.
TYPE_WORDS: Final = {
    PDF: "PDF",
    PNG: "PNG",
    JPEG: "JPEG",
    DOCX: "Word document (DOCX)",
    ODT: "OpenDocument text (ODT)",
    TEXT: "plain text",
}
WRONG_TYPE: Final = (
    "The selected file must be a PDF, PNG, JPEG, Word document (DOCX), "
    "OpenDocument text (ODT) or plain text file"
)
EMPTY: Final = "The selected file is empty"
NO_FILE: Final = "Select a file"
#: A megabyte as the pages count it.
MB: Final = 1024 * 1024
_BINARY_STARTS: Final = (b"%PDF-", b"\x89PNG", b"\xff\xd8\xff", b"PK\x03\x04")


class _Sniffer:
    """Works out a file's type from its bytes as they stream past."""

    def __init__(self) -> None:
        self.head = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = True

    def feed(self, piece: bytes) -> None:
        if len(self.head) < 16:
            self.head += piece[: 16 - len(self.head)]
        if not self.text:
            return
        try:
            decoded = self._decoder.decode(piece)
        except UnicodeDecodeError:
            self.text = False
            return
        if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r\f" for c in decoded):
            self.text = False

    def finish(self) -> str | None:
        """Return the type the bytes start like (ZIP files are told apart later), or None."""
        for content_type in (PDF, PNG, JPEG):
            if starts_like(content_type, self.head):
                return content_type
        if self.head.startswith(b"PK\x03\x04"):
            return "zip"
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return None
        if self.text and not self.head.startswith(_BINARY_STARTS):
            return TEXT
        return None


@dataclass
class Received:
    """What an upload form sent: the file kept (if any), its fields, and what was wrong."""

    upload: Upload | None = None
    title: str = ""
    document_kind: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def megabytes(size: int) -> str:
    """Return a limit in whole MB (MiB, rounded down), as the pages say limits."""
    return f"{size // MB} MB"


def too_big(per_file: int) -> str:
    """Return the page's words for a file over the node's limit of ``per_file`` bytes."""
    return f"The selected file must be smaller than {megabytes(per_file)}"


async def _field(part: BodyPartReader, drain: int) -> str:
    data = b""
    while chunk := await part.read_chunk(MAX_FIELD):
        data += chunk
        if len(data) > MAX_FIELD:
            await _drain(part, drain)
            return ""
    return data.decode("utf-8", errors="replace")


async def _drain(part: BodyPartReader, limit: int) -> None:
    """Read and throw away the rest of a part, up to ``limit`` bytes."""
    seen = 0
    while chunk := await part.read_chunk(PIECE):
        seen += len(chunk)
        if seen > limit:
            # Far larger than allowed: the rest is not read, and the page says too large.
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=seen)


async def _store_file(  # noqa: PLR0917 - the draft's parts and the limit
    part: BodyPartReader,
    drafts: DraftStore,
    id_hash: bytes,
    token: str,
    draft_id: str,
    per_file: int,
) -> Upload | str:
    """Stream a file part into the draft; return the upload, or the error message."""
    name = part.filename or ""
    sniffer = _Sniffer()
    digest = hashlib.sha256()
    size = 0
    oversize = False
    try:
        async with drafts.file_writer(id_hash, token, draft_id) as (upload_id, write):
            while chunk := await part.read_chunk(PIECE):
                size += len(chunk)
                if size > per_file:
                    oversize = True
                    _refuse()
                digest.update(chunk)
                sniffer.feed(chunk)
                await write(chunk)
            content_type = sniffer.finish()
            if size == 0 or content_type is None:
                _refuse()
    except _RefusedError:
        if oversize:
            await _drain(part, per_file)
            return too_big(per_file)
        if size == 0:
            return EMPTY if name else NO_FILE
        return WRONG_TYPE
    try:
        clean = sanitise_file_name(name)
    except ValueError:
        clean = "document"
    upload = Upload(upload_id, clean, content_type, size, digest.hexdigest(), "")
    candidates = (DOCX, ODT) if content_type == "zip" else (content_type,)
    # Reading a large file, or unpacking an office document, is not for the event loop.
    file = await drafts.open_file(id_hash, token, draft_id, upload, verify=False)
    faults = await asyncio.to_thread(_faults, file, candidates)
    found = next((t for t, fault in faults if fault is None), None)
    if found is None:
        await drafts.delete_file(id_hash, draft_id, upload_id)
        # Not the type at all is the wrong type; a file of the type that breaks a rule says so.
        broken = [f for _, f in faults if f is not None and f[0] != "attachment.magic"]
        return _damaged(broken[0][1]) if broken else WRONG_TYPE
    upload.content_type = found
    return upload


def _faults(
    file: DraftFile, candidates: tuple[str, ...]
) -> list[tuple[str, tuple[str, str] | None]]:
    """Return each candidate type with the rule the file breaks as that type (None if none).

    The file is read from the draft a piece at a time (it was hashed as it was written).
    """
    return [(t, source_fault(t, file)) for t in candidates]


def _damaged(sentence: str) -> str:
    """Return the page's words for a file of an allowed type that breaks one of its rules."""
    return f"The selected file cannot be sent: {sentence}"


class _RefusedError(Exception):
    """The file is not kept (too big, empty or of a type not allowed)."""


def _refuse() -> NoReturn:
    """Stop keeping the file: what was written of it is deleted."""
    raise _RefusedError


async def receive_upload(  # noqa: PLR0917 - the draft's parts and the limit
    reader: MultipartReader,
    drafts: DraftStore,
    id_hash: bytes,
    token: str,
    draft_id: str,
    per_file: int,
) -> Received:
    """Read the rest of an upload form: its text fields and at most one file, streamed.

    A file over ``per_file`` bytes is refused (the most the node takes for one file of the
    draft's kind).
    """
    received = Received()
    saw_file = False
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            await _drain_reader(part)
            continue
        if part.name == "file" and not saw_file:
            saw_file = True
            outcome = await _store_file(part, drafts, id_hash, token, draft_id, per_file)
            if isinstance(outcome, str):
                received.errors["file"] = outcome
            else:
                received.upload = outcome
        elif part.name in {"title", "document_kind"}:
            setattr(received, part.name, (await _field(part, per_file)).strip())
        else:
            await _drain(part, MAX_FIELD)
    if not saw_file:
        received.errors["file"] = NO_FILE
    return received


async def _drain_reader(reader: MultipartReader) -> None:
    """Throw away a nested multipart body (no upload form sends one)."""
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader):
            await _drain(part, MAX_FIELD)
        else:
            await _drain_reader(part)
