"""Decisions as values: allowed, refused, or a recorded decision not to share.

Information sharing advice (2024) asks practitioners to record the decision and the reasons
"whether or not information is shared", so every outcome here is a value the
sharing register can store: which rule decided, a plain explanation that names the rule, and
for sharing the purpose, recipients, categories and lawful basis. A refusal is not an
exception; a caller that must stop on refusal calls :meth:`Decision.require`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Self

from exchange.keys.ids import OrgId
from exchange.policy.errors import RefusedError
from exchange.policy.lawful import LawfulBasis


class Outcome(StrEnum):
    """What a decision says."""

    ALLOWED = "allowed"
    REFUSED = "refused"
    NOT_SHARED = "not-shared"


@dataclass(frozen=True)
class Decision:
    """A decision and the rule that made it; ``explanation`` always names ``rule``."""

    outcome: Outcome
    rule: str
    explanation: str

    @property
    def allowed(self) -> bool:
        """True only for :attr:`Outcome.ALLOWED`."""
        return self.outcome is Outcome.ALLOWED

    def require(self) -> Self:
        """Return the decision if it allows the action; otherwise raise :class:`RefusedError`."""
        if not self.allowed:
            raise RefusedError(self)
        return self


class NotSharingReason(StrEnum):
    """Reason codes for a recorded decision not to share (free text stays out of policy)."""

    NOT_NECESSARY = "not-necessary"
    NOT_PROPORTIONATE = "not-proportionate"
    RECIPIENT_NOT_ENTITLED = "recipient-not-entitled"
    ALREADY_HELD_BY_RECIPIENT = "already-held-by-recipient"
    PREJUDICE_TO_INVESTIGATION = "prejudice-to-investigation"
    RISK_TO_THIRD_PARTY = "risk-to-third-party"
    NO_LAWFUL_BASIS = "no-lawful-basis"
    INFORMATION_NOT_HELD = "information-not-held"

    @property
    def description(self) -> str:
        """The reason in words, for the register and the DPO."""
        return _REASONS[self.value]


_REASONS: Final[dict[str, str]] = {
    "not-necessary": "the information is not necessary for the purpose",
    "not-proportionate": "sharing would not be proportionate to the need",
    "recipient-not-entitled": "the recipient has no role that needs the information",
    "already-held-by-recipient": "the recipient already holds the information",
    "prejudice-to-investigation": (
        "sharing would prejudice a criminal or child protection (s47) investigation"
    ),
    "risk-to-third-party": "sharing would identify or put at risk a third party",
    "no-lawful-basis": "no lawful basis for the disclosure was identified",
    "information-not-held": "the organisation does not hold the information asked for",
}


@dataclass(frozen=True)
class SharingDecision(Decision):
    """A decision about one submission (or a decision not to share) for the register.

    ``lawful_basis`` is the basis to record when the outcome is allowed (given by the caller
    or defaulted from the purpose); ``reason_code`` is set only for :attr:`Outcome.NOT_SHARED`.
    """

    purpose: str
    record_kind: str | None = None
    recipients: tuple[tuple[OrgId, str], ...] = ()
    categories: frozenset[str] = field(default_factory=frozenset)
    lawful_basis: LawfulBasis | None = None
    reason_code: NotSharingReason | None = None

    @property
    def recipient_kinds(self) -> Mapping[OrgId, str]:
        """The recipients and their organisation kinds, as the caller gave them."""
        return dict(self.recipients)


def record_decision_not_to_share(
    purpose: str,
    reason_code: NotSharingReason | str,
    *,
    record_kind: str | None = None,
    recipient_kinds: Mapping[OrgId, str] | None = None,
) -> SharingDecision:
    """Return the value the register stores for a decision *not* to share, with its reason.

    The reason is a code, not free text, so the register can be exported and counted without
    carrying anything said about the child; a practitioner's own note belongs in the record.
    """
    if not isinstance(purpose, str) or not purpose:
        raise ValueError("purpose must be a non-empty string")
    try:
        reason = NotSharingReason(reason_code)
    except ValueError:
        raise ValueError(
            f"reason_code must be one of {', '.join(r.value for r in NotSharingReason)}"
        ) from None
    rule = f"not-to-share.{reason.value}"
    return SharingDecision(
        outcome=Outcome.NOT_SHARED,
        rule=rule,
        explanation=(
            f"decided not to share for purpose '{purpose}': {reason.description} (rule {rule})"
        ),
        purpose=purpose,
        record_kind=record_kind,
        recipients=tuple(sorted((recipient_kinds or {}).items())),
        reason_code=reason,
    )
