"""A draft's file is read back a piece at a time, at any offset, and checked against its digest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from exchange.web.send.drafts import PIECE, Draft, DraftStore, Upload

TOKEN = "session-token-for-the-test"  # noqa: S105 - a test session's token
OWNER = hashlib.sha256(b"owner").digest()


def _stored(folder: Path, data: bytes, sizes: list[int]) -> tuple[DraftStore, Draft, Upload]:
    drafts = DraftStore(folder)
    draft = drafts.create(OWNER, TOKEN, Draft(id="", kind="cp-file-transfer"))
    with drafts.file_writer(OWNER, TOKEN, draft.id) as (upload_id, write):
        at = 0
        for size in sizes:
            write(data[at : at + size])
            at += size
        assert at == len(data)
    upload = Upload(upload_id, "scan.pdf", "application/pdf", len(data),
                    hashlib.sha256(data).hexdigest(), "Scan")  # fmt: skip
    return drafts, draft, upload


def test_reads_at_any_offset_give_the_uploaded_bytes(tmp_path: Path) -> None:
    """Pieces of uneven sizes, as a browser's upload arrives; reads across them."""
    data = os.urandom(3 * PIECE + 123)
    sizes = [PIECE, 17, PIECE - 17, 1, PIECE, 122]
    drafts, draft, upload = _stored(tmp_path, data, sizes)
    with drafts.open_file(OWNER, TOKEN, draft.id, upload) as file:
        assert file.size == len(data)
        for offset, count in [
            (0, 5),
            (PIECE - 3, 40),
            (PIECE + 10, 2 * PIECE),
            (len(data) - 7, 99),
        ]:
            assert file.read_at(offset, count) == data[offset : offset + count]
        assert file.read_at(len(data), 10) == b""


def test_a_changed_file_is_refused_when_opened(tmp_path: Path) -> None:
    """A piece altered or two pieces swapped on disk: not what was uploaded, refused."""
    data = os.urandom(2 * PIECE)
    drafts, draft, upload = _stored(tmp_path, data, [PIECE, PIECE])
    path = drafts.file_path(OWNER, draft.id, upload.id)
    stored = path.read_bytes()
    half = len(stored) // 2
    path.write_bytes(stored[half:] + stored[:half])  # the two pieces swapped: each decrypts
    with (
        pytest.raises(ValueError, match="does not match"),
        drafts.open_file(OWNER, TOKEN, draft.id, upload),
    ):
        pass
    path.write_bytes(stored[:-1] + bytes([stored[-1] ^ 1]))
    with (
        pytest.raises(ValueError, match="does not match"),
        drafts.open_file(OWNER, TOKEN, draft.id, upload),
    ):
        pass
