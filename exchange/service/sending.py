"""Sending: check, seal and commit a record with its register row, then wake the worker.

A submission follows "persist, then send": the envelope, its outbox rows, register entry
and ledger events are committed in one transaction before anything leaves the node, and
the outbox worker (``exchange.workers.delivery``) is only woken afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from exchange.envelope import EnvelopeError, Recipient, SealedEnvelope, Sealer
from exchange.files import atomic_output
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import EnvelopeDigest, EnvelopeRecord, NewOutbox, RegisterEntry, User
from exchange.service.context import PIECE, ServiceContext
from exchange.service.errors import (
    TOO_LARGE_RULE,
    ForbiddenError,
    NotFoundError,
    ServiceError,
    TooLargeError,
    UnprocessableError,
)
from exchange.service.idempotency import Idempotency, IdempotencyKey
from exchange.service.ledger import ledger_event
from exchange.service.retention import schedule_sent
from exchange.service.threads import LinkRefusedError, submission_link
from exchange.sharing.limits import node_limits
from exchange.sharing.prepare import SATISFIED_BY, Prepared, Submission, SubmissionError, prepare
from exchange.store.sql import IntegrityError

log = get_logger("exchange.node")

#: Records up to this size are sealed in memory and written once under their digest.
SMALL_CONTENT: Final = 4 * 1024 * 1024


#: The roles that send records: a designated safeguarding lead and members of staff.
SENDING_ROLES: Final = frozenset({"dsl", "staff"})
#: The roles that correct a record already sent: the DSL, and the DPO (rectification).
CORRECTION_ROLES: Final = frozenset({"dsl", "dpo"})


@dataclass(frozen=True)
class Submitted:
    """The answer to a submission: names, the lawful basis recorded and the deadline.

    ``replayed`` is true when it is the answer to an earlier request with the same
    ``Idempotency-Key``, given again: nothing new was sealed.
    """

    envelope_id: bytes
    digest: bytes
    lawful_basis: str | None = None
    deadline_due: str | None = None
    deadline_rule: str | None = None
    replayed: bool = False

    def to_json(self) -> str:
        """Return the answer as JSON text, as kept with an ``Idempotency-Key``."""
        return json.dumps(
            {
                "envelope_id": self.envelope_id.hex(),
                "digest": self.digest.hex(),
                "lawful_basis": self.lawful_basis,
                "deadline_due": self.deadline_due,
                "deadline_rule": self.deadline_rule,
            },
            sort_keys=True,
        )

    @classmethod
    def replay(cls, text: str) -> Submitted:
        """Return the answer :meth:`to_json` kept, marked as given again."""
        doc = json.loads(text)
        return cls(
            bytes.fromhex(doc["envelope_id"]),
            bytes.fromhex(doc["digest"]),
            lawful_basis=doc["lawful_basis"],
            deadline_due=doc["deadline_due"],
            deadline_rule=doc["deadline_rule"],
            replayed=True,
        )


class Sending:
    """Sending records: :meth:`submit`, over the node's :class:`ServiceContext`."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.idempotency = Idempotency(context)

    async def submit(
        self,
        user: User,
        submission: Submission,
        *,
        corrects: bytes | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Submitted:
        """Check, seal and commit a record with its register row and deadline, then answer.

        The record is checked against its schema and the policy first (docs/node.md); a
        refusal names the rule and registers nothing. ``corrects`` is set by a rectification
        (``exchange.service.corrections``), which a DPO may also make. With ``idempotency``,
        the answer to an earlier request with the same key is given again, and the key is
        committed with the envelope (exchange.service.idempotency).
        """
        roles = SENDING_ROLES | CORRECTION_ROLES if corrects is not None else SENDING_ROLES
        if user.role not in roles:
            raise ForbiddenError(f"the role {user.role} may not send records")
        if idempotency is None:
            return await self._submit(user, submission, corrects, None)
        with self.idempotency.in_progress(user, idempotency):
            earlier = await self.idempotency.earlier_answer(user, idempotency)
            if earlier is None:
                try:
                    return await self._submit(user, submission, corrects, idempotency)
                except IntegrityError:
                    # Another process of the node committed the same key first (the key is
                    # held in progress in each process's memory only): its answer stands.
                    earlier = await self.idempotency.earlier_answer(user, idempotency)
                    if earlier is None:
                        raise
            log.info("envelope.replayed", org=user.org)
            return Submitted.replay(earlier)

    async def _submit(
        self,
        user: User,
        submission: Submission,
        corrects: bytes | None,
        idempotency: IdempotencyKey | None,
    ) -> Submitted:
        tenant = self.context.tenant(user.org)
        now = self.context.now()
        # Threads: the envelope this one replies to or corrects must be held here.
        try:
            linked_record, thread = await submission_link(
                self.context.store, user.org, submission.record_kind, submission.record,
                submission.in_reply_to, corrects=corrects,
            )  # fmt: skip
        except LinkRefusedError as exc:
            if exc.status == 404:
                raise NotFoundError(str(exc)) from None
            raise UnprocessableError(str(exc), rule=exc.rule) from None
        submission = replace(submission, record=linked_record)
        recipient_kinds = self._recipient_kinds(submission.recipients)
        checks = functools.partial(
            prepare,
            submission,
            setup=self.context.records,
            recipient_kinds=recipient_kinds,
            submitted_at=datetime.fromtimestamp(self.context.clock(), UTC),
            subject_key=self.context.register_key.subject,
        )
        try:
            # A record without attachments was parsed from JSON here, on the event loop, and
            # is checked here too: in a thread the same work would only wait for the GIL and
            # add a hand-off. Attachments (decoded, scanned, possibly large) go to a thread.
            prepared = await asyncio.to_thread(checks) if submission.attachments else checks()
        except SubmissionError as exc:
            log.info("envelope.refused", org=user.org, rule=exc.rule)
            raise UnprocessableError(str(exc), rule=exc.rule, problems=exc.problems) from None
        too_large = node_limits(self.context.max_envelope_bytes).too_large(prepared.content_length)
        if too_large is not None:
            log.info("envelope.refused", org=user.org, rule=TOO_LARGE_RULE)
            raise TooLargeError(too_large)
        record_kind = prepared.record.kind
        try:
            sender = tenant.signing_pair(self.context.directory, now)
            sealed_to = [
                Recipient(org, self.context.directory.current_keys(org, now).encryption)
                for org in submission.recipients
            ]
            sealer = Sealer(sender, sealed_to, record_kind=record_kind, created=now)
            # The sender's own copy: the same content sealed to itself, kept and never sent,
            # for the DPO's subject access copies and "what did we send?".
            own = Recipient(user.org, self.context.directory.current_keys(user.org, now).encryption)
            copier = Sealer(sender, [own], record_kind=record_kind, created=now)
        except KeyLookupError as exc:
            raise ServiceError(f"recipients: {exc}", status=422) from None
        except EnvelopeError as exc:
            raise ServiceError(str(exc), status=422) from None
        sealed, copy = await self._seal_and_keep((sealer, copier), prepared)
        # The envelope package returns plain bytes; from here on it is an envelope digest.
        digest = EnvelopeDigest(sealed.digest)
        record = EnvelopeRecord(
            digest=digest,
            envelope_id=sealed.envelope_id,
            sender=sealed.sender,
            recipients=sealed.recipients,
            record_kind=sealed.record_kind,
            created=sealed.created,
            length=sealed.envelope_length,
        )
        decision, deadline = prepared.decision, prepared.deadline
        committed_at = self.context.clock()
        entry = RegisterEntry(
            org=user.org,
            outcome="shared",
            decided_by=user.id,
            decided_at=committed_at,
            purpose=decision.purpose,
            rule=decision.rule,
            reason=prepared.reason,
            recipients=decision.recipients,
            categories=tuple(sorted(decision.categories)),
            lawful_basis=prepared.lawful_basis.code,
            citation="; ".join(prepared.lawful_basis.citations),
            record_kind=record_kind,
            envelope_digest=digest,
            envelope_id=sealed.envelope_id,
            attachments=len(prepared.attachments),
            deadline_due=None if deadline is None else deadline.due.isoformat(),
            deadline_rule=(
                deadline.rule
                if deadline is not None
                else (f"deadlines.{record_kind}" if prepared.deadline_note else None)
            ),
            deadline_explanation=deadline.explanation if deadline else prepared.deadline_note,
            satisfied_by=SATISFIED_BY.get(record_kind, ()) if deadline is not None else (),
            subjects=prepared.subjects,
        )
        answer = Submitted(
            sealed.envelope_id,
            sealed.digest,
            lawful_basis=entry.lawful_basis,
            deadline_due=entry.deadline_due,
            deadline_rule=entry.deadline_rule,
        )
        await self.context.store.record_submission(
            record,
            submitted_by=user.id,
            now=committed_at,
            outbox=[NewOutbox("envelope", sealed.digest, user.org, r) for r in sealed.recipients],
            ledger_events=[
                ledger_event(
                    EventType.SUBMITTED, now, user.org, digest,
                    reason="rectification" if corrects is not None else None,
                )
            ],
            register=entry,
            thread=thread,
            # Its retention rule and review date (exchange/service/retention.py).
            retention=schedule_sent(
                self.context, org=user.org, envelope=record, purpose=decision.purpose,
                data=prepared.record.data, now=committed_at,
            ),
            idempotency=None
            if idempotency is None
            else self.idempotency.record(user, idempotency, answer.to_json()),
            own_copy=copy.digest,
        )  # fmt: skip
        if prepared.deadline_note is not None:
            log.warning("deadline.uncovered", digest=sealed.digest.hex(), rule=entry.deadline_rule)
        log.info(
            "envelope.submitted",
            envelope_id=sealed.envelope_id.hex(),
            digest=sealed.digest.hex(),
            sender=user.org,
            recipients=list(sealed.recipients),
            record_kind=record_kind,
            rule=decision.rule,
        )
        self.context.outbox_wakeup.set()
        return answer

    def _recipient_kinds(self, recipients: Sequence[OrgId]) -> dict[OrgId, str]:
        """Return each recipient's organisation kind from the directory, or refuse (422)."""
        if not recipients:
            raise UnprocessableError(
                "recipients must name at least one organisation", rule="recipients"
            )
        kinds: dict[OrgId, str] = {}
        for index, org in enumerate(recipients):
            entry = self.context.directory.organisations.get(org)
            if entry is None:
                raise UnprocessableError(
                    # Not echoed: a misplaced identifier can look like an organisation id.
                    f"recipients[{index}] is not an organisation in the directory",
                    rule="recipients",
                )
            if org in kinds:
                raise UnprocessableError(
                    f"recipients[{index}] repeats an earlier recipient", rule="recipients"
                )
            kinds[org] = entry.kind
        return kinds

    async def _seal_and_keep(
        self, sealers: tuple[Sealer, Sealer], prepared: Prepared
    ) -> tuple[SealedEnvelope, SealedEnvelope]:
        """Seal the envelope and the own copy in one pass; keep each under its digest.

        Both are durable when this returns, before the row that names them commits.
        """
        blobs = self.context.store.blobs
        if prepared.content_length <= SMALL_CONTENT:
            # Small records (nearly all) are sealed in memory and written together.
            done, bodies = await asyncio.to_thread(_seal_small, sealers, prepared)
            await blobs.write(bodies)
            return done
        partials = [blobs.spool / f"sealing-{os.urandom(8).hex()}" for _ in sealers]
        try:
            done = await asyncio.to_thread(_seal_to_files, sealers, prepared, partials)
            # The digests are known only now.
            for partial, sealed in zip(partials, done, strict=True):
                await blobs.write_file(sealed.digest, partial)
        finally:
            for partial in partials:
                partial.unlink(missing_ok=True)
        return done


def _seal_small(
    sealers: tuple[Sealer, Sealer], prepared: Prepared
) -> tuple[tuple[SealedEnvelope, SealedEnvelope], list[tuple[bytes, bytes]]]:
    """Seal a small record in memory into both bodies; return them with their digests."""
    content = b"".join(prepared.content_pieces())
    done, bodies = [], []
    for sealer in sealers:
        pieces = [sealer.start(), *sealer.feed_pieces(content)]
        tail, sealed = sealer.finish()
        pieces.append(tail)
        bodies.append((sealed.digest, b"".join(pieces)))
        done.append(sealed)
    return (done[0], done[1]), bodies


def _seal_to_files(
    sealers: tuple[Sealer, Sealer], prepared: Prepared, partials: Sequence[Path]
) -> tuple[SealedEnvelope, SealedEnvelope]:
    """Seal a large record into the two files ``partials`` in one pass (blocking).

    The record container is made a piece at a time (a file attachment is read from its
    spool as it goes), and each piece is sealed into both bodies before the next is read,
    so memory stays the same whatever the size of the files.
    """
    with atomic_output(partials[0]) as first, atomic_output(partials[1]) as second:
        outs = (first, second)
        for sealer, out in zip(sealers, outs, strict=True):
            out.write(sealer.start())
        for content in prepared.content_pieces():
            view = memoryview(content)
            for i in range(0, len(view), PIECE):
                for sealer, out in zip(sealers, outs, strict=True):
                    out.writelines(sealer.feed_pieces(view[i : i + PIECE]))
        done = []
        for sealer, out in zip(sealers, outs, strict=True):
            tail, sealed = sealer.finish()
            out.write(tail)
            done.append(sealed)
    return done[0], done[1]
