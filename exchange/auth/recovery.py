"""Single-use recovery codes: for signing in when the authenticator app is lost.

Ten codes are made at enrolment and shown once. Each is 4 groups of 4 characters from an
alphabet without lookalikes (no 0/O, 1/I/L, U/V), e.g. ``K7QM-3XWD-P9FH-2TRC``: 16
characters of 29 symbols, about 77 bits, drawn without bias from injected randomness. Only
a hash of each is stored. A code has far too much entropy to guess offline, so one pass of
SHA-256 (with a domain label) is enough and lets the store find a code by its hash, as it
does API tokens; Argon2 is for what people choose, passwords.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from exchange.auth.errors import InvalidCodeError

#: Without 0, O, 1, I, L, U and V, which are read or typed for one another.
ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTWXYZ"
#: How many codes one enrolment makes.
COUNT: Final = 10
GROUPS: Final = 4
GROUP_LEN: Final = 4
_LABEL: Final = b"exchange/v1/recovery-code\x00"
#: Bytes of at least this value are drawn again, so every symbol is equally likely.
_LIMIT: Final = 256 - 256 % len(ALPHABET)


def _symbols(random: Callable[[int], bytes], count: int) -> str:
    chosen: list[str] = []
    while len(chosen) < count:
        chosen += [ALPHABET[b % len(ALPHABET)] for b in random(count) if b < _LIMIT]
    return "".join(chosen[:count])


def generate_recovery_codes(random: Callable[[int], bytes], count: int = COUNT) -> tuple[str, ...]:
    """Return ``count`` new codes, grouped with hyphens for reading."""
    codes = []
    for _ in range(count):
        text = _symbols(random, GROUPS * GROUP_LEN)
        codes.append("-".join(text[i : i + GROUP_LEN] for i in range(0, len(text), GROUP_LEN)))
    return tuple(codes)


def looks_like_recovery_code(typed: str) -> bool:
    """Say whether ``typed`` has the shape of a recovery code (not whether it is right)."""
    cleaned = typed.replace("-", "").replace(" ", "").upper()
    return len(cleaned) == GROUPS * GROUP_LEN and all(c in ALPHABET for c in cleaned)


def recovery_code_hash(typed: str) -> bytes:
    """Return the stored hash of a code as typed: case, spaces and hyphens do not matter."""
    if not looks_like_recovery_code(typed):
        raise InvalidCodeError("a recovery code is 16 letters and numbers")
    cleaned = typed.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256(_LABEL + cleaned.encode("ascii")).digest()
