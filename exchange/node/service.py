"""What a node does, independent of HTTP: submit, deliver, receive, open, acknowledge, reject.

:class:`NodeService` ties the sans-I/O core (envelopes, receipts, ledger events) to the
store. Every operation follows "persist, then send": state changes, outbox rows and ledger
events are committed in one transaction before anything leaves the node, and the outbox
worker (``exchange.node.delivery``) is only woken afterwards.

Errors meant for the API are :class:`ServiceError` subclasses carrying an HTTP status and a
plain sentence that never holds record content.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from exchange.envelope import (
    EnvelopeError,
    Opener,
    OpenError,
    Recipient,
    SealedEnvelope,
    Sealer,
    VerifiedEnvelope,
    Verifier,
)
from exchange.files import atomic_output, rename_durably
from exchange.ledger.events import EventType, LedgerEvent, encode_event
from exchange.logs import get_logger
from exchange.node.config import ConfigError
from exchange.node.records_setup import RecordsSetup, load_records_setup
from exchange.node.register import (
    OverdueItem,
    RegisterKey,
    RegisterKeyError,
    export_register,
    overdue_items,
    subject_access_report,
)
from exchange.node.retention import destroyed_message, schedule_opened, schedule_sent
from exchange.node.sharing import (
    SATISFIED_BY,
    Submission,
    SubmissionError,
    check_reason,
    prepare,
    subject_identifiers,
)
from exchange.node.tenants import Tenant
from exchange.node.threads import LinkRefusedError, link_opened, submission_link
from exchange.policy import record_decision_not_to_share
from exchange.receipts import (
    Receipt,
    ReceiptError,
    ReceiptStatus,
    SignedReceipt,
    parse_signed,
    serialize_signed,
    sign_receipt,
    verify_receipt,
)
from exchange.records import RecordError, decode_container
from exchange.store import EnvelopeRecord, NewOutbox, ReceiptRecord, SqliteStore, User
from exchange.store.base import RegisterEntry, SubjectKey, SubjectKind
from keys.directory import Directory
from keys.errors import KeyLookupError
from keys.ids import OrgId

log = get_logger("exchange.node")

#: Envelope bodies are streamed to disk in pieces of this size.
PIECE: Final = 1024 * 1024
#: Records up to this size are sealed in memory and written once under their digest.
SMALL_CONTENT: Final = 4 * 1024 * 1024
#: The answer to opening or deciding an item its sender recalled (issue 5).
_RECALLED: Final = "the sender recalled this item before it was opened; it is no longer held"


class ServiceError(Exception):
    """A refusal the API reports with ``status`` and a plain, content-free sentence."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFoundError(ServiceError):
    """No such item for this organisation (also used to hide other organisations' items)."""

    status = 404


class ForbiddenError(ServiceError):
    """The user's role does not allow the action."""

    status = 403


class ConflictError(ServiceError):
    """The action contradicts the item's state (e.g. acknowledging a rejected item)."""

    status = 409


class GoneError(ServiceError):
    """The item was recalled by its sender, or destroyed under retention (issue 5).

    It can no longer be opened or decided.
    """

    status = 410


class UnprocessableError(ServiceError):
    """A well-formed request refused by a rule: ``rule`` names it; ``problems`` lists fields.

    The API adds both to the error object (``{"error": {..., "rule", "problems"}}``).
    """

    status = 422

    def __init__(
        self, message: str, *, rule: str, problems: Sequence[Mapping[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = {"rule": rule}
        if problems:
            self.details["problems"] = [dict(p) for p in problems]


@dataclass(frozen=True)
class Submitted:
    """The answer to a submission: names, the lawful basis recorded and the deadline."""

    envelope_id: bytes
    digest: bytes
    lawful_basis: str | None = None
    deadline_due: str | None = None
    deadline_rule: str | None = None


def _event(
    kind: str,
    at: int,
    org: OrgId,
    digest: bytes,
    *,
    counterparty: OrgId | None = None,
    receipt: bytes | None = None,
    reason: str | None = None,
) -> bytes:
    return encode_event(
        LedgerEvent(
            type=EventType(kind),
            time=at,
            org=org,
            envelope_digest=digest,
            counterparty=counterparty,
            receipt_digest=receipt,
            reason=reason,
        )
    )


def _record(verified: VerifiedEnvelope) -> EnvelopeRecord:
    header = verified.header
    return EnvelopeRecord(
        digest=verified.digest,
        envelope_id=header.envelope_id,
        sender=header.sender,
        recipients=header.recipients,
        record_kind=header.record_kind,
        created=header.created,
        length=verified.envelope_length,
    )


def _receipt_record(signed: SignedReceipt) -> ReceiptRecord:
    r = signed.receipt
    return ReceiptRecord(
        digest=signed.digest,
        envelope_digest=r.envelope_digest,
        receipter=r.receipter,
        status=r.status.value,
        time=r.time,
        signed=serialize_signed(signed),
    )


class NodeService:
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

    def now(self) -> int:
        """Return the current time in whole seconds."""
        return int(self.clock())

    def tenant(self, org: OrgId) -> Tenant:
        """Return the tenant ``org`` or refuse as not found."""
        tenant = self.tenants.get(org)
        if tenant is None:
            raise NotFoundError(f"this node does not serve {org}")
        return tenant

    # --- sending ----------------------------------------------------------------------------

    async def submit(
        self, user: User, submission: Submission, *, corrects: bytes | None = None
    ) -> Submitted:
        """Check, seal and commit a record with its register row and deadline, then answer.

        The record is checked against its schema and the policy first (docs/node.md); a
        refusal names the rule and registers nothing. ``corrects`` is set by a rectification
        (``exchange.node.corrections``), which a DPO may also make.
        """
        roles = {"dsl", "staff", "dpo"} if corrects is not None else {"dsl", "staff"}
        if user.role not in roles:
            raise ForbiddenError(f"the role {user.role} may not send records")
        tenant = self.tenant(user.org)
        now = self.now()
        # Threads (issue 5): the envelope this one replies to or corrects must be held here.
        try:
            linked_record, thread = await submission_link(
                self.store, user.org, submission.record_kind, submission.record,
                submission.in_reply_to, corrects=corrects,
            )  # fmt: skip
        except LinkRefusedError as exc:
            if exc.status == 404:
                raise NotFoundError(str(exc)) from None
            raise UnprocessableError(str(exc), rule=exc.rule) from None
        submission = replace(submission, record=linked_record)
        recipient_kinds = self._recipient_kinds(submission.recipients)
        try:
            prepared = await asyncio.to_thread(
                prepare,
                submission,
                setup=self.records,
                recipient_kinds=recipient_kinds,
                submitted_at=datetime.fromtimestamp(self.clock(), UTC),
                subject_key=self.register_key.subject,
            )
        except SubmissionError as exc:
            log.info("envelope.refused", org=user.org, rule=exc.rule)
            raise UnprocessableError(str(exc), rule=exc.rule, problems=exc.problems) from None
        record_kind = prepared.record.kind
        try:
            sender = tenant.signing_pair(self.directory, now)
            sealed_to = [
                Recipient(org, self.directory.current_keys(org, now).encryption)
                for org in submission.recipients
            ]
            sealer = Sealer(sender, sealed_to, record_kind=record_kind, created=now)
        except KeyLookupError as exc:
            raise ServiceError(f"recipients: {exc}", status=422) from None
        except EnvelopeError as exc:
            raise ServiceError(str(exc), status=422) from None
        sealed = await asyncio.to_thread(self._seal_to_disk, sealer, prepared.content)
        record = EnvelopeRecord(
            digest=sealed.digest,
            envelope_id=sealed.envelope_id,
            sender=sealed.sender,
            recipients=sealed.recipients,
            record_kind=sealed.record_kind,
            created=sealed.created,
            length=sealed.envelope_length,
        )
        decision, deadline = prepared.decision, prepared.deadline
        committed_at = self.clock()
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
            envelope_digest=sealed.digest,
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
        await self.store.record_submission(
            record,
            submitted_by=user.id,
            now=committed_at,
            outbox=[NewOutbox("envelope", sealed.digest, user.org, r) for r in sealed.recipients],
            ledger_events=[
                _event(
                    "submitted", now, user.org, sealed.digest,
                    reason="rectification" if corrects is not None else None,
                )
            ],
            register=entry,
            thread=thread,
            # Its retention rule and review date (exchange/node/retention.py).
            retention=schedule_sent(
                self, org=user.org, envelope=record, purpose=decision.purpose,
                data=prepared.record.data, now=committed_at,
            ),
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
        self.outbox_wakeup.set()
        return Submitted(
            sealed.envelope_id,
            sealed.digest,
            lawful_basis=entry.lawful_basis,
            deadline_due=entry.deadline_due,
            deadline_rule=entry.deadline_rule,
        )

    def _recipient_kinds(self, recipients: Sequence[OrgId]) -> dict[OrgId, str]:
        """Return each recipient's organisation kind from the directory, or refuse (422)."""
        if not recipients:
            raise UnprocessableError(
                "recipients must name at least one organisation", rule="recipients"
            )
        kinds: dict[OrgId, str] = {}
        for index, org in enumerate(recipients):
            entry = self.directory.organisations.get(org)
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

    def _seal_to_disk(self, sealer: Sealer, content: bytes) -> SealedEnvelope:
        """Seal, sync the envelope under its digest's name, and return what was sealed."""
        if len(content) <= SMALL_CONTENT:
            # Small records (nearly all) are sealed in memory and written once, straight to
            # the final name: one synced file and rename instead of two.
            pieces = [sealer.start(), *sealer.feed_pieces(content)]
            tail, sealed = sealer.finish()
            pieces.append(tail)
            with atomic_output(self.store.body_path(sealed.digest), overwrite=True) as out:
                out.writelines(pieces)
            return sealed
        partial = self.store.bodies / f"sealing-{os.urandom(8).hex()}"
        try:
            with atomic_output(partial) as out:
                out.write(sealer.start())
                view = memoryview(content)
                for i in range(0, len(view), PIECE):
                    out.writelines(sealer.feed_pieces(view[i : i + PIECE]))
                tail, sealed = sealer.finish()
                out.write(tail)
            # The digest is known only now; the rename is synced before the row commits.
            rename_durably(partial, self.store.body_path(sealed.digest))
        finally:
            partial.unlink(missing_ok=True)
        return sealed

    # --- receiving from peers -----------------------------------------------------------------

    async def receive_envelope(self, peer_org: OrgId, owner: OrgId, body: bytes) -> bytes:
        """Verify, store once and answer with the signed ``delivered`` receipt of ``owner``.

        ``peer_org`` is the organisation that signed the push request; it must be the
        envelope's sender.
        """
        verified = self._verify_inbound(owner, body)
        if verified.header.sender != peer_org:
            raise ServiceError(
                f"the request was signed by {peer_org} but the envelope is from "
                f"{verified.header.sender}",
                status=403,
            )
        # The receipt is the answer to the push; it is not also sent separately.
        return await self._accept(owner, verified, body, via=None, send_receipt=False)

    async def receive_collected(self, owner: OrgId, body: bytes, route_kind: str) -> bool:
        """Take an envelope collected from a pull route (a relay mailbox, NHS MESH).

        The envelope's own signature authenticates its sender. The ``delivered`` receipt
        goes back the way the envelope came (DESIGN.md §6): through the relay where
        ``owner`` collects, or over MESH to the sender's mailbox, and by the sender's other
        routes if that fails. Returns whether it was new.
        """
        verified = self._verify_inbound(owner, body)
        existing = await self.store.inbox_item(owner, verified.digest)
        if existing is not None:
            return False
        via = self._return_route(owner, route_kind, verified.header.sender)
        await self._accept(owner, verified, body, via=via, send_receipt=True)
        return True

    async def import_envelope(self, user: User, body: bytes) -> tuple[bytes, bool]:
        """Take an envelope a member of staff received another way (the ``smtp`` route).

        It is verified like any other; the ``delivered`` receipt is sent to the sender by
        its routes. Returns the digest and whether it was new.
        """
        if user.role not in {"dsl", "staff"}:
            raise ForbiddenError(f"the role {user.role} may not import records")
        verified = self._verify_inbound(user.org, body)
        if await self.store.inbox_item(user.org, verified.digest) is not None:
            return verified.digest, False
        await self._accept(user.org, verified, body, via=None, send_receipt=True)
        return verified.digest, True

    def _return_route(self, owner: OrgId, route_kind: str, sender: OrgId) -> str | None:
        """Return the ``via`` of a receipt for an envelope collected over ``route_kind``."""
        org = owner if route_kind == "mailbox" else sender
        try:
            routes = self.directory.organisation(org).routes
        except KeyLookupError:
            return None
        for route in routes:
            if route.kind == route_kind:
                return f"{route.kind} {route.address}"
        return None

    def _verify_inbound(self, owner: OrgId, body: bytes) -> VerifiedEnvelope:
        self.tenant(owner)
        verifier = Verifier(self.directory, now=self.now())
        try:
            verifier.feed(body)
            verified = verifier.finish()
        except OpenError as exc:
            raise ServiceError(f"the envelope was refused: {exc}", status=422) from None
        if owner not in verified.header.recipients:
            raise ServiceError(f"the envelope is not addressed to {owner}", status=403)
        return verified

    async def _accept(
        self,
        owner: OrgId,
        verified: VerifiedEnvelope,
        body: bytes,
        *,
        via: str | None,
        send_receipt: bool,
    ) -> bytes:
        """Store a verified envelope once for ``owner``; return its ``delivered`` receipt."""
        tenant = self.tenant(owner)
        header = verified.header
        existing = await self.store.inbox_item(owner, verified.digest)
        if existing is not None:
            return existing.delivered_receipt
        path = self.store.body_path(verified.digest)
        if not path.exists():
            await asyncio.to_thread(_write_body, path, body)
        now = self.now()
        record_of_envelope = _record(verified)
        signed = self._sign(tenant, ReceiptStatus.DELIVERED, record_of_envelope, now)
        record = _receipt_record(signed)
        outbox: list[NewOutbox] = []
        if send_receipt:
            # A pull route has no answer to carry the receipt: it is sent like any other.
            outbox.append(NewOutbox("receipt", record.digest, owner, header.sender, via=via))
        if owner in self.notified:
            outbox.append(NewOutbox("notice", verified.digest, header.sender, owner))
        receipt_bytes = await self.store.record_delivery(
            owner,
            record_of_envelope,
            now=self.clock(),
            receipt=record,
            ledger_events=[
                _event(
                    "delivered", now, owner, verified.digest,
                    counterparty=header.sender, receipt=record.digest,
                )
            ],
            outbox=outbox,
        )  # fmt: skip
        if outbox:
            self.outbox_wakeup.set()
        log.info(
            "envelope.received",
            envelope_id=header.envelope_id.hex(),
            digest=verified.digest.hex(),
            sender=header.sender,
            recipient=owner,
        )
        return receipt_bytes

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

    async def receive_receipt(self, peer_org: OrgId | None, owner: OrgId, data: bytes) -> None:
        """Verify a receipt for an envelope ``owner`` sent, against the digest we computed.

        ``peer_org`` is the organisation that signed the push request, or ``None`` for a
        receipt collected from a pull route, authenticated by its own signature alone.
        """
        self.tenant(owner)
        try:
            signed = parse_signed(data)
        except ReceiptError as exc:
            raise ServiceError(f"the receipt was refused: {exc}", status=422) from None
        claimed = signed.receipt
        sent = await self.store.sent_item(owner, claimed.envelope_digest)
        if sent is None:
            log.warning("receipt.refused", rule="receipt.digest", org=owner, error_class="unknown")
            raise ServiceError(
                "the receipt names an envelope this organisation did not send", status=422
            )
        if peer_org is not None and peer_org != claimed.receipter:
            raise ServiceError(
                "the request was not signed by the receipting organisation", status=403
            )
        env = sent.envelope
        try:
            receipt = verify_receipt(
                data,
                expected_digest=env.digest,
                expected_envelope_id=env.envelope_id,
                sender=owner,
                recipients=env.recipients,
                directory=self.directory,
                now=self.now(),
            )
        except ReceiptError as exc:
            log.warning("receipt.refused", rule=exc.rule, org=owner, digest=env.digest.hex())
            raise ServiceError(f"the receipt was refused: {exc}", status=422) from None
        record = _receipt_record(signed)
        await self.store.add_receipt(
            record,
            ledger_events=[
                _event(
                    receipt.status.value, self.now(), owner, env.digest,
                    counterparty=receipt.receipter, receipt=record.digest,
                )
            ],
            now=self.clock(),
        )  # fmt: skip
        log.info(
            "receipt.received",
            digest=env.digest.hex(),
            status=receipt.status.value,
            org=owner,
            recipient=receipt.receipter,
        )

    # --- staff actions on the inbox ----------------------------------------------------------

    async def open_item(self, user: User, digest: bytes) -> bytes:
        """Decrypt an inbox item for an authorised user; emit ``opened`` the first time."""
        if user.role not in {"dsl", "staff"}:
            raise ForbiddenError(f"the role {user.role} may not open records")
        tenant = self.tenant(user.org)
        item = await self.store.inbox_item(user.org, digest)
        if item is None:
            raise NotFoundError("no such item in this organisation's inbox")
        if item.state == "recalled":
            raise GoneError(_RECALLED)
        gone = await destroyed_message(self.store, user.org, digest)
        if gone is not None:  # destroyed under retention (exchange/node/retention.py)
            raise GoneError(gone)
        now = self.now()
        try:
            content = await asyncio.to_thread(
                self._open_body, tenant, digest, item.envelope.created
            )
        except FileNotFoundError:
            # A recall (exchange/node/recall.py) or a destruction that won the race
            # deleted the body.
            gone = await destroyed_message(self.store, user.org, digest)
            raise GoneError(gone or _RECALLED) from None
        accessed = _event("accessed", now, user.org, digest, reason=user.role)
        first = item.state == "delivered"
        if first:
            signed = self._sign(tenant, ReceiptStatus.OPENED, item.envelope, now)
            record = _receipt_record(signed)
            # Only while still "delivered": exactly one of a recall and this opening wins,
            # and the content is released only if the opening did (issue 5).
            outcome = await self.store.mark_opened(
                user.org,
                digest,
                user_id=user.id,
                role=user.role,
                receipt=record,
                outbox=[NewOutbox("receipt", record.digest, user.org, item.envelope.sender)],
                ledger_events=[
                    _event(
                        "opened", now, user.org, digest,
                        counterparty=item.envelope.sender, receipt=record.digest,
                    ),
                    accessed,
                ],
                now=self.clock(),
            )  # fmt: skip
            if outcome == "recalled":
                raise GoneError(_RECALLED)
            first = outcome == "opened"
            if first:
                self.outbox_wakeup.set()
        if not first:
            await self.store.append_ledger([accessed])
        await self._index_opened(user.org, digest, content)
        await link_opened(self.store, user.org, item.envelope, content, now=self.clock())
        await schedule_opened(self, user.org, item.envelope, content)
        log.info("envelope.opened", digest=digest.hex(), org=user.org, status=item.state)
        return content

    def _open_body(self, tenant: Tenant, digest: bytes, created: int) -> bytes:
        # The body was verified on arrival; opening checks everything again, so a body
        # altered on disk is refused, never released.
        opener = Opener(self.directory, tenant.keys, now=max(self.now(), created))
        pieces: list[bytes] = []
        try:
            with self.store.body_path(digest).open("rb") as handle:
                while block := handle.read(PIECE):
                    pieces += opener.feed_pieces(block)
            opener.finish_opened()
        except OpenError as exc:
            raise ServiceError(
                f"the stored envelope could not be opened: {exc}", status=500
            ) from None
        return b"".join(pieces)

    async def decide(self, user: User, digest: bytes, *, accept: bool, code: str | None) -> bytes:
        """Acknowledge (with an optional disposition) or reject (with a reason) an item."""
        if user.role not in {"dsl", "staff"}:
            raise ForbiddenError(f"the role {user.role} may not acknowledge or reject records")
        tenant = self.tenant(user.org)
        item = await self.store.inbox_item(user.org, digest)
        if item is None:
            raise NotFoundError("no such item in this organisation's inbox")
        if item.state == "recalled":
            raise GoneError(_RECALLED)
        gone = await destroyed_message(self.store, user.org, digest)
        if gone is not None:  # destroyed under retention (exchange/node/retention.py)
            raise GoneError(gone)
        if item.state in {"acknowledged", "rejected"}:
            raise ConflictError(f"the item was already {item.state}")
        status = ReceiptStatus.ACKNOWLEDGED if accept else ReceiptStatus.REJECTED
        now = self.now()
        try:
            signed = self._sign(tenant, status, item.envelope, now, disposition=code)
        except ValueError as exc:
            raise ServiceError(str(exc), status=400) from None
        record = _receipt_record(signed)
        decided = await self.store.update_inbox(
            user.org,
            digest,
            state="acknowledged" if accept else "rejected",
            receipt=record,
            outbox=[NewOutbox("receipt", record.digest, user.org, item.envelope.sender)],
            ledger_events=[
                _event(
                    status.value, now, user.org, digest,
                    counterparty=item.envelope.sender, receipt=record.digest, reason=code,
                )
            ],
            now=self.clock(),
        )  # fmt: skip
        if not decided:
            raise GoneError(_RECALLED)
        self.outbox_wakeup.set()
        log.info("envelope.decided", digest=digest.hex(), org=user.org, status=status.value)
        return record.digest

    # --- records, register, deadlines (issue 5) ------------------------------------------
    # The sharing register (docs/node.md, "The sharing register"): decisions not to share,
    # the DPO's export, overdue deadlines and subject access. Disclosures are registered by
    # submit(), in the transaction that stores the envelope.

    def _require(self, user: User, roles: set[str], action: str) -> None:
        if user.role not in roles:
            raise ForbiddenError(f"the role {user.role} may not {action}")

    def subject_key(self, kind: SubjectKind, value: str) -> SubjectKey:
        """Return the keyed hash of a pupil identifier (validated, canonical form)."""
        return self.register_key.subject(kind, value)

    async def record_not_shared(
        self,
        user: User,
        *,
        purpose: str,
        recipients: Sequence[OrgId],
        reason_code: str,
        reason: str,
        record_kind: str | None = None,
        identifiers: Sequence[tuple[SubjectKind, str]] = (),
    ) -> int:
        """Register a decision not to share (Information sharing advice 2024); return its id.

        ``recipients`` are the organisations the information was asked for by or would have
        gone to; ``identifiers`` (validated UPN / NHS number) let subject access find it.
        """
        self._require(user, {"dsl", "staff"}, "record decisions about sharing")
        self.tenant(user.org)
        if purpose not in self.records.policy.purposes:
            raise UnprocessableError(
                "purpose is not one the policy defines (expected one of: "
                f"{', '.join(sorted(self.records.policy.purposes))})",
                rule="purposes",
            )
        kinds: dict[OrgId, str] = {}
        for org in recipients:
            entry = self.directory.organisations.get(org)
            kinds[org] = entry.kind if entry is not None else "unknown"
        try:
            text = check_reason(reason)
            decision = record_decision_not_to_share(
                purpose, reason_code, record_kind=record_kind, recipient_kinds=kinds
            )
        except SubmissionError as exc:
            raise UnprocessableError(str(exc), rule=exc.rule) from None
        except ValueError as exc:
            raise UnprocessableError(str(exc), rule="reason_code") from None
        register_id = await self.store.record_not_shared(
            RegisterEntry(
                org=user.org,
                outcome="not-shared",
                decided_by=user.id,
                decided_at=self.clock(),
                purpose=purpose,
                rule=decision.rule,
                reason=text,
                recipients=decision.recipients,
                record_kind=record_kind,
                reason_code=decision.reason_code.value if decision.reason_code else None,
                subjects=tuple(self.subject_key(k, v) for k, v in identifiers),
            )
        )
        log.info("register.not-shared", org=user.org, rule=decision.rule)
        return register_id

    async def register_export(
        self, user: User, *, since: float | None, until: float | None, form: str
    ) -> str | list[dict[str, Any]]:
        """Return the organisation's register as CSV text or JSON rows (DPO only)."""
        self._require(user, {"dpo"}, "export the sharing register")
        self.tenant(user.org)
        result = await export_register(
            self.store,
            user.org,
            since=since,
            until=until,
            now=datetime.fromtimestamp(self.clock(), UTC),
            form=form,
        )
        log.info("register.exported", org=user.org, count=len(result))
        return result

    async def overdue_items(self, org: OrgId, now: datetime | None = None) -> list[OverdueItem]:
        """Return ``org``'s deadlines past due without the receipt that meets them.

        The items hold ids, organisation ids, kinds, purposes and dates only, so they may go
        into a chase notification as they are.
        """
        moment = now if now is not None else datetime.fromtimestamp(self.clock(), UTC)
        return await overdue_items(self.store, org, moment)

    async def overdue_for(self, user: User) -> list[OverdueItem]:
        """Return the user's organisation's overdue items (DSL, staff and DPO)."""
        self._require(user, {"dsl", "staff", "dpo"}, "see overdue items")
        self.tenant(user.org)
        return await self.overdue_items(user.org)

    async def subject_access(self, user: User, kind: SubjectKind, value: str) -> dict[str, Any]:
        """Return the subject access report for one validated identifier (DPO only)."""
        self._require(user, {"dpo"}, "search the register for a subject access request")
        self.tenant(user.org)
        report = await subject_access_report(
            self.store,
            self.register_key,
            user.org,
            (kind, value),
            now=datetime.fromtimestamp(self.clock(), UTC),
        )
        log.info("register.subject-access", org=user.org, count=len(report["items"]))
        return report

    async def _index_opened(self, org: OrgId, digest: bytes, content: bytes) -> None:
        """Index a received record's subject at its first opening (keyed hashes only)."""

        def read() -> tuple[str, list[SubjectKey]]:
            try:
                container = decode_container(content)
            except RecordError:
                return "not-a-record", []
            pairs = subject_identifiers(container.record.kind, container.record.data)
            return "indexed", [self.subject_key(k, v) for k, v in pairs]

        outcome, subjects = await asyncio.to_thread(read)
        await self.store.index_received(
            org, digest, subjects=subjects, outcome=outcome, now=self.clock()
        )


def _write_body(path: Path, body: bytes) -> None:
    # Synced file, atomic rename, synced folder; a concurrent identical delivery may have
    # written the same bytes under the same name first, which is harmless.
    with atomic_output(path, overwrite=True) as out:
        out.write(body)


def token_hash(token: str) -> bytes:
    """Hash an API token for storage and lookup (tokens are 256-bit random, so SHA-256 fits)."""
    return hashlib.sha256(b"exchange/v1/api-token\x00" + token.encode("utf-8")).digest()
