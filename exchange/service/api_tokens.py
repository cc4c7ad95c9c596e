"""Machines' API tokens: made, listed, revoked, and checked on each staff API request.

A token is 256 random bits shown once to whoever made it; the store keeps its hash. On each
request the token's hash finds it; an expired or revoked one is refused with a sentence
saying which (:class:`~exchange.service.errors.InvalidTokenError`), a good one acts as its
principal (:meth:`exchange.auth.api_token.ApiToken.principal`) and its last use is written
at most once a minute.

Making and revoking a token are account events of whoever did it (an administrator on the
admin pages, or the node's operator at the console: the command line), recorded in the
ledger in the same transaction (:mod:`exchange.service.audit`), with the token's number and
role as the detail: never its name, which is free text.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final

from exchange.auth.api_token import (
    DEFAULT_DAYS,
    ApiToken,
    NewApiToken,
    check_days,
    check_name,
    token_hash,
)
from exchange.keys.ids import OrgId
from exchange.ledger.account_events import AccountEvent
from exchange.model import Role, User
from exchange.service.account_admin import ROLES, operator
from exchange.service.audit import account_event
from exchange.service.errors import (
    ConflictError,
    ForbiddenError,
    InvalidTokenError,
    NotFoundError,
    ServiceError,
)
from exchange.store.base import ApiTokenStore, DuplicateError

_DAY: Final = 86400.0


class TokenProblemError(ServiceError):
    """A new token's details are not usable; ``field`` names the one at fault."""

    status = 422

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class ApiTokens:
    """The node's machine tokens over its store and clock."""

    def __init__(self, store: ApiTokenStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self,
        *,
        name: str,
        org: OrgId,
        role: Role,
        created_by: str,
        days: int = DEFAULT_DAYS,
        actor: User | None = None,
    ) -> tuple[ApiToken, str]:
        """Make a token; return it and its secret, which is never seen again.

        ``actor`` is the administrator making it (default: the node's operator).
        """
        try:
            check_name(name)
        except ValueError as exc:
            raise TokenProblemError(str(exc), field="name") from None
        try:
            check_days(days)
        except ValueError as exc:
            raise TokenProblemError(str(exc), field="days") from None
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        new = NewApiToken(
            name=name,
            org=org,
            role=role,
            token_hash=token_hash(secret),
            created_at=now,
            expires_at=now + days * _DAY,
            created_by=created_by,
        )
        maker = operator(org) if actor is None else actor

        def audit(number: int) -> AccountEvent:
            return self._event("token-created", maker, org, f"{number}.{role}")

        try:
            await self._store.add_api_token(new, audit=audit)
        except DuplicateError as exc:
            raise ConflictError(str(exc)) from None
        made = await self._store.api_token_by_hash(new.token_hash)
        assert made is not None  # written just now, and tokens are never deleted
        return made, secret

    async def listed(self, org: OrgId | None = None) -> list[ApiToken]:
        """Return the tokens (of ``org`` if given), newest first."""
        return await self._store.api_tokens(org)

    def _event(self, kind: str, actor: User, org: OrgId, detail: str) -> AccountEvent:
        return account_event(kind, actor, at=self._clock(), detail=detail, org=org)

    async def revoke(
        self, name_or_id: str, org: OrgId | None = None, *, actor: User | None = None
    ) -> ApiToken:
        """Revoke a token by name or number (of ``org`` if given); return it as it was.

        ``actor`` is the administrator revoking it (default: the node's operator).
        """
        token = await self._store.api_token_named(name_or_id)
        if token is None or (org is not None and token.org != org):
            raise NotFoundError(f"there is no API token {name_or_id} on this node")
        revoker = operator(token.org) if actor is None else actor
        audit = self._event("token-revoked", revoker, token.org, f"{token.id}.{token.role}")
        if not await self._store.revoke_api_token(token.id, self._clock(), audit=audit):
            raise ConflictError(f"the API token {token.name} was revoked already")
        return token

    async def principal(self, digest: bytes) -> User | None:
        """Return who the token hashed to ``digest`` acts as, or None if it is unknown.

        Raises :class:`InvalidTokenError` if it expired or was revoked.
        """
        token = await self._store.api_token_by_hash(digest)
        if token is None:
            return None
        now = self._clock()
        reason = token.refusal(now)
        if reason is not None:
            raise InvalidTokenError(reason)
        if token.use_worth_noting(now):
            await self._store.note_api_token_use(token.id, now)
        return token.principal()

    # --- the administrator's pages: their own organisation's tokens only -----------------

    @staticmethod
    def _admin(actor: User) -> None:
        if actor.role != "admin":
            raise ForbiddenError("Only an administrator can manage API tokens")

    async def organisation_tokens(self, actor: User) -> list[ApiToken]:
        """Return the administrator's organisation's tokens, newest first."""
        self._admin(actor)
        return await self.listed(actor.org)

    async def organisation_token(self, actor: User, token_id: int) -> ApiToken:
        """Return one token of the administrator's organisation, or refuse as not found."""
        self._admin(actor)
        # A name starts with a letter, so a number names no token by name.
        token = await self._store.api_token_named(str(token_id))
        if token is None or token.org != actor.org:
            raise NotFoundError("There is no such API token in your organisation")
        return token

    async def create_for(
        self, actor: User, *, name: str, role: str, days: int = DEFAULT_DAYS
    ) -> tuple[ApiToken, str]:
        """Make a token of the administrator's organisation; return it and its secret, once."""
        self._admin(actor)
        chosen = next((r for r in ROLES if r == role), None)
        if chosen is None:
            raise TokenProblemError("select the token's role", field="role")
        return await self.create(
            name=name, org=actor.org, role=chosen, created_by=actor.id, days=days, actor=actor
        )

    async def revoke_for(self, actor: User, token_id: int) -> ApiToken:
        """Revoke a token of the administrator's organisation."""
        token = await self.organisation_token(actor, token_id)
        return await self.revoke(str(token.id), actor.org, actor=actor)
