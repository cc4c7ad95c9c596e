"""The container read in pieces agrees with the container read whole.

:class:`ContainerScanner` is fed a container in pieces of every size; it must find the same
record and attachments as :func:`decode_container`, hand back each attachment's bytes as
they pass, and refuse a damaged container with the same rule, whatever the split.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.records import Attachment, ContainerError, RecordError, decode_container
from exchange.records.attachments import AttachmentFile, attachment_head, container_head
from exchange.records.content_checks import (
    CONTENT_RULES,
    JPEG,
    PDF,
    TEXT,
    BytesSource,
    ContentScan,
    content_fault,
)
from exchange.records.scanning import ContainerScanner, ScannedContainer, content_problem
from tests.records.test_attachments import SAMPLES, _container


def _scan(data: bytes, step: int) -> tuple[ScannedContainer, dict[int, bytes]]:
    scanner = ContainerScanner()
    seen: dict[int, bytes] = {}
    for at in range(0, len(data), step):
        for index, piece in scanner.feed(data[at : at + step]):
            seen[index] = seen.get(index, b"") + piece
    return scanner.finish(), seen


def _rule(action: object) -> str | None:
    try:
        action()  # type: ignore[operator]
    except ContainerError as exc:
        return exc.rule
    except RecordError:
        return "record"
    return None


def _attachments() -> list[Attachment]:
    return [
        Attachment("chronology.pdf", PDF, SAMPLES[PDF]),
        Attachment("notes.txt", TEXT, b"Synthetic note\n" * 300),
    ]


@pytest.mark.parametrize("step", [1, 7, 64, 4096, 1 << 20])
def test_pieces_of_any_size_give_the_decoded_container(step: int) -> None:
    """Record, names, types, sizes, digests and bytes are those decode_container finds."""
    data = _container(_attachments())
    whole = decode_container(data)
    scanned, seen = _scan(data, step)
    assert scanned.record == whole.record
    assert [(e.name, e.content_type, e.size, e.sha256) for e in scanned.entries] == [
        (a.name, a.content_type, a.size, a.sha256) for a in whole.attachments
    ]
    for entry, attachment in zip(scanned.entries, whole.attachments, strict=True):
        assert data[entry.offset : entry.offset + entry.size] == attachment.data
    assert seen == {i: a.data for i, a in enumerate(whole.attachments)}
    assert (
        content_problem(
            scanned.entries, lambda e: BytesSource(seen[0] if e.content_type == PDF else seen[1])
        )
        is None
    )


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_a_damaged_container_is_refused_by_the_same_rule(data: st.DataObject) -> None:
    """Truncated, extended or with a byte changed: the same rule as decode_container.

    One order differs, as the scanner's docstring says: a file whose bytes were changed
    breaks its digest as they pass, before its content is looked at, so where the whole
    container's check names a content rule the scanner may name ``attachment.digest``.
    """
    good = _container(_attachments())
    how = data.draw(st.sampled_from(["cut", "flip", "add"]))
    if how == "cut":
        bad = good[: data.draw(st.integers(0, len(good) - 1))]
    elif how == "add":
        bad = good + data.draw(st.binary(min_size=1, max_size=8))
    else:
        at = data.draw(st.integers(0, len(good) - 1))
        bad = good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1 :]
    step = data.draw(st.sampled_from([1, 5, 300, len(bad) + 1]))
    expected = _rule(lambda: decode_container(bad))

    def scan_and_check() -> None:
        scanned, _ = _scan(bad, step)
        problem = content_problem(
            scanned.entries,
            lambda e: BytesSource(bad[e.offset : e.offset + e.size]),
            scanned.scans,
        )
        if problem is not None:
            raise problem

    found = _rule(scan_and_check)
    if found != expected:
        assert found == "attachment.digest"
        assert expected in CONTENT_RULES


def test_a_content_fault_is_found_through_a_source() -> None:
    """A PDF without its end marker is refused as decode_container refuses it."""
    pdf = b"%PDF-1.7\n" + b"x" * 5000
    attachment = Attachment.__new__(Attachment)
    for name, value in (("name", "a.pdf"), ("content_type", PDF), ("data", pdf)):
        object.__setattr__(attachment, name, value)
    object.__setattr__(attachment, "sha256", hashlib.sha256(pdf).digest())
    data = _container([attachment])
    with pytest.raises(ContainerError) as whole:
        decode_container(data)
    scanned, seen = _scan(data, 1000)
    for scans in ((), scanned.scans):  # read again through a source, or judged as it passed
        problem = content_problem(scanned.entries, lambda _: BytesSource(seen[0]), scans)
        assert problem is not None
        assert (problem.rule, problem.offset) == (whole.value.rule, whole.value.offset)


def test_a_container_written_in_pieces_is_the_encoded_container() -> None:
    """The head, each file's head and its bytes read through a source: encode_container's bytes."""
    attachments = _attachments()
    whole = _container(attachments)
    record = decode_container(whole).record
    files = [
        AttachmentFile(a.name, a.content_type, BytesSource(a.data), a.sha256) for a in attachments
    ]
    pieces = [container_head(record, files)]
    for file in files:
        pieces += [attachment_head(file), *file.pieces()]
    assert b"".join(pieces) == whole


def test_a_file_attachment_is_checked_as_an_attachment_is() -> None:
    """Through a source, the same refusals: a name not sanitised, a PDF without its end."""
    good = SAMPLES[PDF]
    digest = hashlib.sha256(good).digest()
    with pytest.raises(ValueError, match=r"attachment\.name"):
        AttachmentFile("../a.pdf", PDF, BytesSource(good), digest)
    with pytest.raises(ValueError, match=r"attachment\.pdf-eof"):
        AttachmentFile("a.pdf", PDF, BytesSource(b"%PDF-1.7\n" * 300), digest)
    assert AttachmentFile.create("../a.pdf", PDF, BytesSource(good), digest).name == "_a.pdf"


_TOKENS = [b"%PDF-", b"\xff\xd8\xff", b"MZ", b"PE\x00\x00", b"%%EOF", b"\xff\xd9", b"\x00" * 3,
           b"PK\x05\x06", b"<html", b"\x40\x00\x00\x00", b"caf\xc3\xa9\n", b"\xc3"]  # fmt: skip


@given(
    st.sampled_from([PDF, JPEG, TEXT]),
    st.lists(st.one_of(st.sampled_from(_TOKENS), st.binary(max_size=40)), max_size=30),
    st.integers(1, 64),
)
@settings(max_examples=400, deadline=None)
def test_a_stream_judges_small_content_as_content_fault(
    content_type: str, parts: list[bytes], step: int
) -> None:
    """Fed in pieces of any size, the scan names the rule content_fault names."""
    data = b"".join(parts)
    scan = ContentScan(content_type)
    for at in range(0, len(data), step):
        scan.feed(data[at : at + step])
    assert scan.fault() == content_fault(content_type, data)


@given(
    st.integers(0, 3 * 4100),
    st.integers(0x30, 0x1010),
    st.integers(1, 9000),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_a_program_is_found_across_pieces(at: int, pe_at: int, step: int, pad: bool) -> None:
    """A Windows program's MZ and PE headers split across pieces, near the ends or not."""
    body = bytearray(b"%PDF-1.7\n" + b"x" * (3 * 4100 + 0x1100) + b"\n%%EOF\n")
    at = min(at + 9, len(body) - 0x40)
    body[at : at + 2] = b"MZ"
    body[at + 0x3C : at + 0x40] = pe_at.to_bytes(4, "little")
    if at + pe_at + 4 <= len(body) - 7:
        body[at + pe_at : at + pe_at + 4] = b"PE\x00\x00"
    data = bytes(body) + (b"\x00" * 5 if pad else b"")
    scan = ContentScan(PDF)
    for start in range(0, len(data), step):
        scan.feed(data[start : start + step])
    assert scan.fault() == content_fault(PDF, data)
