"""Single sign-on links in the SQLite store (the ``sso_links`` table, migration 19).

A link says that the person a provider knows as ``subject`` (its ``sub`` claim, unique per
``issuer``) is the user of one account here. It is written at that person's first sign-in
through the provider (by verified email address) or when single sign-on makes their account
(self-provisioning); after that, sign-in finds the account by (issuer, subject) only. A
table group of :class:`~exchange.store.sqlite.SqliteStore`: rows, no rules.
"""

from __future__ import annotations

from exchange.auth.account import NewAccount
from exchange.model import User
from exchange.store.accounts import insert_account, insert_user
from exchange.store.base import DuplicateError, LinkOutcome
from exchange.store.rows import Tables
from exchange.store.sql import Db, IntegrityError


class SsoLinkTables(Tables):
    """Links from a provider's people to this node's accounts."""

    async def sso_linked_user(self, issuer: str, subject: str) -> str | None:
        """Return the user id linked to ``subject`` of ``issuer``, or None."""

        def read(db: Db) -> str | None:
            row = db.execute(
                "SELECT user_id FROM sso_links WHERE issuer = ? AND subject = ?",
                (issuer, subject),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read(read)

    async def sso_issuers_of(self, user_id: str) -> list[str]:
        """Return the issuers whose people are linked to ``user_id``'s account, in link order."""

        def read(db: Db) -> list[str]:
            rows = db.execute(
                "SELECT issuer FROM sso_links WHERE user_id = ? ORDER BY linked_at, issuer",
                (user_id,),
            )
            return [str(r[0]) for r in rows]

        return await self._read(read)

    async def link_sso(self, issuer: str, subject: str, user_id: str, *, now: float) -> LinkOutcome:
        """Link ``subject`` of ``issuer`` to ``user_id``'s account, if it may be linked.

        The account must be enabled and not linked to another person of the same issuer;
        an account waiting for its invitation must link before the invitation expires, and
        linking accepts it (the account then has no password: it signs in through the
        provider). Conditional in one transaction, so two sign-ins cannot both link.
        """

        def tx(db: Db) -> LinkOutcome:
            account = db.execute(
                "SELECT id, disabled, invitation_hash, invitation_expires_at FROM accounts "
                "WHERE user_id = ?",
                (user_id,),
            ).fetchone()
            if account is None:
                return "missing"
            if account["disabled"]:
                return "disabled"
            if db.execute(
                "SELECT 1 FROM sso_links WHERE (issuer = ? AND subject = ?) OR "
                "(issuer = ? AND user_id = ?)",
                (issuer, subject, issuer, user_id),
            ).fetchone():
                return "taken"
            if account["invitation_hash"] is not None:
                if not now < (account["invitation_expires_at"] or 0.0):
                    return "invitation-expired"
                db.execute(
                    "UPDATE accounts SET invitation_hash = NULL, invitation_expires_at = NULL, "
                    "updated_at = ? WHERE id = ?",
                    (now, account["id"]),
                )
            db.execute(
                "INSERT INTO sso_links (issuer, subject, user_id, linked_at) VALUES (?, ?, ?, ?)",
                (issuer, subject, user_id, now),
            )
            return "linked"

        return await self._tx(tx)

    async def add_sso_user(
        self,
        user: User,
        token_hash: bytes,
        account: NewAccount,
        *,
        issuer: str,
        subject: str,
        now: float,
    ) -> int:
        """Create a user, their account (no password) and its link together; return its id.

        Raises :class:`~exchange.store.base.DuplicateError` if the user id or the address
        is taken, or the person is linked already.
        """

        def tx(db: Db) -> int:
            insert_user(db, user, token_hash, now)
            account_id = insert_account(db, account, now)
            try:
                db.execute(
                    "INSERT INTO sso_links (issuer, subject, user_id, linked_at) "
                    "VALUES (?, ?, ?, ?)",
                    (issuer, subject, user.id, now),
                )
            except IntegrityError:
                raise DuplicateError("the person is linked to another account") from None
            return account_id

        return await self._tx(tx)
