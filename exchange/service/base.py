"""What every part of the node service shares: its attributes, clock, tenants and signing.

:class:`~exchange.service.node_service.NodeService` is one class made of a mixin per concern
(:mod:`~exchange.service.sending`, :mod:`~exchange.service.receiving`,
:mod:`~exchange.service.inbox`, :mod:`~exchange.service.register`). Each inherits
:class:`ServiceBase`, which declares the attributes ``NodeService.__init__`` sets and holds
the helpers more than one concern uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Final

from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.model import EnvelopeRecord, SubjectKey, SubjectKind
from exchange.policy import RecordsSetup
from exchange.receipts import Receipt, ReceiptStatus, SignedReceipt, sign_receipt
from exchange.service.errors import NotFoundError
from exchange.service.register_reports import RegisterKey
from exchange.service.tenants import Tenant
from exchange.store import SqliteStore

#: Envelope bodies are streamed to disk in pieces of this size.
PIECE: Final = 1024 * 1024


class ServiceBase:
    """The attributes and shared helpers of :class:`~exchange.service.node_service.NodeService`.

    ``NodeService.__init__`` sets the attributes; they are declared here so that every
    mixin type-checks on its own.
    """

    store: SqliteStore
    records: RecordsSetup
    register_key: RegisterKey
    directory: Directory
    tenants: Mapping[OrgId, Tenant]
    clock: Callable[[], float]
    max_envelope_bytes: int
    public_url: str
    outbox_wakeup: asyncio.Event
    notified: frozenset[OrgId]

    def now(self) -> int:
        """Return the current time in whole seconds."""
        return int(self.clock())

    def tenant(self, org: OrgId) -> Tenant:
        """Return the tenant ``org`` or refuse as not found."""
        tenant = self.tenants.get(org)
        if tenant is None:
            raise NotFoundError(f"this node does not serve {org}")
        return tenant

    def subject_key(self, kind: SubjectKind, value: str) -> SubjectKey:
        """Return the keyed hash of a pupil identifier (validated, canonical form)."""
        return self.register_key.subject(kind, value)

    def _sign(
        self,
        tenant: Tenant,
        status: ReceiptStatus,
        envelope: EnvelopeRecord,
        now: int,
        *,
        disposition: str | None = None,
        transport_ref: str = "",
    ) -> SignedReceipt:
        pair = tenant.signing_pair(self.directory, now)
        receipt = Receipt(
            status=status,
            envelope_digest=envelope.digest,
            envelope_id=envelope.envelope_id,
            sender=envelope.sender,
            receipter=tenant.org,
            receipter_key=pair.signing.public.key_id,
            time=now,
            disposition=disposition,
            transport_ref=transport_ref,
        )
        return sign_receipt(receipt, pair.signing)
