"""Account events: what happened to a staff account, as a ledger statement that names no one.

An ``account`` event (docs/ledger.md §3.3) records a sign-in, a failed sign-in, a step-up,
a change an administrator made to an account, or an API token made or revoked. Its 32-byte
digest field holds a **commitment** to the account's user id, ``SHA-256(label ‖ salt ‖
user id)`` with a random 32-byte salt of its own, and, when someone else acted on the
account, the receipt-digest field holds a commitment to their user id with the same salt.
Published proofs therefore reveal no user id (not even one that is easy to guess, such as
an email address used as an id) and do not show that two events concern the same account;
the node keeps each event's salt beside it, so it can open one event's commitment to an
auditor without opening any other. The reason code says what happened and how:
``<kind>[:<method>][:<detail>]``, for example ``sign-in:password.totp`` or
``role-changed:dpo``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

from exchange.keys.ids import OrgId
from exchange.ledger.events import ACCOUNT_KINDS, EventType, LedgerEvent

#: Domain labels of the commitments: the account an event is about, and who acted on it.
L_ACCOUNT_SUBJECT: Final = b"exchange/v1/account-event-subject\x00"
L_ACCOUNT_ACTOR: Final = b"exchange/v1/account-event-actor\x00"

#: Length of each event's random salt.
SALT_LEN: Final = 32

#: A method or detail: a lower-case code. A method may join its parts with '+'. With the
#: longest kind they fit a reason's 64 bytes.
_METHOD_RE: Final = re.compile(r"[a-z0-9][a-z0-9+._-]{0,23}")
_DETAIL_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,15}")


def method_code(method: str) -> str:
    """Return a sign-in method as the reason writes it: ``password+totp`` -> ``password.totp``."""
    return method.replace("+", ".")


def commitment(label: bytes, salt: bytes, user_id: str) -> bytes:
    """Return ``SHA-256(label ‖ salt ‖ UTF-8 user id)``, the 32 bytes an event holds."""
    if len(salt) != SALT_LEN:
        raise ValueError(f"salt must be {SALT_LEN} bytes")
    return hashlib.sha256(label + salt + user_id.encode("utf-8")).digest()


@dataclass(frozen=True)
class AccountEvent:
    """One thing that happened to an account, with what the ledger statement is made of.

    ``user_id`` is the account's user id (``""`` stands for the node's operator, who holds
    no account: the maker of a token at the console). ``actor_id`` is who acted on the
    account when it was not the account itself (``""``: the node's operator), else None.
    ``method`` says how a person signed in (``password+totp``, ``passkey``, ``sso+mfa``, ...);
    ``detail`` is a short code (a new role, a token's number): never a name or an address.
    Construction refuses anything else with a ``ValueError`` naming the field.
    """

    kind: str
    org: OrgId
    at: int
    user_id: str
    salt: bytes = field(repr=False)
    method: str | None = None
    detail: str = ""
    actor_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACCOUNT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ACCOUNT_KINDS)}, not {self.kind!r}")
        if len(self.salt) != SALT_LEN:
            raise ValueError(f"salt must be {SALT_LEN} bytes")
        if self.method is not None and _METHOD_RE.fullmatch(self.method) is None:
            raise ValueError("method must be a lower-case code of at most 24 characters")
        if self.detail and _DETAIL_RE.fullmatch(self.detail) is None:
            raise ValueError("detail must be a lower-case code of at most 16 characters")

    @property
    def reason(self) -> str:
        """The event's reason code: ``<kind>[:<method>][:<detail>]``."""
        parts = [self.kind]
        if self.method is not None:
            parts.append(method_code(self.method))
        if self.detail:
            parts.append(self.detail)
        return ":".join(parts)

    @property
    def subject(self) -> bytes:
        """The commitment to the account's user id (the statement's digest field)."""
        return commitment(L_ACCOUNT_SUBJECT, self.salt, self.user_id)

    @property
    def actor(self) -> bytes | None:
        """The commitment to who acted on the account, if someone else did."""
        if self.actor_id is None:
            return None
        return commitment(L_ACCOUNT_ACTOR, self.salt, self.actor_id)

    def statement(self) -> LedgerEvent:
        """Return the ledger statement of this event (type ``account``)."""
        return LedgerEvent(
            type=EventType.ACCOUNT,
            time=self.at,
            org=self.org,
            envelope_digest=self.subject,
            receipt_digest=self.actor,
            reason=self.reason,
        )
