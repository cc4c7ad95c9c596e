"""The relay mailbox protocol as the client sees it: URLs, transport refs, answers (docs/relay.md).

Pure functions, no I/O: :func:`relay_url` builds an endpoint's URL from a route address;
:func:`encode_ref` and :func:`decode_ref` turn a collected item into the opaque
``transport_ref`` the node hands back to acknowledge it; the ``parse_*`` functions check a
relay's JSON answers strictly, because a relay is a party the node does not trust with
anything but ciphertext. Every check raises ``ValueError`` (:class:`InvalidAnswerError` for
an answer) naming the field or rule, never quoting what the relay sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import yarl

from exchange.connectors.base import (
    ItemState,
    ItemStatus,
    MessageKind,
    RecallOutcome,
    RecallResult,
)
from exchange.keys.ids import OrgId, parse_org_id

#: The endpoints under ``/relay/v1/mailboxes/{org}/``.
Action = Literal["envelopes", "receipts", "list", "fetch", "ack", "recall", "status"]
ACTIONS: Final = frozenset({"envelopes", "receipts", "list", "fetch", "ack", "recall", "status"})

#: The deposit endpoint of each kind.
DEPOSIT_ACTION: Final[dict[MessageKind, Action]] = {
    "envelope": "envelopes",
    "receipt": "receipts",
}
KINDS: Final[frozenset[str]] = frozenset({"envelope", "receipt"})


_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")
_CURSOR_RE: Final = re.compile(r"[0-9]{1,18}")
_FINGERPRINT_LEN: Final = 16
_REF_RE: Final = re.compile(
    r"relay:(?P<fp>[0-9a-f]{16}):(?P<kind>envelope|receipt):(?P<id>[0-9a-f]{64})"
)
#: Largest time a relay may name (year 9999), so a hostile answer cannot overflow anything.
_MAX_TIME: Final = 253_402_300_799


class InvalidAnswerError(ValueError):
    """A relay's answer is not what the protocol allows; the message names the field."""


def check_address(address: str) -> str:
    """Return a relay's base URL without a trailing slash; ``ValueError`` if unusable.

    ``address`` is the directory's ``mailbox`` route address: an absolute ``https://`` (or,
    for tests, ``http://``) URL, optionally with a path prefix, without query or fragment.
    """
    base = address.rstrip("/")
    try:
        parsed = yarl.URL(base, encoded=True)
    except (ValueError, TypeError):
        raise ValueError("address must be an absolute http(s) URL") from None
    if parsed.scheme not in {"https", "http"} or not parsed.host:
        raise ValueError("address must be an absolute http(s) URL")
    if parsed.raw_query_string or parsed.raw_fragment or "?" in base or "#" in base:
        raise ValueError("address must not have a query or a fragment")
    return base


def relay_url(address: str, owner: str, action: Action) -> str:
    """Return the URL of ``owner``'s mailbox endpoint ``action`` at the relay at ``address``.

    The result is already percent-encoded and is sent exactly as signed.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(sorted(ACTIONS))}")
    org = parse_org_id(owner, field="owner")
    return f"{check_address(address)}/relay/v1/mailboxes/{org}/{action}"


def mailbox_fingerprint(address: str, owner: OrgId) -> str:
    """Return a short stable name of the mailbox of ``owner`` at the relay at ``address``."""
    text = f"{check_address(address)}\n{parse_org_id(owner, field='owner')}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_FINGERPRINT_LEN]


def encode_ref(fingerprint: str, kind: MessageKind, digest: bytes) -> str:
    """Return the ``transport_ref`` of item ``digest`` of ``kind`` in a mailbox.

    ``relay:<mailbox fingerprint>:<kind>:<digest hex>``: the mailbox is named by a hash of
    its relay and owner rather than its position, so a ref stays valid when the node's list
    of mailboxes changes; 97 characters, within a receipt's ``transport_ref`` limit.
    """
    if re.fullmatch(r"[0-9a-f]{16}", fingerprint) is None:
        raise ValueError("fingerprint must be 16 lower-case hexadecimal characters")
    if kind not in KINDS:
        raise ValueError("kind must be 'envelope' or 'receipt'")
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    return f"relay:{fingerprint}:{kind}:{digest.hex()}"


def decode_ref(transport_ref: str) -> tuple[str, MessageKind, bytes]:
    """Return (mailbox fingerprint, kind, digest) of a ref :func:`encode_ref` made."""
    match = _REF_RE.fullmatch(transport_ref) if isinstance(transport_ref, str) else None
    if match is None:
        raise ValueError("transport_ref is not a relay mailbox reference")
    return match["fp"], cast("MessageKind", match["kind"]), bytes.fromhex(match["id"])


def json_body(doc: dict[str, Any]) -> bytes:
    """Return the compact UTF-8 JSON of a request body."""
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidAnswerError(f"the relay's answer to {what} is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidAnswerError(f"the relay's answer to {what} is not a JSON object")
    return doc


def _time(value: Any, name: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if type(value) is not int or not 0 <= value <= _MAX_TIME:
        raise InvalidAnswerError(f"the relay's {name} is not a time")
    return value


def parse_deposit(data: bytes) -> str:
    """Return the item id (hex digest) a relay answered to a deposit."""
    doc = _object(data, "a deposit")
    ident = doc.get("id")
    if not isinstance(ident, str) or _HEX_RE.fullmatch(ident) is None:
        raise InvalidAnswerError("the relay's answer to a deposit has no valid id")
    if doc.get("state") != "stored":
        raise InvalidAnswerError("the relay's answer to a deposit does not say 'stored'")
    return ident


@dataclass(frozen=True, slots=True)
class Listed:
    """One waiting item as a relay listed it."""

    kind: MessageKind
    digest: bytes
    length: int
    stored_at: int


def parse_list(data: bytes, *, asked: int, max_length: int) -> tuple[list[Listed], str | None]:
    """Return the items and the next cursor of a list answer; at most ``asked`` items."""
    doc = _object(data, "list")
    items, cursor = doc.get("items"), doc.get("next")
    if not isinstance(items, list) or len(items) > asked:
        raise InvalidAnswerError("the relay's list answer has no valid items")
    if cursor is not None and (not isinstance(cursor, str) or not _CURSOR_RE.fullmatch(cursor)):
        raise InvalidAnswerError("the relay's list answer has no valid next cursor")
    listed: list[Listed] = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidAnswerError("the relay's list answer has an item that is not an object")
        ident, kind, length = item.get("id"), item.get("kind"), item.get("length")
        if not isinstance(ident, str) or _HEX_RE.fullmatch(ident) is None or kind not in KINDS:
            raise InvalidAnswerError(
                "the relay's list answer has an item without a valid id and kind"
            )
        if type(length) is not int or not 0 <= length <= max_length:
            raise InvalidAnswerError(
                f"the relay's list answer has an item not of 0 to {max_length} bytes"
            )
        stored_at = _time(item.get("stored_at"), "stored_at")
        assert stored_at is not None
        listed.append(Listed(cast("MessageKind", kind), bytes.fromhex(ident), length, stored_at))
    return listed, cursor


def parse_recall(data: bytes) -> RecallOutcome:
    """Return the outcome of a recall answer."""
    doc = _object(data, "recall")
    field = {"recalled": "recalled_at", "too-late": "collected_at", "expired": "expired_at"}
    outcome = doc.get("outcome")
    if outcome not in field:
        raise InvalidAnswerError("the relay's recall answer has no valid outcome")
    return RecallOutcome(
        cast("RecallResult", outcome), _time(doc.get(field[outcome]), "time", optional=True)
    )


def parse_status(data: bytes) -> ItemStatus:
    """Return the item status of a status answer."""
    doc = _object(data, "status")
    state = doc.get("state")
    if state not in {"waiting", "collected", "recalled", "expired"}:
        raise InvalidAnswerError("the relay's status answer has no valid state")
    return ItemStatus(
        cast("ItemState", state),
        *(
            _time(doc.get(name), name, optional=True)
            for name in ("stored_at", "fetched_at", "collected_at", "ended_at")
        ),
    )
