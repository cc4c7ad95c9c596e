"""Named API tokens for machines: what one is, how long it lives, and why it is refused.

A machine (a case-management system, a nightly export) calls the staff API with a token of
its own rather than a person's: named, with one role in one organisation, an expiry (90 days
unless set, at most a year) and a revocation. The node keeps only the token's hash (the same
hash as a user's token, :func:`token_hash`); the token itself is
shown once, when it is made. A token acts as a :class:`~exchange.model.User` (its
:func:`principal`), so the staff API's role checks apply to it unchanged. Pure: values in,
values out.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from exchange.keys.ids import OrgId
from exchange.model import Role, User
from exchange.policy import LONDON
from exchange.words import date_words

#: How long a token lives unless its maker says otherwise.
DEFAULT_DAYS: Final = 90
#: The longest a token may live: a machine's token is renewed at least once a year.
MAX_DAYS: Final = 365
#: Last use is written at most this often per token, to spare the store a write per request.
USE_NOTE_INTERVAL: Final = 60.0
#: A token's name: what the list shows and ``revoke`` takes.
NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
#: The prefix of a token's principal id, so logs and items tell a machine from a person.
PRINCIPAL_PREFIX: Final = "token:"


@dataclass(frozen=True, slots=True)
class NewApiToken:
    """A token to store: everything but its number, with the hash of the secret."""

    name: str
    org: OrgId
    role: Role
    token_hash: bytes
    created_at: float
    expires_at: float
    created_by: str

    def __repr__(self) -> str:
        return f"NewApiToken(name={self.name!r}, org={self.org!r}, role={self.role!r})"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token as listed and checked (never its secret nor its hash)."""

    id: int
    name: str
    org: OrgId
    role: Role
    created_at: float
    expires_at: float
    last_used_at: float | None
    revoked_at: float | None
    created_by: str

    def principal(self) -> User:
        """Return the user this token acts as: its role in its organisation."""
        return User(f"{PRINCIPAL_PREFIX}{self.name}", self.org, self.name, self.role)

    def refusal(self, now: float) -> str | None:
        """Return why the token is no longer accepted at ``now``, or None if it is."""
        if self.revoked_at is not None:
            return "this API token was revoked"
        if now >= self.expires_at:
            return f"this API token expired on {london_day(self.expires_at)}"
        return None

    def use_worth_noting(self, now: float) -> bool:
        """Whether a use at ``now`` should be written (at most once a minute)."""
        return self.last_used_at is None or now - self.last_used_at >= USE_NOTE_INTERVAL


def token_hash(token: str) -> bytes:
    """Hash an API token for storage and lookup (tokens are 256-bit random, so SHA-256 fits).

    A user's token and a machine's are hashed alike, so one lookup key finds either.
    """
    return hashlib.sha256(b"exchange/v1/api-token\x00" + token.encode("utf-8")).digest()


def check_name(name: str) -> str:
    """Return ``name`` if it can name a token, or refuse it in one sentence."""
    if NAME_RE.fullmatch(name) is None:
        raise ValueError(
            "a token's name is 1-64 letters, digits, '.', '_' or '-', starting with a letter"
        )
    return name


def check_days(days: int) -> int:
    """Return ``days`` if a token may live that long, or refuse it in one sentence."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a token lives between 1 and {MAX_DAYS} days")
    return days


def london_day(moment: float) -> str:
    """Return the Europe/London day of ``moment`` as GOV.UK writes it: ``1 March 2027``."""
    return date_words(datetime.fromtimestamp(moment, UTC).astimezone(LONDON).date())
