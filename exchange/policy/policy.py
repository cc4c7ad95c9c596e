"""Purposes and the sharing policy: what each purpose allows, and the decision on a submission.

Every submission names a purpose. The policy file (``config/policy.toml``)
says, per purpose, which record kinds may be sent, to which kinds of organisation (the
directory's ``school``, ``la`` and ``nhs``), which data categories they may carry and which
lawful bases the disclosure is recorded under. :func:`load_policy` validates the file at
start-up and names the setting at fault; :func:`decide` applies the policy to one submission
and returns a :class:`~exchange.policy.decisions.SharingDecision` naming the rule that decided,
so a refusal can be explained to the DSL and both outcomes can be registered. The checks run
in a fixed order (purpose, record kind, recipients, categories, lawful basis) and the first
that fails decides, so the same submission always gets the same explanation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from exchange.keys.ids import OrgId
from exchange.policy import _config as cfg
from exchange.policy.deadlines import DeadlineRule, parse_deadline_rules
from exchange.policy.decisions import Outcome, SharingDecision
from exchange.policy.errors import PolicyConfigError
from exchange.policy.lawful import LawfulBasis, parse_lawful_basis

POLICY_VERSION: Final = 1


class DataCategory(StrEnum):
    """Categories of data a submission declares it carries."""

    IDENTITY = "identity"
    CONTACT = "contact"
    EDUCATION = "education"
    HEALTH = "health"
    ETHNICITY = "ethnicity"
    FAMILY = "family"
    SOCIAL_CARE = "social-care"
    SAFEGUARDING_CONCERNS = "safeguarding-concerns"
    THIRD_PARTY = "third-party"


#: Categories that are special category data under UK GDPR Article 9(1): data concerning
#: health, and data revealing racial or ethnic origin (referral forms ask for ethnicity).
SPECIAL_CATEGORIES: Final = frozenset({DataCategory.HEALTH, DataCategory.ETHNICITY})

#: Organisation kinds a record may be sent to. The directory also knows ``relay`` and
#: ``authority``, which carry or sign but never receive records (``OrgKind`` in
#: exchange/keys/directory.py).
RECIPIENT_KINDS: Final = frozenset({"school", "la", "nhs"})

#: Record kinds a purpose may name unless the caller passes the records package's own list.
#: The first five are the statutory records; the last two follow the same pattern.
DEFAULT_RECORD_KINDS: Final = frozenset(
    {
        "referral",
        "cp-file-transfer",
        "lac-record",
        "outcome",
        "information-request",
        "advance-information",
        "conference-report",
    }
)

_PURPOSE_KEYS: Final = frozenset(
    {"title", "record_kinds", "recipient_kinds", "categories", "lawful_bases", "sources"}
)
_TOP_KEYS: Final = frozenset({"version", "purposes", "deadlines", "notice"})


@dataclass(frozen=True)
class Purpose:
    """One purpose of sharing and what it allows; ``lawful_bases[0]`` is the default."""

    name: str
    title: str
    record_kinds: frozenset[str]
    recipient_kinds: frozenset[str]
    categories: frozenset[DataCategory]
    lawful_bases: tuple[LawfulBasis, ...]
    sources: tuple[str, ...] = ()

    def default_basis(self, categories: Collection[str]) -> LawfulBasis | None:
        """Return the first listed basis that covers ``categories`` (Art 9 if any is special)."""
        special = any(c in SPECIAL_CATEGORIES for c in categories)
        for basis in self.lawful_bases:
            if basis.covers_special_category or not special:
                return basis
        return None


@dataclass(frozen=True)
class Policy:
    """The validated policy: purposes by name, deadline rules by record kind, notice sources."""

    purposes: Mapping[str, Purpose]
    deadlines: Mapping[str, DeadlineRule] = field(default_factory=lambda: MappingProxyType({}))
    notice_sources: tuple[str, ...] = ()


def load_policy(text: str, *, record_kinds: Collection[str] = DEFAULT_RECORD_KINDS) -> Policy:
    """Parse and validate policy TOML ``text``; raise :class:`PolicyConfigError` naming the setting.

    ``record_kinds`` is the set of record kinds a purpose may name (the records package's
    registry once wired; the default is the statutory kinds and the two that follow their pattern).
    """
    return policy_from_dict(cfg.parse_toml(text, "the policy file"), record_kinds=record_kinds)


def policy_from_dict(
    data: Mapping[str, Any], *, record_kinds: Collection[str] = DEFAULT_RECORD_KINDS
) -> Policy:
    """Validate an already-parsed policy document (see :func:`load_policy`)."""
    data = cfg.table(data, "policy")
    cfg.no_unknown_keys(data, _TOP_KEYS, "")
    cfg.version(data, POLICY_VERSION)
    raw_purposes = cfg.table(cfg.required(data, "purposes", ""), "purposes")
    if not raw_purposes:
        raise PolicyConfigError("purposes", "must define at least one purpose")
    kinds = frozenset(record_kinds)
    purposes = {
        cfg.name(key, f"purposes.{key}"): _purpose(key, value, kinds)
        for key, value in raw_purposes.items()
    }
    deadlines = parse_deadline_rules(data.get("deadlines", {}), "deadlines", kinds)
    notice: tuple[str, ...] = ()
    if "notice" in data:
        raw_notice = cfg.table(data["notice"], "notice")
        cfg.no_unknown_keys(raw_notice, frozenset({"sources"}), "notice")
        notice = _texts(raw_notice.get("sources", []), "notice.sources")
    return Policy(
        purposes=MappingProxyType(purposes),
        deadlines=MappingProxyType(dict(deadlines)),
        notice_sources=notice,
    )


def _texts(value: Any, setting: str) -> tuple[str, ...]:
    return tuple(cfg.text(v, f"{setting}[{i}]") for i, v in enumerate(cfg.array(value, setting)))


def _purpose(key: str, value: Any, record_kinds: frozenset[str]) -> Purpose:
    path = f"purposes.{key}"
    raw = cfg.table(value, path)
    cfg.no_unknown_keys(raw, _PURPOSE_KEYS, path)
    title = cfg.text(cfg.required(raw, "title", path), f"{path}.title", max_len=200)

    def members(setting: str, choices: frozenset[str], what: str) -> frozenset[str]:
        where = f"{path}.{setting}"
        items = cfg.array(cfg.required(raw, setting, path), where, non_empty=True)
        seen: set[str] = set()
        for i, item in enumerate(items):
            cfg.choice(item, f"{where}[{i}]", choices, what)
            if item in seen:
                raise PolicyConfigError(f"{where}[{i}]", f"repeats '{item}'")
            seen.add(item)
        return frozenset(seen)

    kinds = members("record_kinds", record_kinds, "a record kind")
    recipients = members("recipient_kinds", RECIPIENT_KINDS, "an organisation kind")
    categories = frozenset(
        DataCategory(c) for c in members("categories", frozenset(DataCategory), "a data category")
    )
    where = f"{path}.lawful_bases"
    bases: list[LawfulBasis] = []
    for i, item in enumerate(
        cfg.array(cfg.required(raw, "lawful_bases", path), where, non_empty=True)
    ):
        setting = f"{where}[{i}]"
        try:
            basis = parse_lawful_basis(cfg.text(item, setting), field=setting)
        except ValueError as exc:
            raise PolicyConfigError("", str(exc)) from None
        if basis in bases:
            raise PolicyConfigError(setting, f"repeats '{basis.code}'")
        bases.append(basis)
    special = sorted(c.value for c in categories & SPECIAL_CATEGORIES)
    if special and not any(b.covers_special_category for b in bases):
        raise PolicyConfigError(
            where,
            f"lists no Article 9 condition, but {path}.categories includes special category "
            f"data ({', '.join(special)})",
        )
    return Purpose(
        name=key,
        title=title,
        record_kinds=kinds,
        recipient_kinds=recipients,
        categories=categories,
        lawful_bases=tuple(bases),
        sources=_texts(raw.get("sources", []), f"{path}.sources"),
    )


#: A refusal found by one of the checks: the rule id and the reason in words.
_Refusal = tuple[str, str]


def _check_scope(
    purpose: str,
    spec: Purpose | None,
    record_kind: str,
    recipients: tuple[tuple[OrgId, str], ...],
) -> _Refusal | None:
    if spec is None:
        return "purposes", f"purpose '{purpose}' is not defined in the policy"
    base = f"purposes.{purpose}"
    if record_kind not in spec.record_kinds:
        return (
            f"{base}.record_kinds",
            f"purpose '{purpose}' does not allow sending a record of kind '{record_kind}'",
        )
    for org, kind in recipients:
        if kind not in spec.recipient_kinds:
            return (
                f"{base}.recipient_kinds",
                (
                    f"purpose '{purpose}' does not allow sending to an organisation of kind "
                    f"'{kind}' ({org})"
                ),
            )
    return None


def _check_categories(purpose: str, spec: Purpose, declared: frozenset[str]) -> _Refusal | None:
    if not declared:
        return "categories-declared", "the submission declares no data categories"
    known = frozenset(DataCategory)
    for category in sorted(declared):
        if category not in known:
            return "categories-known", f"'{category}' is not a known data category"
        if category not in spec.categories:
            return (
                f"purposes.{purpose}.categories",
                f"purpose '{purpose}' does not allow data of category '{category}'",
            )
    return None


def _check_basis(
    purpose: str, spec: Purpose, declared: frozenset[str], given: LawfulBasis | None
) -> LawfulBasis | _Refusal:
    setting = f"purposes.{purpose}.lawful_bases"
    basis = spec.default_basis(declared) if given is None else given
    if basis is None:  # load_policy makes this unreachable for a validated policy
        return setting, f"purpose '{purpose}' lists no basis covering special category data"
    if basis not in spec.lawful_bases:
        return setting, f"purpose '{purpose}' does not list the lawful basis '{basis.code}'"
    special = sorted(c for c in declared if c in SPECIAL_CATEGORIES)
    if special and not basis.covers_special_category:
        return (
            "special-category-condition",
            (
                f"the submission includes special category data ({', '.join(special)}) but "
                f"the lawful basis '{basis.code}' has no Article 9 condition"
            ),
        )
    return basis


def decide(
    policy: Policy,
    *,
    purpose: str,
    record_kind: str,
    recipient_kinds: Mapping[OrgId, str],
    categories: Collection[str],
    lawful_basis: LawfulBasis | None = None,
) -> SharingDecision:
    """Decide whether a submission is within policy; the decision names the rule that decided.

    ``recipient_kinds`` maps each recipient to its organisation kind as the directory lists
    it. ``categories`` are the data categories the submission declares. When ``lawful_basis``
    is None the purpose's default is recorded (its first listed basis that covers special
    category data when the submission has any); a basis the purpose does not list is refused.
    Checks run in order (purpose, record kind, recipients, categories, lawful basis, special
    category condition) and the first that fails decides.
    """
    if not isinstance(policy, Policy):
        raise TypeError("policy must be a Policy (see load_policy)")
    if not recipient_kinds:
        raise ValueError("recipient_kinds must name at least one recipient")
    if isinstance(categories, str):
        raise TypeError("categories must be a collection of category names, not a string")
    recipients = tuple(sorted(recipient_kinds.items()))
    declared = frozenset(categories)
    spec = policy.purposes.get(purpose)
    found: LawfulBasis | _Refusal | None = _check_scope(purpose, spec, record_kind, recipients)
    if found is None and spec is not None:
        found = _check_categories(purpose, spec, declared)
        if found is None:
            found = _check_basis(purpose, spec, declared, lawful_basis)
    if not isinstance(found, LawfulBasis):
        rule, why = found if found is not None else ("purposes", "no purpose")
        return SharingDecision(
            outcome=Outcome.REFUSED,
            rule=rule,
            explanation=f"{why} (rule {rule})",
            purpose=purpose,
            record_kind=record_kind,
            recipients=recipients,
            categories=declared,
            lawful_basis=lawful_basis,
        )
    rule = f"purposes.{purpose}"
    how = "as given" if lawful_basis is not None else "defaulted from the purpose"
    return SharingDecision(
        outcome=Outcome.ALLOWED,
        rule=rule,
        explanation=(
            f"purpose '{purpose}' allows this {record_kind} to "
            f"{', '.join(f'{org} ({kind})' for org, kind in recipients)}; lawful basis "
            f"{found.code} ({how}) (rule {rule})"
        ),
        purpose=purpose,
        record_kind=record_kind,
        recipients=recipients,
        categories=declared,
        lawful_basis=found,
    )
