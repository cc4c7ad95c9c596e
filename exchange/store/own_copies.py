"""The sender's own copies of what it sealed (migration 16), as a mixin of SqliteStore.

When an organisation sends a record, the node seals a second envelope with the same content,
addressed to the sending organisation itself, and keeps it beside the other bodies under its
own digest; ``sent.own_copy`` names it, written in the transaction that stores the envelope
sent (``SqliteStore.record_submission``). It is never sent: the DPO's subject access copies
and the sender's "what did we send?" open it with the organisation's own key. Its file is a
committed body like any other, so the sweep of leftovers keeps it while the row names it and
removes it once a destruction under retention has cleared the row.
"""

from __future__ import annotations

from exchange.keys.ids import OrgId
from exchange.store.rows import Tables
from exchange.store.sql import Db

#: The digests of every own copy still kept: bodies the leftover sweep must keep.
OWN_COPY_DIGESTS = "SELECT own_copy FROM sent WHERE own_copy IS NOT NULL"


class OwnCopyTables(Tables):
    """The own copies, as methods of :class:`~exchange.store.sqlite.SqliteStore`."""

    async def own_copy(self, sender: OrgId, digest: bytes) -> bytes | None:
        """Return the digest of ``sender``'s own copy of the envelope ``digest`` (None: none)."""

        def read(db: Db) -> bytes | None:
            row = db.execute(
                "SELECT own_copy FROM sent WHERE sender = ? AND digest = ?", (sender, digest)
            ).fetchone()
            return None if row is None or row[0] is None else bytes(row[0])

        return await self._read(read)


def forget_own_copy(db: Db, sender: OrgId, digest: bytes) -> bytes | None:
    """Clear ``sender``'s own copy of ``digest`` in a transaction; return its digest, if any."""
    row = db.execute(
        "SELECT own_copy FROM sent WHERE sender = ? AND digest = ?", (sender, digest)
    ).fetchone()
    if row is None or row[0] is None:
        return None
    db.execute("UPDATE sent SET own_copy = NULL WHERE sender = ? AND digest = ?", (sender, digest))
    return bytes(row[0])
