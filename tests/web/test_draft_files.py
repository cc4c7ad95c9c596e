"""A draft's file is read back a piece at a time, at any offset, and checked against its digest.

The draft's pieces are rows of the node's store, on each engine in turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exchange.store.base import Store
from exchange.web.send.drafts import PIECE, Draft, DraftStore, Upload
from tests.store_engines import ENGINES, open_store

TOKEN = "session-token-for-the-test"  # noqa: S105 - a test session's token
OWNER = hashlib.sha256(b"owner").digest()


@pytest.fixture(params=ENGINES)
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Open a fresh store, on each engine in turn."""
    async with open_store(request.param, tmp_path / "node", request) as opened:
        yield opened


async def _stored(store: Store, data: bytes, sizes: list[int]) -> tuple[DraftStore, Draft, Upload]:
    drafts = DraftStore(store)
    draft = await drafts.create(OWNER, TOKEN, Draft(id="", kind="cp-file-transfer"))
    async with drafts.file_writer(OWNER, TOKEN, draft.id) as (upload_id, write):
        at = 0
        for size in sizes:
            await write(data[at : at + size])
            at += size
        assert at == len(data)
    upload = Upload(upload_id, "scan.pdf", "application/pdf", len(data),
                    hashlib.sha256(data).hexdigest(), "Scan")  # fmt: skip
    return drafts, draft, upload


async def test_reads_at_any_offset_give_the_uploaded_bytes(store: Store) -> None:
    """Pieces of uneven sizes, as a browser's upload arrives; reads across them."""
    data = os.urandom(3 * PIECE + 123)
    sizes = [PIECE, 17, PIECE - 17, 1, PIECE, 122]
    drafts, draft, upload = await _stored(store, data, sizes)
    # Kept as whole pieces, however the upload arrived.
    assert len(await store.draft_piece_lengths(OWNER, draft.id, upload.id)) == 4
    file = await drafts.open_file(OWNER, TOKEN, draft.id, upload)
    assert file.size == len(data)

    def reads() -> list[bytes]:
        spans = [(0, 5), (PIECE - 3, 40), (PIECE + 10, 2 * PIECE), (len(data) - 7, 99)]
        return [file.read_at(offset, count) for offset, count in spans] + [
            file.read_at(len(data), 10)
        ]

    assert await asyncio.to_thread(reads) == [
        data[0:5],
        data[PIECE - 3 : PIECE + 37],
        data[PIECE + 10 : 3 * PIECE + 10],
        data[-7:],
        b"",
    ]


async def test_a_file_whose_upload_fails_is_not_kept(store: Store) -> None:
    """An upload cut short leaves none of its pieces."""
    drafts = DraftStore(store)
    draft = await drafts.create(OWNER, TOKEN, Draft(id="", kind="cp-file-transfer"))

    async def cut_short() -> None:
        async with drafts.file_writer(OWNER, TOKEN, draft.id) as (_, write):
            await write(os.urandom(3 * PIECE))
            raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await cut_short()
    assert await store.draft_file_ids(OWNER) == []


async def test_a_changed_file_is_refused_when_opened(store: Store) -> None:
    """Two pieces swapped, or one from another draft: not what was uploaded, refused."""
    data = os.urandom(2 * PIECE)
    drafts, draft, upload = await _stored(store, data, [PIECE, PIECE])
    place = (OWNER, draft.id, upload.id)
    first, second = await store.draft_pieces(*place, 0, 2)
    await store.delete_draft_file(*place)
    await store.add_draft_piece(*place, 0, second)  # the two pieces swapped: each decrypts
    await store.add_draft_piece(*place, 1, first)
    with pytest.raises(ValueError, match="does not match"):
        await drafts.open_file(OWNER, TOKEN, draft.id, upload)
    # A piece sealed for another draft does not open with this one's key.
    _, other, other_upload = await _stored(store, data, [PIECE, PIECE])
    (foreign,) = await store.draft_pieces(OWNER, other.id, other_upload.id, 0, 1)
    await store.delete_draft_file(*place)
    await store.add_draft_piece(*place, 0, foreign)
    await store.add_draft_piece(*place, 1, second)
    with pytest.raises(ValueError, match="does not match"):
        await drafts.open_file(OWNER, TOKEN, draft.id, upload)


async def test_a_draft_opens_only_with_its_sessions_token(store: Store) -> None:
    """Another token, or another session's hash, finds no draft; the state is sealed."""
    drafts = DraftStore(store)
    draft = await drafts.create(OWNER, TOKEN, Draft(id="", kind="cp-file-transfer", reason="R1"))
    assert await drafts.load(OWNER, TOKEN, draft.id) is not None
    assert await drafts.load(OWNER, "another-token", draft.id) is None
    assert await drafts.load(hashlib.sha256(b"other").digest(), TOKEN, draft.id) is None
    sealed = await store.draft_state(OWNER, draft.id)
    assert sealed is not None
    assert b"R1" not in sealed
    assert b"cp-file-transfer" not in sealed
