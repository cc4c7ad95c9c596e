"""Attachment content past the first bytes: zip bombs, damaged archives, polyglots, structure.

Every hostile file is built here, small: a DOCX whose one entry unpacks a thousandfold, one
whose central directory points twice at the same bytes (the overlapping zip bomb), archives
nested in archives, encrypted and macro-carrying documents, PDFs and images that are also a
ZIP archive, HTML or a Windows program. Each is refused with its own rule, in the message.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.records import Attachment, sanitise_file_name
from exchange.records.content_checks import (
    DOCX,
    JPEG,
    ODT,
    PDF,
    PNG,
    ContentLimits,
    content_fault,
)

PDF_DATA = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
JPEG_DATA = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(*extra: bytes) -> bytes:
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    pixels = _chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + b"".join(extra) + _chunk(b"IEND", b"")


def _zip(
    entries: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED, comment: bytes = b""
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, body in entries.items():
            archive.writestr(name, body)
        archive.comment = comment
    return buffer.getvalue()


def _docx(**extra: bytes) -> bytes:
    return _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>", **extra})


def _odt() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", ODT, compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", "<office:document-content/>")
    return buffer.getvalue()


def _rule(content_type: str, data: bytes, limits: ContentLimits | None = None) -> str | None:
    fault = (
        content_fault(content_type, data)
        if limits is None
        else content_fault(content_type, data, limits)
    )
    return None if fault is None else fault[0]


def _refused(content_type: str, data: bytes, rule: str) -> None:
    """Assert the checks and the Attachment refuse the content under ``rule``, by name."""
    assert _rule(content_type, data) == rule
    with pytest.raises(ValueError, match=rf"\[{rule}\]$") as caught:
        Attachment("file.bin", content_type, data)
    assert "unpacks" in str(caught.value) or rule != "attachment.zip-bomb"


# --- what passes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        (PDF, PDF_DATA),
        (PDF, PDF_DATA + b"\r\n\x00\x00"),
        (PNG, _png()),
        (PNG, _png(_chunk(b"tEXt", b"Comment\x00a scanned letter"))),
        (JPEG, JPEG_DATA),
        (DOCX, _docx()),
        (DOCX, _docx(**{"word/embeddings/chart.xlsx": _zip({"xl/workbook.xml": b"<w/>"})})),
        (ODT, _odt()),
    ],
    ids=["pdf", "pdf-padded", "png", "png-text", "jpeg", "docx", "docx-chart", "odt"],
)
def test_well_formed_files_pass(content_type: str, data: bytes) -> None:
    """Ordinary documents, including a DOCX with an embedded workbook, pass every check."""
    assert content_fault(content_type, data) is None


# --- office documents ---------------------------------------------------------------------


def test_a_zip_bomb_docx_is_refused() -> None:
    """4 MiB of zeros squeezed into a few KiB unpacks over 100 times its size: zip-bomb."""
    bomb = _docx(**{"word/document.xml": b"\x00" * (4 * 1024 * 1024)})
    assert len(bomb) < 10_000
    _refused(DOCX, bomb, "attachment.zip-bomb")


def test_the_unpacked_cap_holds_whatever_the_ratio() -> None:
    """The fixed cap refuses an archive the ratio alone would let through."""
    data = _docx(**{"word/media/scan.bin": bytes(range(256)) * 400})
    assert _rule(DOCX, data) is None
    assert _rule(DOCX, data, ContentLimits(max_unpacked=50_000)) == "attachment.zip-bomb"


def test_a_lying_size_is_found_while_unpacking() -> None:
    """An entry whose declared size is smaller than what it unpacks to fails its CRC/size."""
    honest = _docx(**{"word/document.xml": b"<w/>" * 2000})
    info = zipfile.ZipFile(io.BytesIO(honest)).getinfo("word/document.xml")
    directory = struct.unpack_from("<I", honest, honest.rfind(b"PK\x05\x06") + 16)[0]
    data = bytearray(honest)
    # Declare 10 bytes, in the local header and in the central directory.
    struct.pack_into("<I", data, info.header_offset + 22, 10)
    struct.pack_into("<I", data, honest.find(b"word/document.xml", directory) - 46 + 24, 10)
    _refused(DOCX, bytes(data), "attachment.zip-structure")


def _overlapping(copies: int) -> bytes:
    """Return a DOCX whose central directory lists its document ``copies`` extra times.

    Every copy points at the same local header and data: readers unpack the same bytes
    again and again, the overlapping construction of the non-recursive zip bomb.
    """
    data = _docx(**{"word/document.xml": b"\x00" * 50_000})
    end = data.rfind(b"PK\x05\x06")
    (cd_size, cd_offset) = struct.unpack_from("<II", data, end + 12)
    directory = data[cd_offset : cd_offset + cd_size]
    at = directory.find(b"word/document.xml") - 46
    record = directory[at : at + 46 + len("word/document.xml")]
    extra = b"".join(record[:-3] + f"{i:03d}".encode() for i in range(copies))
    count = struct.unpack_from("<H", data, end + 10)[0] + copies
    tail = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size + len(extra),
                       cd_offset, 0)  # fmt: skip
    return data[:cd_offset] + directory + extra + tail


def test_overlapping_entries_are_refused() -> None:
    """Entries that share their bytes are refused before anything is unpacked twice."""
    assert _rule(DOCX, _overlapping(30)) == "attachment.zip-overlap"
    _refused(DOCX, _overlapping(1), "attachment.zip-overlap")


def test_bytes_hidden_before_or_between_entries_are_refused() -> None:
    """Bytes that no entry accounts for (room for a second file) break zip-overlap."""
    data = _docx()
    offset = struct.unpack_from("<I", data, data.rfind(b"PK\x05\x06") + 16)[0]
    hidden = data[:offset] + b"MZ hidden program" + data[offset:]
    end = hidden.rfind(b"PK\x05\x06")
    patched = bytearray(hidden)
    struct.pack_into("<I", patched, end + 16, offset + len(b"MZ hidden program"))
    assert _rule(DOCX, bytes(patched)) == "attachment.zip-overlap"


def test_nested_archives_count_against_one_budget() -> None:
    """A bomb inside a stored archive inside the DOCX is found and refused as a zip bomb."""
    inner = _zip({"zeros.bin": b"\x00" * (4 * 1024 * 1024)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w/>")
        archive.writestr("word/embeddings/object.zip", inner)
    _refused(DOCX, buffer.getvalue(), "attachment.zip-bomb")


def test_archives_nested_too_deep_are_refused() -> None:
    """An archive inside an archive inside the DOCX is one level too deep."""
    deepest = _zip({"a.txt": b"a"})
    middle = _zip({"inner.zip": deepest}, method=zipfile.ZIP_STORED)
    _refused(DOCX, _docx(**{"word/embeddings/o.zip": middle}), "attachment.zip-nested")


def test_an_encrypted_entry_is_refused() -> None:
    """The encryption flag on an entry (local header and directory) breaks zip-encrypted."""
    data = bytearray(_docx())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at >= 0:
            struct.pack_into("<H", data, at + flag_at, data[at + flag_at] | 0x01)
            at = data.find(signature, at + 4)
    _refused(DOCX, bytes(data), "attachment.zip-encrypted")


def test_other_compression_and_macros_and_entry_counts() -> None:
    """bzip2 entries, Word macros and too many entries are each refused by their rule."""
    assert _rule(DOCX, _docx_with(zipfile.ZIP_BZIP2)) == "attachment.zip-method"
    _refused(DOCX, _docx(**{"word/vbaProject.bin": b"macro"}), "attachment.macro")
    many = _docx(**{f"word/part{i}.xml": b"<p/>" for i in range(20)})
    assert _rule(DOCX, many) is None
    assert _rule(DOCX, many, ContentLimits(max_entries=10)) == "attachment.zip-entries"


def _docx_with(method: int) -> bytes:
    return _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}, method=method)


def test_an_archive_that_is_not_the_declared_office_format_is_refused() -> None:
    """An ODT is not a DOCX and a DOCX is not an ODT: attachment.magic, as before."""
    assert _rule(DOCX, _odt()) == "attachment.magic"
    assert _rule(ODT, _docx()) == "attachment.magic"
    assert _rule(DOCX, b"PK\x03\x04 not really a zip") == "attachment.magic"


# --- PDF, images and polyglots ------------------------------------------------------------


_NO_IHDR = b"\x89PNG\r\n\x1a\n" + _chunk(b"IDAT", b"x") + _chunk(b"IEND", b"")
_PROGRAM = b"MZ" + b"\x00" * 0x3A + struct.pack("<I", 0x80) + b"\x00" * 0x40 + b"PE\x00\x00"


@pytest.mark.parametrize(
    ("content_type", "data", "rule"),
    [
        (PDF, b"%PDF-1.7\n% no end marker\n", "attachment.pdf-eof"),
        (PDF, PDF_DATA + b"trailing words", "attachment.pdf-eof"),
        (PDF, PDF_DATA + b"\x00" * 2000 + b"x", "attachment.pdf-eof"),
        (PDF, _zip({"a.html": b"<html>"}, comment=b"\n%%EOF\n"), "attachment.magic"),
        (PDF, PDF_DATA[:-6] + _zip({"x.js": b"x"}, comment=b"\n%%EOF\n"), "attachment.polyglot"),
        (PDF, b"%PDF-1.7\n<html><script>alert(1)</script>\n%%EOF\n", "attachment.polyglot"),
        (PDF, b"%PDF-1.7\n" + b"0" * 2000 + _PROGRAM + b"\n%%EOF\n", "attachment.polyglot"),
        (PNG, _png() + b"PK\x05\x06", "attachment.png-structure"),
        (PNG, _png() + _zip({"a": b"a"}), "attachment.png-structure"),
        (PNG, _png()[:-1] + b"\x00", "attachment.png-structure"),
        (PNG, _png()[:30], "attachment.png-structure"),
        (PNG, _NO_IHDR, "attachment.png-structure"),
        (PNG, _png(_chunk(b"tEXt", b"c\x00<script>alert(1)</script>")), "attachment.polyglot"),
        (JPEG, JPEG_DATA[:-2], "attachment.jpeg-structure"),
        (JPEG, JPEG_DATA + _zip({"a": b"a"}), "attachment.jpeg-structure"),
        (JPEG, JPEG_DATA + _zip({"a": b"a"}, comment=b"\xff\xd9"), "attachment.polyglot"),
        (JPEG, JPEG_DATA[:6] + b"<!DOCTYPE html>" + JPEG_DATA[6:], "attachment.polyglot"),
    ],
    ids=[
        "pdf-no-eof", "pdf-text-after-eof", "pdf-eof-too-early", "zip-as-pdf",
        "pdf-zip", "pdf-html", "pdf-program",
        "png-trailing", "png-zip", "png-crc", "png-truncated", "png-no-ihdr", "png-html",
        "jpeg-no-eoi", "jpeg-zip", "jpeg-zip-eoi-comment", "jpeg-html",
    ],
)  # fmt: skip
def test_malformed_and_polyglot_files_are_refused(
    content_type: str, data: bytes, rule: str
) -> None:
    """A file that only starts right, or is also another kind of file, names its rule."""
    _refused(content_type, data, rule)


def test_messages_never_quote_the_content() -> None:
    """A refusal's sentence holds the rule's words, not the file's bytes."""
    data = b"%PDF-1.7\n<html>SecretName</html>\n%%EOF\n"
    fault = content_fault(PDF, data)
    assert fault is not None
    assert "Secret" not in fault[1]


# --- Windows device names ------------------------------------------------------------------

DEVICES = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"] + [
    f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"
]


def _first_part(name: str) -> str:
    return name.split(".", 1)[0].rstrip(" ").upper()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AUX.tar.txt", "_AUX.tar.txt"),
        ("con .txt", "_con .txt"),
        ("Com\u00b9.pdf", "_Com\u00b9.pdf"),
        ("lpt0", "_lpt0"),
        ("nul...", "_nul"),
        ("prn. .pdf", "_prn. .pdf"),
        ("Console.txt", "Console.txt"),
        ("COM10.txt", "COM10.txt"),
    ],
)
def test_device_names_before_any_dot_are_made_safe(name: str, expected: str) -> None:
    """A device name as the part before the first dot, in any case, is prefixed with _."""
    assert sanitise_file_name(name) == expected


@given(
    st.sampled_from(DEVICES),
    st.lists(st.booleans(), min_size=len(max(DEVICES, key=len)), max_size=7),
    st.text(alphabet=" .", max_size=4),
    st.lists(st.text(alphabet="abcxyz019 ", min_size=1, max_size=5), max_size=3),
)
@settings(max_examples=300, deadline=None)
def test_no_spelling_of_a_device_name_survives(
    device: str, upper: list[bool], trailing: str, extensions: list[str]
) -> None:
    """Any case, trailing spaces and dots, and any number of extensions: never a device."""
    cased = "".join(ch.upper() if up else ch.lower() for ch, up in zip(device, upper, strict=False))
    name = cased + trailing + "".join("." + e for e in extensions)
    clean = sanitise_file_name(name)
    assert _first_part(clean) not in DEVICES
    assert not clean.endswith((".", " "))
    assert sanitise_file_name(clean) == clean


@given(st.text(max_size=60))
@settings(max_examples=500, deadline=None)
def test_no_sanitised_name_is_a_device(name: str) -> None:
    """Whatever the input, the sanitised name's part before its first dot is no device."""
    try:
        clean = sanitise_file_name(name)
    except ValueError:
        return
    assert _first_part(clean) not in DEVICES
    assert not clean.endswith((".", " "))
