"""The record container: round trips, strict decoding, magic bytes and file-name sanitising."""

from __future__ import annotations

import io
import json
import struct
import unicodedata
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.records import (
    CONTENT_TYPES,
    L_CONTAINER,
    MAX_ATTACHMENTS,
    MAX_CONTAINER_LEN,
    MAX_FILE_NAME_LEN,
    Attachment,
    ContainerError,
    RecordError,
    RecordValidationError,
    content_matches,
    decode_container,
    encode_container,
    sanitise_file_name,
    validate_record,
)
from exchange.records import attachments as attachments_module
from exchange.records.content_checks import DOCX, JPEG, ODT, PDF, PNG, TEXT
from exchange.records.kinds import GIB

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "records"


def _valid(kind: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / kind / "valid" / f"{name}.json").read_text())
    return data


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
    return buffer.getvalue()


def _odt() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", ODT, compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", "<office:document-content/>")
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(*extra: bytes) -> bytes:
    """Return a 1x1 grey PNG with ``extra`` chunks (already framed) before its IEND."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    pixels = _chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + b"".join(extra) + _chunk(b"IEND", b"")


SAMPLES = {
    PDF: b"%PDF-1.7\n% synthetic\n%%EOF\n",
    PNG: _png(),
    JPEG: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9",
    DOCX: _docx(),
    ODT: _odt(),
    TEXT: "Synthetic note: café\n".encode(),
}


def _with_manifest(kind: str, base: str, attachments: list[Attachment]) -> Any:
    doc = _valid(kind, base)
    field = "documents" if kind == "cp-file-transfer" else "attachments"
    extra = {"kind": "other"} if kind == "cp-file-transfer" else {}
    doc[field] = [{"title": "Synthetic", **extra, **a.manifest_fields()} for a in attachments]
    if not attachments:
        doc.pop(field, None)
    return validate_record(kind, doc)


def _container(attachments: list[Attachment] | None = None) -> bytes:
    attachments = (
        [Attachment("chronology.pdf", PDF, SAMPLES[PDF])] if attachments is None else attachments
    )
    return encode_container(_with_manifest("cp-file-transfer", "full", attachments), attachments)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_every_allowed_type_is_recognised(content_type: str) -> None:
    """Each allowed type's sample matches its own type and no other."""
    for other in CONTENT_TYPES:
        assert content_matches(other, SAMPLES[content_type]) == (other == content_type), other


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        (PDF, b"%PDX-1.7"),
        (PNG, b"\x89PNG\r\n\x1a"),
        (JPEG, b"\xff\xd8"),
        (DOCX, b"PK\x03\x04 not really a zip"),
        (DOCX, SAMPLES[ODT]),
        (ODT, SAMPLES[DOCX]),
        (TEXT, b"binary\x00zero"),
        (TEXT, b"\xff\xfe"),
        (TEXT, b""),
        ("application/x-msdownload", b"MZ\x90\x00"),
    ],
)
def test_mismatched_content_is_refused(content_type: str, data: bytes) -> None:
    """Content that does not start as its declared type does, or an unknown type, is refused."""
    assert not content_matches(content_type, data)
    with pytest.raises(ValueError, match=r"attachment\.(magic|content-type|size)"):
        Attachment("file.bin", content_type, data)


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=30).filter(lambda s: s.strip(". ")),
            st.sampled_from(CONTENT_TYPES),
            st.binary(max_size=200),
        ),
        max_size=6,
    )
)
@settings(max_examples=150, deadline=None)
def test_round_trip(items: list[tuple[str, str, bytes]]) -> None:
    """decode(encode(record, attachments)) gives the same record and attachments."""
    attachments: list[Attachment] = []
    for index, (name, content_type, raw) in enumerate(items):
        # Any bytes inside the PDF, the PNG (a chunk) and the JPEG; none that look like HTML.
        tail = raw.replace(b"<", b"")
        data = {
            PDF: SAMPLES[PDF][:-6] + tail + SAMPLES[PDF][-6:],
            PNG: _png(_chunk(b"tEXt", tail)),
            JPEG: SAMPLES[JPEG][:-2] + tail + SAMPLES[JPEG][-2:],
        }.get(content_type, SAMPLES[content_type])
        try:
            clean = sanitise_file_name(name)
        except ValueError:
            continue
        attachments.append(
            Attachment(f"{index}-{clean}"[:MAX_FILE_NAME_LEN].rstrip(". "), content_type, data)
        )
    record = _with_manifest("referral", "full", attachments)
    decoded = decode_container(encode_container(record, attachments))
    assert decoded.record == record
    assert list(decoded.attachments) == attachments


@given(st.data())
@settings(max_examples=100, deadline=None)
def test_any_flipped_attachment_byte_is_caught(data: st.DataObject) -> None:
    """Changing any byte of an attachment's content fails its digest (or its magic) check."""
    blob = bytearray(_container())
    start = len(blob) - len(SAMPLES[PDF])
    index = data.draw(st.integers(min_value=start, max_value=len(blob) - 1))
    blob[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(ContainerError) as caught:
        decode_container(bytes(blob))
    assert caught.value.rule in {"attachment.digest", "attachment.magic", "attachment.pdf-eof"}


def test_every_truncation_is_refused() -> None:
    """Every proper prefix of a container is refused with a ContainerError."""
    blob = _container()
    for length in range(len(blob)):
        with pytest.raises(RecordError):
            decode_container(blob[:length])


def test_trailing_bytes_are_refused() -> None:
    """Bytes after the last attachment break container.trailing."""
    with pytest.raises(ContainerError) as caught:
        decode_container(_container() + b"\x00")
    assert caught.value.rule == "container.trailing"


def _forge(record: Any, attachments: list[Attachment]) -> bytes:
    """Write container bytes by hand (docs/records.md §4), bypassing the encoder's checks."""
    document = json.dumps(record.data, separators=(",", ":")).encode()
    kind = record.kind.encode()
    out = L_CONTAINER + bytes([1, len(kind)]) + kind + struct.pack(">I", len(document))
    out += document + bytes([len(attachments)])
    for a in attachments:
        name, content_type = a.name.encode(), a.content_type.encode()
        out += struct.pack(">H", len(name)) + name + bytes([len(content_type)]) + content_type
        out += struct.pack(">I", a.size) + a.sha256 + a.data
    return out


def test_forge_matches_encoder() -> None:
    """The hand-written layout is the encoder's (so forged containers test the decoder)."""
    attachment = Attachment("a.pdf", PDF, SAMPLES[PDF])
    record = _with_manifest("cp-file-transfer", "full", [attachment])
    assert decode_container(_forge(record, [attachment])).attachments == (attachment,)


def test_manifest_must_describe_the_attachments() -> None:
    """A manifest entry whose digest differs from its attachment's breaks manifest.entry."""
    attachment = Attachment("a.pdf", PDF, SAMPLES[PDF])
    other = Attachment("a.pdf", PDF, SAMPLES[PDF] + b"\n")
    record = _with_manifest("cp-file-transfer", "full", [other])
    with pytest.raises(ValueError, match=r"manifest\.entry"):
        encode_container(record, [attachment])
    with pytest.raises(ContainerError) as caught:
        decode_container(_forge(record, [attachment]))
    assert caught.value.rule == "manifest.entry"


def test_manifest_count_must_match() -> None:
    """An attachment the manifest does not list breaks manifest.count on both sides."""
    pdf = Attachment("a.pdf", PDF, SAMPLES[PDF])
    png = Attachment("b.png", PNG, SAMPLES[PNG])
    record = _with_manifest("cp-file-transfer", "full", [pdf])
    with pytest.raises(ValueError, match=r"manifest\.count"):
        encode_container(record, [pdf, png])
    with pytest.raises(ContainerError) as caught:
        decode_container(_forge(record, [pdf, png]))
    assert caught.value.rule == "manifest.count"


def test_decoder_refuses_attachments_for_kind_without_manifest() -> None:
    """A forged outcome container with a document breaks attachment.count."""
    record = validate_record("outcome", _valid("outcome", "nfa"))
    with pytest.raises(ContainerError) as caught:
        decode_container(_forge(record, [Attachment("a.pdf", PDF, SAMPLES[PDF])]))
    assert caught.value.rule == "attachment.count"


def test_decoder_refuses_duplicate_names() -> None:
    """A forged container with two names equal up to case breaks attachment.name-duplicate."""
    attachments = [Attachment("Note.txt", TEXT, b"a"), Attachment("note.TXT", TEXT, b"b")]
    record = _with_manifest("referral", "full", attachments)
    with pytest.raises(ContainerError) as caught:
        decode_container(_forge(record, attachments))
    assert caught.value.rule == "attachment.name-duplicate"


def test_kind_without_manifest_carries_no_attachments() -> None:
    """An outcome record cannot carry documents."""
    record = validate_record("outcome", _valid("outcome", "nfa"))
    with pytest.raises(ValueError, match=r"attachment\.count"):
        encode_container(record, [Attachment("a.pdf", PDF, SAMPLES[PDF])])
    assert decode_container(encode_container(record)).record == record


def test_attachment_count_limit() -> None:
    """More than MAX_ATTACHMENTS attachments are refused when encoding."""
    attachments = [Attachment(f"{i}.txt", TEXT, b"x") for i in range(MAX_ATTACHMENTS + 1)]
    record = validate_record("referral", _valid("referral", "minimal-pre-birth"))
    with pytest.raises(ValueError, match=r"attachment\.count"):
        encode_container(record, attachments)


def test_duplicate_names_are_refused() -> None:
    """Two attachments whose names differ only in case are refused."""
    attachments = [Attachment("Note.txt", TEXT, b"a"), Attachment("note.TXT", TEXT, b"b")]
    record = _with_manifest("referral", "full", attachments)
    with pytest.raises(ValueError, match="name-duplicate"):
        encode_container(record, attachments)


def _retype(blob: bytes) -> bytes:
    """Change the attachment's declared type (the last occurrence; the first is the manifest's)."""
    head, _, tail = blob.rpartition(PDF.encode())
    return head + b"application/pdx" + tail


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda b: b"X" + b[1:], "container.label"),
        (
            lambda b: b[: len(L_CONTAINER)] + b"\x02" + b[len(L_CONTAINER) + 1 :],
            "container.version",
        ),
        (lambda b: b.replace(b"cp-file-transfer", b"cp-file-transfex", 1), "container.kind"),
        (lambda b: b.replace(b"chronology.pdf", b".hronology.pdf", 1), "attachment.name"),
        (_retype, "attachment.content-type"),
    ],
    ids=["label", "version", "kind", "name", "content-type"],
)
def test_structural_rules(mutate: Any, rule: str) -> None:
    """Each broken structural rule is reported under its own name."""
    with pytest.raises(ContainerError) as caught:
        decode_container(mutate(_container()))
    assert caught.value.rule == rule


def test_length_is_checked_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """An input over the largest possible container is refused before anything is read."""
    # The real limit is over 2 GiB: the check is the same on a smaller one.
    assert MAX_CONTAINER_LEN > 2 * GIB
    monkeypatch.setattr(attachments_module, "MAX_CONTAINER_LEN", 4096)
    with pytest.raises(ContainerError) as caught:
        decode_container(b"\x00" * 4097)
    assert (caught.value.rule, caught.value.offset) == ("container.length", 0)


@pytest.mark.parametrize("size", [0, GIB + 1, 2**32 - 1])
def test_a_declared_size_out_of_range_is_refused_before_the_data(size: int) -> None:
    """The size in an attachment's header is checked before its data is read (none here)."""
    attachment = Attachment("a.pdf", PDF, SAMPLES[PDF])
    record = _with_manifest("cp-file-transfer", "full", [attachment])
    forged = _forge(record, [attachment])
    size_at = len(forged) - len(attachment.data) - 32 - 4
    assert forged[size_at : size_at + 4] == struct.pack(">I", attachment.size)
    header_only = forged[:size_at] + struct.pack(">I", size) + attachment.sha256
    with pytest.raises(ContainerError) as caught:
        decode_container(header_only)
    assert (caught.value.rule, caught.value.offset) == ("attachment.size", size_at)


def test_the_largest_declared_size_passes_the_size_check() -> None:
    """1 GiB exactly is within the ceiling: with no data, the decoder stops at truncation."""
    attachment = Attachment("a.pdf", PDF, SAMPLES[PDF])
    record = _with_manifest("cp-file-transfer", "full", [attachment])
    forged = _forge(record, [attachment])
    size_at = len(forged) - len(attachment.data) - 32 - 4
    with pytest.raises(ContainerError) as caught:
        decode_container(forged[:size_at] + struct.pack(">I", GIB) + attachment.sha256)
    assert caught.value.rule == "container.truncated"


def test_a_manifest_over_the_kinds_total_is_refused_before_any_document() -> None:
    """A CP file whose manifest declares more than 2 GiB in all fails with its record."""
    record = _valid("cp-file-transfer", "full")
    entry = record["documents"][0]
    record["documents"] = [{**entry, "size": size} for size in (GIB, GIB, 1)]
    document = json.dumps(record, separators=(",", ":")).encode()
    kind = b"cp-file-transfer"
    header = L_CONTAINER + bytes([1, len(kind)]) + kind + struct.pack(">I", len(document))
    with pytest.raises(RecordValidationError) as caught:
        decode_container(header + document + bytes([3]))
    assert [(p.path, p.rule) for p in caught.value.problems] == [("documents", "manifest.total")]
    record["documents"][2]["size"] = 0  # 2 GiB exactly is allowed in total; 0 is not a size
    with pytest.raises(RecordValidationError) as caught:
        validate_record("cp-file-transfer", record)
    assert [p.rule for p in caught.value.problems] == ["minimum"]
    record["documents"].pop()
    assert validate_record("cp-file-transfer", record).data["documents"][1]["size"] == GIB


def test_invalid_record_inside_is_a_record_error() -> None:
    """A container whose record breaks its schema raises RecordValidationError."""
    blob = _container().replace(b'"cp_plan":true', b'"cp_plan":1234')
    with pytest.raises(RecordValidationError):
        decode_container(blob)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),
        ("C:\\Users\\dsl\\notes.pdf", "C__Users_dsl_notes.pdf"),
        (".hidden", "hidden"),
        ("report\u202etxt.exe", "reporttxt.exe"),
        ("line\nbreak\t.pdf", "linebreak.pdf"),
        ("many   spaces\u00a0here.txt", "many spaces here.txt"),
        ("Cafe\u0301.pdf", "Café.pdf"),
        ("CON.txt", "_CON.txt"),
        ("trailing dots...", "trailing dots"),
        ("a" * 200 + ".pdf", "a" * (MAX_FILE_NAME_LEN - 4) + ".pdf"),
    ],
)
def test_sanitise_examples(name: str, expected: str) -> None:
    """Separators, hidden names, bidi tricks, controls, device names and length are fixed."""
    assert sanitise_file_name(name) == expected


@pytest.mark.parametrize("name", ["", "...", "\u202e", "\x00\x01", " . "])
def test_sanitise_refuses_empty_results(name: str) -> None:
    """A name with nothing usable left is refused."""
    with pytest.raises(ValueError, match="name"):
        sanitise_file_name(name)


@given(st.text(max_size=300))
@settings(max_examples=500, deadline=None)
def test_sanitise_properties(name: str) -> None:
    """Results are NFC, short, free of separators and controls, dot-free at the start, stable."""
    try:
        clean = sanitise_file_name(name)
    except ValueError:
        return
    assert clean == unicodedata.normalize("NFC", clean)
    assert 0 < len(clean) <= MAX_FILE_NAME_LEN
    assert not any(ch in clean for ch in "/\\")
    assert not any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in clean)
    assert not clean.startswith((".", " "))
    assert sanitise_file_name(clean) == clean


def test_attachment_constructor_requires_sanitised_name() -> None:
    """The constructor refuses an unsanitised name; create() sanitises it."""
    with pytest.raises(ValueError, match=r"attachment\.name"):
        Attachment("../x.pdf", PDF, SAMPLES[PDF])
    assert Attachment.create("../x.pdf", PDF, SAMPLES[PDF]).name == "_x.pdf"


def test_error_messages_do_not_quote_content() -> None:
    """A container error names the rule and offset but not the file name or content."""
    blob = _container([Attachment("SecretName.txt", TEXT, b"SecretBody")])
    with pytest.raises(ContainerError) as caught:
        decode_container(blob[:-1] + b"X")
    assert "Secret" not in str(caught.value)
