"""Reading the account events an action records, and checking their statements name no one.

:func:`account_events` collects the ``account`` events a block records for an organisation,
through the store as the administrator's activity page reads them, and checks each event's
ledger statement: its commitments open to the row's user ids with the row's salt, and it
holds none of the given secrets (email addresses, names, user ids), in any form the
statement could carry them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from exchange.keys.ids import OrgId
from exchange.ledger import EventType, decode_event
from exchange.ledger.account_events import L_ACCOUNT_ACTOR, L_ACCOUNT_SUBJECT, commitment
from exchange.store.account_events import AccountActivity
from exchange.store.base import Store


def check_no_one_named(row: AccountActivity, statement: bytes, secrets: Iterable[str]) -> None:
    """Check the statement opens to the row's user ids and holds none of ``secrets``."""
    event = decode_event(statement)
    salt = row.salt
    assert event.type is EventType.ACCOUNT
    assert event.envelope_digest == commitment(L_ACCOUNT_SUBJECT, salt, row.user_id)
    actor = None if row.actor_id is None else commitment(L_ACCOUNT_ACTOR, salt, row.actor_id)
    assert event.receipt_digest == actor
    for secret in secrets:
        assert secret.encode() not in statement, "a statement names someone"
        assert secret.lower().encode() not in statement, "a statement names someone"


@asynccontextmanager
async def account_events(
    store: Store, org: OrgId, secrets: Iterable[str] = ()
) -> AsyncIterator[list[AccountActivity]]:
    """Yield a list that holds, once the block ends, the events it recorded for ``org``.

    Oldest first; each one's statement is checked by :func:`check_no_one_named`. Nothing
    is collected if the block raises.
    """
    newest = await store.account_events(org, limit=1)
    since = newest[0].id if newest else 0
    recorded: list[AccountActivity] = []
    yield recorded
    rows = [r for r in await store.account_events(org, limit=200) if r.id > since]
    kept = tuple(secrets)
    for row in reversed(rows):
        (statement,) = await store.ledger_events(row.ledger_index, row.ledger_index + 1)
        check_no_one_named(row, statement, kept)
        recorded.append(row)
