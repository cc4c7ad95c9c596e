"""Named API tokens for machines in the SQLite store (the ``api_tokens`` table, migration 17).

A table group of :class:`~exchange.store.sqlite.SqliteStore`. It holds rows, never secrets
(a token's hash only) and no rules: whether a token is still good, and when its use is worth
writing, is :mod:`exchange.auth.api_token`'s to say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

from exchange.auth.api_token import ApiToken, NewApiToken
from exchange.keys.ids import OrgId
from exchange.ledger.account_events import AccountEvent
from exchange.model import Role
from exchange.store.account_events import insert_account_event
from exchange.store.base import DuplicateError
from exchange.store.rows import Tables
from exchange.store.sql import Db, Row

_SELECT: Final = (
    "SELECT id, name, org, role, created_at, expires_at, last_used_at, revoked_at, created_by "
    "FROM api_tokens "
)


def _token(row: Row) -> ApiToken:
    return ApiToken(
        id=int(row["id"]),
        name=row["name"],
        org=OrgId(row["org"]),
        role=cast(Role, row["role"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        created_by=row["created_by"],
    )


class ApiTokenTables(Tables):
    """Machines' API tokens."""

    async def add_api_token(
        self, token: NewApiToken, *, audit: Callable[[int], AccountEvent] | None = None
    ) -> int:
        """Store a new token; return its number. :class:`DuplicateError` if the name is taken.

        ``audit`` makes, from the new token's number, the account event recorded with it.
        """

        def tx(db: Db) -> int:
            if db.execute("SELECT 1 FROM api_tokens WHERE name = ?", (token.name,)).fetchone():
                raise DuplicateError(f"a token named {token.name} already exists")
            cursor = db.execute(
                "INSERT INTO api_tokens (name, org, role, token_hash, created_at, expires_at, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    token.name, token.org, token.role, token.token_hash, token.created_at,
                    token.expires_at, token.created_by,
                ),
            )  # fmt: skip
            number = int(cursor.fetchone()[0])
            if audit is not None:
                insert_account_event(db, audit(number))
            return number

        return await self._tx(tx)

    async def api_tokens(self, org: OrgId | None = None) -> list[ApiToken]:
        """Return every token (of ``org`` if given), newest first."""

        def read(db: Db) -> list[ApiToken]:
            if org is None:
                rows = db.execute(_SELECT + "ORDER BY created_at DESC, id DESC")
            else:
                rows = db.execute(
                    _SELECT + "WHERE org = ? ORDER BY created_at DESC, id DESC", (org,)
                )
            return [_token(r) for r in rows]

        return await self._read(read)

    async def api_token_by_hash(self, token_hash: bytes) -> ApiToken | None:
        """Return the token whose hash is ``token_hash`` (revoked or expired too), or None."""

        def read(db: Db) -> ApiToken | None:
            row = db.execute(_SELECT + "WHERE token_hash = ?", (token_hash,)).fetchone()
            return None if row is None else _token(row)

        return await self._read(read)

    async def api_token_named(self, name_or_id: str) -> ApiToken | None:
        """Return the token named ``name_or_id``, or numbered so, or None."""

        def read(db: Db) -> ApiToken | None:
            row = db.execute(_SELECT + "WHERE name = ?", (name_or_id,)).fetchone()
            if row is None and name_or_id.isdigit():
                row = db.execute(_SELECT + "WHERE id = ?", (int(name_or_id),)).fetchone()
            return None if row is None else _token(row)

        return await self._read(read)

    async def revoke_api_token(
        self, token_id: int, now: float, *, audit: AccountEvent | None = None
    ) -> bool:
        """Revoke a token from ``now``; False if there is none or it was revoked already.

        ``audit`` is the account event recorded with the revocation.
        """

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, token_id),
            )
            if cursor.rowcount != 1:
                return False
            if audit is not None:
                insert_account_event(db, audit)
            return True

        return await self._tx(tx)

    async def note_api_token_use(self, token_id: int, now: float) -> None:
        """Record that a token was used at ``now`` (never moving its last use back)."""

        def tx(db: Db) -> None:
            db.execute(
                "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND "
                "(last_used_at IS NULL OR last_used_at < ?)",
                (now, token_id, now),
            )

        await self._tx(tx)
