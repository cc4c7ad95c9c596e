"""Passkeys and their challenges in the SQLite store (the tables of migration 19).

A table group of :class:`~exchange.store.sqlite.SqliteStore`. It holds rows and no rules:
whether an answer verifies, whether a challenge is this browser's and still live, and
whether a counter moved forward are :mod:`exchange.auth.passkey`'s to say. The two writes
that guard against replay are atomic: a challenge is deleted as it is read
(:meth:`PasskeyTables.take_passkey_challenge`), and a use is written only if the counter is
still the one the answer was checked against (:meth:`PasskeyTables.note_passkey_use`).
Removing an account, or resetting its second factor, deletes its passkeys
(:mod:`exchange.store.accounts`).
"""

from __future__ import annotations

from typing import Final, cast

from exchange.auth.passkey import NewPasskey, Passkey, PasskeyChallenge, Purpose
from exchange.store.base import DuplicateError
from exchange.store.rows import Tables
from exchange.store.sql import Db, IntegrityError, Row

_SELECT: Final = (
    "SELECT p.id, p.account_id, a.user_id, p.credential_id, p.public_key, p.sign_count, "
    "p.transports, p.name, p.created_at, p.last_used_at "
    "FROM passkeys p JOIN accounts a ON a.id = p.account_id "
)


def _passkey(row: Row) -> Passkey:
    transports = str(row["transports"])
    return Passkey(
        id=int(row["id"]),
        account_id=int(row["account_id"]),
        user_id=row["user_id"],
        credential_id=bytes(row["credential_id"]),
        public_key=bytes(row["public_key"]),
        sign_count=int(row["sign_count"]),
        transports=tuple(transports.split(",")) if transports else (),
        name=row["name"],
        created=row["created_at"],
        last_used=row["last_used_at"],
    )


class PasskeyTables(Tables):
    """Accounts' passkeys, and the challenges issued for them."""

    async def add_passkey(
        self, user_id: str, passkey: NewPasskey, *, name: str, now: float
    ) -> Passkey | None:
        """Store a verified passkey for the account of ``user_id``; None if it has no account.

        Raises :class:`DuplicateError` if the credential is registered already (to anyone).
        """

        def tx(db: Db) -> Passkey | None:
            found = db.execute("SELECT id FROM accounts WHERE user_id = ?", (user_id,)).fetchone()
            if found is None:
                return None
            try:
                cursor = db.execute(
                    "INSERT INTO passkeys (account_id, credential_id, public_key, sign_count, "
                    "transports, name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        found[0], passkey.credential_id, passkey.public_key, passkey.sign_count,
                        ",".join(passkey.transports), name, now,
                    ),
                )  # fmt: skip
            except IntegrityError:
                raise DuplicateError("the passkey is registered already") from None
            row = db.execute(_SELECT + "WHERE p.id = ?", (cursor.fetchone()[0],)).fetchone()
            return _passkey(row)

        return await self._tx(tx)

    async def passkeys_of(self, user_id: str) -> list[Passkey]:
        """Return the passkeys of the account of ``user_id``, oldest first."""

        def read(db: Db) -> list[Passkey]:
            rows = db.execute(_SELECT + "WHERE a.user_id = ? ORDER BY p.id", (user_id,))
            return [_passkey(r) for r in rows]

        return await self._read(read)

    async def passkey_by_credential(self, credential_id: bytes) -> Passkey | None:
        """Return the passkey whose credential id is ``credential_id``, or None."""

        def read(db: Db) -> Passkey | None:
            row = db.execute(_SELECT + "WHERE p.credential_id = ?", (credential_id,)).fetchone()
            return None if row is None else _passkey(row)

        return await self._read(read)

    async def remove_passkey(self, user_id: str, passkey_id: int) -> bool:
        """Delete passkey ``passkey_id`` if it is the account of ``user_id``'s; True if so."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "DELETE FROM passkeys WHERE id = ? AND account_id = "
                "(SELECT id FROM accounts WHERE user_id = ?)",
                (passkey_id, user_id),
            )
            return cursor.rowcount == 1

        return await self._tx(tx)

    async def note_passkey_use(
        self, passkey_id: int, *, sign_count_was: int, sign_count: int, now: float
    ) -> bool:
        """Record a use with its new counter, only if the counter is still ``sign_count_was``.

        False, writing nothing, if another use was recorded since the answer was checked.
        """

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE passkeys SET sign_count = ?, last_used_at = ? WHERE id = ? AND "
                "sign_count = ?",
                (sign_count, now, passkey_id, sign_count_was),
            )
            return cursor.rowcount == 1

        return await self._tx(tx)

    async def add_passkey_challenge(self, challenge: PasskeyChallenge, *, now: float) -> None:
        """Keep a challenge, replacing the browser's earlier one for the same purpose.

        Challenges past their time are deleted on the way, so the table holds only live ones.
        """

        def tx(db: Db) -> None:
            db.execute("DELETE FROM passkey_challenges WHERE expires_at <= ?", (now,))
            db.execute(
                "DELETE FROM passkey_challenges WHERE binding = ? AND purpose = ?",
                (challenge.binding, challenge.purpose),
            )
            db.execute(
                "INSERT INTO passkey_challenges (key, binding, purpose, user_id, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    challenge.key, challenge.binding, challenge.purpose, challenge.user_id,
                    challenge.expires,
                ),
            )  # fmt: skip

        await self._tx(tx)

    async def take_passkey_challenge(self, key: bytes) -> PasskeyChallenge | None:
        """Return the challenge named ``key`` and delete it, so it is answered once; or None."""

        def tx(db: Db) -> PasskeyChallenge | None:
            row = db.execute(
                "DELETE FROM passkey_challenges WHERE key = ? "
                "RETURNING binding, purpose, user_id, expires_at",
                (key,),
            ).fetchone()
            if row is None:
                return None
            return PasskeyChallenge(
                key=key,
                binding=bytes(row["binding"]),
                purpose=cast(Purpose, row["purpose"]),
                user_id=row["user_id"],
                expires=row["expires_at"],
            )

        return await self._tx(tx)
