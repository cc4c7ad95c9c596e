"""Single-use invitation codes: how a new member of staff first reaches their account.

An administrator invites someone by name, email address and role; the node makes a code
that the administrator passes on by another channel (in person, by phone). The code has the
shape of a recovery code (:mod:`exchange.auth.recovery`: 16 characters, about 77 bits) and,
for the same reason, only its SHA-256 (with its own domain label) is stored. It works once,
for :data:`INVITATION_LIFETIME`, and is used up when its holder chooses a password.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from exchange.auth.recovery import generate_recovery_codes, looks_like_recovery_code

#: How long an invitation works: a week, time for the code to be passed on and used.
INVITATION_LIFETIME: Final = 7 * 24 * 3600
_LABEL: Final = b"exchange/v1/invitation-code\x00"


def new_invitation_code(random: Callable[[int], bytes]) -> str:
    """Return a new code, grouped with hyphens for reading aloud or typing."""
    return generate_recovery_codes(random, 1)[0]


def invitation_code_hash(typed: str) -> bytes | None:
    """Return the stored hash of a code as typed, or None if it is not shaped like one.

    Case, spaces and hyphens do not matter.
    """
    if not looks_like_recovery_code(typed):
        return None
    cleaned = typed.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256(_LABEL + cleaned.encode("ascii")).digest()
