"""What a node does, independent of HTTP: submit, deliver, receive, open, acknowledge, reject.

:class:`NodeService` ties the sans-I/O core (envelopes, receipts, ledger events) to the
store. Every operation follows "persist, then send": state changes, outbox rows and ledger
events are committed in one transaction before anything leaves the node, and the outbox
worker (``exchange.workers.delivery``) is only woken afterwards.

It is one class made of a mixin per concern, each in a module named after it:
:mod:`~exchange.service.sending`, :mod:`~exchange.service.receiving`,
:mod:`~exchange.service.inbox` (staff actions on the inbox) and
:mod:`~exchange.service.register` (the sharing register). The attributes and
helpers they share are declared in :mod:`~exchange.service.base`; the refusals are in
:mod:`~exchange.service.errors`, the ledger events and store rows in
:mod:`~exchange.service.rows`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping

from exchange.config import ConfigError
from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.policy import RecordsSetup
from exchange.service.inbox import InboxMixin
from exchange.service.receiving import ReceivingMixin
from exchange.service.register import RegisterMixin
from exchange.service.register_reports import RegisterKey, RegisterKeyError
from exchange.service.sending import SendingMixin
from exchange.service.tenants import Tenant
from exchange.shipped import load_records_setup
from exchange.store import SqliteStore


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
        #: The sharing policy, calendar and retention rules; the shipped files
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
