"""A staff account as the store holds it, and the email address rules.

An account gives an existing member of staff (a ``users`` row, which also holds their API
token) a way to sign in to the web pages: an email address, unique on the node whatever its
case, a password hash, and a second factor (an authenticator app's codes, or passkeys). Its
secrets (the hash, the TOTP secret) are never shown by ``repr``, and neither is the email
address: logs and errors name accounts by their number only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

from exchange.auth.totp import TotpSecret
from exchange.model import User

#: RFC 5321 §4.5.3.1.3 limits a path to 256 octets, so an address to 254 characters.
MAX_EMAIL_LEN: Final = 254
#: A deliberately loose shape: one ``@``, something either side, a dot in the domain, no
#: spaces. Whether the mailbox exists is the administrator's business, not a regex's.
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_EMAIL_LABEL: Final = b"exchange/v1/sign-in-email\x00"


def email_key(email: str) -> str:
    """Return the form of an address that is unique per node: trimmed and case-folded."""
    return email.strip().casefold()


def check_email(email: str) -> str:
    """Return the trimmed address, or refuse one that is not shaped like an email address."""
    trimmed = email.strip()
    if len(trimmed) > MAX_EMAIL_LEN or _EMAIL.fullmatch(trimmed) is None:
        raise ValueError("email must be an email address, like name@example.org")
    return trimmed


def email_hash(email: str) -> bytes:
    """Return what the store counts failed sign-ins under for an address, account or not."""
    return hashlib.sha256(_EMAIL_LABEL + email_key(email).encode("utf-8")).digest()


@dataclass(frozen=True)
class NewAccount:
    """An account to create for an existing user: checked address and hashed password."""

    user_id: str
    email: str = field(repr=False)
    password_hash: str = field(repr=False)

    @property
    def email_key(self) -> str:
        """The address as it is unique on the node."""
        return email_key(self.email)


@dataclass(frozen=True)
class Account:
    """A stored account with its user and sign-in state."""

    id: int
    user: User
    email: str = field(repr=False)
    password_hash: str = field(repr=False)
    #: The confirmed TOTP secret, or None before enrolment is confirmed.
    totp_secret: TotpSecret | None
    #: A secret shown for enrolment but not confirmed with a code yet.
    totp_pending: TotpSecret | None
    #: The time step of the last code accepted: no code of it or before is accepted again.
    totp_last_step: int | None
    failed_count: int
    slowed_until: float | None
    disabled: bool
    #: Recovery codes not used yet.
    recovery_left: int = 0
    #: The hash of a single-use invitation code not accepted yet (the account then has no
    #: password), and until when the code works.
    invitation_hash: bytes | None = field(default=None, repr=False)
    invitation_expires: float | None = None
    #: Whether a second factor is required at sign-in whatever the role (invited accounts,
    #: and accounts whose second factor an administrator reset).
    factor_required: bool = False
    #: When the account last reached a signed-in session, if it has.
    last_sign_in: float | None = None
    #: How many passkeys the account has registered (each proves both factors).
    passkeys: int = 0

    @property
    def has_second_factor(self) -> bool:
        """Whether a second factor is set up: a confirmed authenticator app or a passkey."""
        return self.totp_secret is not None or self.passkeys > 0

    @property
    def has_code(self) -> bool:
        """Whether a confirmed authenticator app gives codes (and recovery codes stand by)."""
        return self.totp_secret is not None

    @property
    def invited(self) -> bool:
        """Whether the account waits for its invitation to be accepted (it has no password)."""
        return self.invitation_hash is not None

    @property
    def needs_second_factor(self) -> bool:
        """Whether sign-in must reach a second factor whatever the role requires."""
        return self.has_second_factor or self.factor_required
