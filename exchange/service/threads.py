"""Threads: an envelope that replies to, or corrects, another; the conversation they make.

A submission may name the envelope it replies to (``in_reply_to``, a digest): one this
organisation sent or received and still holds, or the submission is refused (404). The link
is stored with the sent item, its register row and the thread index (``thread_links``).

The envelope format has no field for it and the record container no metadata, so the link
travels, sealed, in the record itself where the record kind has a place for it: an
``outcome``'s (and an ``information-request``'s) ``in_reply_to``, and every kind's
``corrects`` for a rectification (docs/records.md). The receiving node cannot read it before
the item is opened, so it links a received item when a member of staff first opens it, and
only to an item it holds that the sender took part in: a sender cannot hang its envelope
on a conversation it was never part of.

:func:`thread_view` answers ``GET /api/v1/threads/{digest}``: every envelope linked to the
thread's root, sent and received, in time order.

Nothing here imports the service: refusals are :class:`LinkRefusedError` with a status and a
rule, which :class:`~exchange.service.node_service.NodeService` turns into its own errors.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from exchange.keys.ids import OrgId
from exchange.model import (
    EnvelopeDigest,
    EnvelopeRecord,
    HeldEnvelope,
    ReceiptRecord,
    ThreadLink,
)
from exchange.records import Record, load_schema
from exchange.store import Store

_DIGEST_RE: Final = re.compile(r"[0-9a-f]{64}")


class LinkRefusedError(Exception):
    """A submission's link is refused: ``status`` 404 (not held) or 422 (``rule``)."""

    def __init__(self, message: str, *, status: int, rule: str) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule


def has_link_field(kind: str) -> bool:
    """Return whether records of ``kind`` carry their own ``in_reply_to``."""
    try:
        return "in_reply_to" in load_schema(kind)["properties"]
    except ValueError:
        return False


def _digest_text(value: object) -> EnvelopeDigest | None:
    if isinstance(value, str) and _DIGEST_RE.fullmatch(value):
        return EnvelopeDigest(bytes.fromhex(value))
    return None


def _parties(held: HeldEnvelope) -> set[OrgId]:
    return {held.sender, *held.recipients}


async def _held(store: Store, org: OrgId, digest: bytes) -> HeldEnvelope | None:
    held = await store.held_envelope(org, digest)
    if held is None or held.state == "recalled":
        return None
    return held


async def submission_link(
    store: Store,
    org: OrgId,
    record_kind: str,
    record: Mapping[str, Any],
    in_reply_to: bytes | None,
    *,
    corrects: bytes | None = None,
) -> tuple[dict[str, Any], ThreadLink | None]:
    """Check a submission's link; return the record to seal and the link to store.

    ``corrects`` is set only by a rectification (:mod:`exchange.service.corrections`): the
    record then carries ``corrects`` and the link is a ``correction``. Otherwise a record may
    not claim to correct anything, and ``in_reply_to`` must name an item ``org`` holds; it
    is copied into the record's own ``in_reply_to`` where the kind has one (and must agree
    with it if given there). An ``outcome`` naming, in the record only, an item ``org`` holds
    is linked too.
    """
    data = copy.deepcopy(dict(record))
    claimed = data.get("corrects")
    if corrects is not None:
        if claimed is not None and _digest_text(claimed) != corrects:
            raise LinkRefusedError(
                "record.corrects must be the digest of the record being corrected, or absent",
                status=422,
                rule="corrects",
            )
        data["corrects"] = corrects.hex()
        return data, ThreadLink(org, EnvelopeDigest(corrects), "correction")
    if claimed is not None:
        raise LinkRefusedError(
            "record.corrects is set only by a rectification (POST /api/v1/sent/{digest}/rectify)",
            status=422,
            rule="corrects",
        )
    link_field = has_link_field(record_kind)
    in_record = data.get("in_reply_to") if link_field else None
    if in_reply_to is not None:
        if await _held(store, org, in_reply_to) is None:
            raise LinkRefusedError(
                "in_reply_to names no item this organisation sent or received",
                status=404,
                rule="in_reply_to",
            )
        if link_field:
            if in_record is None:
                data["in_reply_to"] = in_reply_to.hex()
            elif _digest_text(in_record) != in_reply_to:
                raise LinkRefusedError(
                    "in_reply_to must be the same digest as record.in_reply_to",
                    status=422,
                    rule="in_reply_to",
                )
        return data, ThreadLink(org, EnvelopeDigest(in_reply_to), "reply")
    parent = _digest_text(in_record)
    if parent is not None and await _held(store, org, parent) is not None:
        return data, ThreadLink(org, parent, "reply")
    return data, None


def _sealed_link(record: Record | None) -> tuple[EnvelopeDigest, str] | None:
    """Return the (parent, relation) a record names, if any."""
    if record is None:
        return None
    corrects = _digest_text(record.data.get("corrects"))
    if corrects is not None:
        return corrects, "correction"
    parent = _digest_text(record.data.get("in_reply_to"))
    return None if parent is None else (parent, "reply")


async def opened_link(
    store: Store, org: OrgId, envelope: EnvelopeRecord, record: Record | None
) -> ThreadLink | None:
    """Return the link of a received item, read at its opening, to the item its record names.

    Only to an item ``org`` holds in which the item's sender took part (as sender or
    recipient); None when the record names none or names one that does not qualify. The
    link is stored by the transaction that records the opening.
    """
    found = _sealed_link(record)
    if found is None:
        return None
    parent, relation = found
    held = await _held(store, org, parent)
    if held is None or envelope.sender not in _parties(held) or parent == envelope.digest:
        return None
    return ThreadLink(org, parent, "correction" if relation == "correction" else "reply")


def _receipts(receipts: list[ReceiptRecord], only: OrgId | None) -> list[dict[str, Any]]:
    return [
        {"organisation": r.receipter, "status": r.status, "time": r.time}
        for r in receipts
        if only is None or r.receipter == only
    ]


async def thread_view(store: Store, org: OrgId, digest: bytes) -> dict[str, Any] | None:
    """Return the conversation ``digest`` belongs to, or None if ``org`` does not hold it."""
    if await store.held_envelope(org, digest) is None:
        return None
    root, links = await store.thread_links(org, digest)
    items: list[tuple[float, dict[str, Any]]] = []
    for name in [root, *links]:
        parent, relation = links.get(name, (None, None))
        sent = await store.sent_item(org, name)
        if sent is not None:
            env, moment = sent.envelope, sent.submitted_at
            entry: dict[str, Any] = {
                "direction": "sent",
                "counterparties": list(env.recipients),
                "time": int(sent.submitted_at),
                "state": None,
                "receipts": _receipts(list(sent.receipts), None),
            }
        else:
            received = await store.inbox_item(org, name)
            if received is None:
                continue  # a parent this organisation no longer holds (or never did)
            env, moment = received.envelope, received.received_at
            entry = {
                "direction": "received",
                "counterparties": [env.sender],
                "time": int(received.received_at),
                "state": received.state,
                "receipts": _receipts(await store.receipts_for(name), org),
            }
        items.append(
            (
                moment,
                {
                    "digest": env.digest.hex(),
                    "envelope_id": env.envelope_id.hex(),
                    "record_kind": env.record_kind,
                    "created": env.created,
                    "in_reply_to": None if parent is None else parent.hex(),
                    "relation": relation,
                    **entry,
                },
            )
        )
    items.sort(key=lambda pair: (pair[0], pair[1]["digest"]))
    return {"root": root.hex(), "digest": digest.hex(), "items": [i for _, i in items]}
