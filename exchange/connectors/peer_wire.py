"""Recall notices to a peer node as the HTTPS connector sees them (docs/protocol.md §8).

Pure functions, no I/O: :func:`notice_body` writes the notice a sender's node POSTs to
``/peer/v1/orgs/{org}/recalls`` and :func:`parse_notice_answer` checks what the recipient's
node answered, strictly, because a peer is trusted with nothing but its signed word. The
receiving side parses a notice in :mod:`exchange.http.recall` with the same limits.
"""

from __future__ import annotations

import json
from typing import Final

from exchange.connectors.base import OPENER_ROLES, RecallError, RecallOutcome, RecallRequest

#: The recall notice's media type and largest body (docs/protocol.md §8).
NOTICE_MEDIA: Final = "application/json"
MAX_NOTICE_BODY: Final = 1024


def notice_body(request: RecallRequest) -> bytes:
    """Return the recall notice of ``request`` as sent: compact JSON, keys sorted (§8)."""
    return json.dumps(
        {
            "envelope_digest": request.item.message_id.hex(),
            "envelope_id": request.envelope_id.hex(),
            "reason_code": request.reason_code,
            "time": request.time,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode("ascii")


def parse_notice_answer(data: bytes) -> RecallOutcome:
    """Return what a recipient's node answered to a recall notice; :class:`RecallError` if invalid.

    Only ``recalled`` (with ``recalled_at``) and ``too-late`` (with ``opened_at`` and
    ``opened_by_role``, a role the node knows or nothing) are answers; a time that is not a
    non-negative integer is dropped rather than trusted.
    """
    invalid = RecallError("the recipient's node gave an answer that is not valid", retry=True)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise invalid from None
    if not isinstance(doc, dict):
        raise invalid
    if doc.get("outcome") == "recalled":
        return RecallOutcome("recalled", at=_time(doc.get("recalled_at")))
    if doc.get("outcome") == "too-late":
        role = doc.get("opened_by_role")
        known = role if role in OPENER_ROLES else None
        return RecallOutcome("too-late", at=_time(doc.get("opened_at")), opened_by_role=known)
    raise invalid


def _time(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
