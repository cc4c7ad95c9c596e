"""Machines' API tokens: made, listed, revoked, and checked on each staff API request.

A token is 256 random bits shown once to whoever made it; the store keeps its hash. On each
request the token's hash finds it; an expired or revoked one is refused with a sentence
saying which (:class:`~exchange.service.errors.InvalidTokenError`), a good one acts as its
principal (:meth:`exchange.auth.api_token.ApiToken.principal`) and its last use is written
at most once a minute.
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
from exchange.model import Role, User
from exchange.service.errors import (
    ConflictError,
    InvalidTokenError,
    NotFoundError,
    ServiceError,
)
from exchange.store.base import ApiTokenStore, DuplicateError

_DAY: Final = 86400.0


class ApiTokens:
    """The node's machine tokens over its store and clock."""

    def __init__(self, store: ApiTokenStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self, *, name: str, org: OrgId, role: Role, created_by: str, days: int = DEFAULT_DAYS
    ) -> tuple[ApiToken, str]:
        """Make a token; return it and its secret, which is never seen again."""
        try:
            check_name(name)
            check_days(days)
        except ValueError as exc:
            raise ServiceError(str(exc)) from None
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
        try:
            await self._store.add_api_token(new)
        except DuplicateError as exc:
            raise ConflictError(str(exc)) from None
        made = await self._store.api_token_by_hash(new.token_hash)
        assert made is not None  # written just now, and tokens are never deleted
        return made, secret

    async def listed(self, org: OrgId | None = None) -> list[ApiToken]:
        """Return the tokens (of ``org`` if given), newest first."""
        return await self._store.api_tokens(org)

    async def revoke(self, name_or_id: str, org: OrgId | None = None) -> ApiToken:
        """Revoke a token by name or number (of ``org`` if given); return it as it was."""
        token = await self._store.api_token_named(name_or_id)
        if token is None or (org is not None and token.org != org):
            raise NotFoundError(f"there is no API token {name_or_id} on this node")
        if not await self._store.revoke_api_token(token.id, self._clock()):
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
