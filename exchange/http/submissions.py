"""The body of a submission (send, rectify): JSON with files in base64, or a multipart upload.

A submission comes in one of two forms (docs/openapi.yaml):

- **JSON**, files base64-encoded in its ``attachments``: the body is about a third larger
  than the envelope it becomes and is held in memory, so it suits small records. The
  application's own body limit (``client_max_size``, about ``max_envelope_bytes``) is for
  everything else; a JSON submission is read here instead, against
  :func:`submission_limit`.
- **multipart/form-data**: a first part named ``submission`` holding the same JSON object
  without ``attachments``, then one part named ``attachment`` per file, with its file name
  and its ``Content-Type``. Each file is streamed, a megabyte at a time, into an unnamed
  spool file in the node's data folder, hashed and (a PDF, a JPEG or text) checked as it
  comes (:class:`~exchange.records.content_checks.ContentScan`); it is never held whole in
  memory, and a spool file has no name on disk, so nothing is left behind whatever
  happens (it is closed, and so gone, as soon as the submission is answered or refused).
  The other types' content checks (PNG, the office formats' zip bombs) read the spooled
  file in pieces (:class:`exchange.files.FileSource`), and the record container is sealed
  straight from it (``exchange.service.sending``).

Either form is refused with 413, naming the limit in bytes and the setting, on its
``Content-Length`` before a byte is read, or as soon as what was read passes the limit.
Refusals name the part or the field and the rule, and never quote what was sent.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from exchange.files import FileSource
from exchange.http.common import JSON_LIMIT, attachment_inputs, node_service
from exchange.http.jsonbody import BadRequestError, Field, parse_object
from exchange.records import KINDS, MAX_ATTACHMENTS
from exchange.records.content_checks import ContentScan
from exchange.service.errors import ServiceError, TooLargeError
from exchange.sharing.limits import SETTING, node_limits
from exchange.sharing.prepare import AttachmentInput, FileInput
from exchange.spool import Handoff

_PIECE: Final = 1024 * 1024
#: The media type of a streamed submission, and the names of its parts.
MULTIPART: Final = "multipart/form-data"
SUBMISSION_PART: Final = "submission"
ATTACHMENT_PART: Final = "attachment"
#: What a multipart body may add to its files and JSON: each part's boundary and headers.
PART_OVERHEAD: Final = 16 * 1024


def submission_limit(max_envelope_bytes: int, json_limit: int) -> int:
    """Return the longest JSON submission body a node with these settings reads.

    The files of the largest container the node accepts (``exchange.sharing.limits``) are
    shorter than ``max_envelope_bytes`` by at least the envelope's header and framing and
    the container's own fields; the base64 of *n* bytes is ``4 * ceil(n / 3)`` characters,
    so the base64 of all of them (at most two padding bytes each) fits in
    ``4 * ceil(max_envelope_bytes / 3)`` with room to spare. The record and the other
    fields get ``json_limit`` (``[limits] max_json_bytes``) on top, as any JSON body does.
    """
    return 4 * -(-max_envelope_bytes // 3) + json_limit


def multipart_limit(max_envelope_bytes: int, json_limit: int) -> int:
    """Return the longest multipart submission body a node with these settings reads.

    The files in their own bytes (what fits in an envelope), the submission part within
    ``json_limit``, and :data:`PART_OVERHEAD` for each part's boundary and headers.
    """
    return max_envelope_bytes + json_limit + (MAX_ATTACHMENTS + 1) * PART_OVERHEAD


def _too_large(limit: int, max_envelope_bytes: int) -> TooLargeError:
    return TooLargeError(
        f"the request body is larger than {limit} bytes, the most this node reads for a "
        f"submission: files that fit in its {SETTING} ({max_envelope_bytes} bytes) once "
        "sealed, in base64, and the record and fields within [limits] max_json_bytes"
    )


def _multipart_too_large(limit: int, max_envelope_bytes: int) -> TooLargeError:
    return TooLargeError(
        f"the request body is larger than {limit} bytes, the most this node reads for a "
        f"multipart submission: files that fit in its {SETTING} ({max_envelope_bytes} "
        "bytes) once sealed, and the submission part within [limits] max_json_bytes"
    )


async def read_submission(request: web.Request) -> bytes:
    """Return a JSON submission's body, refusing (413) one over :func:`submission_limit`."""
    max_envelope_bytes = node_service(request).max_envelope_bytes
    limit = submission_limit(max_envelope_bytes, request.app[JSON_LIMIT])
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, max_envelope_bytes)
    body = bytearray()
    async for piece in request.content.iter_chunked(_PIECE):
        if len(body) + len(piece) > limit:
            raise _too_large(limit, max_envelope_bytes)
        body += piece
    return bytes(body)


@dataclass
class SpooledFile:
    """One attachment part, spooled: its name and type as sent, the file, size and digest."""

    name: str
    content_type: str
    handle: BinaryIO = field(repr=False)
    size: int = 0
    sha256: bytes = field(default=b"", repr=False)
    checked: ContentScan | None = field(default=None, repr=False)

    def as_input(self) -> FileInput:
        """Return the attachment as the submission takes it, read from the spool file."""
        source = FileSource(self.handle, self.size)
        return FileInput(self.name, self.content_type, source, self.sha256, self.checked)


@dataclass
class SubmissionBody:
    """A submission as read: its fields, its files, and the hash a repeat must match.

    ``digest`` is what an ``Idempotency-Key`` is bound to: the hash of the whole JSON body,
    or of a multipart body's submission part and each file's name, type, size and SHA-256
    (so the same files sent again match, whatever boundary the client chose).
    """

    fields: dict[str, Any]
    attachments: tuple[AttachmentInput | FileInput, ...]
    digest: bytes


def _request_hasher(request: web.Request) -> Any:
    return hashlib.sha256(f"{request.method} {request.path}\n".encode())


@contextlib.asynccontextmanager
async def submission_body(
    request: web.Request, fields: Mapping[str, Field]
) -> AsyncIterator[SubmissionBody]:
    """Read a submission in either form; its spool files live until the block ends.

    ``fields`` are the JSON object's fields (``attachments`` among them, for the JSON form).
    """
    if request.content_type != MULTIPART:
        raw = await read_submission(request)
        hasher = _request_hasher(request)
        hasher.update(raw)  # not joined first: a submission may be hundreds of megabytes
        doc = parse_object(raw, fields, limit=None)
        del raw
        # Popped: the base64 text is let go as soon as the files are decoded.
        inputs = attachment_inputs(doc.pop("attachments", []))
        yield SubmissionBody(doc, inputs, hasher.digest())
        return
    spooled: list[SpooledFile] = []
    try:
        doc, digest = await _read_multipart(request, fields, spooled)
        yield SubmissionBody(doc, tuple(f.as_input() for f in spooled), digest)
    finally:
        for spool in spooled:
            spool.handle.close()


class _Malformed(Exception):  # noqa: N818 - a signal inside this module
    """aiohttp could not read the multipart body."""


#: What aiohttp raises for a multipart body it cannot read: a bad boundary, a part's
#: headers (``InvalidHeader``), a missing end.
_AIOHTTP_REFUSALS: Final = (
    ValueError,
    AssertionError,
    RuntimeError,
    LookupError,
    HttpProcessingError,
)


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    """Return the next part, refusing a nested multipart body or one aiohttp cannot read."""
    try:
        part = await reader.next()
    except _AIOHTTP_REFUSALS as exc:
        raise _Malformed from exc
    if part is not None and not isinstance(part, BodyPartReader):
        raise BadRequestError("a multipart submission must not nest multipart bodies")
    return part


async def _read_multipart(
    request: web.Request, fields: Mapping[str, Field], spooled: list[SpooledFile]
) -> tuple[dict[str, Any], bytes]:
    service = node_service(request)
    max_envelope_bytes = service.max_envelope_bytes
    json_limit = request.app[JSON_LIMIT]
    limit = multipart_limit(max_envelope_bytes, json_limit)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _multipart_too_large(limit, max_envelope_bytes)
    try:
        try:
            reader = await request.multipart()
        except _AIOHTTP_REFUSALS as exc:
            raise _Malformed from exc
        first = await _next_part(reader)
        if first is None or first.name != SUBMISSION_PART or first.filename is not None:
            raise BadRequestError(
                f"the first part of a multipart submission must be the submission: a part "
                f"named {SUBMISSION_PART!r} holding its JSON object (the files follow it)"
            )
        raw = await _read_json_part(first, json_limit)
        try:
            doc = parse_object(raw, fields, limit=None)
        except BadRequestError as exc:
            raise BadRequestError(f"the {SUBMISSION_PART} part: {exc}") from None
        if "attachments" in doc:
            raise BadRequestError(
                f"the {SUBMISSION_PART} part must not hold attachments: in a multipart "
                f"submission each file is a part named {ATTACHMENT_PART!r}"
            )
        hasher = _request_hasher(request)
        hasher.update(b"multipart\n" + raw)
        budget = _Budget.of(max_envelope_bytes, doc.get("record_kind"))
        while (part := await _next_part(reader)) is not None:
            index = len(spooled)
            where = f"attachments[{index}] (part {index + 2})"
            if part.name != ATTACHMENT_PART or not part.filename:
                raise BadRequestError(
                    f"part {index + 2} of the multipart submission must be a file named "
                    f"{ATTACHMENT_PART!r} with a file name; the {SUBMISSION_PART} part comes "
                    "first, once"
                )
            content_type = part.headers.get(hdrs.CONTENT_TYPE, "").strip()
            if not content_type:
                raise BadRequestError(f"{where} has no Content-Type: give the file's type")
            if index == MAX_ATTACHMENTS:
                raise BadRequestError(f"a submission carries at most {MAX_ATTACHMENTS} files")
            spool = SpooledFile(part.filename, content_type, _spool_file(service.store.folder))
            spooled.append(spool)
            await _spool(part, spool, budget, where)
            hasher.update(
                b"\n".join(
                    [
                        spool.name.encode("utf-8", "surrogateescape"),
                        content_type.encode("utf-8", "surrogateescape"),
                        str(spool.size).encode(),
                        spool.sha256,
                    ]
                )
            )
    except _Malformed:
        raise BadRequestError(
            "the request body is not well-formed multipart/form-data (its boundary, a "
            "part's headers or its end)"
        ) from None
    return doc, hasher.digest()


def _spool_file(folder: Path) -> BinaryIO:
    """Return a new unnamed file in ``folder`` (it has no name on disk, so leaves nothing)."""
    return tempfile.TemporaryFile(dir=folder)


async def _read_json_part(part: BodyPartReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await _read_chunk(part):
        data += chunk
        if len(data) > limit:
            raise ServiceError(
                f"the {SUBMISSION_PART} part is larger than {limit} bytes "
                "([limits] max_json_bytes)",
                status=413,
            )
    return bytes(data)


async def _read_chunk(part: BodyPartReader) -> bytes:
    try:
        return await part.read_chunk(_PIECE)
    except _AIOHTTP_REFUSALS as exc:
        raise _Malformed from exc


@dataclass
class _Budget:
    """How many bytes of files the submission may still send, and what says so."""

    per_file: int
    total: int
    kind: str | None
    max_envelope_bytes: int
    left: int = 0

    def __post_init__(self) -> None:
        self.left = self.total

    @classmethod
    def of(cls, max_envelope_bytes: int, kind: object) -> _Budget:
        limits = node_limits(max_envelope_bytes)
        if isinstance(kind, str) and kind in KINDS:
            files = limits.attachments(kind)
            return cls(files.per_file, files.total, kind, max_envelope_bytes)
        # A correction (its kind is the original's) or a kind refused later: the envelope.
        return cls(limits.max_content, limits.max_content, None, max_envelope_bytes)

    def refusal(self, where: str, size: int) -> TooLargeError:
        what = f"a {self.kind} record's files" if self.kind else "the files"
        if size > self.per_file:
            return TooLargeError(
                f"{where} is larger than {self.per_file} bytes, the most one file of "
                f"{what} may be on this node: what fits in an envelope of its {SETTING} "
                f"({self.max_envelope_bytes} bytes)"
            )
        return TooLargeError(
            f"{where} takes {what} past {self.total} bytes in all, the most that fits in "
            f"an envelope of this node's {SETTING} ({self.max_envelope_bytes} bytes)"
        )


async def _spool(part: BodyPartReader, spool: SpooledFile, budget: _Budget, where: str) -> None:
    """Stream one file part into its spool file, hashing it; refuse it past the budget.

    Each batch is hashed, checked and written in a worker thread while the next is read.
    """
    digest = hashlib.sha256()
    scan = ContentScan(spool.content_type)
    handoff = Handoff()
    write = functools.partial(_write, spool.handle, (digest, scan))
    try:
        await _spool_batches(part, spool, budget, where, handoff=handoff, write=write)
        await handoff.wait()
    except BaseException:
        # The spool file is closed once the submission is refused: no write may go on.
        await handoff.settle()
        raise
    budget.left -= spool.size
    spool.sha256 = digest.digest()
    spool.checked = scan


async def _spool_batches(
    part: BodyPartReader,
    spool: SpooledFile,
    budget: _Budget,
    where: str,
    *,
    handoff: Handoff,
    write: Callable[[list[bytes]], None],
) -> None:
    """Read one file part, handing each batch of about a MiB to ``write`` through ``handoff``."""
    batch: list[bytes] = []
    held = 0
    while chunk := await _read_chunk(part):
        spool.size += len(chunk)
        if spool.size > min(budget.per_file, budget.left):
            raise budget.refusal(where, spool.size)
        batch.append(chunk)
        held += len(chunk)
        if held >= _PIECE:
            await handoff.run(functools.partial(write, batch))
            batch, held = [], 0
    await handoff.run(functools.partial(write, batch))


def _write(handle: BinaryIO, checks: tuple[Any, ContentScan], batch: list[bytes]) -> None:
    """Hash, check and write a batch of a file's pieces (in a worker thread)."""
    digest, scan = checks
    piece = b"".join(batch)
    digest.update(piece)
    scan.feed(piece)
    handle.write(piece)
    handle.flush()
