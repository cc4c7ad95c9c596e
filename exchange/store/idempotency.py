"""Idempotency keys of staff API submissions, in the SQLite store.

A table group of :class:`~exchange.store.sqlite.SqliteStore` over ``idempotency_keys``: per
caller (``scope``: the organisation and the account) and ``Idempotency-Key``, the SHA-256 of
the request that first used the key and the service's answer to it, until ``expires_at``.
A row is written by :func:`insert_idempotency` in the very transaction that commits what
the request made (the envelope, its outbox rows, its register row), so a retry after a crash
between that commit and the answer finds the key. Expired rows are deleted whenever a key
is looked up. It holds no rules: what a key may look like and how long it is kept is
:mod:`exchange.service.idempotency`'s.
"""

from __future__ import annotations

from exchange.model import IdempotencyRecord
from exchange.store.rows import Tables
from exchange.store.sql import Db


def insert_idempotency(db: Db, record: IdempotencyRecord) -> None:
    """Write ``record`` in the caller's transaction (a repeated key fails the transaction)."""
    db.execute(
        "INSERT INTO idempotency_keys (scope, key, request_hash, answer, created_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            record.scope,
            record.key,
            record.request_hash,
            record.answer,
            record.created_at,
            record.expires_at,
        ),
    )


class IdempotencyTables(Tables):
    """Looking up a caller's key, and forgetting expired ones."""

    async def idempotency_record(
        self, scope: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        """Delete every expired key, then return ``scope``'s ``key`` if it is held."""

        def tx(db: Db) -> IdempotencyRecord | None:
            db.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
            row = db.execute(
                "SELECT scope, key, request_hash, answer, created_at, expires_at "
                "FROM idempotency_keys WHERE scope = ? AND key = ?",
                (scope, key),
            ).fetchone()
            if row is None:
                return None
            return IdempotencyRecord(
                scope=row[0],
                key=row[1],
                request_hash=bytes(row[2]),
                answer=row[3],
                created_at=row[4],
                expires_at=row[5],
            )

        return await self._tx(tx)
