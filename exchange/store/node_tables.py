"""Every table group of a node's store, together: what the SQLite and PostgreSQL stores share.

:class:`NodeTables` is the whole :class:`~exchange.store.base.Store` interface except opening,
closing, transactions and bodies: each engine's store adds those (``exchange.store.sqlite``,
``exchange.store.postgres``) and inherits the rest, so both run the same statements.
"""

from __future__ import annotations

from exchange.store.account_events import AccountEventTables
from exchange.store.accounts import AccountTables
from exchange.store.api_tokens import ApiTokenTables
from exchange.store.directory import DirectoryTables
from exchange.store.drafts import DraftTables
from exchange.store.envelopes import EnvelopeTables
from exchange.store.idempotency import IdempotencyTables
from exchange.store.leases import LeaseTables
from exchange.store.ledger import LedgerTables
from exchange.store.node_secrets import NodeSecretTables
from exchange.store.node_state import NodeStateTables
from exchange.store.own_copies import OwnCopyTables
from exchange.store.passkeys import PasskeyTables
from exchange.store.sent_lists import SentListTables
from exchange.store.sso_links import SsoLinkTables


class NodeTables(
    EnvelopeTables,
    IdempotencyTables,
    LedgerTables,
    LeaseTables,
    AccountTables,
    AccountEventTables,
    ApiTokenTables,
    PasskeyTables,
    SentListTables,
    NodeStateTables,
    DirectoryTables,
    OwnCopyTables,
    SsoLinkTables,
    NodeSecretTables,
    DraftTables,
):
    """The table groups of a node's store, on whichever engine runs their transactions."""
