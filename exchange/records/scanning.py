"""Reading a record container a piece at a time: the record, and where each file's bytes are.

:func:`~exchange.records.attachments.decode_container` takes the whole container as bytes;
a CP file of a gigabyte is opened instead by feeding its plaintext, as the envelope
yields it, to a :class:`ContainerScanner`. The scanner keeps only the record (at most its
kind's ``max_document`` bytes) and, for each attachment, its name, content type, size,
SHA-256 and offset in the container; each piece of an attachment's bytes is hashed and
handed back as it passes (:meth:`ContainerScanner.feed` returns them), so a caller can
write one attachment out while the envelope is read. It checks what
``decode_container`` checks, with the same rules, except the attachments' content
(:mod:`exchange.records.content_checks`): a PDF's, a JPEG's and text's are checked as
the bytes pass (:class:`~exchange.records.content_checks.ContentScan`), the other types'
need the bytes at any offset, so :func:`content_problem` reads them afterwards through a
:class:`~exchange.records.content_checks.Source`. So one order differs: a file whose bytes
were changed is refused by its digest (``attachment.digest``) as they pass, where
``decode_container`` may first name the content rule the changed bytes break.

Sans-I/O: bytes in, values and :class:`ContainerError` out.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from exchange.records.attachments import (
    CONTAINER_VERSION,
    L_CONTAINER,
    MAX_CONTAINER_LEN,
    described_fault,
    manifest_fault,
    max_container_len,
    names_fault,
)
from exchange.records.content_checks import ContentScan, Source, source_fault
from exchange.records.errors import ContainerError
from exchange.records.kinds import KINDS, MAX_ATTACHMENT_SIZE, MAX_ATTACHMENTS
from exchange.records.validate import Record, validate_record

_U8: Final = struct.Struct(">B")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_SHA256_LEN: Final = 32


@dataclass(frozen=True, slots=True)
class Entry:
    """One attachment of a scanned container: what it is, and where its bytes are."""

    name: str
    content_type: str
    size: int
    sha256: bytes = field(repr=False)
    #: Offset of the attachment's first byte in the container.
    offset: int


@dataclass(frozen=True, slots=True)
class ScannedContainer:
    """A container read through: its validated record and its attachments, in order."""

    record: Record
    entries: tuple[Entry, ...]
    #: Each attachment's content rules as checked while its bytes passed (for the types a
    #: stream decides; the others are checked through a source by :func:`content_problem`).
    scans: tuple[ContentScan, ...] = ()


#: The fields read before the attachment count.
_BEFORE_COUNT: Final = frozenset(
    {"label", "version", "kind length", "kind", "record length", "record", "attachment count"}
)


class _Need:
    """What the scanner waits for next: a field of ``size`` bytes, or an attachment's data."""

    __slots__ = ("data", "size", "what")

    def __init__(self, what: str, size: int, *, data: bool = False) -> None:
        self.what = what
        self.size = size
        self.data = data


class ContainerScanner:
    """Checks a container fed in pieces; see the module's docstring.

    :meth:`feed` returns the attachment bytes in the piece, as ``(index, bytes)`` pairs;
    :meth:`finish` checks the end and the manifest and returns the
    :class:`ScannedContainer`. After a :class:`ContainerError` the scanner is not used
    again.
    """

    def __init__(self) -> None:
        self._offset = 0  # bytes consumed so far
        self._buf = bytearray()
        self._need = _Need("label", len(L_CONTAINER))
        self._limit = MAX_CONTAINER_LEN
        self._kind = ""
        self._record: Record | None = None
        self._count = 0
        self._entries: list[Entry] = []
        self._budget = 0
        self._pending: dict[str, Any] = {}
        self._hash = hashlib.sha256()
        self._left = 0  # bytes of the current attachment's data still to come
        self._heads: list[Entry] = []
        self._scans: list[ContentScan] = []

    @property
    def count(self) -> int | None:
        """The number of attachments the container says it holds, once read (else None)."""
        return self._count if self._need.what not in _BEFORE_COUNT else None

    def head(self, index: int) -> Entry | None:
        """Return what the container says of attachment ``index`` once its bytes began.

        Its name and type as written (checked only when its bytes end) and its declared
        SHA-256, which its bytes must match.
        """
        return self._heads[index] if index < len(self._heads) else None

    def feed(self, piece: bytes | memoryview) -> list[tuple[int, bytes]]:
        """Consume ``piece``; return the attachments' bytes in it as (index, bytes)."""
        view = memoryview(piece)
        out: list[tuple[int, bytes]] = []
        while view:
            if self._offset + len(self._buf) + len(view) > self._limit:
                what = f"the limit for a {self._kind} record" if self._kind else None
                raise ContainerError(
                    "container.length",
                    0,
                    f"the container exceeds {what or f'{MAX_CONTAINER_LEN} bytes'}",
                )
            if self._need.data:
                take = min(self._left, len(view))
                data = bytes(view[:take])
                view = view[take:]
                self._hash.update(data)
                self._scans[-1].feed(data)
                self._left -= take
                self._offset += take
                out.append((len(self._entries), data))
                if self._left == 0:
                    self._end_attachment()
                continue
            take = min(self._need.size - len(self._buf), len(view))
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) == self._need.size:
                item = bytes(self._buf)
                self._buf.clear()
                at = self._offset
                self._offset += len(item)
                self._step(item, at)
        return out

    def finish(self) -> ScannedContainer:
        """Declare the end of the container; return it, or raise :class:`ContainerError`."""
        if self._record is None or self._need.what != "end" or self._buf:
            at = self._pending.get("body_at", self._offset) if self._need.data else self._offset
            raise ContainerError(
                "container.truncated", at, f"the {self._need.what} runs past the end"
            )
        fault = manifest_fault(self._record, self._entries)
        if fault is not None:
            raise ContainerError(fault[0], self._count_at, fault[1])
        return ScannedContainer(self._record, tuple(self._entries), tuple(self._scans))

    # --- the fields, in order ----------------------------------------------------------------

    def _step(self, item: bytes, at: int) -> None:  # noqa: PLR0912 - one case per field
        what = self._need.what
        if what == "label":
            if item != L_CONTAINER:
                raise ContainerError("container.label", 0, "the bytes are not a record container")
            self._need = _Need("version", _U8.size)
        elif what == "version":
            if _U8.unpack(item)[0] != CONTAINER_VERSION:
                raise ContainerError(
                    "container.version", at, "the container version is not supported"
                )
            self._need = _Need("kind length", _U8.size)
        elif what == "kind length":
            self._kind_at = at
            self._need = _Need("kind", _U8.unpack(item)[0])
            if self._need.size == 0:
                self._step(b"", at + 1)
        elif what == "kind":
            kind = item.decode("ascii", errors="replace")
            spec = KINDS.get(kind)
            if spec is None:
                raise ContainerError(
                    "container.kind", self._kind_at, "the record kind is not known"
                )
            self._kind = kind
            self._limit = max_container_len(kind)
            self._budget = spec.max_attachments_total
            self._need = _Need("record length", _U32.size)
        elif what == "record length":
            size = _U32.unpack(item)[0]
            max_document = KINDS[self._kind].max_document
            if size > max_document:
                raise ContainerError("record.size", at, f"the record exceeds {max_document} bytes")
            self._need = _Need("record", size)
        elif what == "record":
            self._record = validate_record(self._kind, item)
            self._need = _Need("attachment count", _U8.size)
        elif what == "attachment count":
            self._count_at = at
            self._count = _U8.unpack(item)[0]
            limit = MAX_ATTACHMENTS if KINDS[self._kind].manifest else 0
            if self._count > limit:
                raise ContainerError(
                    "attachment.count",
                    at,
                    f"a {self._kind} record carries at most {limit} attachments",
                )
            self._next_attachment()
        else:
            self._attachment_field(what, item, at)

    def _next_attachment(self) -> None:
        if len(self._entries) == self._count:
            self._need = _Need("end", 0)
            return
        self._pending = {"start": self._offset}
        self._need = _Need("file name length", _U16.size)

    def _attachment_field(self, what: str, item: bytes, at: int) -> None:
        index = len(self._entries)
        pending = self._pending
        if what == "end":
            raise ContainerError("container.trailing", at, "bytes follow the last attachment")
        if what == "file name length":
            self._need = _Need("file name", _U16.unpack(item)[0])
        elif what == "file name":
            pending["name"] = item
            self._need = _Need("content type length", _U8.size)
        elif what == "content type length":
            pending["type_at"] = at
            self._need = _Need("content type", _U8.unpack(item)[0])
        elif what == "content type":
            pending["type"] = item
            self._need = _Need("size", _U32.size)
        elif what == "size":
            size = _U32.unpack(item)[0]
            if not 0 < size <= MAX_ATTACHMENT_SIZE:
                raise ContainerError(
                    "attachment.size",
                    at,
                    f"attachment {index}: the size must be 1 to {MAX_ATTACHMENT_SIZE} bytes",
                )
            if size > self._budget:
                raise ContainerError(
                    "attachment.total", at, f"attachment {index} exceeds the kind's total size"
                )
            pending["size"], pending["size_at"] = size, at
            self._need = _Need("digest", _SHA256_LEN)
        elif what == "digest":
            pending["digest"] = item
            self._scans.append(ContentScan(pending["type"].decode("ascii", errors="replace")))
            self._heads.append(
                Entry(
                    pending["name"].decode("utf-8", errors="replace"),
                    pending["type"].decode("ascii", errors="replace"),
                    pending["size"],
                    item,
                    self._offset,
                )
            )
            self._left = pending["size"]
            self._hash = hashlib.sha256()
            pending["body_at"] = self._offset
            self._need = _Need("attachment", pending["size"], data=True)
        # An empty field (a name or type of no bytes) completes at once.
        if self._need.size == 0 and not self._need.data and self._need.what != "end":
            self._attachment_field(self._need.what, b"", self._offset)

    def _end_attachment(self) -> None:
        index = len(self._entries)
        pending = self._pending
        try:
            name = pending["name"].decode("utf-8")
        except UnicodeDecodeError:
            raise ContainerError(
                "attachment.name", pending["start"], f"attachment {index}'s file name is not UTF-8"
            ) from None
        content_type = pending["type"].decode("ascii", errors="replace")
        fault = described_fault(name, content_type, pending["size"])
        if fault is not None:
            rule, message = fault
            at = {
                "attachment.content-type": pending["type_at"],
                "attachment.size": pending["size_at"],
            }
            raise ContainerError(
                rule, at.get(rule, pending["start"]), f"attachment {index}: {message}"
            )
        digest = self._hash.digest()
        if not hmac.compare_digest(digest, pending["digest"]):
            raise ContainerError(
                "attachment.digest",
                pending["body_at"],
                f"attachment {index}'s SHA-256 does not match",
            )
        self._entries.append(Entry(name, content_type, pending["size"], digest, pending["body_at"]))
        self._budget -= pending["size"]
        if names_fault(self._entries) is not None:
            raise ContainerError(
                "attachment.name-duplicate",
                self._offset,
                f"attachment {index}'s file name repeats an earlier one",
            )
        self._next_attachment()


def content_problem(
    entries: Sequence[Entry], source_of: Any, scans: Sequence[ContentScan] = ()
) -> ContainerError | None:
    """Return the first attachment whose bytes break a content rule, as an error, or None.

    ``scans`` are the checks made as the bytes passed (:attr:`ScannedContainer.scans`);
    where one does not decide, ``source_of(entry)`` gives a :class:`Source` of the bytes.
    """
    for index, entry in enumerate(entries):
        scan = scans[index] if index < len(scans) else None
        if scan is not None and scan.conclusive and scan.size == entry.size:
            fault = scan.fault()
        else:
            source: Source = source_of(entry)
            fault = source_fault(entry.content_type, source)
        if fault is not None:
            return ContainerError(fault[0], entry.offset, f"attachment {index}: {fault[1]}")
    return None
