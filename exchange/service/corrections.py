"""Rectification (UK GDPR Art 19): a corrected record to everyone who received the original.

``POST /api/v1/sent/{digest}/rectify`` (a DSL or the DPO of the sending organisation) takes
a corrected record of the original's kind and a reason, and submits it like any record
(schema, policy, sealing, register, deadline) with:

- the recipients: every recipient of the original that received it (its node sent a
  ``delivered`` receipt, or a route took it: a relay, MESH, mail), except those it was
  recalled from. The others are reported with the reason they were left out;
- the original's purpose, data categories and lawful basis, and the register reason
  "Rectification (UK GDPR Art 19): <reason>"; the register row notes the original
  (``in_reply_to`` and ``corrects``);
- ``corrects``: the original's digest, sealed inside the record (every record kind has the
  field, docs/records.md), so the recipient sees it when the correction is opened, and its
  node links the two; the thread link is a ``correction``;
- the ledger's ``submitted`` event with the reason ``rectification``.

The original's sent view then lists the correction under ``corrected_by``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from exchange.keys.ids import OrgId
from exchange.logs import get_logger
from exchange.model import User
from exchange.service.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnprocessableError,
)
from exchange.service.node_service import NodeService
from exchange.service.sending import CORRECTION_ROLES, Submitted
from exchange.sharing.prepare import (
    AttachmentInput,
    FileInput,
    Submission,
    SubmissionError,
    check_reason,
)

log = get_logger("exchange.corrections")

REASON_PREFIX: Final = "Rectification (UK GDPR Art 19): "
#: Recall outcomes after which a recipient no longer holds the original.
_WITHDRAWN: Final = frozenset({"recalled", "expired"})


@dataclass(frozen=True)
class Rectified:
    """A correction submitted: its names, who it was sent to and who was left out, and why."""

    submitted: Submitted
    corrects: bytes
    recipients: tuple[OrgId, ...]
    not_sent: tuple[tuple[OrgId, str], ...]


async def rectify(
    service: NodeService,
    user: User,
    digest: bytes,
    *,
    record: Mapping[str, Any],
    reason: str,
    attachments: Sequence[AttachmentInput | FileInput] = (),
) -> Rectified:
    """Send a corrected record to every organisation that received the original."""
    if user.role not in CORRECTION_ROLES:
        raise ForbiddenError(f"the role {user.role} may not send corrections")
    service.tenant(user.org)
    store = service.store
    sent = await store.sent_item(user.org, digest)
    if sent is None:
        raise NotFoundError("no such item among this organisation's sent items")
    registered = await store.register_purpose(user.org, digest)
    if registered is None:
        raise ConflictError("the original has no register row to take its purpose from")
    purpose, categories, lawful_basis = registered
    kind = sent.envelope.record_kind
    if record.get("kind") != kind:
        raise UnprocessableError(
            f"record.kind must be {kind}, the kind of the record being corrected",
            rule="record_kind",
        )
    try:
        text = check_reason(reason)
    except SubmissionError as exc:
        raise UnprocessableError(str(exc), rule=exc.rule) from None
    earlier = (await store.recalls_for(user.org, [digest])).get(digest, [])
    recalls = {r.recipient: r.outcome for r in earlier}
    received = {r.receipter for r in sent.receipts}
    recipients: list[OrgId] = []
    not_sent: list[tuple[OrgId, str]] = []
    for delivery in sent.deliveries:
        if delivery.kind != "envelope":
            continue
        org = delivery.destination
        if recalls.get(org) in _WITHDRAWN:
            not_sent.append((org, "the original was recalled from it"))
        elif delivery.state == "delivered" or org in received:
            recipients.append(org)
        else:
            not_sent.append((org, f"it has not received the original (delivery {delivery.state})"))
    if not recipients:
        raise ConflictError(
            "no recipient has received the original yet; recall it and send the corrected "
            "record instead"
        )
    submission = Submission(
        recipients=tuple(recipients),
        purpose=purpose,
        record_kind=kind,
        record=record,
        categories=tuple(categories),
        reason=REASON_PREFIX + text,
        lawful_basis=lawful_basis,
        attachments=tuple(attachments),
    )
    submitted = await service.submit(user, submission, corrects=digest)
    log.info(
        "envelope.rectified",
        digest=submitted.digest.hex(),
        corrects=digest.hex(),
        org=user.org,
        recipients=list(recipients),
        left_out=len(not_sent),
    )
    return Rectified(submitted, digest, tuple(recipients), tuple(not_sent))
