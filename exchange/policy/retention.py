"""Retention: when a held record is due for review, and whether it may be destroyed now.

Rules come from ``config/retention.toml``, one per holder kind, record kind and (optionally)
purpose, with defaults from the statutory guidance (docs/policy.md): a school's CP file is
reviewed at the pupil's date of birth + 25 years (review, never silent deletion); an LA's
looked-after child record is kept until the 75th birthday; adoption records 100 years. A rule
belongs to the kind of organisation that holds the item (``holder_kind``): a school's rule never
governs a record held by an LA, so school settings cannot shorten the LA's periods
(:func:`review_date` refuses a rule for the wrong holder). An inquiry hold suspends destruction
whatever the rule says.

This module decides only. Destruction itself (deleting the stored envelope and plaintext and
appending the ledger tombstone) is the node's job once :func:`may_destroy` allows it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final

from exchange.policy import _config as cfg
from exchange.policy.calendar import local_date
from exchange.policy.decisions import Decision, Outcome
from exchange.policy.errors import PolicyConfigError
from exchange.policy.policy import DEFAULT_RECORD_KINDS, RECIPIENT_KINDS

RETENTION_VERSION: Final = 1

#: Record kinds a retention rule may name: the exchanged kinds, plus the LA's adoption case
#: record, which is never exchanged as such but whose period the adoption regulations set.
RETENTION_RECORD_KINDS: Final = DEFAULT_RECORD_KINDS | {"adoption-case-record"}

#: Longest period a rule may set. The longest statutory period we know of is 100 years
#: (adoption); 150 leaves room without letting a typo (2500) through.
MAX_RETENTION_YEARS: Final = 150

_RULE_KEYS: Final = frozenset(
    {"id", "holder_kind", "record_kind", "purpose", "anchor", "years", "action", "source"}
)


class Anchor(StrEnum):
    """The date a retention period runs from."""

    DATE_OF_BIRTH = "date-of-birth"
    CREATED = "created"
    ADOPTION_ORDER = "adoption-order"


class RetentionAction(StrEnum):
    """What happens when the period ends: a human review (the default) or destruction."""

    REVIEW = "review"
    DESTROY = "destroy"


class RetentionState(StrEnum):
    """Where an item stands in its retention life."""

    RETAINED = "retained"
    REVIEW_DUE = "review-due"
    HELD = "held"
    DESTROY_APPROVED = "destroy-approved"


@dataclass(frozen=True)
class RetentionRule:
    """One validated rule; ``purpose`` None means any purpose."""

    rule_id: str
    holder_kind: str
    record_kind: str
    purpose: str | None
    anchor: Anchor
    years: int
    action: RetentionAction
    source: str

    @property
    def rule(self) -> str:
        """The rule id as decisions name it."""
        return f"retention.{self.rule_id}"


@dataclass(frozen=True)
class RetentionPolicy:
    """The validated rules."""

    rules: tuple[RetentionRule, ...]

    def rule_for(self, *, holder_kind: str, record_kind: str, purpose: str) -> RetentionRule:
        """Return the rule for an item: the purpose's own rule, else the any-purpose rule.

        Only rules for ``holder_kind`` are considered. Raise :class:`PolicyConfigError` when
        none applies, since keeping or destroying by guesswork is worse than stopping.
        """
        fallback: RetentionRule | None = None
        for rule in self.rules:
            if rule.holder_kind != holder_kind or rule.record_kind != record_kind:
                continue
            if rule.purpose == purpose:
                return rule
            if rule.purpose is None:
                fallback = rule
        if fallback is None:
            raise PolicyConfigError(
                "rules",
                f"has no rule for a {record_kind} held by a {holder_kind} (purpose {purpose})",
                hint="add a [[rules]] entry with this holder_kind and record_kind",
            )
        return fallback


@dataclass(frozen=True)
class RetentionFacts:
    """The dates a rule may run from; only the rule's anchor is needed."""

    date_of_birth: date | None = None
    created: date | None = None
    adoption_order: date | None = None


@dataclass(frozen=True)
class Hold:
    """An inquiry or legal hold: no matching item may be destroyed while it is in force.

    ``record_kinds`` and ``item_ids`` narrow it; None means every kind or every item.
    ``reason`` is shown to the DPO and must not identify a child.
    """

    hold_id: str
    reason: str
    placed_on: date
    lifted_on: date | None = None
    record_kinds: frozenset[str] | None = None
    item_ids: frozenset[str] | None = None

    def in_force(self, on: date) -> bool:
        """Return True when the hold has been placed and not yet lifted on ``on``."""
        return self.placed_on <= on and (self.lifted_on is None or on < self.lifted_on)

    def applies_to(self, item: RetentionItem, on: date) -> bool:
        """Return True when the hold is in force on ``on`` and covers ``item``."""
        return (
            self.in_force(on)
            and (self.record_kinds is None or item.rule.record_kind in self.record_kinds)
            and (self.item_ids is None or item.item_id in self.item_ids)
        )


@dataclass(frozen=True)
class RetentionItem:
    """A held record under a rule; ``destruction_approved_on`` records a review's approval."""

    item_id: str
    rule: RetentionRule
    holder_kind: str
    facts: RetentionFacts
    destruction_approved_on: date | None = None


@dataclass(frozen=True)
class DestructionDecision(Decision):
    """Whether an item may be destroyed now; ``holds`` names every hold that blocks it."""

    item_id: str = ""
    review_date: date | None = None
    holds: tuple[str, ...] = field(default_factory=tuple)


def add_years(day: date, years: int) -> date:
    """Return the same day ``years`` later; 29 February becomes 1 March in a common year.

    A person born on 29 February attains an age on 1 March in a common year (the anniversary
    of the day after 28 February), which is also the later, safer date for retention.
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def review_date(rule: RetentionRule, facts: RetentionFacts, holder_kind: str) -> date:
    """Return the date the item's retention period ends (its review or destruction date).

    ``holder_kind`` is the kind of organisation that holds the item; a rule for another kind
    is refused, so a school's rule can never shorten an LA's record.
    """
    if rule.holder_kind != holder_kind:
        raise ValueError(
            f"rule {rule.rule} is for items held by a {rule.holder_kind}; this item is held "
            f"by a {holder_kind}"
        )
    anchor_name = {
        Anchor.DATE_OF_BIRTH: "date_of_birth",
        Anchor.CREATED: "created",
        Anchor.ADOPTION_ORDER: "adoption_order",
    }[rule.anchor]
    anchor = getattr(facts, anchor_name)
    if anchor is None:
        raise ValueError(f"facts.{anchor_name} is required by rule {rule.rule}")
    if isinstance(anchor, datetime) or not isinstance(anchor, date):
        raise TypeError(f"facts.{anchor_name} must be a date")
    return add_years(anchor, rule.years)


def _blocking(item: RetentionItem, holds: Iterable[Hold], today: date) -> list[Hold]:
    return sorted((h for h in holds if h.applies_to(item, today)), key=lambda h: h.hold_id)


def retention_state(item: RetentionItem, holds: Iterable[Hold], now: datetime) -> RetentionState:
    """Return the item's state at ``now``: held, retained, review due or destroy-approved."""
    today = local_date(now, argument="now")
    if _blocking(item, holds, today):
        return RetentionState.HELD
    due = review_date(item.rule, item.facts, item.holder_kind)
    if today < due:
        return RetentionState.RETAINED
    approved = item.destruction_approved_on
    if approved is not None and due <= approved <= today:
        return RetentionState.DESTROY_APPROVED
    return RetentionState.REVIEW_DUE


def may_destroy(item: RetentionItem, holds: Iterable[Hold], now: datetime) -> DestructionDecision:
    """Decide whether ``item`` may be destroyed at ``now``; the decision names what decided.

    In order: any hold in force blocks it (naming the holds); before the review date the rule
    keeps it; a ``review`` rule also needs a destruction approval made on or after the review
    date (no silent deletion); otherwise destruction is allowed.
    """
    today = local_date(now, argument="now")
    due = review_date(item.rule, item.facts, item.holder_kind)
    rule = item.rule.rule

    def decision(
        outcome: Outcome, rule_id: str, why: str, holds: tuple[str, ...] = ()
    ) -> DestructionDecision:
        return DestructionDecision(
            outcome=outcome,
            rule=rule_id,
            explanation=f"{why} (rule {rule_id})",
            item_id=item.item_id,
            review_date=due,
            holds=holds,
        )

    blocking = _blocking(item, holds, today)
    if blocking:
        names = tuple(h.hold_id for h in blocking)
        listed = ", ".join(
            f"'{h.hold_id}' ({h.reason}, placed {h.placed_on.isoformat()})" for h in blocking
        )
        noun = "hold" if len(blocking) == 1 else "holds"
        return decision(
            Outcome.REFUSED,
            f"holds.{names[0]}",
            f"inquiry {noun} {listed} blocks destruction",
            names,
        )
    if today < due:
        return decision(
            Outcome.REFUSED,
            rule,
            f"retention rule '{item.rule.rule_id}' keeps this item until {due.isoformat()}",
        )
    approved = item.destruction_approved_on
    if item.rule.action is RetentionAction.REVIEW:
        if approved is None or approved > today:
            return decision(
                Outcome.REFUSED,
                f"{rule}.review",
                f"retention rule '{item.rule.rule_id}' requires a review approving destruction "
                f"(review due since {due.isoformat()}); nothing is deleted silently",
            )
        if approved < due:
            return decision(
                Outcome.REFUSED,
                f"{rule}.review",
                f"destruction was approved on {approved.isoformat()}, before the review date "
                f"{due.isoformat()} of retention rule '{item.rule.rule_id}'; review again",
            )
        why = (
            f"retention rule '{item.rule.rule_id}' ended on {due.isoformat()}, destruction "
            f"was approved on {approved.isoformat()} and no hold applies"
        )
    else:
        why = f"retention rule '{item.rule.rule_id}' ended on {due.isoformat()} and no hold applies"
    return decision(Outcome.ALLOWED, rule, why)


def load_retention(
    text: str,
    *,
    record_kinds: Collection[str] = RETENTION_RECORD_KINDS,
    purposes: Collection[str] | None = None,
) -> RetentionPolicy:
    """Parse and validate retention TOML ``text``; errors name the setting at fault.

    When ``purposes`` is given (the policy's purpose names), a rule's purpose must be one.
    """
    data = cfg.parse_toml(text, "the retention file")
    return retention_from_dict(data, record_kinds=record_kinds, purposes=purposes)


def retention_from_dict(
    data: Mapping[str, Any],
    *,
    record_kinds: Collection[str] = RETENTION_RECORD_KINDS,
    purposes: Collection[str] | None = None,
) -> RetentionPolicy:
    """Validate an already-parsed retention document (see :func:`load_retention`)."""
    data = cfg.table(data, "retention")
    cfg.no_unknown_keys(data, frozenset({"version", "rules"}), "")
    cfg.version(data, RETENTION_VERSION)
    rules: list[RetentionRule] = []
    ids: set[str] = set()
    keys: set[tuple[str, str, str | None]] = set()
    entries = cfg.array(cfg.required(data, "rules", ""), "rules", non_empty=True)
    for i, entry in enumerate(entries):
        rule = _rule(entry, f"rules[{i}]", frozenset(record_kinds), purposes)
        if rule.rule_id in ids:
            raise PolicyConfigError(f"rules[{i}].id", f"repeats '{rule.rule_id}'")
        key = (rule.holder_kind, rule.record_kind, rule.purpose)
        if key in keys:
            raise PolicyConfigError(
                f"rules[{i}]",
                "repeats the holder_kind, record_kind and purpose of an earlier rule",
            )
        ids.add(rule.rule_id)
        keys.add(key)
        rules.append(rule)
    return RetentionPolicy(tuple(rules))


def _rule(
    entry: Any, path: str, record_kinds: frozenset[str], purposes: Collection[str] | None
) -> RetentionRule:
    raw = cfg.table(entry, path)
    cfg.no_unknown_keys(raw, _RULE_KEYS, path)
    purpose: str | None = None
    if "purpose" in raw:
        purpose = cfg.name(raw["purpose"], f"{path}.purpose")
        if purposes is not None and purpose not in purposes:
            raise PolicyConfigError(f"{path}.purpose", "is not a purpose of the policy")
    return RetentionRule(
        rule_id=cfg.name(cfg.required(raw, "id", path), f"{path}.id"),
        holder_kind=cfg.choice(
            cfg.required(raw, "holder_kind", path),
            f"{path}.holder_kind",
            RECIPIENT_KINDS,
            "an organisation kind",
        ),
        record_kind=cfg.choice(
            cfg.required(raw, "record_kind", path),
            f"{path}.record_kind",
            record_kinds,
            "a record kind",
        ),
        purpose=purpose,
        anchor=Anchor(
            cfg.choice(
                cfg.required(raw, "anchor", path), f"{path}.anchor", frozenset(Anchor), "an anchor"
            )
        ),
        years=cfg.integer(
            cfg.required(raw, "years", path), f"{path}.years", low=1, high=MAX_RETENTION_YEARS
        ),
        action=RetentionAction(
            cfg.choice(
                cfg.required(raw, "action", path),
                f"{path}.action",
                frozenset(RetentionAction),
                "a retention action",
            )
        ),
        source=cfg.text(cfg.required(raw, "source", path), f"{path}.source"),
    )
