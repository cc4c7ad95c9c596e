"""The value types every layer shares: envelopes, outbox items, receipts, inbox, register.

Pure: frozen dataclasses and literals only, no I/O. Records hold ids, digests, sizes and
times only: never record content. The store persists them, the service layer builds them,
the HTTP and command-line adapters render them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, NewType

from exchange.keys.ids import OrgId

#: The SHA-256 digest of a sealed envelope's bytes: the envelope's identity in the store, the
#: register, receipts and the ledger.
EnvelopeDigest = NewType("EnvelopeDigest", bytes)

#: The SHA-256 digest of a signed receipt's bytes.
ReceiptDigest = NewType("ReceiptDigest", bytes)

#: The RFC 9162 leaf hash of an encoded ledger event: how the store finds an event.
EventHash = NewType("EventHash", bytes)

#: What an outbox row carries. ``origin`` and ``destination`` are always the sender and the
#: recipient of the envelope the row is about, whatever the kind:
#:
#: - ``envelope``: the sealed envelope, from ``origin`` (an organisation of this node) to
#:   ``destination``;
#: - ``receipt``: a signed receipt of ``origin`` (the recipient of an envelope, here) going
#:   back to ``destination`` (its sender);
#: - ``notice``: a mail to the staff of ``destination`` (an organisation of this node) that
#:   an envelope from ``origin`` waits for them;
#: - ``chase``: a mail to the staff of ``origin`` (an organisation of this node) that its
#:   envelope to ``destination`` is overdue.
OutboxKind = Literal["envelope", "receipt", "notice", "chase"]


#: ``recalled``: the sender recalled the envelope before the item left the node.
OutboxState = Literal["queued", "attempting", "retry-wait", "delivered", "dead", "recalled"]


#: ``recalled``: the sender recalled the item before anyone opened it.
InboxState = Literal["delivered", "opened", "acknowledged", "rejected", "recalled"]


Role = Literal["dsl", "staff", "dpo", "admin"]


OUTBOX_STATES: tuple[OutboxState, ...] = (
    "queued", "attempting", "retry-wait", "delivered", "dead", "recalled",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class EnvelopeRecord:
    """Public facts about an envelope the node holds (sent or received)."""

    digest: EnvelopeDigest
    envelope_id: bytes
    sender: OrgId
    recipients: tuple[OrgId, ...]
    record_kind: str
    created: int
    length: int


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message to send for one (envelope, organisation): see :data:`OutboxKind`."""

    id: int
    kind: OutboxKind
    envelope_digest: EnvelopeDigest
    ref: bytes  # the envelope digest, or the receipt digest
    origin: OrgId
    destination: OrgId
    state: OutboxState
    attempts: int
    next_attempt_at: float
    created_at: float
    updated_at: float
    last_error: str | None
    route_index: int = 0
    route_failures: int = 0
    #: A route to try before the destination's own ("kind address"), or None.
    via: str | None = None
    #: The route kind and transport id of the attempt that handed the item over.
    route_kind: str | None = None
    transport_ref: str | None = None
    #: When the sender recalled the envelope (the item is never sent again), or None.
    recall_requested_at: float | None = None
    #: While ``attempting``: the ``exchange serve`` process making the attempt (its random
    #: id) and until when its lease holds; another process may take the item over after.
    lease_owner: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A signed receipt the node issued or received, with its decoded facts."""

    digest: ReceiptDigest
    envelope_digest: EnvelopeDigest
    receipter: OrgId
    status: str
    time: int
    signed: bytes


@dataclass(frozen=True, slots=True)
class InboxItem:
    """An envelope delivered to one of the node's organisations."""

    owner: OrgId
    envelope: EnvelopeRecord
    received_at: float
    state: InboxState
    delivered_receipt: bytes


@dataclass(frozen=True, slots=True)
class SentItem:
    """An envelope one of the node's organisations sent, with delivery and receipts."""

    envelope: EnvelopeRecord
    submitted_by: str
    submitted_at: float
    deliveries: tuple[OutboxItem, ...]
    receipts: tuple[ReceiptRecord, ...]


@dataclass(frozen=True, slots=True)
class User:
    """A member of staff of one organisation. The token itself is never stored."""

    id: str
    org: OrgId
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class NewOutbox:
    """An outbox row to create in the same transaction as the change that causes it."""

    kind: OutboxKind
    ref: bytes
    origin: OrgId
    destination: OrgId
    via: str | None = None


SubjectKind = Literal["upn", "nhs-number"]


RegisterOutcome = Literal["shared", "not-shared"]


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """A pupil identifier as a keyed hash (HMAC-SHA256 under the node's register key).

    The identifier itself is never stored: a hash under a secret key cannot be reversed by
    trying every UPN or NHS number without the key.
    """

    kind: SubjectKind
    hash: bytes


@dataclass(frozen=True, slots=True)
class RegisterEntry:
    """One decision to share (an envelope sent) or not to share, for the register.

    ``recipients`` are (organisation, directory kind) pairs: the recipients of a disclosure,
    or the intended recipients of a decision not to share. ``deadline_due`` is a
    Europe/London date (``YYYY-MM-DD``); ``satisfied_by`` lists the receipt statuses that
    meet the deadline. Nothing here is record content except ``reason``, the sender's own
    words on why the disclosure (or refusal) is necessary, checked to name no child.
    """

    org: OrgId
    outcome: RegisterOutcome
    decided_by: str
    decided_at: float
    purpose: str
    rule: str
    reason: str
    recipients: tuple[tuple[OrgId, str], ...]
    categories: tuple[str, ...] = ()
    lawful_basis: str | None = None
    citation: str | None = None
    record_kind: str | None = None
    reason_code: str | None = None
    envelope_digest: EnvelopeDigest | None = None
    envelope_id: bytes | None = None
    attachments: int = 0
    deadline_due: str | None = None
    deadline_rule: str | None = None
    deadline_explanation: str | None = None
    satisfied_by: tuple[str, ...] = ()
    subjects: tuple[SubjectKey, ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterRecall:
    """The sender's recall of a disclosure from one recipient, as the register shows it.

    ``outcome`` is the recall's outcome for that recipient (``recalled``, ``too-late``,
    ``not-recallable``, ``expired``, ``pending``, ``failed``: ``exchange.store.recall``) and
    ``requested_at`` when the sender recalled it (the sender's clock).
    """

    recipient: OrgId
    outcome: str
    requested_at: float


@dataclass(frozen=True, slots=True)
class RegisterRow:
    """A register entry as stored, with its id and (for a disclosure) the receipts held.

    Read with it, from other tables: the envelope it replies to (``in_reply_to``) and, for a
    rectification, the one it corrects (``corrects``); the sender's recall per recipient
    (``recalls``, by recipient); and, once the sender destroyed its copy under retention,
    when (``destroyed_at``). ``retention_rule`` is the rule that governs the copy, as
    decisions name it (``retention.school-cp-file``): the one it was destroyed under, if it
    was. All default to empty, so a row without them is still a row.
    """

    id: int
    entry: RegisterEntry
    receipts: tuple[ReceiptRecord, ...] = ()
    in_reply_to: EnvelopeDigest | None = None
    corrects: EnvelopeDigest | None = None
    recalls: tuple[RegisterRecall, ...] = ()
    destroyed_at: float | None = None
    retention_rule: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedEntry:
    """An item delivered to an organisation, with what is known of its subject.

    ``indexed`` is ``"indexed"`` once a member of staff opened it and its identifiers were
    hashed into the index, ``"not-a-record"`` if its content was not a record container, and
    ``None`` if it was never opened since the register began.
    """

    item: InboxItem
    indexed: str | None
    indexed_at: float | None
    receipts: tuple[ReceiptRecord, ...] = ()


Relation = Literal["reply", "correction"]


@dataclass(frozen=True, slots=True)
class ThreadLink:
    """An envelope's link to the one it replies to (``reply``) or corrects (``correction``)."""

    org: OrgId
    parent: EnvelopeDigest
    relation: Relation


@dataclass(frozen=True, slots=True)
class RecallRow:
    """The outcome of a recall for one recipient of a sent envelope.

    ``outcome`` is ``recalled``, ``too-late``, ``not-recallable``, ``expired``, ``pending``
    (an attempt was in flight) or ``failed`` (the relay or node could not be asked); ``at``
    is the other side's time of it (recalled, first fetched, opened), if known.
    """

    org: OrgId
    digest: EnvelopeDigest
    recipient: OrgId
    requested_by: str
    requested_at: float
    reason: str
    reason_code: str
    outcome: str
    route: str | None
    detail: str
    at: int | None = None
    opened_by_role: str | None = None
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class InboxRecall:
    """Where an inbox item stands after a recall notice (``changed``: this notice recalled it)."""

    state: str
    changed: bool
    recalled_at: float | None
    opened_at: float | None
    opened_by_role: str | None


@dataclass(frozen=True, slots=True)
class HeldEnvelope:
    """An envelope an organisation holds: which way it went and who took part in it."""

    direction: Literal["sent", "received"]
    sender: OrgId
    recipients: tuple[OrgId, ...]
    state: str | None  # the inbox state of a received item


#: (opened_at, opened_by_role, recalled_at) of an inbox item.
Opening = tuple[float | None, str | None, float | None]


Direction = Literal["sent", "received"]


@dataclass(frozen=True, slots=True)
class RetentionSchedule:
    """The rule and review date the node computed for one item an organisation holds.

    ``rule`` is the retention rule's id (``school-cp-file``) and ``review_date`` a
    Europe/London date (``YYYY-MM-DD``); when no date could be computed both may be None and
    ``unscheduled`` says why (``no-rule``, ``no-date-of-birth``, ``no-adoption-order``,
    ``not-a-record``). No personal data: never the date of birth itself.
    """

    org: OrgId
    digest: EnvelopeDigest
    direction: Direction
    holder_kind: str
    rule: str | None
    review_date: str | None
    action: str | None
    unscheduled: str | None
    scheduled_at: float


@dataclass(frozen=True, slots=True)
class Destruction:
    """Who destroyed an item, when, under which rule, and the reviewer's reason."""

    at: float
    by: str
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class HeldItem:
    """An envelope an organisation holds, with its retention row (None if never scheduled).

    ``purpose`` is known for items the organisation sent (its register row); ``pending`` is
    the number of its deliveries still queued or in progress (sent items only).
    """

    org: OrgId
    direction: Direction
    envelope: EnvelopeRecord
    purpose: str | None
    schedule: RetentionSchedule | None
    destroyed: Destruction | None
    pending: int = 0


@dataclass(frozen=True, slots=True)
class HoldRecord:
    """An inquiry or litigation hold as stored; ``digest`` None covers every item."""

    id: int
    org: OrgId
    digest: EnvelopeDigest | None
    reason: str
    reference: str
    placed_at: float
    placed_by: str
    lifted_at: float | None
    lifted_by: str | None


#: What an ``Idempotency-Key`` may be: 1 to 128 visible ASCII characters, no spaces (a UUID
#: fits). The node refuses any other key (400); ``exchange send --idempotency-key`` checks
#: the same rule before it sends anything.
IDEMPOTENCY_KEY_RE: Final = re.compile(r"[\x21-\x7e]{1,128}")
#: The rule above, in words, for refusals.
IDEMPOTENCY_KEY_RULE: Final = "1 to 128 visible ASCII characters without spaces, such as a UUID"


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A staff request made with an ``Idempotency-Key``, and the answer it got.

    ``scope`` names the caller (organisation and account), ``request_hash`` is the SHA-256
    of the request, ``answer`` the service's answer as JSON text, kept until ``expires_at``.
    """

    scope: str
    key: str
    request_hash: bytes
    answer: str
    created_at: float
    expires_at: float


def short_reference(envelope_id: bytes) -> str:
    """Return the reference staff quote for an envelope: its id's first 8 hex digits, ``2719-AFB5``.

    The same on the sender's and the receiver's pages, so two people on the phone can find
    the same item; it names the envelope, never the child.
    """
    text = envelope_id.hex()[:8].upper()
    return f"{text[:4]}-{text[4:]}"
