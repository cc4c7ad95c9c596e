"""Idempotent staff submissions: a retried request with the same key gets the first answer.

A client that lost the answer to a submission (a connection cut, a proxy timeout, a crash)
cannot tell whether the record was sealed and sent. Sending it again with the same
``Idempotency-Key`` is safe: the node answers what it answered the first time and seals
nothing new. Keys are kept per caller, the organisation and the account, so two callers
never see each other's answers, for :attr:`ServiceContext.idempotency_keys_for` seconds (24
hours by default). With each key the node keeps the SHA-256 of the request, so the same key
with another request is refused (422), and the answer, committed in the same transaction as
the envelope, so a crash between that commit and the answer still leaves the key behind.
A request still in progress with the same key is refused (409) by the process running it;
two processes of one node given it at once seal twice but commit once, and both answer
the committed envelope. A refused request (any
4xx) stores nothing: the key may be used again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from exchange.model import IDEMPOTENCY_KEY_RE, IDEMPOTENCY_KEY_RULE, IdempotencyRecord, User
from exchange.service.context import ServiceContext
from exchange.service.errors import ConflictError, ServiceError, UnprocessableError

#: The header's name, and what a key may be: 1 to 128 visible ASCII characters, no spaces.
HEADER: Final = "Idempotency-Key"
KEY_RE: Final = IDEMPOTENCY_KEY_RE


@dataclass(frozen=True)
class IdempotencyKey:
    """A caller's key for one request, and the SHA-256 of that request."""

    key: str
    request_hash: bytes


def parse_key(value: str, request_hash: bytes) -> IdempotencyKey:
    """Return the key of an ``Idempotency-Key`` header, or refuse it (400) without echoing it."""
    if KEY_RE.fullmatch(value) is None:
        raise ServiceError(f"the {HEADER} header must be {IDEMPOTENCY_KEY_RULE}", status=400)
    return IdempotencyKey(value, request_hash)


def _scope(user: User) -> str:
    return f"{user.org} {user.id}"


class Idempotency:
    """The keys of one node: those in progress (in memory) and those answered (in the store).

    A key in progress is known to the process running its request only. Another process of
    the node given the same key at the same moment runs it too, but the key is committed
    with the envelope under the table's primary key, so only one commit succeeds: the
    other is rolled back and answers what the first committed (``Sending.submit``).
    """

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self._in_progress: set[tuple[str, str]] = set()

    @contextmanager
    def in_progress(self, user: User, key: IdempotencyKey) -> Iterator[None]:
        """Hold ``key`` while its request runs; refuse (409) if it is already held."""
        held = (_scope(user), key.key)
        if held in self._in_progress:
            raise ConflictError(
                f"a request with this {HEADER} is still in progress; ask again in a moment"
            )
        self._in_progress.add(held)
        try:
            yield
        finally:
            self._in_progress.discard(held)

    async def earlier_answer(self, user: User, key: IdempotencyKey) -> str | None:
        """Return the answer given to ``key``'s first request, or None if there was none.

        Refuses (422) when the key was used for a different request.
        """
        record = await self.context.store.idempotency_record(
            _scope(user), key.key, self.context.clock()
        )
        if record is None:
            return None
        if record.request_hash != key.request_hash:
            raise UnprocessableError(
                f"this {HEADER} was used for a different request; use a new key for a new request",
                rule="idempotency-key.reused",
            )
        return record.answer

    def record(self, user: User, key: IdempotencyKey, answer: str) -> IdempotencyRecord:
        """Return the row that keeps ``answer`` for ``key``, to commit with what it made."""
        now = self.context.clock()
        return IdempotencyRecord(
            scope=_scope(user),
            key=key.key,
            request_hash=key.request_hash,
            answer=answer,
            created_at=now,
            expires_at=now + self.context.idempotency_keys_for,
        )
