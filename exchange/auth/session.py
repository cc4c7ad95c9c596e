"""Server-side sessions: the policy, the token, the levels of sign-in, and CSRF tokens.

A session is a row in the node's store named by the SHA-256 of a 32-byte random token; the
token lives only in the browser's cookie, so a copy of the database opens no session. A
session is valid until it has been idle for :attr:`SessionPolicy.idle_timeout` or alive for
:attr:`SessionPolicy.absolute_timeout`, whichever comes first (OWASP Session Management
Cheat Sheet; 15 minutes and 8 hours by default, set in the node's ``[web]`` table).

A session has reached a **level**: ``password`` after the password alone, ``second-factor``
after a second factor as well. It records the **method** that got it there
(``password``, ``password+totp``, ``password+recovery-code``), so that single sign-on and
passkeys can later reach the same levels as other methods without changing what a level
means. Roles that can read records (:data:`READS_RECORDS`) need ``second-factor``; a session
is signed in once its level meets the level :func:`required_level` set for it.

A session also records **when** a second factor was last given in it (``factor_at``).
Opening a record or downloading an attachment needs one given within
:attr:`SessionPolicy.step_up_window` (15 minutes by default): otherwise the person is asked
again (*step-up*), by any second factor the account has.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from exchange.auth.errors import InvalidCsrfTokenError
from exchange.model import Role, User

Level = Literal["password", "second-factor"]
#: How a session reached its level; single sign-on and passkeys add their own names.
Method = str
SessionState = Literal["active", "idle", "expired"]

#: Roles that can read records: they must have a second factor (journey 1 of the web pages).
READS_RECORDS: Final[frozenset[Role]] = frozenset({"dsl", "staff", "dpo"})

TOKEN_LEN: Final = 32
CSRF_SECRET_LEN: Final = 32
_ID_LABEL: Final = b"exchange/v1/session\x00"
_CSRF_LABEL: Final = b"exchange/v1/csrf\x00"

#: Bounds of the timeouts in seconds: at least a minute idle; at most a working day idle and
#: a week in all, beyond which a session is a standing credential.
MIN_IDLE: Final = 60
MAX_IDLE: Final = 24 * 3600
MIN_ABSOLUTE: Final = 5 * 60
MAX_ABSOLUTE: Final = 7 * 24 * 3600
#: Bounds of the step-up window: a minute to a working day.
MIN_STEP_UP: Final = 60
MAX_STEP_UP: Final = 24 * 3600


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives (idle and absolute timeouts) and the step-up window, in seconds."""

    idle_timeout: int = 15 * 60
    absolute_timeout: int = 8 * 3600
    #: How recently a second factor must have been given to open a record or download one.
    step_up_window: int = 15 * 60

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("idle_timeout", self.idle_timeout, MIN_IDLE, MAX_IDLE),
            ("absolute_timeout", self.absolute_timeout, MIN_ABSOLUTE, MAX_ABSOLUTE),
            ("step_up_window", self.step_up_window, MIN_STEP_UP, MAX_STEP_UP),
        ):
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number of seconds from {low} to {high}")
        if self.idle_timeout > self.absolute_timeout:
            raise ValueError("idle_timeout must not be longer than absolute_timeout")

    def state(self, *, created: float, last_seen: float, now: float) -> SessionState:
        """Return whether a session is ``active`` at ``now``, or timed out ``idle``/``expired``.

        The absolute timeout is checked first: a session past it is expired however recently
        it was used.
        """
        if now - created >= self.absolute_timeout:
            return "expired"
        if now - last_seen >= self.idle_timeout:
            return "idle"
        return "active"

    def expires_at(self, *, created: float, last_seen: float) -> float:
        """Return when a session used last at ``last_seen`` stops being valid."""
        return min(last_seen + self.idle_timeout, created + self.absolute_timeout)

    def factor_is_recent(self, session: Session, now: float) -> bool:
        """Whether ``session`` gave a second factor within the step-up window before ``now``."""
        return session.factor_at is not None and now - session.factor_at < self.step_up_window


def required_level(role: Role, *, has_second_factor: bool) -> Level:
    """Return the level a session of ``role`` must reach to be signed in.

    Roles that read records always need a second factor; others need one once enrolled.
    """
    return "second-factor" if role in READS_RECORDS or has_second_factor else "password"


@dataclass(frozen=True)
class Session:
    """A session as the store holds it, with its user. The token itself is never held."""

    id_hash: bytes = field(repr=False)
    user: User
    created: float
    last_seen: float
    level: Level
    required: Level
    method: Method
    csrf_secret: bytes = field(repr=False)
    #: When a second factor (a code, a passkey, single sign-on asserting one) was last given
    #: in this session; None if never.
    factor_at: float | None = None

    @property
    def ref(self) -> str:
        """A short reference for logs: the start of the id's hash, which opens nothing."""
        return self.id_hash[:6].hex()

    @property
    def signed_in(self) -> bool:
        """Whether the session has reached the level its user's role requires."""
        return self.level == "second-factor" or self.required == "password"


def new_session_token(random: Callable[[int], bytes]) -> tuple[str, bytes]:
    """Return a new token (for the cookie) and the hash that names its session in the store."""
    raw = random(TOKEN_LEN)
    if len(raw) != TOKEN_LEN:
        raise ValueError(f"random must return {TOKEN_LEN} bytes")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="), _id_hash(raw)


def _id_hash(raw: bytes) -> bytes:
    return hashlib.sha256(_ID_LABEL + raw).digest()


def session_id_hash(token: str) -> bytes | None:
    """Return the hash naming the session of ``token``, or None if it is not a token."""
    if len(token) != 43 or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    return _id_hash(raw) if len(raw) == TOKEN_LEN else None


def csrf_token(secret: bytes) -> str:
    """Return the CSRF token forms of a session carry (an HMAC of the session's secret)."""
    mac = hmac.new(secret, _CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def check_csrf_token(secret: bytes, token: str) -> None:
    """Refuse a form whose CSRF token is not its session's, comparing in constant time."""
    if not hmac.compare_digest(csrf_token(secret).encode("ascii"), token.encode("utf-8")):
        raise InvalidCsrfTokenError("the form's CSRF token does not match the session")
