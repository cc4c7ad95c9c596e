"""Time-based one-time passwords (RFC 6238) as authenticator apps use them.

HMAC-SHA1, 6 digits, a 30-second step: the parameters every common authenticator app
assumes when a provisioning URI names none, and the ones this module always writes into the
URI. A code is accepted in the current step or one step either side (RFC 6238 §5.2 allows
for clock drift and the time a person takes to type), never in a step at or before the last
one used (§5.2: "the verifier MUST NOT accept the second attempt of the same OTP"), and each
candidate is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Final
from urllib.parse import quote, urlencode

from exchange.auth.errors import InvalidCodeError

#: Digits of a code (RFC 4226 §5.3 allows 6 to 8; apps show 6).
DIGITS: Final = 6
#: Seconds per time step (RFC 6238 §5.2 recommends 30).
STEP: Final = 30
#: Steps either side of the current one in which a code is still accepted.
WINDOW: Final = 1
#: Length of a new secret: 160 bits, the length RFC 4226 §4 (R6) recommends for HMAC-SHA1.
SECRET_LEN: Final = 20
#: The issuer shown by authenticator apps beside the account.
ISSUER: Final = "Secure exchange"


class TotpSecret:
    """A TOTP shared secret. Never shown by ``repr`` or ``str``; compared in constant time."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or not 16 <= len(raw) <= 64:
            raise ValueError("a TOTP secret must be 16 to 64 bytes")
        self._raw = raw

    @classmethod
    def generate(cls, random: Callable[[int], bytes]) -> TotpSecret:
        """Return a new secret of :data:`SECRET_LEN` bytes drawn from ``random``."""
        return cls(random(SECRET_LEN))

    @classmethod
    def from_base32(cls, text: str) -> TotpSecret:
        """Return the secret written in base32 (RFC 4648, padding optional)."""
        cleaned = text.replace(" ", "").upper()
        try:
            raw = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
        except ValueError:
            raise ValueError("a TOTP secret must be base32 text") from None
        return cls(raw)

    @property
    def raw(self) -> bytes:
        """The secret's bytes (for the store)."""
        return self._raw

    @property
    def base32(self) -> str:
        """The secret in base32 without padding, as typed into an app by hand."""
        return base64.b32encode(self._raw).decode("ascii").rstrip("=")

    def __repr__(self) -> str:
        return "TotpSecret(<secret>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TotpSecret):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._raw).digest())


def time_step(now: float) -> int:
    """Return the RFC 6238 time step of ``now`` (seconds since the epoch, T0 = 0)."""
    return int(now) // STEP


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, digest: str = "sha1") -> str:
    """Return the RFC 4226 one-time password of ``counter`` (dynamic truncation, §5.3)."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    binary = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFF_FFFF
    return str(binary % 10**digits).zfill(digits)


def code_at(secret: TotpSecret, now: float) -> str:
    """Return the code an authenticator app shows at ``now``."""
    return hotp(secret.raw, time_step(now))


def _digits(code: str) -> bytes:
    """Return a typed code without the spaces or hyphens people add; refuse anything else."""
    cleaned = code.replace(" ", "").replace("-", "")
    if len(cleaned) != DIGITS or not (cleaned.isascii() and cleaned.isdigit()):
        raise InvalidCodeError("the security code must be 6 digits")
    return cleaned.encode("ascii")


def verify_code(secret: TotpSecret, code: str, now: float, *, last_used_step: int | None) -> int:
    """Check ``code`` at ``now`` and return the step it matched, to be stored as last used.

    Every step in the window is computed and compared in constant time before deciding, so
    the time taken does not say which step (if any) matched.
    """
    typed = _digits(code)
    current = time_step(now)
    matched: int | None = None
    for step in range(max(0, current - WINDOW), current + WINDOW + 1):
        expected = hotp(secret.raw, step).encode("ascii")
        if hmac.compare_digest(expected, typed) and matched is None:
            matched = step
    if matched is None:
        raise InvalidCodeError("the security code is not right")
    if last_used_step is not None and matched <= last_used_step:
        raise InvalidCodeError("the security code has already been used")
    return matched


def provisioning_uri(secret: TotpSecret, account: str) -> str:
    """Return the ``otpauth://`` URI an app reads from a QR code (Google's key URI format).

    The label is ``issuer:account``; the issuer is repeated as a parameter, and the
    algorithm, digits and period are written out although they are the defaults.
    """
    label = quote(f"{ISSUER}:{account}", safe=":@")
    query = urlencode(
        {
            "secret": secret.base32,
            "issuer": ISSUER,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"
