"""The sharing register's tables in the SQLite store (migration 4), as a mixin of SqliteStore.

A disclosure's register row is written by ``SqliteStore.record_submission`` in the same
transaction as the envelope, its outbox rows and its ledger event (:meth:`_insert_register`),
so there is never an envelope without its register row or a row without its envelope. A
decision not to share is a row on its own (:meth:`record_not_shared`).

Pupil identifiers are held only as keyed hashes in ``subject_index``: for sent items and
decisions when they are registered, for received items when a member of staff first opens
them (``received_index`` records which received items were indexed). Receipts are not
copied into the register: they are joined from ``receipts`` when rows are read, in the same
read as the thread links (``register.in_reply_to``, ``register.corrects``), the sender's
recall outcomes (``recalls``) and its retention row (``retention``: destroyed when, the rule).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, TypeVar, cast

from exchange.keys.ids import OrgId
from exchange.model import (
    InboxItem,
    InboxState,
    ReceiptRecord,
    ReceivedEntry,
    RegisterEntry,
    RegisterOutcome,
    RegisterRecall,
    RegisterRow,
    SubjectKey,
    SubjectKind,
)
from exchange.store.rows import Tables, envelope_row, receipt_row
from exchange.store.sql import NO_LIMIT, Db, Row, hex_of

T = TypeVar("T")

_REGISTER_COLUMNS: Final = (
    "org, outcome, envelope_digest, envelope_id, decided_by, decided_at, purpose, rule, "
    "lawful_basis, citation, record_kind, categories, reason_code, reason, attachments, "
    "deadline_due, deadline_rule, deadline_explanation, satisfied_by"
)
#: A register row as read (``WHERE`` follows): its columns, its thread links (the recall
#: migration) and, for a disclosure, the sender's retention row (the retention migration):
#: when its copy was destroyed and the rule that governs it, named as decisions name it
#: (``retention.<id>``). Recalls are read per row by :meth:`SharingRegisterTables._register_rows`.
_REGISTER_SELECT: Final = (
    "SELECT g.id, "
    + ", ".join(f"g.{c.strip()}" for c in _REGISTER_COLUMNS.split(","))
    + ", g.in_reply_to, g.corrects, t.destroyed_at AS destroyed_at, "
    "COALESCE(t.destroyed_rule, 'retention.' || t.rule) AS retention_rule FROM register g "
    "LEFT JOIN retention t ON t.org = g.org AND t.digest = g.envelope_digest "
)
_RECEIVED_SELECT: Final = (
    "SELECT i.owner, i.received_at, i.state, i.delivered_receipt, e.digest, e.envelope_id, "
    "e.sender, e.recipients, e.record_kind, e.created, e.length, ri.outcome AS indexed, "
    "ri.indexed_at FROM inbox i JOIN envelopes e ON e.digest = i.digest "
    "LEFT JOIN received_index ri ON ri.owner = i.owner AND ri.digest = i.digest "
)
#: Most identifier hashes one subject search may name (one person has a UPN and an NHS
#: number; a few more allow for a corrected identifier).
MAX_SEARCH_HASHES: Final = 8


def _register_filter(
    org: OrgId,
    since: float | None,
    until: float | None,
    purpose: str | None,
    outcome: RegisterOutcome | None,
) -> tuple[str, tuple[object, ...]]:
    """Return the ``WHERE`` clause (table alias ``g``) and arguments of a register filter."""
    conditions = ["g.org = ?"]
    args: list[object] = [org]
    for condition, value in (
        ("g.decided_at >= ?", since),
        ("g.decided_at < ?", until),
        ("g.purpose = ?", purpose),
        ("g.outcome = ?", outcome),
    ):
        if value is not None:
            conditions.append(condition)
            args.append(value)
    return "WHERE " + " AND ".join(conditions), tuple(args)


def _statuses(text: str) -> tuple[str, ...]:
    return tuple(s for s in text.split(",") if s)


def _received(db: Db, row: Row, *, receipts: bool) -> ReceivedEntry:
    item = InboxItem(
        owner=OrgId(row["owner"]),
        envelope=envelope_row(row),
        received_at=row["received_at"],
        state=cast(InboxState, row["state"]),
        delivered_receipt=row["delivered_receipt"],
    )
    held: tuple[ReceiptRecord, ...] = ()
    if receipts:
        # The receipts this organisation issued for the item: its own part of the exchange.
        held = tuple(
            receipt_row(r)
            for r in db.execute(
                "SELECT * FROM receipts WHERE envelope_digest = ? AND receipter = ? "
                "ORDER BY time, recorded_at",
                (item.envelope.digest, item.owner),
            )
        )
    return ReceivedEntry(item, row["indexed"], row["indexed_at"], held)


class SharingRegisterTables(Tables):
    """The sharing register's tables, as methods of :class:`~exchange.store.sqlite.SqliteStore`."""

    # --- writing ------------------------------------------------------------------------

    @staticmethod
    def _insert_register(db: Db, entry: RegisterEntry) -> int:
        """Insert a register row, its recipients and its subjects; return the row id."""
        satisfied = "," + ",".join(entry.satisfied_by) + "," if entry.satisfied_by else ""
        cursor = db.execute(
            f"INSERT INTO register ({_REGISTER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                entry.org, entry.outcome, entry.envelope_digest, entry.envelope_id,
                entry.decided_by, entry.decided_at, entry.purpose, entry.rule,
                entry.lawful_basis, entry.citation, entry.record_kind,
                json.dumps(list(entry.categories)), entry.reason_code, entry.reason,
                entry.attachments, entry.deadline_due, entry.deadline_rule,
                entry.deadline_explanation, satisfied,
            ),
        )  # fmt: skip
        register_id = int(cursor.fetchone()[0])
        db.executemany(
            "INSERT INTO register_recipients (register_id, recipient, kind) "
            "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(register_id, org, kind) for org, kind in entry.recipients],
        )
        if entry.outcome == "shared" and entry.envelope_digest is not None:
            direction, item = "sent", entry.envelope_digest.hex()
        else:
            direction, item = "not-shared", f"decision:{register_id}"
        db.executemany(
            "INSERT INTO subject_index (org, direction, item, id_kind, id_hash, "
            "indexed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                (entry.org, direction, item, s.kind, s.hash, entry.decided_at)
                for s in entry.subjects
            ],
        )
        return register_id

    async def record_not_shared(self, entry: RegisterEntry) -> int:
        """Store a decision not to share (with its subjects); return its register id."""
        if entry.outcome != "not-shared" or entry.envelope_digest is not None:
            raise ValueError("a decision not to share has outcome not-shared and no envelope")
        return await self._tx(lambda db: self._insert_register(db, entry))

    async def index_received(
        self,
        owner: OrgId,
        digest: bytes,
        *,
        subjects: Sequence[SubjectKey],
        outcome: str,
        now: float,
    ) -> bool:
        """Index a received item's subjects once (at its first opening); True if new."""
        return await self._tx(
            lambda db: self._insert_received_index(
                db, owner, digest, subjects=subjects, outcome=outcome, now=now
            )
        )

    @staticmethod
    def _insert_received_index(
        db: Db,
        owner: OrgId,
        digest: bytes,
        *,
        subjects: Sequence[SubjectKey],
        outcome: str,
        now: float,
    ) -> bool:
        """Index a received item's subjects unless it was indexed; True if new."""
        cursor = db.execute(
            "INSERT INTO received_index (owner, digest, outcome, indexed_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (owner, digest, outcome, now),
        )
        if cursor.rowcount != 1:
            return False
        db.executemany(
            "INSERT INTO subject_index (org, direction, item, id_kind, id_hash, "
            "indexed_at) VALUES (?, 'received', ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(owner, digest.hex(), s.kind, s.hash, now) for s in subjects],
        )
        return True

    # --- reading ------------------------------------------------------------------------

    @staticmethod
    def _register_rows(db: Db, rows: Sequence[Row]) -> list[RegisterRow]:
        result = []
        for row in rows:
            register_id = int(row["id"])
            recipients = tuple(
                (OrgId(r[0]), str(r[1]))
                for r in db.execute(
                    "SELECT recipient, kind FROM register_recipients WHERE register_id = ? "
                    "ORDER BY recipient",
                    (register_id,),
                )
            )
            digest = row["envelope_digest"]
            item = digest.hex() if digest is not None else f"decision:{register_id}"
            subjects = tuple(
                SubjectKey(cast(SubjectKind, s[0]), bytes(s[1]))
                for s in db.execute(
                    "SELECT id_kind, id_hash FROM subject_index WHERE org = ? AND item = ? "
                    "AND direction IN ('sent', 'not-shared') ORDER BY id_kind, id_hash",
                    (row["org"], item),
                )
            )
            receipts: tuple[ReceiptRecord, ...] = ()
            recalls: tuple[RegisterRecall, ...] = ()
            if digest is not None:
                receipts = tuple(
                    receipt_row(r)
                    for r in db.execute(
                        "SELECT * FROM receipts WHERE envelope_digest = ? "
                        "ORDER BY time, recorded_at",
                        (digest,),
                    )
                    if r["receipter"] in {org for org, _ in recipients}
                )
                recalls = tuple(
                    RegisterRecall(OrgId(r[0]), str(r[1]), float(r[2]))
                    for r in db.execute(
                        "SELECT recipient, outcome, requested_at FROM recalls "
                        "WHERE org = ? AND digest = ? ORDER BY recipient",
                        (row["org"], digest),
                    )
                )
            entry = RegisterEntry(
                org=OrgId(row["org"]),
                outcome=cast(RegisterOutcome, row["outcome"]),
                decided_by=row["decided_by"],
                decided_at=row["decided_at"],
                purpose=row["purpose"],
                rule=row["rule"],
                reason=row["reason"],
                recipients=recipients,
                categories=tuple(json.loads(row["categories"])),
                lawful_basis=row["lawful_basis"],
                citation=row["citation"],
                record_kind=row["record_kind"],
                reason_code=row["reason_code"],
                envelope_digest=digest,
                envelope_id=row["envelope_id"],
                attachments=row["attachments"],
                deadline_due=row["deadline_due"],
                deadline_rule=row["deadline_rule"],
                deadline_explanation=row["deadline_explanation"],
                satisfied_by=_statuses(row["satisfied_by"]),
                subjects=subjects,
            )
            result.append(
                RegisterRow(
                    register_id,
                    entry,
                    receipts,
                    in_reply_to=row["in_reply_to"],
                    corrects=row["corrects"],
                    recalls=recalls,
                    destroyed_at=row["destroyed_at"],
                    retention_rule=row["retention_rule"],
                )
            )
        return result

    async def register_rows(
        self,
        org: OrgId,
        *,
        since: float | None = None,
        until: float | None = None,
        purpose: str | None = None,
        outcome: RegisterOutcome | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[RegisterRow]:
        """Return ``org``'s register rows decided in ``since <= t < until``, oldest first.

        ``purpose`` and ``outcome`` keep only the rows with that purpose or decision;
        ``limit`` and ``offset`` read one page of them, and ``newest_first`` turns the order.
        """
        where, args = _register_filter(org, since, until, purpose, outcome)
        order = "DESC" if newest_first else "ASC"

        def read(db: Db) -> list[RegisterRow]:
            rows = db.execute(
                _REGISTER_SELECT + where + f" ORDER BY g.decided_at {order}, g.id {order} "
                "LIMIT ? OFFSET ?",
                (*args, NO_LIMIT if limit is None else limit, offset),
            ).fetchall()
            return self._register_rows(db, rows)

        return await self._read(read)

    async def register_count(
        self,
        org: OrgId,
        *,
        since: float | None = None,
        until: float | None = None,
        purpose: str | None = None,
        outcome: RegisterOutcome | None = None,
    ) -> int:
        """Return how many of ``org``'s register rows :meth:`register_rows` would read."""
        where, args = _register_filter(org, since, until, purpose, outcome)

        def read(db: Db) -> int:
            return int(db.execute("SELECT COUNT(*) FROM register g " + where, args).fetchone()[0])

        return await self._read(read)

    async def overdue_rows(self, org: OrgId, *, due_before: str) -> list[tuple[RegisterRow, OrgId]]:
        """Return (row, recipient) for deadlines before ``due_before`` not met by a receipt.

        ``due_before`` is a ``YYYY-MM-DD`` date; a recipient meets the deadline with any
        receipt whose status the row's ``satisfied_by`` lists.
        """

        def read(db: Db) -> list[tuple[RegisterRow, OrgId]]:
            pairs = db.execute(
                "SELECT r.id, rr.recipient FROM register r "
                "JOIN register_recipients rr ON rr.register_id = r.id "
                "WHERE r.org = ? AND r.outcome = 'shared' AND r.deadline_due IS NOT NULL "
                "AND r.deadline_due < ? AND NOT EXISTS (SELECT 1 FROM receipts x "
                "WHERE x.envelope_digest = r.envelope_digest AND x.receipter = rr.recipient "
                "AND r.satisfied_by LIKE '%,' || x.status || ',%') "
                "ORDER BY r.deadline_due, r.id, rr.recipient",
                (org, due_before),
            ).fetchall()
            rows: dict[int, RegisterRow] = {}
            for register_id in dict.fromkeys(int(p[0]) for p in pairs):
                found = db.execute(_REGISTER_SELECT + "WHERE g.id = ?", (register_id,)).fetchall()
                rows[register_id] = self._register_rows(db, found)[0]
            return [(rows[int(p[0])], OrgId(p[1])) for p in pairs]

        return await self._read(read)

    async def subject_matches(
        self, org: OrgId, hashes: Sequence[bytes]
    ) -> tuple[list[RegisterRow], list[ReceivedEntry]]:
        """Return the register rows and received items whose subjects have these hashes."""
        if not 0 < len(hashes) <= MAX_SEARCH_HASHES:
            raise ValueError(f"search for 1 to {MAX_SEARCH_HASHES} identifier hashes")

        def read(db: Db) -> tuple[list[RegisterRow], list[ReceivedEntry]]:
            marks = ", ".join("?" for _ in hashes)
            found = db.execute(
                "SELECT DISTINCT direction, item FROM subject_index WHERE org = ? "
                f"AND id_hash IN ({marks})",
                (org, *hashes),
            ).fetchall()
            ids: list[int] = []
            received: list[ReceivedEntry] = []
            for direction, item in found:
                if direction == "received":
                    row = db.execute(
                        _RECEIVED_SELECT + "WHERE i.owner = ? AND i.digest = ?",
                        (org, bytes.fromhex(item)),
                    ).fetchone()
                    if row is not None:
                        received.append(_received(db, row, receipts=True))
                elif item.startswith("decision:"):
                    ids.append(int(item.removeprefix("decision:")))
                else:
                    row = db.execute(
                        "SELECT id FROM register WHERE envelope_digest = ? AND org = ?",
                        (bytes.fromhex(item), org),
                    ).fetchone()
                    if row is not None:
                        ids.append(int(row[0]))
            rows: list[Any] = []
            for register_id in sorted(set(ids)):
                rows += db.execute(
                    _REGISTER_SELECT + "WHERE g.id = ? AND g.org = ?", (register_id, org)
                ).fetchall()
            received.sort(key=lambda r: r.item.received_at)
            return self._register_rows(db, rows), received

        return await self._read(read)

    async def holds_subject_hashes(self) -> bool:
        """Return whether any keyed subject hash is stored (made with ``register.key``)."""

        def read(db: Db) -> bool:
            return bool(db.execute("SELECT EXISTS (SELECT 1 FROM subject_index)").fetchone()[0])

        return await self._read(read)

    async def subject_hits(self, org: OrgId, hashes: Sequence[bytes]) -> list[tuple[str, bytes]]:
        """Return (item, hash) for every index entry of ``org`` with one of these hashes.

        ``item`` is the envelope digest in hex or ``decision:<id>``, as the index names it.
        """
        if not 0 < len(hashes) <= MAX_SEARCH_HASHES:
            raise ValueError(f"search for 1 to {MAX_SEARCH_HASHES} identifier hashes")

        def read(db: Db) -> list[tuple[str, bytes]]:
            marks = ", ".join("?" for _ in hashes)
            rows = db.execute(
                f"SELECT item, id_hash FROM subject_index WHERE org = ? AND id_hash IN ({marks})",
                (org, *hashes),
            )
            return [(str(r[0]), bytes(r[1])) for r in rows]

        return await self._read(read)

    async def unidentified_items(self, org: OrgId) -> tuple[list[RegisterRow], list[ReceivedEntry]]:
        """Return ``org``'s items whose records carry no identifier, destroyed ones left out.

        The disclosures registered with no subject, and the received items indexed (opened)
        with none: a search by identifier can never find them.
        """

        def read(db: Db) -> tuple[list[RegisterRow], list[ReceivedEntry]]:
            sent = db.execute(
                _REGISTER_SELECT + "WHERE g.org = ? AND g.outcome = 'shared' "
                "AND t.destroyed_at IS NULL AND NOT EXISTS (SELECT 1 FROM subject_index s "
                "WHERE s.org = g.org AND s.direction = 'sent' AND s.item = "
                f"{hex_of(db, 'g.envelope_digest')}) ORDER BY g.decided_at, g.id",
                (org,),
            ).fetchall()
            received = db.execute(
                _RECEIVED_SELECT + "WHERE i.owner = ? AND ri.outcome = 'indexed' "
                "AND NOT EXISTS (SELECT 1 FROM subject_index s WHERE s.org = i.owner "
                f"AND s.direction = 'received' AND s.item = {hex_of(db, 'i.digest')}) "
                "AND NOT EXISTS (SELECT 1 FROM retention x WHERE x.org = i.owner "
                "AND x.digest = i.digest AND x.destroyed_at IS NOT NULL) "
                "ORDER BY i.received_at",
                (org,),
            ).fetchall()
            return (
                self._register_rows(db, sent),
                [_received(db, row, receipts=False) for row in received],
            )

        return await self._read(read)

    async def received_not_indexed(self, owner: OrgId) -> list[ReceivedEntry]:
        """Return items delivered to ``owner`` whose subjects are not in the index."""

        def read(db: Db) -> list[ReceivedEntry]:
            rows = db.execute(
                _RECEIVED_SELECT + "WHERE i.owner = ? AND (ri.outcome IS NULL OR "
                "ri.outcome != 'indexed') "
                # A destroyed item can no longer be opened to review (retention).
                "AND NOT EXISTS (SELECT 1 FROM retention x WHERE x.org = i.owner "
                "AND x.digest = i.digest AND x.destroyed_at IS NOT NULL) "
                "ORDER BY i.received_at",
                (owner,),
            ).fetchall()
            return [_received(db, row, receipts=False) for row in rows]

        return await self._read(read)
