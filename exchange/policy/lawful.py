"""Lawful bases for sharing: UK GDPR Article 6 and 9 and the DPA 2018 Schedule 1 conditions.

A disclosure of a child's safeguarding record records the basis it was made on (docs/policy.md,
"Lawful bases"): an Article 6 basis always, and for special category data (health, ethnicity)
an Article 9 condition too, with the Data Protection Act 2018 Schedule 1 condition that
Article 9(2)(g) and (h) need under DPA 2018 s10. Each is a closed enumeration with a stable
code (stored in the register and written in config) and a human-readable citation (shown to
the DSL and DPO and used in the privacy notice). :class:`LawfulBasis` combines them and
refuses combinations the Act does not allow: 9(2)(g) needs a Part 2 condition, 9(2)(h) the
Part 1 paragraph 2 condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Article6(StrEnum):
    """UK GDPR Article 6(1) bases this service records."""

    LEGAL_OBLIGATION = "art6.1.c"
    PUBLIC_TASK = "art6.1.e"

    @property
    def citation(self) -> str:
        """The basis in words, for notices and the DPO's register."""
        return _CITATIONS[self.value]


class Article9(StrEnum):
    """UK GDPR Article 9(2) conditions for special category data this service records."""

    SUBSTANTIAL_PUBLIC_INTEREST = "art9.2.g"
    HEALTH_OR_SOCIAL_CARE = "art9.2.h"

    @property
    def citation(self) -> str:
        """The condition in words."""
        return _CITATIONS[self.value]


class Schedule1Condition(StrEnum):
    """DPA 2018 Schedule 1 conditions; the paragraph numbers are unique across its Parts."""

    HEALTH_OR_SOCIAL_CARE_PURPOSES = "dpa2018.sch1.para2"
    SAFEGUARDING_CHILDREN_AND_INDIVIDUALS_AT_RISK = "dpa2018.sch1.para18"

    @property
    def citation(self) -> str:
        """The condition in words."""
        return _CITATIONS[self.value]

    @property
    def part(self) -> int:
        """The Part of Schedule 1 the paragraph is in (1: health and social care, 2: SPI)."""
        return 1 if self is Schedule1Condition.HEALTH_OR_SOCIAL_CARE_PURPOSES else 2


_CITATIONS: Final[dict[str, str]] = {
    "art6.1.c": (
        "UK GDPR Article 6(1)(c): processing is necessary for compliance with a legal "
        "obligation to which the controller is subject"
    ),
    "art6.1.e": (
        "UK GDPR Article 6(1)(e): processing is necessary for the performance of a task "
        "carried out in the public interest or in the exercise of official authority vested "
        "in the controller"
    ),
    "art9.2.g": (
        "UK GDPR Article 9(2)(g): processing is necessary for reasons of substantial public "
        "interest, on the basis of domestic law"
    ),
    "art9.2.h": (
        "UK GDPR Article 9(2)(h): processing is necessary for the provision of health or "
        "social care or treatment or the management of health or social care systems and "
        "services"
    ),
    "dpa2018.sch1.para2": (
        "Data Protection Act 2018, Schedule 1, Part 1, paragraph 2: health or social care purposes"
    ),
    "dpa2018.sch1.para18": (
        "Data Protection Act 2018, Schedule 1, Part 2, paragraph 18: safeguarding of children "
        "and of individuals at risk"
    ),
}

#: Which Schedule 1 conditions each Article 9 condition may rely on (DPA 2018 s10(2), (3)).
_ALLOWED_PAIRS: Final[dict[Article9, frozenset[Schedule1Condition]]] = {
    Article9.SUBSTANTIAL_PUBLIC_INTEREST: frozenset(
        {Schedule1Condition.SAFEGUARDING_CHILDREN_AND_INDIVIDUALS_AT_RISK}
    ),
    Article9.HEALTH_OR_SOCIAL_CARE: frozenset({Schedule1Condition.HEALTH_OR_SOCIAL_CARE_PURPOSES}),
}


@dataclass(frozen=True)
class LawfulBasis:
    """An Article 6 basis and, for special category data, an Article 9 + Schedule 1 pair.

    The text form (:attr:`code`, :func:`parse_lawful_basis`) joins the codes with ``+``, for
    example ``art6.1.e+art9.2.g+dpa2018.sch1.para18``; it is what config files and the
    register hold.
    """

    article6: Article6
    article9: Article9 | None = None
    schedule1: Schedule1Condition | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.article6, Article6):
            raise TypeError("article6 must be an Article6 value")
        if (self.article9 is None) != (self.schedule1 is None):
            raise ValueError(
                "article9 and schedule1 go together: an Article 9(2)(g) or (h) condition needs "
                "its DPA 2018 Schedule 1 condition (DPA 2018 s10)"
            )
        if self.article9 is not None and self.schedule1 is not None:
            if not isinstance(self.article9, Article9):
                raise TypeError("article9 must be an Article9 value")
            if self.schedule1 not in _ALLOWED_PAIRS[self.article9]:
                raise ValueError(
                    f"schedule1 {self.schedule1.value} cannot support {self.article9.value}: "
                    "9(2)(g) needs a Schedule 1 Part 2 condition, 9(2)(h) the Part 1 "
                    "paragraph 2 condition (DPA 2018 s10)"
                )

    @property
    def covers_special_category(self) -> bool:
        """True when the basis includes an Article 9 condition for special category data."""
        return self.article9 is not None

    @property
    def code(self) -> str:
        """The stable text form, stored in the register and written in config."""
        parts = [self.article6.value]
        if self.article9 is not None and self.schedule1 is not None:
            parts += [self.article9.value, self.schedule1.value]
        return "+".join(parts)

    @property
    def citations(self) -> tuple[str, ...]:
        """The basis in words, one sentence per element, for the DSL, the DPO and notices."""
        parts = [self.article6.citation]
        if self.article9 is not None and self.schedule1 is not None:
            parts += [self.article9.citation, self.schedule1.citation]
        return tuple(parts)

    def __str__(self) -> str:
        return self.code


def parse_lawful_basis(value: str, *, field: str = "lawful basis") -> LawfulBasis:
    """Parse the text form of a lawful basis, or raise ``ValueError`` naming ``field``."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string")
    parts = value.split("+")
    try:
        article6 = Article6(parts[0])
    except ValueError:
        raise ValueError(
            f"{field} must start with an Article 6 basis ({', '.join(a.value for a in Article6)})"
        ) from None
    if len(parts) == 1:
        return LawfulBasis(article6)
    if len(parts) != 3:
        raise ValueError(
            f"{field} must be an Article 6 basis alone, or followed by an Article 9 condition "
            "and its DPA 2018 Schedule 1 condition, joined by '+'"
        )
    try:
        article9 = Article9(parts[1])
    except ValueError:
        raise ValueError(
            f"{field} has an unknown Article 9 condition "
            f"(expected {', '.join(a.value for a in Article9)})"
        ) from None
    try:
        schedule1 = Schedule1Condition(parts[2])
    except ValueError:
        raise ValueError(
            f"{field} has an unknown DPA 2018 Schedule 1 condition "
            f"(expected {', '.join(c.value for c in Schedule1Condition)})"
        ) from None
    try:
        return LawfulBasis(article6, article9, schedule1)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None
