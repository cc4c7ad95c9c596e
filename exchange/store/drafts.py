"""Drafts of records being sent from the web pages: the ``drafts`` and ``draft_files`` tables.

The send journey keeps a person's answers and files between its pages
(:mod:`exchange.web.send.drafts`). They live in the store, not in a process, so that with
several ``exchange serve`` processes behind a load balancer the person's next page may reach
any of them. Everything here is already sealed by the web pages with a key derived from the
session's cookie, which the node never stores: the store holds bytes it cannot open.

``drafts`` has one row per draft, named by the session id's hash (``owner``) and the draft's
random id: its sealed state, when it was last written, and ``sending_until``, a claim taken
by the process sending the draft (so that two processes given the same draft at the same
moment do not both seal it; the claim runs out should that process die). ``draft_files``
holds each uploaded file as its sealed pieces, in order; a file's pieces are written one by
one as the upload streams in, never the whole file at once. They are rows of their own,
apart from the envelope bodies, so nothing that sweeps bodies can take them and a draft's
files go with it in one statement. Drafts whose session no longer exists are removed by
:meth:`DraftTables.sweep_drafts`.
"""

from __future__ import annotations

from exchange.store.rows import Tables
from exchange.store.sql import Db

_WHERE_DRAFT = "WHERE owner = ? AND draft_id = ?"
_WHERE_FILE = _WHERE_DRAFT + " AND upload_id = ?"
_NO_SESSION = "NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id_hash = {table}.owner)"


def _delete_draft(db: Db, owner: bytes, draft_id: str) -> None:
    db.execute("DELETE FROM draft_files " + _WHERE_DRAFT, (owner, draft_id))
    db.execute("DELETE FROM drafts " + _WHERE_DRAFT, (owner, draft_id))


class DraftTables(Tables):
    """Sealed drafts of the send journey and their files' sealed pieces."""

    async def create_draft(self, owner: bytes, draft_id: str, state: bytes, now: float) -> None:
        """Keep a new draft's sealed ``state`` (its id is new: a repeat fails)."""

        def tx(db: Db) -> None:
            db.execute(
                "INSERT INTO drafts (owner, draft_id, state, updated_at, sending_until) "
                "VALUES (?, ?, ?, ?, 0)",
                (owner, draft_id, state, now),
            )

        await self._tx(tx)

    async def save_draft(self, owner: bytes, draft_id: str, state: bytes, now: float) -> bool:
        """Replace a draft's sealed state; False if there is no such draft."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE drafts SET state = ?, updated_at = ? " + _WHERE_DRAFT,
                (state, now, owner, draft_id),
            )
            return cursor.rowcount == 1

        return await self._tx(tx)

    async def draft_state(self, owner: bytes, draft_id: str) -> bytes | None:
        """Return a draft's sealed state, or None if the session has no draft by that id."""

        def read(db: Db) -> bytes | None:
            row = db.execute("SELECT state FROM drafts " + _WHERE_DRAFT, (owner, draft_id))
            found = row.fetchone()
            return None if found is None else bytes(found[0])

        return await self._read(read)

    async def delete_draft(self, owner: bytes, draft_id: str) -> None:
        """Delete a draft and its files."""
        await self._tx(lambda db: _delete_draft(db, owner, draft_id))

    async def finish_draft(self, owner: bytes, draft_id: str, state: bytes, now: float) -> None:
        """Replace a sent draft's state with ``state``, delete its files, end its claim."""

        def tx(db: Db) -> None:
            db.execute("DELETE FROM draft_files " + _WHERE_DRAFT, (owner, draft_id))
            db.execute(
                "UPDATE drafts SET state = ?, updated_at = ?, sending_until = 0 " + _WHERE_DRAFT,
                (state, now, owner, draft_id),
            )

        await self._tx(tx)

    async def claim_draft(self, owner: bytes, draft_id: str, now: float, until: float) -> bool:
        """Claim a draft for sending until ``until``; False while another claim holds it."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE drafts SET sending_until = ? " + _WHERE_DRAFT + " AND sending_until <= ?",
                (until, owner, draft_id, now),
            )
            return cursor.rowcount == 1

        return await self._tx(tx)

    async def release_draft(self, owner: bytes, draft_id: str) -> None:
        """End the claim on a draft (its sending stopped without an envelope)."""

        def tx(db: Db) -> None:
            db.execute("UPDATE drafts SET sending_until = 0 " + _WHERE_DRAFT, (owner, draft_id))

        await self._tx(tx)

    async def add_draft_piece(
        self, owner: bytes, draft_id: str, upload_id: str, index: int, sealed: bytes
    ) -> None:
        """Keep piece ``index`` of a draft's file (sealed)."""

        def tx(db: Db) -> None:
            db.execute(
                "INSERT INTO draft_files (owner, draft_id, upload_id, piece, sealed) "
                "VALUES (?, ?, ?, ?, ?)",
                (owner, draft_id, upload_id, index, sealed),
            )

        await self._tx(tx)

    async def draft_piece_lengths(self, owner: bytes, draft_id: str, upload_id: str) -> list[int]:
        """Return the length of each sealed piece of a draft's file, in order."""

        def read(db: Db) -> list[int]:
            rows = db.execute(
                "SELECT LENGTH(sealed) FROM draft_files " + _WHERE_FILE + " ORDER BY piece",
                (owner, draft_id, upload_id),
            )
            return [int(row[0]) for row in rows.fetchall()]

        return await self._read(read)

    async def draft_pieces(
        self, owner: bytes, draft_id: str, upload_id: str, first: int, count: int
    ) -> list[bytes]:
        """Return ``count`` sealed pieces of a draft's file from piece ``first``, in order."""

        def read(db: Db) -> list[bytes]:
            rows = db.execute(
                "SELECT sealed FROM draft_files " + _WHERE_FILE + " AND piece >= ? AND piece < ? "
                "ORDER BY piece",
                (owner, draft_id, upload_id, first, first + count),
            )
            return [bytes(row[0]) for row in rows.fetchall()]

        return await self._read(read)

    async def delete_draft_file(self, owner: bytes, draft_id: str, upload_id: str) -> None:
        """Delete one of a draft's files."""

        def tx(db: Db) -> None:
            db.execute("DELETE FROM draft_files " + _WHERE_FILE, (owner, draft_id, upload_id))

        await self._tx(tx)

    async def draft_ids(self, owner: bytes) -> list[str]:
        """Return the ids of a session's drafts."""

        def read(db: Db) -> list[str]:
            rows = db.execute(
                "SELECT draft_id FROM drafts WHERE owner = ? ORDER BY draft_id", (owner,)
            )
            return [str(row[0]) for row in rows.fetchall()]

        return await self._read(read)

    async def draft_file_ids(self, owner: bytes) -> list[str]:
        """Return the ids of the files a session's drafts hold (whole or being written)."""

        def read(db: Db) -> list[str]:
            rows = db.execute(
                "SELECT DISTINCT upload_id FROM draft_files WHERE owner = ? ORDER BY upload_id",
                (owner,),
            )
            return [str(row[0]) for row in rows.fetchall()]

        return await self._read(read)

    async def sweep_drafts(self) -> int:
        """Delete the drafts and files of sessions that have ended; return how many sessions."""

        def tx(db: Db) -> int:
            owners = {
                bytes(row[0])
                for table in ("drafts", "draft_files")
                for row in db.execute(
                    f"SELECT DISTINCT owner FROM {table} WHERE " + _NO_SESSION.format(table=table),
                    (),
                ).fetchall()
            }
            for table in ("draft_files", "drafts"):
                db.execute(f"DELETE FROM {table} WHERE " + _NO_SESSION.format(table=table), ())
            return len(owners)

        return await self._tx(tx)
