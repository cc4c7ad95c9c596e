"""Drafts of the web send journey in the store: swept with their session, claimed once to send.

The store holds only sealed bytes here (the web pages seal them:
``tests/web/test_draft_files.py``), so these tests store any bytes.
"""

from __future__ import annotations

from exchange.auth.session import Session
from exchange.model import User
from exchange.store.base import Store

from .conftest import LA, T0

USER = User("u1", LA, "Worker One", "dsl")
DRAFT = "d" * 32


def _session(n: int) -> Session:
    return Session(
        id_hash=bytes([n]) * 32, user=USER, created=T0, last_seen=T0,
        level="password", required="second-factor", method="password",
        csrf_secret=b"\x09" * 32,
    )  # fmt: skip


async def test_drafts_of_ended_sessions_are_swept_with_their_files(store: Store) -> None:
    """Only the ended session's drafts and files go, even a file being written."""
    await store.add_user(USER, b"s" * 32, T0)
    ended, going = _session(1), _session(2)
    for session in (ended, going):
        await store.add_session(session)
        await store.create_draft(session.id_hash, DRAFT, b"sealed state", T0)
        await store.add_draft_piece(session.id_hash, DRAFT, "f" * 32, 0, b"sealed piece")
    # A piece of a file whose upload stopped part-way, and no draft row names it.
    await store.add_draft_piece(ended.id_hash, "e" * 32, "a" * 32, 0, b"sealed piece")
    assert await store.sweep_drafts() == 0
    assert await store.delete_session(ended.id_hash)
    assert await store.sweep_drafts() == 1
    assert await store.draft_ids(ended.id_hash) == []
    assert await store.draft_file_ids(ended.id_hash) == []
    assert await store.draft_ids(going.id_hash) == [DRAFT]
    assert await store.draft_file_ids(going.id_hash) == ["f" * 32]
    assert await store.sweep_drafts() == 0


async def test_a_draft_is_claimed_for_sending_by_one_process_at_a_time(
    pair: tuple[Store, Store],
) -> None:
    first, second = pair
    owner = b"o" * 32
    await first.create_draft(owner, DRAFT, b"sealed state", T0)
    assert await first.claim_draft(owner, DRAFT, T0, T0 + 300)
    assert not await second.claim_draft(owner, DRAFT, T0 + 1, T0 + 301)
    # A process that dies holding the claim loses it when it runs out.
    assert await second.claim_draft(owner, DRAFT, T0 + 300, T0 + 600)
    assert not await first.claim_draft(owner, DRAFT, T0 + 301, T0 + 601)
    # Sent: the confirmation replaces the state and ends the claim.
    await second.finish_draft(owner, DRAFT, b"sent", T0 + 302)
    assert await first.draft_state(owner, DRAFT) == b"sent"
    assert await first.claim_draft(owner, DRAFT, T0 + 303, T0 + 603)
    await first.release_draft(owner, DRAFT)
    assert await second.claim_draft(owner, DRAFT, T0 + 304, T0 + 604)
    # No draft, no claim.
    assert not await first.claim_draft(owner, "c" * 32, T0, T0 + 300)
