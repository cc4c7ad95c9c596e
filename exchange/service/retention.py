"""Retention on a node: review dates, the review queue, holds, destruction.

The rules are ``config/retention.toml`` (``exchange.policy.retention``, docs/policy.md §4);
this module applies them to what the node's organisations hold and acts on the decisions.

**Review dates.** Every envelope an organisation holds gets the rule for its holder kind
(the organisation's kind in the signed directory), record kind and purpose, and the date the
rule's period ends. A sent item is scheduled when it is submitted, in the transaction that
stores it; a received item when a member of staff first opens it, since only then is its
record (and the child's date of birth) readable; the receiver does not know the sender's
purpose, so only rules without a purpose apply to it. Only the rule id and the computed date
are stored, never the date of birth. When no date can be computed the item is
*unscheduled*, with the reason (``no-rule``, ``no-date-of-birth``, ``no-adoption-order``,
``not-a-record``; ``not-opened`` and ``before-retention`` for items without a row), and the
DPO sees it in the review queue.

**Review queue, holds and destruction** are the DPO's (:func:`due_report`,
:func:`place_hold`, :func:`lift_hold`, :func:`destroy`). Destruction is allowed only when
:func:`exchange.policy.may_destroy` allows it: the review date has passed and no hold in
force covers the item; the DPO's request is the review that approves it. One transaction
marks the item destroyed, deletes the keyed hashes of its pupil identifiers and appends the
``destroyed`` ledger event (the tombstone); the body file is deleted after that commit, once
no organisation on the node still holds the envelope, and :func:`sweep_destroyed` finishes
any deletion a crash interrupted when the node starts. The node never keeps a record's
plaintext: opening decrypts into memory only, so the body is all there is to delete.

Nothing here imports the service: refusals are :class:`RetentionRefusedError` (status, rule,
sentence), which the staff API turns into its JSON errors. Messages and listings name
digests, organisations, kinds, rules, hold ids and dates only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Protocol

from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import (
    Destruction,
    Direction,
    EnvelopeDigest,
    EnvelopeRecord,
    HeldItem,
    HoldRecord,
    RetentionSchedule,
    User,
)
from exchange.policy import (
    Anchor,
    Hold,
    PolicyConfigError,
    RecordsSetup,
    RetentionAction,
    RetentionFacts,
    RetentionItem,
    RetentionPolicy,
    RetentionRule,
    local_date,
    may_destroy,
    review_date,
)
from exchange.records import Record
from exchange.service.ledger import ledger_event
from exchange.service.register_reports import iso_time
from exchange.sharing.prepare import SUBJECT_FIELDS, SubmissionError, check_reason
from exchange.store import Store

log = get_logger("exchange.retention")

#: Longest hold reference (an inquiry's or a court's reference, e.g. ``IICSA/2041/17``).
MAX_REFERENCE_LEN: Final = 200
#: The decision rule of a refusal for an item without a review date.
RULE_UNSCHEDULED: Final = "retention.unscheduled"
RULE_DESTROYED: Final = "retention.destroyed"
RULE_PENDING: Final = "retention.deliveries-pending"
#: Plain words for each reason an item has no review date.
WHY: Final[dict[str, str]] = {
    "not-opened": "received and never opened: the date of birth is read when it is opened",
    "before-retention": "held since before retention began: no review date was computed",
    "no-rule": "no retention rule applies to this holder kind and record kind",
    "no-date-of-birth": "the rule runs from the date of birth, which the record does not give",
    "no-adoption-order": "the rule runs from the adoption order, which the record does not give",
    "not-a-record": "the content is not a record container",
}


class RetentionRefusedError(Exception):
    """A refused retention request: the HTTP ``status``, the ``rule`` and a plain sentence."""

    def __init__(self, message: str, *, status: int, rule: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule


class RetentionNode(Protocol):
    """What retention needs of the node (``ServiceContext`` provides it)."""

    @property
    def store(self) -> Store:
        """The node's store."""
        ...

    @property
    def records(self) -> RecordsSetup:
        """The sharing policy, calendar and retention rules."""
        ...

    @property
    def directory(self) -> Directory:
        """The signed directory the node trusts now."""
        ...

    @property
    def clock(self) -> Callable[[], float]:
        """The node's clock (seconds since the epoch)."""
        ...

    def now(self) -> int:
        """Return the current time in whole seconds."""
        ...


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _today(node: RetentionNode) -> date:
    return local_date(_moment(node.clock()), argument="now")


# --- review dates ----------------------------------------------------------------------------


def holder_kind(directory: Directory, org: OrgId) -> str:
    """Return the organisation's kind in the directory (``unknown`` if it is not there)."""
    entry = directory.organisations.get(org)
    return entry.kind if entry is not None else "unknown"


def date_of_birth(record_kind: str, data: Mapping[str, Any]) -> date | None:
    """Return the child's date of birth (or expected date of birth) a record gives, or None."""
    field = SUBJECT_FIELDS.get(record_kind)
    subject = data.get(field) if field is not None else None
    if not isinstance(subject, Mapping):
        return None
    for key in ("date_of_birth", "expected_date_of_birth"):
        value = subject.get(key)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                return None
    return None


def schedule_item(
    rules: RetentionPolicy,
    *,
    org: OrgId,
    digest: bytes,
    direction: Direction,
    holder: str,
    record_kind: str,
    purpose: str | None,
    data: Mapping[str, Any] | None,
    created: int,
    now: float,
) -> RetentionSchedule:
    """Compute an item's rule and review date, or say why it has none.

    ``holder`` is the holding organisation's kind, ``purpose`` the purpose it was sent for
    (None for a received item: only rules without a purpose apply), ``data`` the record
    (None when the content is not a record container) and ``created`` the envelope's
    creation time. The date of birth is used here and never returned.
    """

    def made(
        rule: RetentionRule | None, day: date | None, unscheduled: str | None
    ) -> RetentionSchedule:
        return RetentionSchedule(
            org=org,
            digest=EnvelopeDigest(digest),
            direction=direction,
            holder_kind=holder,
            rule=None if rule is None else rule.rule_id,
            review_date=None if day is None else day.isoformat(),
            action=None if rule is None else rule.action.value,
            unscheduled=unscheduled,
            scheduled_at=now,
        )

    try:
        # "" names no purpose: the rule without a purpose for this holder and kind applies.
        rule = rules.rule_for(holder_kind=holder, record_kind=record_kind, purpose=purpose or "")
    except PolicyConfigError:
        return made(None, None, "no-rule")
    if rule.anchor is Anchor.CREATED:
        facts = RetentionFacts(created=local_date(_moment(created)))
    elif data is None:
        return made(rule, None, "not-a-record")
    elif rule.anchor is Anchor.DATE_OF_BIRTH:
        born = date_of_birth(record_kind, data)
        if born is None:
            return made(rule, None, "no-date-of-birth")
        facts = RetentionFacts(date_of_birth=born)
    else:
        return made(rule, None, "no-adoption-order")
    return made(rule, review_date(rule, facts, holder), None)


def schedule_sent(
    node: RetentionNode,
    *,
    org: OrgId,
    envelope: EnvelopeRecord,
    purpose: str,
    data: Mapping[str, Any],
    now: float,
) -> RetentionSchedule:
    """Return the schedule of an envelope ``org`` is submitting (stored with it)."""
    schedule = schedule_item(
        node.records.retention,
        org=org,
        digest=envelope.digest,
        direction="sent",
        holder=holder_kind(node.directory, org),
        record_kind=envelope.record_kind,
        purpose=purpose,
        data=data,
        created=envelope.created,
        now=now,
    )
    if schedule.unscheduled is not None:
        log.warning(
            "retention.unscheduled", org=org, digest=envelope.digest.hex(),
            record_kind=envelope.record_kind, outcome=schedule.unscheduled,
        )  # fmt: skip
    return schedule


async def opened_schedule(
    node: RetentionNode, held: HeldItem | None, envelope: EnvelopeRecord, record: Record | None
) -> RetentionSchedule | None:
    """Return the schedule of a received item being opened, or None if it has one already.

    ``held`` is what the organisation holds under the envelope's digest, read before the
    opening; the schedule is stored by the transaction that records the opening.
    """
    if held is None or held.direction != "received" or held.schedule is not None:
        return None
    data = None if record is None else record.data
    return schedule_item(
        node.records.retention,
        org=held.org,
        digest=envelope.digest,
        direction="received",
        holder=holder_kind(node.directory, held.org),
        record_kind=envelope.record_kind,
        purpose=None,
        data=data,
        created=envelope.created,
        now=node.clock(),
    )


def log_scheduled(schedule: RetentionSchedule) -> None:
    """Log that a received item's retention schedule was stored at its opening."""
    log.info(
        "retention.scheduled", org=schedule.org, digest=schedule.digest.hex(),
        rule=schedule.rule, outcome=schedule.unscheduled or "scheduled",
    )  # fmt: skip


def destroyed_sentence(held: HeldItem | None) -> str | None:
    """Return the 410 sentence if ``held`` was destroyed under retention, else None."""
    if held is None or held.destroyed is None:
        return None
    return (
        f"the item was destroyed on {iso_time(held.destroyed.at)} under "
        f"{held.destroyed.rule}; its content no longer exists"
    )


# --- what staff and the DPO see --------------------------------------------------------------


def _state(item: HeldItem | None, today: date) -> str:
    if item is not None and item.destroyed is not None:
        return "destroyed"
    schedule = None if item is None else item.schedule
    if schedule is None or schedule.review_date is None:
        return "unscheduled"
    return "review-due" if date.fromisoformat(schedule.review_date) <= today else "retained"


@dataclass(frozen=True)
class RetentionStanding:
    """Where a sent or inbox item stands under retention (no hold details).

    ``state`` is ``retained``, ``review-due``, ``unscheduled`` or ``destroyed``; ``rule``
    the retention rule's id; ``destroyed_at`` the time of its destruction.
    """

    state: str
    rule: str | None
    review_date: str | None
    destroyed_at: float | None


def standing(item: HeldItem | None, today: date) -> RetentionStanding:
    """Return the retention standing of an item an organisation holds, as of ``today``."""
    schedule = None if item is None else item.schedule
    return RetentionStanding(
        state=_state(item, today),
        rule=None if schedule is None else schedule.rule,
        review_date=None if schedule is None else schedule.review_date,
        destroyed_at=None if item is None or item.destroyed is None else item.destroyed.at,
    )


def hold_json(hold: HoldRecord) -> dict[str, Any]:
    """Return a hold as the API shows it."""
    return {
        "id": hold.id,
        "digest": None if hold.digest is None else hold.digest.hex(),
        "scope": "item" if hold.digest is not None else "organisation",
        "reason": hold.reason,
        "reference": hold.reference,
        "placed_at": iso_time(hold.placed_at),
        "placed_by": hold.placed_by,
        "lifted_at": None if hold.lifted_at is None else iso_time(hold.lifted_at),
        "lifted_by": hold.lifted_by,
        "rule": f"holds.{hold.id}",
    }


def _counterparties(item: HeldItem) -> list[str]:
    env = item.envelope
    return list(env.recipients) if item.direction == "sent" else [env.sender]


def _current_rule(rules: RetentionPolicy, item: HeldItem) -> RetentionRule | None:
    schedule = item.schedule
    if schedule is None or schedule.rule is None:
        return None
    for rule in rules.rules:
        if rule.rule_id == schedule.rule and rule.holder_kind == schedule.holder_kind:
            return rule
    return None


def _covering(holds: Sequence[HoldRecord], digest: bytes) -> list[int]:
    return [h.id for h in holds if h.digest is None or h.digest == digest]


def due_json(
    item: HeldItem, rules: RetentionPolicy, holds: Sequence[HoldRecord], today: date
) -> dict[str, Any]:
    """Return one entry of the review queue: ids, kinds, rule, source, date, hold status."""
    schedule = item.schedule
    assert schedule is not None
    assert schedule.review_date is not None
    rule = _current_rule(rules, item)
    held_by = _covering(holds, item.envelope.digest)
    state = (
        "held"
        if held_by
        else "review-due"
        if date.fromisoformat(schedule.review_date) <= today
        else "retained"
    )
    return {
        "digest": item.envelope.digest.hex(),
        "envelope_id": item.envelope.envelope_id.hex(),
        "direction": item.direction,
        "record_kind": item.envelope.record_kind,
        "purpose": item.purpose,
        "counterparties": _counterparties(item),
        "holder_kind": schedule.holder_kind,
        "rule": f"retention.{schedule.rule}",
        "source": rule.source if rule is not None else "(no longer in the retention file)",
        "action": schedule.action,
        "review_date": schedule.review_date,
        "state": state,
        "holds": held_by,
    }


def unscheduled_json(item: HeldItem) -> dict[str, Any]:
    """Return one item without a review date, with the reason."""
    schedule = item.schedule
    if schedule is not None and schedule.unscheduled is not None:
        why = schedule.unscheduled
    else:
        why = "not-opened" if item.direction == "received" else "before-retention"
    return {
        "digest": item.envelope.digest.hex(),
        "envelope_id": item.envelope.envelope_id.hex(),
        "direction": item.direction,
        "record_kind": item.envelope.record_kind,
        "counterparties": _counterparties(item),
        "rule": None if schedule is None or schedule.rule is None else f"retention.{schedule.rule}",
        "why": why,
        "explanation": WHY[why],
    }


async def due_report(
    store: Store,
    rules: RetentionPolicy,
    org: OrgId,
    *,
    before: date | None,
    now: datetime,
) -> dict[str, Any]:
    """Return ``org``'s review queue: items whose review date is before ``before``.

    ``before`` defaults to tomorrow (London), so the queue holds every item whose review is
    due today or earlier; a later date shows what falls due in the window. Each item names
    its rule, the rule's source and action, its review date, its state (``review-due``,
    ``retained`` if inside the window but not yet due, or ``held``) and the holds covering
    it. ``unscheduled`` lists the items without a review date and why. No personal data.
    """
    today = local_date(now, argument="now")
    limit = before or today + timedelta(days=1)
    items = await store.retention_due(org, before=limit.isoformat())
    unscheduled = await store.retention_unscheduled(org)
    holds = await store.retention_holds(org, active=True)
    return {
        "organisation": org,
        "generated_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "before": limit.isoformat(),
        "items": [due_json(i, rules, holds, today) for i in items],
        "unscheduled": [unscheduled_json(i) for i in unscheduled],
        "holds": [hold_json(h) for h in holds],
    }


# --- the DPO's actions -----------------------------------------------------------------------


def _require_dpo(user: User, action: str) -> None:
    if user.role != "dpo":
        raise RetentionRefusedError(f"the role {user.role} may not {action}", status=403)


def _text(value: str, field: str, *, limit: int | None = None) -> str:
    try:
        text = check_reason(value, field=field)
    except SubmissionError as exc:
        raise RetentionRefusedError(str(exc), status=422, rule=exc.rule) from None
    if limit is not None and len(text) > limit:
        raise RetentionRefusedError(
            f"{field} must be 1 to {limit} characters", status=422, rule=f"{field}.length"
        )
    return text


async def due(node: RetentionNode, user: User, before: date | None) -> dict[str, Any]:
    """Return the review queue of the user's organisation (DPO only)."""
    _require_dpo(user, "see the retention review queue")
    report = await due_report(
        node.store, node.records.retention, user.org, before=before, now=_moment(node.clock())
    )
    log.info("retention.due", org=user.org, count=len(report["items"]))
    return report


async def list_holds(node: RetentionNode, user: User) -> dict[str, Any]:
    """Return every hold of the user's organisation, in force or lifted (DPO only)."""
    _require_dpo(user, "see retention holds")
    holds = await node.store.retention_holds(user.org, active=False)
    return {"holds": [hold_json(h) for h in holds]}


async def held(node: RetentionNode, user: User, digest: bytes) -> dict[str, Any]:
    """Return one item the user's organisation holds, as the review queue shows it (DPO only).

    An item with a review date is a queue entry (:func:`due_json`); one without has the
    reason (:func:`unscheduled_json`), state ``unscheduled`` and the holds covering it. A
    destroyed item's state is ``destroyed``, with ``destroyed_at``. Another organisation's
    item is not found.
    """
    _require_dpo(user, "see retention details")
    item = await node.store.held_item(user.org, digest)
    if item is None:
        raise RetentionRefusedError("no such item held by this organisation", status=404)
    holds = await node.store.retention_holds(user.org, active=True)
    schedule = item.schedule
    if schedule is not None and schedule.review_date is not None:
        found = due_json(item, node.records.retention, holds, _today(node))
    else:
        found = {
            **unscheduled_json(item),
            "state": "unscheduled",
            "holds": _covering(holds, item.envelope.digest),
        }
    if item.destroyed is not None:
        found["state"] = "destroyed"
        found["destroyed_at"] = iso_time(item.destroyed.at)
    return found


async def place_hold(
    node: RetentionNode, user: User, *, digest: bytes | None, reason: str, reference: str
) -> dict[str, Any]:
    """Place an inquiry or litigation hold on one item, or on every item (``digest`` None)."""
    _require_dpo(user, "place retention holds")
    text = _text(reason, "reason")
    ref = _text(reference, "reference", limit=MAX_REFERENCE_LEN)
    if digest is not None and await node.store.held_item(user.org, digest) is None:
        raise RetentionRefusedError("no such item held by this organisation", status=404)
    hold = await node.store.add_hold(
        user.org, digest=digest, reason=text, reference=ref, placed_by=user.id, now=node.clock()
    )
    log.info(
        "retention.hold-placed", org=user.org, rule=f"holds.{hold.id}",
        digest=None if digest is None else digest.hex(),
    )  # fmt: skip
    return hold_json(hold)


async def lift_hold(node: RetentionNode, user: User, hold_id: int) -> dict[str, Any]:
    """Lift a hold of the user's organisation; lifting it again changes nothing."""
    _require_dpo(user, "lift retention holds")
    hold = await node.store.lift_hold(user.org, hold_id, lifted_by=user.id, now=node.clock())
    if hold is None:
        raise RetentionRefusedError("no such hold for this organisation", status=404)
    log.info("retention.hold-lifted", org=user.org, rule=f"holds.{hold.id}")
    return hold_json(hold)


@dataclass(frozen=True)
class _Decider:
    """Decides a destruction inside the store's transaction (see ``destroy_held``)."""

    user: User
    reason: str
    moment: datetime

    def __call__(self, item: HeldItem, holds: Sequence[HoldRecord]) -> tuple[Destruction, bytes]:
        if item.destroyed is not None:
            raise RetentionRefusedError(
                f"the item was already destroyed on {iso_time(item.destroyed.at)} "
                f"(rule {RULE_DESTROYED})",
                status=409,
                rule=RULE_DESTROYED,
            )
        schedule = item.schedule
        if schedule is None or schedule.review_date is None or schedule.rule is None:
            why = unscheduled_json(item)["why"]
            raise RetentionRefusedError(
                f"the item has no review date ({WHY[why]}), so no rule allows destroying it "
                f"(rule {RULE_UNSCHEDULED})",
                status=422,
                rule=RULE_UNSCHEDULED,
            )
        if item.pending:
            raise RetentionRefusedError(
                f"{item.pending} delivery(ies) of the envelope have not finished; destroy it "
                f"once they have (rule {RULE_PENDING})",
                status=409,
                rule=RULE_PENDING,
            )
        today = local_date(self.moment, argument="now")
        # The stored review date stands for the date of birth (never kept): a rule of zero
        # years from that date gives exactly the review date computed when it was scheduled.
        rule = RetentionRule(
            rule_id=schedule.rule,
            holder_kind=schedule.holder_kind,
            record_kind=item.envelope.record_kind,
            purpose=None,
            anchor=Anchor.CREATED,
            years=0,
            action=RetentionAction(schedule.action or RetentionAction.REVIEW.value),
            source="",
        )
        subject = RetentionItem(
            item_id=item.envelope.digest.hex(),
            rule=rule,
            holder_kind=schedule.holder_kind,
            facts=RetentionFacts(created=date.fromisoformat(schedule.review_date)),
            # This request is the DPO's review approving destruction, made today.
            destruction_approved_on=today,
        )
        in_force = [
            Hold(
                hold_id=str(h.id),
                reason=h.reason,
                placed_on=min(local_date(_moment(h.placed_at)), today),
                item_ids=None if h.digest is None else frozenset({h.digest.hex()}),
            )
            for h in holds
        ]
        decision = may_destroy(subject, in_force, self.moment)
        if not decision.allowed:
            raise RetentionRefusedError(
                decision.explanation, status=409 if decision.holds else 422, rule=decision.rule
            )
        reason_code = decision.rule if len(decision.rule) <= 64 else "retention"
        event = ledger_event(
            EventType.DESTROYED,
            int(self.moment.timestamp()),
            item.org,
            item.envelope.digest,
            counterparty=item.envelope.sender if item.direction == "received" else None,
            reason=reason_code,
        )
        destruction = Destruction(
            at=self.moment.timestamp(), by=self.user.id, rule=decision.rule, reason=self.reason
        )
        return destruction, event


async def destroy(node: RetentionNode, user: User, digest: bytes, *, reason: str) -> dict[str, Any]:
    """Destroy an item after review, if its rule and the holds allow it (DPO only).

    The decision, the marking of the row, the deletion of the item's identifier hashes and
    the ``destroyed`` ledger event are one transaction; the body is deleted after it
    commits, once no organisation on the node holds the envelope any more.
    """
    _require_dpo(user, "destroy records")
    text = _text(reason, "reason")
    decide = _Decider(user, text, _moment(node.clock()))
    own_copy = await node.store.own_copy(user.org, digest)
    result = await node.store.destroy_held(user.org, digest, decide)
    if result is None:
        raise RetentionRefusedError("no such item held by this organisation", status=404)
    item, destruction, unreferenced = result
    if unreferenced:
        await node.store.blobs.delete(digest)
    if own_copy is not None:
        # Its row was cleared with the destruction; were this missed, the sweep would do it.
        await node.store.blobs.delete(own_copy)
    log.info("retention.destroyed", org=user.org, digest=digest.hex(), rule=destruction.rule)
    schedule = item.schedule
    assert schedule is not None
    return {
        "digest": digest.hex(),
        "state": "destroyed",
        "rule": destruction.rule,
        "review_date": schedule.review_date,
        "destroyed_at": iso_time(destruction.at),
        "destroyed_by": destruction.by,
        "ledger_event": EventType.DESTROYED.value,
    }


async def sweep_destroyed(store: Store) -> int:
    """Delete the bodies of destroyed envelopes that a crash left; return how many."""
    count = 0
    for digest in await store.unreferenced_bodies():
        if await store.blobs.delete(digest):
            count += 1
    if count:
        log.info("retention.swept", count=count)
    return count
