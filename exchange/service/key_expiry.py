"""How long each of the node's organisations has before its keys expire, and when to warn.

A key generation in the directory is valid until its ``not_after``; an organisation whose
last valid generation expires can no longer seal, sign receipts or be sent to. The node
warns at :data:`WARN_DAYS` (60, 30 and 7 days before), in its log every day and in
``/metrics`` (``exchange_key_expires_seconds``), so the new generation reaches the
directory in time (docs/node.md, "Keys about to expire").
"""

from __future__ import annotations

from typing import Final

from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId

#: Days before expiry at which the node warns, nearest last.
WARN_DAYS: Final = (60, 30, 7)
_DAY: Final = 86400


def seconds_left(directory: Directory, org: OrgId, now: int) -> int | None:
    """Return the seconds until ``org``'s last key generation valid now expires.

    None if the directory lists no generation of ``org`` valid now (or no such
    organisation): that is already a refusal, not a warning.
    """
    entry = directory.organisations.get(org)
    if entry is None:
        return None
    valid = [gen.not_after for gen in entry.keys if gen.valid_at(now)]
    return max(valid) - now if valid else None


def warning_days(seconds: int | None) -> int | None:
    """Return the nearest warning threshold (in days) that ``seconds`` left has reached."""
    if seconds is None:
        return None
    reached = [days for days in WARN_DAYS if seconds <= days * _DAY]
    return min(reached) if reached else None
