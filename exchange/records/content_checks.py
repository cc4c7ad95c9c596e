"""What an attachment's bytes are: each allowed type checked past its first bytes.

A document that travels with a record is opened by the receiving DSL's own programs, so a
file that only *starts* like a PDF is not enough. :func:`content_fault` reads each type's
whole structure, cheaply, and names the rule the first problem breaks:

* **office documents** (DOCX, ODT) are ZIP archives. The archive is opened with
  :mod:`zipfile` over the bytes and every entry is unpacked in pieces and counted, so a
  zip bomb costs at most :attr:`ContentLimits.max_unpacked` bytes of work and little
  memory. Refused: more entries than :attr:`ContentLimits.max_entries`
  (``attachment.zip-entries``), more unpacked bytes than the limits allow, declared or
  found (``attachment.zip-bomb``), entries whose data overlap or leave gaps that hide
  another file (``attachment.zip-overlap``), encrypted entries
  (``attachment.zip-encrypted``), compression other than stored or deflate and archives
  nested deeper than :attr:`ContentLimits.max_nesting` (``attachment.zip-method``,
  ``attachment.zip-nested``), an entry whose CRC or size is wrong
  (``attachment.zip-structure``), and a DOCX with Word macros (``attachment.macro``). A
  DOCX must hold ``[Content_Types].xml`` and ``word/``; an ODT's first entry is its
  uncompressed ``mimetype`` (``attachment.magic`` otherwise);
* **PDF** starts ``%PDF-`` and ends with ``%%EOF`` within its last KiB
  (``attachment.pdf-eof``);
* **PNG** is walked chunk by chunk from ``IHDR`` to ``IEND`` with every CRC checked, and
  nothing may follow ``IEND`` (``attachment.png-structure``);
* **JPEG** starts with SOI and ends with EOI, ``FF D9`` (``attachment.jpeg-structure``);
* **polyglots**: a PDF or an image that another program would also read as something
  dangerous is refused (``attachment.polyglot``): a ZIP archive's end record at the end of
  the file, HTML or script within the first KiB, or a Windows program inside it.

Pure: bytes in, a rule and a sentence out. Messages never quote the content.
"""

from __future__ import annotations

import io
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

PDF: Final = "application/pdf"
PNG: Final = "image/png"
JPEG: Final = "image/jpeg"
DOCX: Final = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT: Final = "application/vnd.oasis.opendocument.text"
TEXT: Final = "text/plain"

MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class ContentLimits:
    """How much an office document may unpack to, and how it may be built.

    An archive may unpack to at most ``max_ratio`` times its own size and never more than
    ``max_unpacked`` bytes (nested archives count against the same budget); it may hold at
    most ``max_entries`` entries and nest archives ``max_nesting`` deep (a DOCX with an
    embedded chart holds a workbook, which is itself a ZIP: depth 2).
    """

    max_ratio: int = 100
    max_unpacked: int = 256 * MIB
    max_entries: int = 5000
    max_nesting: int = 2

    def budget(self, size: int) -> int:
        """Return how many unpacked bytes an archive of ``size`` bytes may produce."""
        return min(self.max_unpacked, self.max_ratio * size)


DEFAULT_LIMITS: Final = ContentLimits()

#: A rule and its sentence, or None for content that passes.
Fault = tuple[str, str] | None

_LOCAL: Final = b"PK\x03\x04"
_END: Final = b"PK\x05\x06"
_LOCAL_HEADER: Final = struct.Struct("<4sHHHHHIIIHH")
_END_RECORD_LEN: Final = 22
_PIECE: Final = 64 * 1024
#: Largest archive inside an archive that is read into memory to be checked in turn.
_MAX_NESTED: Final = 32 * MIB
#: Bytes at the start of a PDF or an image in which a browser would find HTML.
_SNIFF_LEN: Final = 1024
_HTML_MARKS: Final = (b"<html", b"<script", b"<!doctype html", b"<body", b"<iframe", b"<svg")
#: Bytes after ``%%EOF`` a PDF writer may leave: line ends, spaces, NUL padding.
_PDF_TAIL: Final = b"\r\n\t \x00"
_MACRO_ENTRIES: Final = frozenset({"word/vbaProject.bin", "word/vbaData.xml"})


class _RefusedError(Exception):
    """Carries a fault out of the archive walk."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.fault = (rule, message)


# --- ZIP-based office documents ------------------------------------------------------------


def _check_layout(data: bytes, archive: zipfile.ZipFile) -> None:
    """Refuse entries whose data overlap, or a gap or a prefix that could hide another file.

    Each entry's local header and data must follow the previous one's exactly, the first at
    offset 0, and the central directory must follow the last: a second central directory
    entry pointing into the same bytes is the overlapping zip bomb.
    """
    infos = sorted(archive.infolist(), key=lambda i: i.header_offset)
    position = 0
    for info in infos:
        if info.header_offset != position:
            raise _RefusedError(
                "attachment.zip-overlap",
                "the archive's entries overlap or leave bytes between them",
            )
        if data[position : position + 4] != _LOCAL or position + _LOCAL_HEADER.size > len(data):
            raise _RefusedError("attachment.zip-structure", "an entry's local header is missing")
        fields = _LOCAL_HEADER.unpack_from(data, position)
        name_len, extra_len = fields[9], fields[10]
        position += _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows: CRC and sizes, maybe signed
            position += 16 if data[position : position + 4] == b"PK\x07\x08" else 12
    if position != archive.start_dir:
        raise _RefusedError(
            "attachment.zip-overlap",
            "the archive's entries overlap or leave bytes before the central directory",
        )


def _walk(data: bytes, limits: ContentLimits, budget: list[int], depth: int) -> list[str]:
    """Check one archive (and the archives in it); return its entry names in order."""
    if depth > limits.max_nesting:
        raise _RefusedError(
            "attachment.zip-nested", f"archives are nested more than {limits.max_nesting} deep"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise _RefusedError("attachment.magic", "the content is not a ZIP archive") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise _RefusedError(
                "attachment.zip-entries",
                f"the archive holds more than {limits.max_entries} entries",
            )
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise _RefusedError(
                "attachment.zip-structure", "two entries of the archive have one name"
            )
        for info in infos:
            if info.flag_bits & 0x01:
                raise _RefusedError(
                    "attachment.zip-encrypted", "an entry of the archive is encrypted"
                )
            if info.compress_type not in {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}:
                raise _RefusedError(
                    "attachment.zip-method", "an entry is compressed other than by deflate"
                )
        _check_layout(data, archive)
        if sum(i.file_size for i in infos) > budget[0]:
            raise _RefusedError("attachment.zip-bomb", _bomb(limits))
        for info in infos:
            _unpack(archive, info, limits, budget, depth)
    return names


def _bomb(limits: ContentLimits) -> str:
    return (
        f"the archive unpacks to more than {limits.max_ratio} times its size or "
        f"{limits.max_unpacked // MIB} MiB"
    )


def _unpack(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limits: ContentLimits,
    budget: list[int],
    depth: int,
) -> None:
    """Unpack one entry in pieces, counting against ``budget``; check archives inside it."""
    nested: list[bytes] | None = None
    try:
        with archive.open(info) as entry:
            while piece := entry.read(_PIECE):
                budget[0] -= len(piece)
                if budget[0] < 0:
                    raise _RefusedError("attachment.zip-bomb", _bomb(limits))
                if nested is None:
                    nested = [piece] if piece.startswith(_LOCAL) else []
                elif nested:
                    nested.append(piece)
                    if len(nested) * _PIECE > _MAX_NESTED:
                        raise _RefusedError(
                            "attachment.zip-nested",
                            "an archive inside the archive is larger than "
                            f"{_MAX_NESTED // MIB} MiB",
                        )
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, RuntimeError):
        raise _RefusedError(
            "attachment.zip-structure", "an entry of the archive is damaged (CRC or size)"
        ) from None
    if nested:
        _walk(b"".join(nested), limits, budget, depth + 1)


def _office_fault(
    data: bytes, limits: ContentLimits, accept: Callable[[bytes, list[str]], bool], what: str
) -> Fault:
    if not data.startswith(_LOCAL):
        return "attachment.magic", f"the content does not look like {what}"
    try:
        names = _walk(data, limits, [limits.budget(len(data))], 1)
    except _RefusedError as refused:
        return refused.fault
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, RuntimeError, OSError):
        return "attachment.zip-structure", "the archive is damaged"
    if not accept(data, names):
        return "attachment.magic", f"the content does not look like {what}"
    if what == DOCX and _MACRO_ENTRIES & set(names):
        return "attachment.macro", "the document holds macros (a .docm is not accepted)"
    return None


def _is_docx(_: bytes, names: list[str]) -> bool:
    return "[Content_Types].xml" in names and any(n.startswith("word/") for n in names)


def _is_odt(data: bytes, names: list[str]) -> bool:
    # OpenDocument 1.2 Part 3 §3.3: the first entry is "mimetype", stored uncompressed
    # without an extra field, so its content sits at a fixed offset.
    mimetype = ODT.encode("ascii")
    if not names or names[0] != "mimetype" or len(data) < 38 + len(mimetype):
        return False
    method = struct.unpack_from("<H", data, 8)[0]
    name_len, extra_len = struct.unpack_from("<HH", data, 26)
    return (
        method == 0
        and name_len == 8
        and extra_len == 0
        and data[30:38] == b"mimetype"
        and data[38 : 38 + len(mimetype)] == mimetype
    )


# --- polyglots --------------------------------------------------------------------------------


def _ends_as_zip(data: bytes) -> bool:
    """Whether a ZIP reader would find an end record that ends exactly where ``data`` does."""
    low = max(0, len(data) - _END_RECORD_LEN - 0xFFFF)
    at = data.rfind(_END, low)
    while at >= 0:
        if at + _END_RECORD_LEN <= len(data):
            (comment_len,) = struct.unpack_from("<H", data, at + 20)
            if at + _END_RECORD_LEN + comment_len == len(data):
                return True
        at = data.rfind(_END, low, at)
    return False


def _holds_program(data: bytes) -> bool:
    """Whether ``data`` holds a Windows program: ``MZ`` whose header points to a PE header."""
    at = data.find(b"MZ")
    while at >= 0:
        if at + 0x40 <= len(data):
            (pe_at,) = struct.unpack_from("<I", data, at + 0x3C)
            if 0x40 <= pe_at <= 0x1000 and data[at + pe_at : at + pe_at + 4] == b"PE\x00\x00":
                return True
        at = data.find(b"MZ", at + 1)
    return False


def _polyglot_fault(data: bytes) -> Fault:
    head = data[:_SNIFF_LEN].lower()
    if any(mark in head for mark in _HTML_MARKS):
        return "attachment.polyglot", "the file holds HTML or script in its first KiB"
    if _ends_as_zip(data):
        return "attachment.polyglot", "the file is also a ZIP archive (an end record at its end)"
    if _holds_program(data):
        return "attachment.polyglot", "the file holds a Windows program"
    return None


# --- PDF, PNG, JPEG, text ---------------------------------------------------------------------


def _pdf_fault(data: bytes, _: ContentLimits) -> Fault:
    if not data.startswith(b"%PDF-"):
        return "attachment.magic", f"the content does not look like {PDF}"
    tail = data[-_SNIFF_LEN:]
    end = tail.rfind(b"%%EOF")
    if end < 0 or tail[end + 5 :].strip(_PDF_TAIL):
        return "attachment.pdf-eof", "a PDF must end with %%EOF (within its last KiB)"
    return _polyglot_fault(data)


_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_CHUNK: Final = struct.Struct(">I4s")


def _png_chunks_fault(data: bytes) -> Fault:
    """Walk the chunks from ``IHDR`` to ``IEND``, checking each CRC; nothing may follow."""
    position, first = len(_PNG_SIGNATURE), True
    while True:
        if position + _CHUNK.size + 4 > len(data):
            return "attachment.png-structure", f"a PNG chunk at offset {position} runs past the end"
        length, kind = _CHUNK.unpack_from(data, position)
        body_end = position + _CHUNK.size + length
        (crc,) = struct.unpack_from(">I", data, min(body_end, len(data) - 4))
        if (
            length > 0x7FFFFFFF
            or body_end + 4 > len(data)
            or not kind.isalpha()
            or zlib.crc32(data[position + 4 : body_end]) != crc
        ):
            return "attachment.png-structure", f"the PNG chunk at offset {position} is malformed"
        if first and (kind != b"IHDR" or length != 13):
            return "attachment.png-structure", "a PNG must start with its IHDR chunk"
        first = False
        position = body_end + 4
        if kind == b"IEND":
            break
    if position != len(data):
        return "attachment.png-structure", "bytes follow the PNG's IEND chunk"
    return None


def _png_fault(data: bytes, _: ContentLimits) -> Fault:
    if not data.startswith(_PNG_SIGNATURE):
        return "attachment.magic", f"the content does not look like {PNG}"
    return _png_chunks_fault(data) or _polyglot_fault(data)


def _jpeg_fault(data: bytes, _: ContentLimits) -> Fault:
    if not data.startswith(b"\xff\xd8\xff"):
        return "attachment.magic", f"the content does not look like {JPEG}"
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "attachment.jpeg-structure", "a JPEG must end with its EOI marker (FF D9)"
    return _polyglot_fault(data)


#: Leading bytes of the binary types. Text that starts like one of them is refused, so a
#: PDF or an archive cannot be passed off as a plain note and opened by the wrong viewer.
_BINARY_MAGICS: Final = (b"%PDF-", b"\x89PNG", b"\xff\xd8\xff", _LOCAL)


def _text_fault(data: bytes, _: ContentLimits) -> Fault:
    fault = ("attachment.magic", f"the content does not look like {TEXT}")
    if data.startswith(_BINARY_MAGICS):
        return fault
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return fault
    if not text or any(ch not in "\t\n\r\f" and unicodedata.category(ch) == "Cc" for ch in text):
        return fault
    return None


_CHECKS: Final[dict[str, Callable[[bytes, ContentLimits], Fault]]] = {
    PDF: _pdf_fault,
    PNG: _png_fault,
    JPEG: _jpeg_fault,
    DOCX: lambda data, limits: _office_fault(data, limits, _is_docx, DOCX),
    ODT: lambda data, limits: _office_fault(data, limits, _is_odt, ODT),
    TEXT: _text_fault,
}
#: The rules :func:`content_fault` names (each is about the attachment's bytes).
CONTENT_RULES: Final = frozenset(
    {
        "attachment.magic",
        "attachment.macro",
        "attachment.pdf-eof",
        "attachment.png-structure",
        "attachment.jpeg-structure",
        "attachment.polyglot",
        "attachment.zip-bomb",
        "attachment.zip-entries",
        "attachment.zip-encrypted",
        "attachment.zip-method",
        "attachment.zip-nested",
        "attachment.zip-overlap",
        "attachment.zip-structure",
    }
)


_MAGICS: Final = {
    PDF: b"%PDF-",
    PNG: _PNG_SIGNATURE,
    JPEG: b"\xff\xd8\xff",
    DOCX: _LOCAL,
    ODT: _LOCAL,
}


def starts_like(content_type: str, head: bytes) -> bool:
    """Return whether ``head``, a file's first bytes, starts as ``content_type`` does.

    Only the signature: enough to tell a streamed upload's type, never enough to accept it
    (:func:`content_fault` reads the whole file).
    """
    magic = _MAGICS.get(content_type)
    return magic is not None and head.startswith(magic)


def content_fault(
    content_type: str, data: bytes, limits: ContentLimits = DEFAULT_LIMITS
) -> tuple[str, str] | None:
    """Return (rule, sentence) for the first rule ``data`` breaks as ``content_type``, or None.

    An unknown content type is ``attachment.magic``; the caller checks the allowed list.
    """
    check = _CHECKS.get(content_type)
    if check is None:
        return "attachment.magic", "the content type is not one that can be checked"
    return check(data, limits)
