"""Staff accounts and web sessions in the SQLite store.

A table group of :class:`~exchange.store.sqlite.SqliteStore` over the tables of the accounts
migration (``exchange.store.schema``): ``accounts``, ``recovery_codes``,
``sign_in_failures`` and ``sessions`` (an account's passkeys are
:mod:`exchange.store.passkeys`'s, but go with it here when it is removed or reset). It
applies changes and holds no rules: whether a password, a code or a session is good, and how
long sign-in is slowed, is decided by the service (``exchange.service.accounts``) with the
pure rules of :mod:`exchange.auth`. The writes that guard against replay (a TOTP step, a
recovery code) are conditional updates, so two requests racing with the same code cannot
both succeed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, cast

from exchange.auth.account import Account, NewAccount
from exchange.auth.session import Level, Session
from exchange.auth.totp import TotpSecret
from exchange.keys.ids import OrgId
from exchange.ledger.account_events import AccountEvent
from exchange.model import Role, User
from exchange.store.account_events import insert_account_event
from exchange.store.base import AccountChange, DuplicateError
from exchange.store.rows import Tables
from exchange.store.sql import Db, IntegrityError, Row

_ACCOUNT_SELECT: Final = (
    "SELECT a.id, a.email, a.password_hash, a.totp_secret, a.totp_pending, a.totp_last_step, "
    "a.failed_count, a.slowed_until, a.disabled, a.invitation_hash, a.invitation_expires_at, "
    "a.factor_required, a.last_sign_in_at, u.id AS user_id, u.org, u.name, u.role, "
    "(SELECT COUNT(*) FROM recovery_codes c WHERE c.account_id = a.id AND c.used_at IS NULL) "
    "AS recovery_left, (SELECT COUNT(*) FROM passkeys p WHERE p.account_id = a.id) AS passkeys "
    "FROM accounts a JOIN users u ON u.id = a.user_id "
)
#: An account with no second factor: no confirmed authenticator app and no passkey.
_NO_SECOND_FACTOR: Final = (
    "a.totp_secret IS NULL AND NOT EXISTS (SELECT 1 FROM passkeys p WHERE p.account_id = a.id)"
)
_SESSION_SELECT: Final = (
    "SELECT s.id_hash, s.created_at, s.last_seen, s.level, s.required, s.method, "
    "s.csrf_secret, s.factor_at, u.id AS user_id, u.org, u.name, u.role "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
)


def _user(row: Row) -> User:
    return User(row["user_id"], OrgId(row["org"]), row["name"], cast(Role, row["role"]))


def _secret(raw: bytes | None) -> TotpSecret | None:
    return None if raw is None else TotpSecret(bytes(raw))


def _account(row: Row) -> Account:
    return Account(
        id=int(row["id"]),
        user=_user(row),
        email=row["email"],
        password_hash=row["password_hash"],
        totp_secret=_secret(row["totp_secret"]),
        totp_pending=_secret(row["totp_pending"]),
        totp_last_step=row["totp_last_step"],
        failed_count=int(row["failed_count"]),
        slowed_until=row["slowed_until"],
        disabled=bool(row["disabled"]),
        recovery_left=int(row["recovery_left"]),
        invitation_hash=None if row["invitation_hash"] is None else bytes(row["invitation_hash"]),
        invitation_expires=row["invitation_expires_at"],
        factor_required=bool(row["factor_required"]),
        last_sign_in=row["last_sign_in_at"],
        passkeys=int(row["passkeys"]),
    )


def _session(row: Row) -> Session:
    return Session(
        id_hash=bytes(row["id_hash"]),
        user=_user(row),
        created=row["created_at"],
        last_seen=row["last_seen"],
        level=cast(Level, row["level"]),
        required=cast(Level, row["required"]),
        method=row["method"],
        csrf_secret=bytes(row["csrf_secret"]),
        factor_at=row["factor_at"],
    )


def _other_admins(db: Db, org: str, user_id: str) -> int:
    """Count the enabled administrators of ``org`` other than ``user_id`` who can sign in."""
    row = db.execute(
        "SELECT COUNT(*) FROM accounts a JOIN users u ON u.id = a.user_id WHERE u.org = ? "
        "AND u.role = 'admin' AND a.disabled = 0 AND a.invitation_hash IS NULL AND u.id != ?",
        (org, user_id),
    ).fetchone()
    return int(row[0])


def _target(db: Db, account_id: int) -> Row | None:
    return cast(
        Row | None,
        db.execute(
            "SELECT u.id, u.org, u.role FROM accounts a JOIN users u ON u.id = a.user_id "
            "WHERE a.id = ?",
            (account_id,),
        ).fetchone(),
    )


def insert_user(db: Db, user: User, token_hash: bytes, now: float) -> None:
    """Insert the user row; raise :class:`DuplicateError` if the id is taken."""
    try:
        db.execute(
            "INSERT INTO users (id, org, name, role, token_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (user.id, user.org, user.name, user.role, token_hash, now),
        )
    except IntegrityError:
        raise DuplicateError("user ID already exists") from None


def insert_account(db: Db, account: NewAccount, now: float) -> int:
    """Insert the account row; raise :class:`DuplicateError` if the user or address has one."""
    taken = db.execute(
        "SELECT user_id = ? FROM accounts WHERE user_id = ? OR email_key = ?",
        (account.user_id, account.user_id, account.email_key),
    ).fetchone()
    if taken is not None:
        raise DuplicateError(
            "the user already has an account" if taken[0] else "the email address is taken"
        )
    cursor = db.execute(
        "INSERT INTO accounts (user_id, email, email_key, password_hash, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (account.user_id, account.email, account.email_key, account.password_hash, now, now),
    )
    return int(cursor.fetchone()[0])


class AccountTables(Tables):
    """Accounts, recovery codes, sign-in failures and sessions."""

    # --- accounts --------------------------------------------------------------------------

    async def add_account(self, account: NewAccount, now: float) -> int | None:
        """Create an account for an existing user; return its id (None: no such user).

        Raises :class:`DuplicateError` if the user has an account or the address is taken.
        """

        def tx(db: Db) -> int | None:
            if db.execute("SELECT 1 FROM users WHERE id = ?", (account.user_id,)).fetchone():
                return insert_account(db, account, now)
            return None

        return await self._tx(tx)

    async def add_user_with_account(
        self, user: User, token_hash: bytes, account: NewAccount, now: float
    ) -> int:
        """Create a user holding a token and their account together; return the account id."""

        def tx(db: Db) -> int:
            insert_user(db, user, token_hash, now)
            return insert_account(db, account, now)

        return await self._tx(tx)

    async def account_by_email(self, email_key: str) -> Account | None:
        """Return the account whose case-folded address is ``email_key``, or None."""
        return await self._read(
            lambda db: _one(db, _ACCOUNT_SELECT + "WHERE a.email_key = ?", (email_key,))
        )

    async def account_by_user(self, user_id: str) -> Account | None:
        """Return the account of user ``user_id``, or None."""
        return await self._read(
            lambda db: _one(db, _ACCOUNT_SELECT + "WHERE a.user_id = ?", (user_id,))
        )

    async def accounts_without_second_factor(self, roles: Sequence[str]) -> list[str]:
        """Return the user ids of enabled accounts of ``roles`` with no second factor."""
        marks = ", ".join("?" for _ in roles)

        def read(db: Db) -> list[str]:
            rows = db.execute(
                "SELECT u.id FROM accounts a JOIN users u ON u.id = a.user_id "
                f"WHERE {_NO_SECOND_FACTOR} AND a.disabled = 0 AND u.role IN ({marks}) "
                "ORDER BY u.id",
                tuple(roles),
            )
            return [str(r[0]) for r in rows]

        return await self._read(read)

    async def add_invited_user(
        self,
        user: User,
        token_hash: bytes,
        account: NewAccount,
        *,
        invitation_hash: bytes,
        expires: float,
        now: float,
        audit: AccountEvent | None = None,
    ) -> int:
        """Create a user and an account that waits for its invitation; return the account id.

        The account has no password (``''``) and must set up a second factor at first
        sign-in. Raises :class:`DuplicateError` if the user exists or the address is taken.
        ``audit`` is the account event recorded with it (so with every change below).
        """

        def tx(db: Db) -> int:
            insert_user(db, user, token_hash, now)
            account_id = insert_account(db, account, now)
            db.execute(
                "UPDATE accounts SET invitation_hash = ?, invitation_expires_at = ?, "
                "factor_required = 1 WHERE id = ?",
                (invitation_hash, expires, account_id),
            )
            _audited(db, done=True, audit=audit)
            return account_id

        return await self._tx(tx)

    async def renew_invitation(
        self,
        account_id: int,
        invitation_hash: bytes,
        *,
        expires: float,
        now: float,
        audit: AccountEvent | None = None,
    ) -> bool:
        """Replace the code of an invitation not accepted yet; False if none is waiting."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE accounts SET invitation_hash = ?, invitation_expires_at = ?, "
                "updated_at = ? WHERE id = ? AND invitation_hash IS NOT NULL",
                (invitation_hash, expires, now, account_id),
            )
            return _audited(db, done=cursor.rowcount == 1, audit=audit)

        return await self._tx(tx)

    async def accept_invitation(
        self,
        account_id: int,
        invitation_hash: bytes,
        password_hash: str,
        *,
        now: float,
        audit: AccountEvent | None = None,
    ) -> bool:
        """Set the password of an invited account and use up its code, if still valid.

        Conditional on the code and its expiry, so a code works once even when two requests
        race with it. False, writing nothing, otherwise.
        """

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE accounts SET password_hash = ?, invitation_hash = NULL, "
                "invitation_expires_at = NULL, updated_at = ? WHERE id = ? AND "
                "invitation_hash = ? AND invitation_expires_at > ? AND disabled = 0",
                (password_hash, now, account_id, invitation_hash, now),
            )
            return _audited(db, done=cursor.rowcount == 1, audit=audit)

        return await self._tx(tx)

    async def account_by_id(self, account_id: int) -> Account | None:
        """Return the account numbered ``account_id``, or None."""
        return await self._read(
            lambda db: _one(db, _ACCOUNT_SELECT + "WHERE a.id = ?", (account_id,))
        )

    async def organisation_accounts(self, org: OrgId) -> list[Account]:
        """Return every account of ``org``'s staff, by name."""

        def read(db: Db) -> list[Account]:
            rows = db.execute(
                _ACCOUNT_SELECT + "WHERE u.org = ? ORDER BY u.name COLLATE NOCASE, a.id", (org,)
            )
            return [_account(r) for r in rows]

        return await self._read(read)

    async def change_account(
        self,
        account_id: int,
        *,
        now: float,
        role: Role | None = None,
        disabled: bool | None = None,
        reset_second_factor: bool = False,
        keep_an_admin: bool = True,
        audit: AccountEvent | None = None,
    ) -> AccountChange:
        """Change an account's role, disable or enable it, or reset its second factor.

        Resetting the second factor forgets the authenticator app, the recovery codes and
        every passkey, and requires one again at the next sign-in. Every change ends the
        account's sessions. With ``keep_an_admin``, a change that takes the last enabled
        administrator of the organisation who can sign in away from it (a new role,
        disabling, a reset of their own) writes nothing and answers ``last-admin``.
        """

        def tx(db: Db) -> AccountChange:
            target = _target(db, account_id)
            if target is None:
                return "missing"
            user_id, org, current = target["id"], target["org"], target["role"]
            takes_admin = current == "admin" and (
                (role is not None and role != "admin") or bool(disabled) or reset_second_factor
            )
            if keep_an_admin and takes_admin and _other_admins(db, org, user_id) == 0:
                return "last-admin"
            if role is not None:
                db.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
            if disabled is not None:
                db.execute(
                    "UPDATE accounts SET disabled = ? WHERE id = ?", (int(disabled), account_id)
                )
            if reset_second_factor:
                db.execute(
                    "UPDATE accounts SET totp_secret = NULL, totp_pending = NULL, "
                    "totp_last_step = NULL, factor_required = 1 WHERE id = ?",
                    (account_id,),
                )
                db.execute("DELETE FROM recovery_codes WHERE account_id = ?", (account_id,))
                db.execute("DELETE FROM passkeys WHERE account_id = ?", (account_id,))
            db.execute("UPDATE accounts SET updated_at = ? WHERE id = ?", (now, account_id))
            db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            _audited(db, done=True, audit=audit)
            return "done"

        return await self._tx(tx)

    async def remove_account(
        self,
        account_id: int,
        *,
        token_hash: bytes,
        keep_an_admin: bool = True,
        audit: AccountEvent | None = None,
    ) -> AccountChange:
        """Remove an account, with its recovery codes, passkeys and sessions.

        The user row stays, so what they sent and opened still names them and their id is
        not given to someone else; its API token becomes ``token_hash``, one nobody holds.
        With ``keep_an_admin``, removing the organisation's last enabled administrator who
        can sign in writes nothing and answers ``last-admin``.
        """

        def tx(db: Db) -> AccountChange:
            target = _target(db, account_id)
            if target is None:
                return "missing"
            user_id = target["id"]
            if (
                keep_an_admin
                and target["role"] == "admin"
                and _other_admins(db, target["org"], user_id) == 0
            ):
                return "last-admin"
            db.execute("DELETE FROM recovery_codes WHERE account_id = ?", (account_id,))
            db.execute("DELETE FROM passkeys WHERE account_id = ?", (account_id,))
            db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM sso_links WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
            db.execute("UPDATE users SET token_hash = ? WHERE id = ?", (token_hash, user_id))
            _audited(db, done=True, audit=audit)
            return "done"

        return await self._tx(tx)

    async def note_sign_in(self, user_id: str, now: float) -> None:
        """Record that the account of ``user_id`` reached a signed-in session at ``now``."""

        def tx(db: Db) -> None:
            db.execute("UPDATE accounts SET last_sign_in_at = ? WHERE user_id = ?", (now, user_id))

        await self._tx(tx)

    async def readers_signed_in_without_second_factor(self, roles: Sequence[str]) -> list[int]:
        """Return the ids of reader accounts signed in with the password alone.

        That is, enabled accounts of ``roles`` with no second factor (app or passkey) holding a
        session at level ``password`` whose required level is ``password``.
        """
        marks = ", ".join("?" for _ in roles)

        def read(db: Db) -> list[int]:
            rows = db.execute(
                "SELECT DISTINCT a.id FROM accounts a JOIN users u ON u.id = a.user_id "
                f"JOIN sessions s ON s.user_id = a.user_id WHERE {_NO_SECOND_FACTOR} "
                f"AND a.disabled = 0 AND u.role IN ({marks}) AND s.required = 'password' "
                "AND s.level = 'password' "
                "ORDER BY a.id",
                tuple(roles),
            )
            return [int(r[0]) for r in rows]

        return await self._read(read)

    async def set_account_disabled(self, user_id: str, *, disabled: bool, now: float) -> bool:
        """Disable or enable an account; disabling ends its sessions. False: no account."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE accounts SET disabled = ?, updated_at = ? WHERE user_id = ?",
                (int(disabled), now, user_id),
            )
            if disabled:
                db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            return cursor.rowcount == 1

        return await self._tx(tx)

    # --- failed attempts -----------------------------------------------------------------

    async def sign_in_slowed_until(self, email_hash: bytes) -> float | None:
        """Return until when sign-in with an address (by hash) is slowed, if it is."""

        def read(db: Db) -> float | None:
            row = db.execute(
                "SELECT slowed_until FROM sign_in_failures WHERE email_hash = ?", (email_hash,)
            ).fetchone()
            return None if row is None else row[0]

        return await self._read(read)

    async def record_failure(
        self,
        now: float,
        slow: Callable[[int], float | None],
        *,
        email_hash: bytes | None,
        account_id: int | None,
        audit: AccountEvent | None = None,
    ) -> float | None:
        """Count one failure for an address and/or an account; return the latest slowdown.

        ``slow`` turns a new count of failures in a row into until when attempts are refused
        (None: not slowed); it is called inside the transaction with each new count.
        """

        def tx(db: Db) -> float | None:
            until: list[float] = []
            if email_hash is not None:
                row = db.execute(
                    "SELECT failed_count FROM sign_in_failures WHERE email_hash = ?",
                    (email_hash,),
                ).fetchone()
                count = (0 if row is None else int(row[0])) + 1
                slowed = slow(count)
                db.execute(
                    "INSERT INTO sign_in_failures (email_hash, failed_count, slowed_until, "
                    "updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (email_hash) DO UPDATE SET "
                    "failed_count = excluded.failed_count, slowed_until = "
                    "excluded.slowed_until, updated_at = excluded.updated_at",
                    (email_hash, count, slowed, now),
                )
                until += [] if slowed is None else [slowed]
            if account_id is not None:
                row = db.execute(
                    "SELECT failed_count FROM accounts WHERE id = ?", (account_id,)
                ).fetchone()
                if row is not None:
                    count = int(row[0]) + 1
                    slowed = slow(count)
                    db.execute(
                        "UPDATE accounts SET failed_count = ?, slowed_until = ?, updated_at = ? "
                        "WHERE id = ?",
                        (count, slowed, now, account_id),
                    )
                    until += [] if slowed is None else [slowed]
            _audited(db, done=True, audit=audit)
            return max(until, default=None)

        return await self._tx(tx)

    async def clear_failures(self, *, email_hash: bytes | None, account_id: int | None) -> None:
        """Forget the failures in a row of an address and/or an account (after a success)."""

        def tx(db: Db) -> None:
            if email_hash is not None:
                db.execute("DELETE FROM sign_in_failures WHERE email_hash = ?", (email_hash,))
            if account_id is not None:
                db.execute(
                    "UPDATE accounts SET failed_count = 0, slowed_until = NULL WHERE id = ?",
                    (account_id,),
                )

        await self._tx(tx)

    # --- the second factor ---------------------------------------------------------------

    async def set_totp_pending(self, account_id: int, secret: TotpSecret, now: float) -> None:
        """Keep a secret shown for enrolment until a code confirms it."""

        def tx(db: Db) -> None:
            db.execute(
                "UPDATE accounts SET totp_pending = ?, updated_at = ? WHERE id = ?",
                (secret.raw, now, account_id),
            )

        await self._tx(tx)

    async def confirm_totp(
        self,
        account_id: int,
        secret: TotpSecret,
        *,
        step: int,
        recovery_hashes: Sequence[bytes],
        now: float,
    ) -> bool:
        """Make the pending secret the account's, with new recovery codes (old ones go).

        Returns False, writing nothing, if ``secret`` is no longer the pending one.
        """

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE accounts SET totp_secret = totp_pending, totp_pending = NULL, "
                "totp_last_step = ?, updated_at = ? WHERE id = ? AND totp_pending = ?",
                (step, now, account_id, secret.raw),
            )
            if cursor.rowcount != 1:
                return False
            db.execute("DELETE FROM recovery_codes WHERE account_id = ?", (account_id,))
            db.executemany(
                "INSERT INTO recovery_codes (account_id, code_hash) VALUES (?, ?)",
                [(account_id, h) for h in recovery_hashes],
            )
            return True

        return await self._tx(tx)

    async def use_totp_step(self, account_id: int, step: int) -> bool:
        """Record ``step`` as the last used, only if it is later than the last; True if so."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE accounts SET totp_last_step = ? WHERE id = ? AND "
                "(totp_last_step IS NULL OR totp_last_step < ?)",
                (step, account_id, step),
            )
            return cursor.rowcount == 1

        return await self._tx(tx)

    async def use_recovery_code(self, account_id: int, code_hash: bytes, now: float) -> bool:
        """Mark an unused recovery code used; True if it was there and unused."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE recovery_codes SET used_at = ? WHERE account_id = ? AND code_hash = ? "
                "AND used_at IS NULL",
                (now, account_id, code_hash),
            )
            return cursor.rowcount == 1

        return await self._tx(tx)

    # --- sessions ------------------------------------------------------------------------

    async def add_session(
        self,
        session: Session,
        *,
        replacing: bytes | None = None,
        audit: AccountEvent | None = None,
    ) -> None:
        """Store a new session, deleting the one it replaces in the same transaction."""

        def tx(db: Db) -> None:
            if replacing is not None:
                db.execute("DELETE FROM sessions WHERE id_hash = ?", (replacing,))
            db.execute(
                "INSERT INTO sessions (id_hash, user_id, created_at, last_seen, level, "
                "required, method, csrf_secret, factor_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session.id_hash, session.user.id, session.created, session.last_seen,
                    session.level, session.required, session.method, session.csrf_secret,
                    session.factor_at,
                ),
            )  # fmt: skip
            _audited(db, done=True, audit=audit)

        await self._tx(tx)

    async def session(self, id_hash: bytes) -> Session | None:
        """Return the session named by ``id_hash`` with its user, or None."""

        def read(db: Db) -> Session | None:
            row = db.execute(_SESSION_SELECT + "WHERE s.id_hash = ?", (id_hash,)).fetchone()
            return None if row is None else _session(row)

        return await self._read(read)

    async def touch_session(self, id_hash: bytes, now: float) -> bool:
        """Record that a session was used at ``now``; False if it is gone."""

        def tx(db: Db) -> bool:
            cursor = db.execute(
                "UPDATE sessions SET last_seen = CASE WHEN last_seen > ? THEN last_seen ELSE ? END "
                "WHERE id_hash = ?",
                (now, now, id_hash),
            )
            return cursor.rowcount == 1

        return await self._tx(tx)

    async def delete_session(self, id_hash: bytes) -> bool:
        """Delete one session; True if it existed."""

        def tx(db: Db) -> bool:
            return db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,)).rowcount == 1

        return await self._tx(tx)

    async def delete_user_sessions(self, user_id: str) -> int:
        """Delete every session of a user; return how many."""

        def tx(db: Db) -> int:
            return db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount

        return await self._tx(tx)

    async def sweep_sessions(self, *, idle_before: float, created_before: float) -> int:
        """Delete sessions last used at or before ``idle_before`` or made by ``created_before``."""

        def tx(db: Db) -> int:
            return db.execute(
                "DELETE FROM sessions WHERE last_seen <= ? OR created_at <= ?",
                (idle_before, created_before),
            ).rowcount

        return await self._tx(tx)


def _audited(db: Db, *, done: bool, audit: AccountEvent | None) -> bool:
    """Record ``audit`` in this transaction if the change was ``done``; return ``done``."""
    if done and audit is not None:
        insert_account_event(db, audit)
    return done


def _one(db: Db, query: str, args: tuple[object, ...]) -> Account | None:
    row = db.execute(query, args).fetchone()
    return None if row is None else _account(row)
