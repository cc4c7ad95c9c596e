"""What a node does, independent of HTTP: submit, deliver, receive, open, acknowledge, reject.

:class:`NodeService` ties the sans-I/O core (envelopes, receipts, ledger events) to the
store. Every operation follows "persist, then send": state changes, outbox rows and ledger
events are committed in one transaction before anything leaves the node, and the outbox
worker (``exchange.node.delivery``) is only woken afterwards.

It is one class made of a mixin per concern, each in a module named after it:
:mod:`~exchange.node.sending`, :mod:`~exchange.node.receiving`,
:mod:`~exchange.node.inbox_actions` (staff actions on the inbox) and
:mod:`~exchange.node.register_actions` (the sharing register, issue 5). The attributes and
helpers they share are declared in :mod:`~exchange.node.service_base`; the refusals are in
:mod:`~exchange.node.service_errors`, the ledger events and store rows in
:mod:`~exchange.node.rows`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping

from exchange.node.config import ConfigError
from exchange.node.inbox_actions import InboxMixin
from exchange.node.receiving import ReceivingMixin
from exchange.node.records_setup import RecordsSetup, load_records_setup
from exchange.node.register import RegisterKey, RegisterKeyError
from exchange.node.register_actions import RegisterMixin
from exchange.node.sending import SendingMixin
from exchange.node.tenants import Tenant
from exchange.store import SqliteStore
from keys.directory import Directory
from keys.ids import OrgId


class NodeService(SendingMixin, ReceivingMixin, InboxMixin, RegisterMixin):
    """The node's operations over its store, directory and tenants' keys."""

    def __init__(
        self,
        *,
        store: SqliteStore,
        directory: Directory,
        tenants: Mapping[OrgId, Tenant],
        clock: Callable[[], float],
        max_envelope_bytes: int,
        public_url: str,
        records: RecordsSetup | None = None,
    ) -> None:
        self.store = store
        #: The sharing policy, calendar and retention rules (issue 5); the shipped files
        #: when the caller gives none.
        self.records = records if records is not None else load_records_setup()
        try:
            register_key = RegisterKey.load(store.folder, create=True)
        except RegisterKeyError as exc:
            raise ConfigError(str(exc)) from None
        assert register_key is not None
        #: The secret of the register's keyed hashes of pupil identifiers.
        self.register_key = register_key
        self.directory = directory
        self.tenants = tenants
        self.clock = clock
        self.max_envelope_bytes = max_envelope_bytes
        #: The origin peers sign requests against (docs/protocol.md): this node's own URL.
        self.public_url = public_url
        self.outbox_wakeup = asyncio.Event()
        #: Organisations whose staff are mailed a notice when an item arrives.
        self.notified: frozenset[OrgId] = frozenset()


def token_hash(token: str) -> bytes:
    """Hash an API token for storage and lookup (tokens are 256-bit random, so SHA-256 fits)."""
    return hashlib.sha256(b"exchange/v1/api-token\x00" + token.encode("utf-8")).digest()
