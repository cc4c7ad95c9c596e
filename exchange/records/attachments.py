"""The record container: one record and its attachments, the content of a sealed envelope.

A DSL's referral or CP file is a JSON record plus documents (PDFs, scans, letters). They
travel together as the plaintext of one envelope, so the envelope's encryption, signature
and digest cover the documents exactly as they cover the record. This module encodes and
decodes that plaintext (docs/records.md §4). It is sans-I/O: bytes in, values out.

Decoding is strict. Every length is checked against a limit before anything is read; every
attachment's name must already be in sanitised form (:func:`sanitise_file_name`), its
content type must be one of :data:`CONTENT_TYPES` and its bytes must be well-formed of that
type, past the first bytes (:mod:`exchange.records.content_checks`: zip bombs, polyglots);
its SHA-256 must match; and the record's manifest (``documents`` in a ``cp-file-transfer``,
``attachments`` in a ``referral``) must describe the attachments one for one, in order,
because the receiving DSL accepts the transfer against that manifest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from exchange.records.content_checks import (
    CONTENT_RULES,
    DOCX,
    JPEG,
    ODT,
    PDF,
    PNG,
    TEXT,
    BytesSource,
    ContentScan,
    Source,
    content_fault,
    source_fault,
)
from exchange.records.errors import ContainerError
from exchange.records.kinds import KINDS, MAX_ATTACHMENT_SIZE, MAX_ATTACHMENTS, kind_spec
from exchange.records.validate import Record, validate_record

#: Domain-separation label: the first bytes of every container. It ends in NUL like the
#: envelope's and receipts' labels, so no other format's bytes can be read as a container.
L_CONTAINER: Final = b"exchange/v1/record-container\x00"
CONTAINER_VERSION: Final = 1

#: The only content types accepted. Office formats that can carry macros (.docm, .xls) and
#: anything executable are excluded; text is UTF-8.
CONTENT_TYPES: Final = (PDF, PNG, JPEG, DOCX, ODT, TEXT)

#: Longest sanitised file name, in characters. 120 fits every file system's name limit
#: even at four UTF-8 bytes a character, and keeps names readable in lists.
MAX_FILE_NAME_LEN: Final = 120
#: Longest extension kept whole when a name is shortened.
_MAX_EXTENSION_LEN: Final = 10
_SHA256_LEN: Final = 32

_U8: Final = struct.Struct(">B")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
#: Bytes around one attachment's data: name length, content-type length, size, digest.
_ATTACHMENT_OVERHEAD: Final = (
    _U16.size + 4 * MAX_FILE_NAME_LEN + _U8.size + max(map(len, CONTENT_TYPES))
) + (_U32.size + _SHA256_LEN)
_HEADER_OVERHEAD: Final = len(L_CONTAINER) + 1 + 1 + 255 + _U32.size + _U8.size

#: Characters that are path separators or reserved on common file systems.
_REPLACED: Final = frozenset('/\\<>:"|?*')
#: Unicode categories removed: controls, format characters (bidi overrides that disguise an
#: extension), surrogates, private use and unassigned code points.
_REMOVED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
#: Windows device names: a file whose name up to its *first* dot is one of these, in any
#: case and with trailing spaces ("AUX.tar.txt", "con .txt"), opens the device instead.
#: COM and LPT take 0-9 and the superscript digits Windows also maps (COM¹, LPT²).
_WINDOWS_DEVICES: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)


def max_container_len(kind: str) -> int:
    """Return the largest container of ``kind`` that :func:`decode_container` reads."""
    spec = kind_spec(kind)
    count = MAX_ATTACHMENTS if spec.manifest else 0
    return (
        _HEADER_OVERHEAD
        + spec.max_document
        + spec.max_attachments_total
        + count * _ATTACHMENT_OVERHEAD
    )


#: Largest input :func:`decode_container` looks at, checked before anything is read.
MAX_CONTAINER_LEN: Final = max(max_container_len(kind) for kind in KINDS)


def _sanitise_once(name: str) -> str:
    text = unicodedata.normalize("NFC", name)
    chars: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in _REPLACED:
            chars.append("_")
        elif category in _REMOVED_CATEGORIES:
            continue
        elif category.startswith("Z"):
            chars.append(" ")
        else:
            chars.append(ch)
    text = " ".join("".join(chars).split()).strip(". ")
    if text.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        text = "_" + text
    stem, dot, extension = text.rpartition(".")
    if len(text) > MAX_FILE_NAME_LEN:
        if dot and stem and 0 < len(extension) <= _MAX_EXTENSION_LEN:
            keep = MAX_FILE_NAME_LEN - len(extension) - 1
            text = stem[:keep].rstrip(". ") + "." + extension
        else:
            text = text[:MAX_FILE_NAME_LEN]
    return unicodedata.normalize("NFC", text).strip(". ")


def sanitise_file_name(name: str) -> str:
    """Return ``name`` as a safe file name, or raise ``ValueError`` if nothing usable is left.

    The result is NFC; it has no path separators (replaced by ``_``), no control or
    invisible format characters, no characters reserved on Windows, no leading or trailing
    dots or spaces, no Windows device name before its first dot (prefixed with ``_``),
    runs of spaces collapsed, and at most
    :data:`MAX_FILE_NAME_LEN` characters (the extension kept when shortened).
    Sanitising a sanitised name returns it unchanged.
    """
    if not isinstance(name, str):
        raise TypeError("name must be a string")
    text = name
    for _ in range(4):
        cleaned = _sanitise_once(text)
        if cleaned == text:
            break
        text = cleaned
    else:
        raise ValueError("name could not be sanitised to a stable form")
    if not text:
        raise ValueError("name has no usable characters once sanitised")
    return text


def content_matches(content_type: str, data: bytes) -> bool:
    """Return whether ``data`` is well-formed ``content_type`` (:mod:`.content_checks`)."""
    return content_fault(content_type, data) is None


def _attachment_fault(name: str, content_type: str, data: Source) -> tuple[str, str] | None:
    """Return (rule, message) for the first rule an attachment breaks, or None."""
    return described_fault(name, content_type, data.size) or source_fault(content_type, data)


def described_fault(name: str, content_type: str, size: int) -> tuple[str, str] | None:
    """Return (rule, message) for the first rule an attachment's name, type or size breaks."""
    try:
        clean = sanitise_file_name(name)
    except ValueError:
        clean = None
    if clean != name:
        return "attachment.name", "the file name is not in sanitised form"
    if content_type not in CONTENT_TYPES:
        return "attachment.content-type", "the content type is not one of those allowed"
    if not 0 < size <= MAX_ATTACHMENT_SIZE:
        return "attachment.size", f"the size must be 1 to {MAX_ATTACHMENT_SIZE} bytes"
    return None


class Described(Protocol):
    """What the container says of an attachment before its bytes, and the manifest checks."""

    @property
    def name(self) -> str:
        """The sanitised file name."""
        ...

    @property
    def content_type(self) -> str:
        """The content type, one of :data:`CONTENT_TYPES`."""
        ...

    @property
    def size(self) -> int:
        """The number of bytes."""
        ...

    @property
    def sha256(self) -> bytes:
        """The SHA-256 of the bytes."""
        ...


@dataclass(frozen=True, slots=True)
class Attachment:
    """One document: sanitised file name, declared content type and the bytes.

    The constructor refuses (``ValueError``) a name that is not already sanitised, a type
    that is not allowed or content that does not match it; :meth:`create` sanitises the
    name first. ``sha256`` is the digest of ``data``.
    """

    name: str
    content_type: str
    data: bytes = field(repr=False)
    sha256: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.content_type, str):
            raise TypeError("name and content_type must be strings")
        if not isinstance(self.data, bytes):
            raise TypeError("data must be bytes")
        fault = _attachment_fault(self.name, self.content_type, BytesSource(self.data))
        if fault is not None:
            raise ValueError(f"attachment: {fault[1]} [{fault[0]}]")
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).digest())

    @classmethod
    def create(cls, name: str, content_type: str, data: bytes) -> Attachment:
        """Return an attachment with ``name`` sanitised; other checks as the constructor."""
        return cls(sanitise_file_name(name), content_type, data)

    @property
    def size(self) -> int:
        """Return the number of bytes of the document."""
        return len(self.data)

    def manifest_fields(self) -> dict[str, object]:
        """Return the manifest fields this attachment must be described by in its record."""
        return {"content_type": self.content_type, "size": self.size, "sha256": self.sha256.hex()}


#: Bytes of a file attachment read at a time as the container is written.
FILE_PIECE: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AttachmentFile:
    """A document whose bytes are read through a :class:`Source` (a spooled upload).

    Checked as :class:`Attachment` checks its bytes, a piece at a time; ``sha256`` is the
    digest of the source's bytes, worked out by whoever wrote them (the node, as it spooled
    the upload), and is what the container and the record's manifest carry.
    """

    name: str
    content_type: str
    source: Source = field(repr=False, compare=False)
    sha256: bytes = field(repr=False)
    #: The content rules checked as the bytes were written: when they decide for the type,
    #: the file is not read again for them.
    checked: ContentScan | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.content_type, str):
            raise TypeError("name and content_type must be strings")
        if not isinstance(self.sha256, bytes) or len(self.sha256) != _SHA256_LEN:
            raise TypeError("sha256 must be 32 bytes")
        scan = self.checked
        if (
            scan is not None
            and scan.conclusive
            and scan.content_type == self.content_type
            and scan.size == self.source.size
        ):
            fault = described_fault(self.name, self.content_type, self.source.size)
            fault = fault or scan.fault()
        else:
            fault = _attachment_fault(self.name, self.content_type, self.source)
        if fault is not None:
            raise ValueError(f"attachment: {fault[1]} [{fault[0]}]")

    @classmethod
    def create(
        cls,
        name: str,
        content_type: str,
        source: Source,
        sha256: bytes,
        checked: ContentScan | None = None,
    ) -> AttachmentFile:
        """Return an attachment with ``name`` sanitised; other checks as the constructor."""
        return cls(sanitise_file_name(name), content_type, source, sha256, checked)

    @property
    def size(self) -> int:
        """Return the number of bytes of the document."""
        return self.source.size

    def manifest_fields(self) -> dict[str, object]:
        """Return the manifest fields this attachment must be described by in its record."""
        return {"content_type": self.content_type, "size": self.size, "sha256": self.sha256.hex()}

    def pieces(self) -> Iterator[bytes]:
        """Yield the document's bytes, :data:`FILE_PIECE` at a time."""
        for at in range(0, self.size, FILE_PIECE):
            piece = self.source.read_at(at, min(FILE_PIECE, self.size - at))
            if not piece:
                raise ValueError("attachment: the file ended before its size [attachment.size]")
            yield piece


@dataclass(frozen=True, slots=True)
class Container:
    """A decoded container: the validated record and its attachments, in manifest order."""

    record: Record
    attachments: tuple[Attachment, ...]


def manifest_fault(record: Record, attachments: Sequence[Described]) -> tuple[str, str] | None:
    """Return (rule, message) if the record's manifest does not describe ``attachments``."""
    spec = kind_spec(record.kind)
    if spec.manifest is None:
        if attachments:
            return "attachment.count", f"a {record.kind} record carries no attachments"
        return None
    entries = record.data.get(spec.manifest, [])
    if len(entries) != len(attachments):
        return (
            "manifest.count",
            (
                f"{spec.manifest} lists {len(entries)} document(s) but the container carries "
                f"{len(attachments)}"
            ),
        )
    for index, (entry, attachment) in enumerate(zip(entries, attachments, strict=True)):
        if (
            not hmac.compare_digest(entry["sha256"], attachment.sha256.hex())
            or entry["size"] != attachment.size
            or entry["content_type"] != attachment.content_type
        ):
            return (
                "manifest.entry",
                (
                    f"{spec.manifest}[{index}] does not describe attachment {index} "
                    "(digest, size and content type must match)"
                ),
            )
    return None


def names_fault(attachments: Sequence[Described]) -> int | None:
    """Return the index of the first attachment whose name repeats an earlier one's."""
    seen: set[str] = set()
    for index, attachment in enumerate(attachments):
        key = attachment.name.casefold()
        if key in seen:
            return index
        seen.add(key)
    return None


def encode_container(record: Record, attachments: Sequence[Attachment] = ()) -> bytes:
    """Return the container bytes of ``record`` and its ``attachments`` (docs/records.md §4).

    The record is written as compact JSON with sorted keys. Raises ``ValueError`` (naming
    the rule) for anything :func:`decode_container` would refuse.
    """
    attachments = tuple(attachments)
    if not all(isinstance(a, Attachment) for a in attachments):
        raise TypeError("attachments must be Attachment values")
    parts = [container_head(record, attachments)]
    for attachment in attachments:
        parts += [attachment_head(attachment), attachment.data]
    return b"".join(parts)


def container_head(record: Record, attachments: Sequence[Described]) -> bytes:
    """Return the container's bytes up to its first attachment, checking it all first.

    The container is the head, then each attachment's :func:`attachment_head` followed by
    its bytes, so a container with files of any size can be written a piece at a time
    with the same bytes :func:`encode_container` returns. Raises ``ValueError`` (naming the
    rule) for anything :func:`decode_container` would refuse.
    """
    if not isinstance(record, Record):
        raise TypeError("record must be a Record")
    spec = kind_spec(record.kind)
    document = json.dumps(
        record.data, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")
    if len(document) > spec.max_document:
        raise ValueError("record is larger than its kind allows [record.size]")
    limit = MAX_ATTACHMENTS if spec.manifest else 0
    if len(attachments) > limit:
        raise ValueError(
            f"attachments: a {record.kind} record carries at most {limit} [attachment.count]"
        )
    if sum(a.size for a in attachments) > spec.max_attachments_total:
        raise ValueError("attachments are larger in total than the kind allows [attachment.total]")
    if names_fault(attachments) is not None:
        raise ValueError(
            "attachments: two file names differ only in case [attachment.name-duplicate]"
        )
    fault = manifest_fault(record, attachments)
    if fault is not None:
        raise ValueError(f"record and attachments disagree: {fault[1]} [{fault[0]}]")
    kind = record.kind.encode("ascii")
    return b"".join(
        [
            L_CONTAINER,
            _U8.pack(CONTAINER_VERSION),
            _U8.pack(len(kind)),
            kind,
            _U32.pack(len(document)),
            document,
            _U8.pack(len(attachments)),
        ]
    )


def attachment_head(attachment: Described) -> bytes:
    """Return what the container holds of ``attachment`` before its bytes."""
    name = attachment.name.encode("utf-8")
    content_type = attachment.content_type.encode("ascii")
    return b"".join(
        [
            _U16.pack(len(name)),
            name,
            _U8.pack(len(content_type)),
            content_type,
            _U32.pack(attachment.size),
            attachment.sha256,
        ]
    )


class _Reader:
    """Reads fields from the container, raising ContainerError at the offset it stops."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, count: int, what: str) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise ContainerError(
                "container.truncated", self.offset, f"the {what} runs past the end"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def number(self, form: struct.Struct, what: str) -> int:
        value: int = form.unpack(self.take(form.size, what))[0]
        return value


def decode_container(data: bytes) -> Container:
    """Decode and check container bytes; raise :class:`ContainerError` or a record error.

    A record that breaks its schema raises
    :class:`~exchange.records.errors.RecordValidationError` (also a ``RecordError``).
    """
    if not isinstance(data, bytes):
        raise TypeError("data must be bytes")
    if len(data) > MAX_CONTAINER_LEN:
        raise ContainerError(
            "container.length", 0, f"the container exceeds {MAX_CONTAINER_LEN} bytes"
        )
    reader = _Reader(data)
    if reader.take(len(L_CONTAINER), "label") != L_CONTAINER:
        raise ContainerError("container.label", 0, "the bytes are not a record container")
    if reader.number(_U8, "version") != CONTAINER_VERSION:
        raise ContainerError(
            "container.version", reader.offset - 1, "the container version is not supported"
        )
    kind_at = reader.offset
    kind_raw = reader.take(reader.number(_U8, "kind length"), "kind")
    kind = kind_raw.decode("ascii", errors="replace")
    spec = KINDS.get(kind)
    if spec is None:
        raise ContainerError("container.kind", kind_at, "the record kind is not known")
    if len(data) > max_container_len(kind):
        raise ContainerError(
            "container.length", 0, f"the container exceeds the limit for a {kind} record"
        )
    size_at = reader.offset
    document_len = reader.number(_U32, "record length")
    if document_len > spec.max_document:
        raise ContainerError(
            "record.size", size_at, f"the record exceeds {spec.max_document} bytes"
        )
    record = validate_record(kind, reader.take(document_len, "record"))
    count_at = reader.offset
    count = reader.number(_U8, "attachment count")
    limit = MAX_ATTACHMENTS if spec.manifest else 0
    if count > limit:
        raise ContainerError(
            "attachment.count", count_at, f"a {kind} record carries at most {limit} attachments"
        )
    attachments: list[Attachment] = []
    total = 0
    for index in range(count):
        attachments.append(_read_attachment(reader, index, spec.max_attachments_total - total))
        total += attachments[-1].size
        duplicate = names_fault(attachments)
        if duplicate is not None:
            raise ContainerError(
                "attachment.name-duplicate",
                reader.offset,
                f"attachment {index}'s file name repeats an earlier one",
            )
    if reader.offset != len(data):
        raise ContainerError(
            "container.trailing", reader.offset, "bytes follow the last attachment"
        )
    fault = manifest_fault(record, attachments)
    if fault is not None:
        raise ContainerError(fault[0], count_at, fault[1])
    return Container(record=record, attachments=tuple(attachments))


def _read_attachment(reader: _Reader, index: int, budget: int) -> Attachment:
    """Read attachment ``index``; ``budget`` is how many bytes the kind's total still allows."""
    start = reader.offset
    raw_name = reader.take(reader.number(_U16, "file name length"), "file name")
    type_at = reader.offset
    raw_type = reader.take(reader.number(_U8, "content type length"), "content type")
    size_at = reader.offset
    size = reader.number(_U32, "size")
    if not 0 < size <= MAX_ATTACHMENT_SIZE:
        # Checked on the declared size, before a byte of the data is read.
        raise ContainerError(
            "attachment.size",
            size_at,
            f"attachment {index}: the size must be 1 to {MAX_ATTACHMENT_SIZE} bytes",
        )
    if size > budget:
        raise ContainerError(
            "attachment.total", size_at, f"attachment {index} exceeds the kind's total size"
        )
    digest = reader.take(_SHA256_LEN, "digest")
    body_at = reader.offset
    body = reader.take(size, "attachment")
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise ContainerError(
            "attachment.name", start, f"attachment {index}'s file name is not UTF-8"
        ) from None
    content_type = raw_type.decode("ascii", errors="replace")
    fault = _attachment_fault(name, content_type, BytesSource(body))
    if fault is not None:
        rule, message = fault
        at = {"attachment.content-type": type_at, "attachment.size": size_at}.get(rule, start)
        at = body_at if rule in CONTENT_RULES else at
        raise ContainerError(rule, at, f"attachment {index}: {message}")
    attachment = Attachment(name, content_type, body)
    if not hmac.compare_digest(attachment.sha256, digest):
        raise ContainerError(
            "attachment.digest", body_at, f"attachment {index}'s SHA-256 does not match"
        )
    return attachment
