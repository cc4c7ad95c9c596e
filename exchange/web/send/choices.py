"""The choices the send pages offer from the policy and the directory, in words.

Purposes, data categories and lawful bases come from the node's sharing policy
(:class:`~exchange.policy.RecordsSetup`), shown as the register will record them;
recipients from the signed directory, found by name or by their id (a school's URN, an
LA code, an ODS code), never the sender's own organisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.policy import RECIPIENT_KINDS, LawfulBasis, Policy, Purpose
from exchange.policy.decisions import NotSharingReason

#: Data categories in words, as the register records them.
CATEGORY_WORDS: Final = {
    "identity": "Who the child is: name, date of birth and identifiers",
    "contact": "Contact details",
    "education": "Education",
    "health": "Health",
    "ethnicity": "Ethnicity",
    "family": "Family and household",
    "social-care": "Social care",
    "safeguarding-concerns": "Safeguarding concerns",
    "third-party": "Information about other people",
}
#: Categories that are special category data (UK GDPR Article 9), named so on the page.
SPECIAL_WORDS: Final = {"health", "ethnicity"}
#: Organisation kinds in words.
ORG_KIND_WORDS: Final = {"school": "School", "la": "Local authority", "nhs": "NHS"}
#: The identifier schemes of organisation ids (``la:356``) as people write them ("LA 356").
ORG_ID_WORDS: Final = {"urn": "URN", "la": "LA", "ods": "ODS"}
#: Most organisations one search lists.
MAX_MATCHES: Final = 20


def purposes_for(policy: Policy, kind: str) -> list[Purpose]:
    """Return the purposes under which a record of ``kind`` may be sent."""
    return [p for p in policy.purposes.values() if kind in p.record_kinds]


def category_words(category: str) -> str:
    """Return a data category in words."""
    words = CATEGORY_WORDS.get(category, category)
    return f"{words} (special category data)" if category in SPECIAL_WORDS else words


def basis_words(basis: LawfulBasis) -> tuple[str, str]:
    """Return a lawful basis as its main words and the rest of its citations."""
    first, *rest = basis.citations
    return first, " ".join(rest)


def basis_choice(purpose: Purpose, code: str) -> LawfulBasis | None:
    """Return the purpose's lawful basis with ``code``, or None if it has none such."""
    return next((b for b in purpose.lawful_bases if b.code == code), None)


def reason_code_words() -> list[tuple[str, str]]:
    """Return the reasons for a decision not to share, as (code, words)."""
    return [(r.value, r.description[:1].upper() + r.description[1:]) for r in NotSharingReason]


@dataclass(frozen=True)
class Recipient:
    """An organisation a record may go to, as the page shows it."""

    id: OrgId
    name: str
    kind: str

    @property
    def hint(self) -> str:
        """What identifies it besides its name: its kind and id."""
        return f"{ORG_KIND_WORDS.get(self.kind, self.kind)}, {self.id}"

    @property
    def code(self) -> str:
        """Its id as people write it: "LA 356", "URN 106123", "ODS X26ABC"."""
        scheme, _, code = self.id.partition(":")
        return f"{ORG_ID_WORDS.get(scheme, scheme.upper())} {code}"

    @property
    def label(self) -> str:
        """Its name and code, as a select lists it and an autocomplete matches on it."""
        return f"{self.name} ({self.code})"


def candidates(directory: Directory, own: OrgId, kinds: Iterable[str]) -> list[Recipient]:
    """Return the organisations of ``kinds`` in the directory, by name, but not ``own``."""
    allowed = set(kinds) & RECIPIENT_KINDS
    found = [
        Recipient(org.id, org.name, org.kind)
        for org in directory.organisations.values()
        if org.id != own and org.kind in allowed
    ]
    return sorted(found, key=lambda r: r.name.casefold())


def search(found: list[Recipient], query: str) -> list[Recipient]:
    """Return the organisations whose name or id contains the query (up to a limit)."""
    words = query.casefold().split()
    if not words:
        return []
    matches = [
        r for r in found if all(w in r.name.casefold() or w in r.id.casefold() for w in words)
    ]
    return matches[:MAX_MATCHES]


def recipient_kinds(policy: Policy, kind: str) -> set[str]:
    """Return the organisation kinds a record of ``kind`` may go to under some purpose."""
    return {k for p in purposes_for(policy, kind) for k in p.recipient_kinds}
