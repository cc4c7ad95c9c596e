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

The checks read the content through a :class:`Source` (its size and the bytes at an
offset), so a file of a gigabyte is checked a piece at a time: :func:`content_fault` takes
bytes, :func:`source_fault` any source (a spooled upload, an opened envelope's plaintext),
with the same rules.

Pure: bytes in, a rule and a sentence out. Messages never quote the content.
"""

from __future__ import annotations

import codecs
import io
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

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


class Source(Protocol):
    """Content read at offsets: a file's or a stream's bytes, never needed whole."""

    @property
    def size(self) -> int:
        """The number of bytes of content."""
        ...

    def read_at(self, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset`` (fewer only at the end)."""
        ...


class BytesSource:
    """Content held in memory, as a :class:`Source`."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    @property
    def size(self) -> int:
        """The number of bytes of content."""
        return len(self.data)

    def read_at(self, offset: int, count: int) -> bytes:
        """Return up to ``count`` bytes from ``offset``."""
        return self.data[offset : offset + count]


class SourceFile(io.RawIOBase):
    """A :class:`Source` as a read-only, seekable file (what :mod:`zipfile` reads)."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self._source = source
        self._position = 0

    def readable(self) -> bool:
        """Return True: the file is read."""
        return True

    def seekable(self) -> bool:
        """Return True: the file can be read at any offset."""
        return True

    def tell(self) -> int:
        """Return the offset of the next read."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the current offset or the end."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._source.size}
        self._position = max(0, base[whence] + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer`` from the current offset; return how many bytes were read."""
        data = self._source.read_at(self._position, len(buffer))
        memoryview(buffer)[: len(data)] = data
        self._position += len(data)
        return len(data)


# --- ZIP-based office documents ------------------------------------------------------------


def _check_layout(source: Source, archive: zipfile.ZipFile) -> None:
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
        header = source.read_at(position, _LOCAL_HEADER.size)
        if header[:4] != _LOCAL or len(header) < _LOCAL_HEADER.size:
            raise _RefusedError("attachment.zip-structure", "an entry's local header is missing")
        fields = _LOCAL_HEADER.unpack(header)
        name_len, extra_len = fields[9], fields[10]
        position += _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows: CRC and sizes, maybe signed
            position += 16 if source.read_at(position, 4) == b"PK\x07\x08" else 12
    if position != archive.start_dir:
        raise _RefusedError(
            "attachment.zip-overlap",
            "the archive's entries overlap or leave bytes before the central directory",
        )


def _walk(source: Source, limits: ContentLimits, budget: list[int], depth: int) -> list[str]:
    """Check one archive (and the archives in it); return its entry names in order."""
    if depth > limits.max_nesting:
        raise _RefusedError(
            "attachment.zip-nested", f"archives are nested more than {limits.max_nesting} deep"
        )
    try:
        archive = zipfile.ZipFile(io.BufferedReader(SourceFile(source), _PIECE))
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
        _check_layout(source, archive)
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
        _walk(BytesSource(b"".join(nested)), limits, budget, depth + 1)


def _office_fault(
    source: Source,
    limits: ContentLimits,
    accept: Callable[[Source, list[str]], bool],
    what: str,
) -> Fault:
    if source.read_at(0, len(_LOCAL)) != _LOCAL:
        return "attachment.magic", f"the content does not look like {what}"
    try:
        names = _walk(source, limits, [limits.budget(source.size)], 1)
    except _RefusedError as refused:
        return refused.fault
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, RuntimeError, OSError):
        return "attachment.zip-structure", "the archive is damaged"
    if not accept(source, names):
        return "attachment.magic", f"the content does not look like {what}"
    if what == DOCX and _MACRO_ENTRIES & set(names):
        return "attachment.macro", "the document holds macros (a .docm is not accepted)"
    return None


def _is_docx(_: Source, names: list[str]) -> bool:
    return "[Content_Types].xml" in names and any(n.startswith("word/") for n in names)


def _is_odt(source: Source, names: list[str]) -> bool:
    # OpenDocument 1.2 Part 3 §3.3: the first entry is "mimetype", stored uncompressed
    # without an extra field, so its content sits at a fixed offset.
    mimetype = ODT.encode("ascii")
    data = source.read_at(0, 38 + len(mimetype))
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


# --- checks made as the bytes stream past ------------------------------------------------------

#: Bytes read at a time from a source for the checks that read it all.
_SCAN: Final = 1024 * 1024
#: How far past its ``MZ`` a Windows program's header may point (to ``PE\0\0``), so how many
#: bytes a position needs after it before it can be judged.
_PE_REACH: Final = 0x1000 + 4
#: ``MZ``, searched with a regular expression: three times as fast as ``bytes.find`` for a
#: two-byte needle on CPython 3.11.
_MZ: Final = re.compile(b"MZ")
#: The end a ZIP reader searches for its end record: the record and the longest comment.
_ZIP_TAIL: Final = _END_RECORD_LEN + 0xFFFF
#: Leading bytes of the binary types. Text that starts like one of them is refused, so a
#: PDF or an archive cannot be passed off as a plain note and opened by the wrong viewer.
_BINARY_MAGICS: Final = (b"%PDF-", b"\x89PNG", b"\xff\xd8\xff", _LOCAL)


class _Stream:
    """What the PDF, JPEG, text and polyglot rules need, gathered as the bytes pass.

    The first KiB, the last 64 KiB (where a ZIP end record would be), whether a Windows
    program was found (each ``MZ`` judged once the bytes its header may point to have
    passed), the last two bytes before any trailing NULs (a JPEG's EOI) and, for text,
    whether the bytes decode as UTF-8 without control characters. Nothing else is kept.
    """

    def __init__(self, text: bool) -> None:
        self.size = 0
        self.head = b""
        self.tail = b""
        self.program = False
        self.last_two = b""
        self._zeros = 0
        self._carry = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")() if text else None
        self.plain = text

    def feed(self, piece: bytes) -> None:
        if not piece:
            return
        if len(self.head) < _SNIFF_LEN:
            self.head += piece[: _SNIFF_LEN - len(self.head)]
        tail = piece[-_ZIP_TAIL:]
        self.tail = (self.tail + tail)[-_ZIP_TAIL:] if len(tail) < _ZIP_TAIL else tail
        kept = piece.rstrip(b"\x00")
        if kept:
            self.last_two = (self.last_two + b"\x00" * min(self._zeros, 2) + kept[-2:])[-2:]
            self._zeros = len(piece) - len(kept)
        else:
            self._zeros += len(piece)
        self.size += len(piece)
        self._search(piece, final=False)
        if self._decoder is not None and self.plain:
            try:
                self.plain = _is_plain(self._decoder.decode(piece))
            except UnicodeDecodeError:
                self.plain = False

    def finish(self) -> None:
        self._search(b"", final=True)
        if self._decoder is not None and self.plain:
            try:
                self.plain = _is_plain(self._decoder.decode(b"", final=True))
            except UnicodeDecodeError:
                self.plain = False

    def _search(self, piece: bytes, *, final: bool) -> None:
        """Judge each ``MZ`` whose possible header has passed (all of them at the end)."""
        if self.program:
            return
        window = self._carry + piece
        end = len(window) if final else len(window) - _PE_REACH
        if end <= 0 and not final:
            self._carry = window
            return
        for found in _MZ.finditer(window, 0, end + 1 if not final else end):
            at = found.start()
            if at + 0x40 <= len(window):
                (pe_at,) = struct.unpack_from("<I", window, at + 0x3C)
                if 0x40 <= pe_at <= 0x1000 and window[at + pe_at : at + pe_at + 4] == b"PE\x00\x00":
                    self.program = True
                    return
        self._carry = window[end:]

    def ends_as_zip(self) -> bool:
        """Whether a ZIP reader would find an end record that ends exactly where the bytes do."""
        data = self.tail
        at = data.rfind(_END)
        while at >= 0:
            if at + _END_RECORD_LEN <= len(data):
                (comment_len,) = struct.unpack_from("<H", data, at + 20)
                if at + _END_RECORD_LEN + comment_len == len(data):
                    return True
            at = data.rfind(_END, 0, at)
        return False


def _is_plain(text: str) -> bool:
    return not any(ch not in "\t\n\r\f" and unicodedata.category(ch) == "Cc" for ch in text)


def _polyglot_verdict(seen: _Stream) -> Fault:
    head = seen.head.lower()
    if any(mark in head for mark in _HTML_MARKS):
        return "attachment.polyglot", "the file holds HTML or script in its first KiB"
    if seen.ends_as_zip():
        return "attachment.polyglot", "the file is also a ZIP archive (an end record at its end)"
    if seen.program:
        return "attachment.polyglot", "the file holds a Windows program"
    return None


def _pdf_verdict(seen: _Stream) -> Fault:
    if not seen.head.startswith(b"%PDF-"):
        return "attachment.magic", f"the content does not look like {PDF}"
    tail = seen.tail[-_SNIFF_LEN:]
    end = tail.rfind(b"%%EOF")
    if end < 0 or tail[end + 5 :].strip(_PDF_TAIL):
        return "attachment.pdf-eof", "a PDF must end with %%EOF (within its last KiB)"
    return _polyglot_verdict(seen)


def _jpeg_verdict(seen: _Stream) -> Fault:
    if not seen.head.startswith(b"\xff\xd8\xff"):
        return "attachment.magic", f"the content does not look like {JPEG}"
    if seen.last_two != b"\xff\xd9":
        return "attachment.jpeg-structure", "a JPEG must end with its EOI marker (FF D9)"
    return _polyglot_verdict(seen)


def _text_verdict(seen: _Stream) -> Fault:
    if seen.size == 0 or seen.head.startswith(_BINARY_MAGICS) or not seen.plain:
        return "attachment.magic", f"the content does not look like {TEXT}"
    return None


#: The types whose rules are judged from a stream, and how.
_STREAMED: Final[dict[str, Callable[[_Stream], Fault]]] = {
    PDF: _pdf_verdict,
    JPEG: _jpeg_verdict,
    TEXT: _text_verdict,
}


class ContentScan:
    """The content rules of a PDF, a JPEG or a text file, checked as its bytes stream past.

    Feed every piece in order, then :meth:`fault` gives what :func:`content_fault` gives for
    the same bytes. For the other types (PNG, DOCX, ODT) the rules need the bytes at any
    offset: :attr:`conclusive` is False, and the caller checks through a :class:`Source`.
    A spooled upload and an opened envelope are checked this way as they are read, without
    a second pass.
    """

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        self._verdict = _STREAMED.get(content_type)
        self._seen = _Stream(text=content_type == TEXT) if self._verdict else None
        self._finished = False

    @property
    def conclusive(self) -> bool:
        """Whether the stream alone decides this type's rules."""
        return self._verdict is not None

    @property
    def size(self) -> int:
        """The number of bytes fed so far."""
        return 0 if self._seen is None else self._seen.size

    def feed(self, piece: bytes) -> None:
        """Add the next piece of the content."""
        if self._seen is not None:
            self._seen.feed(piece)

    def fault(self) -> Fault:
        """Return (rule, sentence) for the first rule the content breaks, or None."""
        if self._verdict is None or self._seen is None:
            raise ValueError("the content type is checked through a source, not a stream")
        if not self._finished:
            self._seen.finish()
            self._finished = True
        return self._verdict(self._seen)


def _streamed(source: Source, verdict: Callable[[_Stream], Fault], *, text: bool = False) -> Fault:
    """Judge ``source`` by reading it through once, as :class:`ContentScan` does."""
    seen = _Stream(text=text)
    for at in range(0, source.size, _SCAN):
        seen.feed(source.read_at(at, _SCAN))
    seen.finish()
    return verdict(seen)


# --- PNG, read at offsets ---------------------------------------------------------------------

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_CHUNK: Final = struct.Struct(">I4s")


def _crc32(source: Source, start: int, end: int) -> int:
    """Return the CRC-32 of the content from ``start`` to ``end``, read in pieces."""
    crc = 0
    for at in range(start, end, _SCAN):
        crc = zlib.crc32(source.read_at(at, min(_SCAN, end - at)), crc)
    return crc


def _png_chunks_fault(source: Source) -> Fault:
    """Walk the chunks from ``IHDR`` to ``IEND``, checking each CRC; nothing may follow."""
    size = source.size
    position, first = len(_PNG_SIGNATURE), True
    while True:
        if position + _CHUNK.size + 4 > size:
            return "attachment.png-structure", f"a PNG chunk at offset {position} runs past the end"
        length, kind = _CHUNK.unpack(source.read_at(position, _CHUNK.size))
        body_end = position + _CHUNK.size + length
        (crc,) = struct.unpack(">I", source.read_at(min(body_end, size - 4), 4))
        if (
            length > 0x7FFFFFFF
            or body_end + 4 > size
            or not kind.isalpha()
            or _crc32(source, position + 4, body_end) != crc
        ):
            return "attachment.png-structure", f"the PNG chunk at offset {position} is malformed"
        if first and (kind != b"IHDR" or length != 13):
            return "attachment.png-structure", "a PNG must start with its IHDR chunk"
        first = False
        position = body_end + 4
        if kind == b"IEND":
            break
    if position != size:
        return "attachment.png-structure", "bytes follow the PNG's IEND chunk"
    return None


def _png_fault(source: Source, _: ContentLimits) -> Fault:
    if source.read_at(0, len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
        return "attachment.magic", f"the content does not look like {PNG}"
    return _png_chunks_fault(source) or _streamed(source, _polyglot_verdict)


_CHECKS: Final[dict[str, Callable[[Source, ContentLimits], Fault]]] = {
    PDF: lambda source, _: _streamed(source, _pdf_verdict),
    PNG: _png_fault,
    JPEG: lambda source, _: _streamed(source, _jpeg_verdict),
    DOCX: lambda source, limits: _office_fault(source, limits, _is_docx, DOCX),
    ODT: lambda source, limits: _office_fault(source, limits, _is_odt, ODT),
    TEXT: lambda source, _: _streamed(source, _text_verdict, text=True),
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
    return source_fault(content_type, BytesSource(data), limits)


def source_fault(
    content_type: str, source: Source, limits: ContentLimits = DEFAULT_LIMITS
) -> tuple[str, str] | None:
    """Return what :func:`content_fault` returns, for content read through ``source``.

    The content is read a piece at a time (at most about a megabyte at once, and an office
    document's entries as :mod:`zipfile` reads them), never whole.
    """
    check = _CHECKS.get(content_type)
    if check is None:
        return "attachment.magic", "the content type is not one that can be checked"
    return check(source, limits)
