"""What every use case of the node service shares: the store, keys, rules and clock.

:class:`ServiceContext` is the one value the use cases (:mod:`~exchange.service.sending`,
:mod:`~exchange.service.receiving`, :mod:`~exchange.service.inbox`,
:mod:`~exchange.service.register`, :mod:`~exchange.service.views`) are built over, so each
names its dependencies explicitly instead of inheriting them. It holds everything already
loaded: the composition root (``exchange.node.runtime``) reads the files and opens the store.
It is mutable on purpose: a node adopts a newer signed directory and learns its public URL
(after binding port 0) while it runs, demos and tests move its clock, and every use case
must see the change at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.model import EnvelopeRecord, SubjectKey, SubjectKind
from exchange.policy import RecordsSetup
from exchange.receipts import Receipt, ReceiptStatus, SignedReceipt, sign_receipt
from exchange.service.busy import Backpressure
from exchange.service.errors import NotFoundError
from exchange.service.register_reports import RegisterKey
from exchange.service.tenants import Tenant
from exchange.store import Store

#: Envelope bodies are streamed to and from disk in pieces of this size.
PIECE: Final = 1024 * 1024


@dataclass(eq=False)
class ServiceContext:
    """The store, directory, tenants' keys, records setup, register key and clock of a node."""

    store: Store
    directory: Directory
    tenants: Mapping[OrgId, Tenant]
    #: The sharing policy, calendar and retention rules.
    records: RecordsSetup
    #: The secret of the register's keyed hashes of pupil identifiers.
    register_key: RegisterKey
    clock: Callable[[], float]
    max_envelope_bytes: int
    #: The origin peers sign requests against (docs/protocol.md): this node's own URL.
    public_url: str
    #: A recipient without a ``delivered`` receipt this long after submission is overdue.
    overdue_after: float
    #: Seconds an ``Idempotency-Key`` and its answer are kept (exchange.service.idempotency).
    idempotency_keys_for: float = 24 * 3600.0
    #: Organisations whose staff are mailed a notice when an item arrives.
    notified: frozenset[OrgId] = frozenset()
    #: Set after every commit that queues outbox rows, so the delivery worker wakes up.
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    #: The busy rule: submissions refused while the outbox is behind (exchange.service.busy).
    backpressure: Backpressure = field(default_factory=Backpressure)

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

    def sign(
        self,
        tenant: Tenant,
        status: ReceiptStatus,
        envelope: EnvelopeRecord,
        now: int,
        *,
        disposition: str | None = None,
    ) -> SignedReceipt:
        """Return ``tenant``'s signed receipt of ``status`` for ``envelope`` at ``now``."""
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
        )
        return sign_receipt(receipt, pair.signing)
