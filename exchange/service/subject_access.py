"""Subject access: every exchange about one child, and the copies the response must contain.

A DPO searches by every identifier they hold for the child at once (UPN and NHS number:
the only identifiers the record schemas carry). Each identifier is turned into its keyed
hash under the node's register key and discarded; the report lists every item and decision
whose record carried any of them, once, each saying which kinds of identifier matched
(``matched_by``), never the identifier. Items whose records carry no identifier at all (a
looked-after child record may have none), and received items never opened, cannot be found
by any search: they are listed as needing review, with names, kind, date and reference.

The copies (:meth:`SubjectAccess.copies`) are the records themselves: a received item is
opened with the organisation's key, a sent one from the sender's own copy of what it sealed
(``exchange/store/own_copies.py``); an item sent before own copies were kept has none. Every
copy taken is an ``accessed`` event in the ledger whose reason names the purpose and the
account (:func:`access_reason`), never a person or the child.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from exchange import __version__
from exchange.keys.errors import KeysError
from exchange.keys.ids import OrgId
from exchange.ledger.events import EventType
from exchange.logs import get_logger
from exchange.model import (
    EnvelopeDigest,
    EnvelopeRecord,
    ReceiptRecord,
    ReceivedEntry,
    RegisterRow,
    SubjectKind,
    User,
    short_reference,
)
from exchange.service.body_checks import BodyDamagedError, open_body
from exchange.service.context import ServiceContext
from exchange.service.errors import ForbiddenError, GoneError, NotFoundError, UnprocessableError
from exchange.service.ledger import ledger_event
from exchange.service.register_reports import RegisterKey, iso_time
from exchange.store.base import Store

log = get_logger("exchange.node")

#: An identifier as searched for: its kind and its validated, canonical value.
Identifier = tuple[SubjectKind, str]
#: The identifier kinds the record schemas carry, in the order reports name them.
IDENTIFIER_KINDS: Final[tuple[SubjectKind, ...]] = ("upn", "nhs-number")
#: The purpose an export's ledger events name.
PURPOSE: Final = "subject-access"
#: Domain label of an account's reference in the ledger (:func:`account_reference`).
L_ACCOUNT: Final = b"exchange/v1/ledger-account\x00"
#: Why an item sent before this version has no copy.
NOT_KEPT: Final = f"copy not kept (sent before {__version__})"
#: Why an item needs review, as the report gives it.
NO_IDENTIFIER: Final = "no-identifier"
NEVER_OPENED: Final = "never-opened"
NOT_A_RECORD: Final = "not-a-record"
NEEDS_REVIEW_WHY: Final = (
    "These items may concern the child but no search can tell: their records carry no UPN or "
    "NHS number, or (received items) they were never opened, so their identifiers are not "
    "indexed. Review each one; the export holds a copy of each for that purpose."
)

OrgName = Callable[[OrgId], str]
Direction = Literal["sent", "received"]


def account_reference(user_id: str) -> str:
    """Return an account's reference in ledger events: 16 hex digits of a labelled SHA-256.

    The ledger's proofs may be shown to others, so the account id itself (which may be a
    person's name or email address) is not written there; the node's operator finds the
    account by computing the reference of each account id.
    """
    return hashlib.sha256(L_ACCOUNT + user_id.encode("utf-8")).hexdigest()[:16]


def access_reason(user: User) -> str:
    """Return the reason code of a subject access copy's ledger event."""
    return f"{PURPOSE}:{account_reference(user.id)}"


def check_identifiers(identifiers: Sequence[Identifier]) -> None:
    """Refuse a search with no identifier or the same kind twice (422 naming the rule)."""
    if not identifiers:
        raise UnprocessableError(
            "give at least one identifier of the child (upn, nhs_number)", rule="identifiers"
        )
    kinds = [kind for kind, _ in identifiers]
    if len(set(kinds)) != len(kinds):
        raise UnprocessableError("give each kind of identifier once", rule="identifiers")


# --- the report --------------------------------------------------------------------------------


def _receipts_json(receipts: Iterable[ReceiptRecord]) -> list[dict[str, Any]]:
    return [
        {"organisation": r.receipter, "status": r.status, "time": iso_time(r.time)}
        for r in receipts
    ]


def _ordered(kinds: Iterable[SubjectKind]) -> list[SubjectKind]:
    found = set(kinds)
    return [k for k in IDENTIFIER_KINDS if k in found]


def _sent_json(row: RegisterRow, matched: list[SubjectKind], copy: bool) -> dict[str, Any]:
    entry = row.entry
    return {
        "direction": "sent",
        "envelope_id": entry.envelope_id.hex() if entry.envelope_id else None,
        "digest": entry.envelope_digest.hex() if entry.envelope_digest else None,
        "reference": short_reference(entry.envelope_id) if entry.envelope_id else None,
        "counterparties": [org for org, _ in entry.recipients],
        "purpose": entry.purpose,
        "lawful_basis": entry.lawful_basis,
        "record_kind": entry.record_kind,
        "date": iso_time(entry.decided_at),
        "register_id": row.id,
        "decided_by": entry.decided_by,
        "matched_by": matched,
        "copy": "kept" if copy else NOT_KEPT,
        "receipts": _receipts_json(row.receipts),
    }


def _received_json(entry: ReceivedEntry, matched: list[SubjectKind]) -> dict[str, Any]:
    env = entry.item.envelope
    return {
        "direction": "received",
        "envelope_id": env.envelope_id.hex(),
        "digest": env.digest.hex(),
        "reference": short_reference(env.envelope_id),
        "counterparties": [env.sender],
        "purpose": None,
        "lawful_basis": None,
        "record_kind": env.record_kind,
        "date": iso_time(entry.item.received_at),
        "state": entry.item.state,
        "first_opened_at": None if entry.indexed_at is None else iso_time(entry.indexed_at),
        "matched_by": matched,
        "receipts": _receipts_json(entry.receipts),
    }


def _review_json(
    direction: Direction, env: EnvelopeRecord, at: float, why: str, name_of: OrgName
) -> dict[str, Any]:
    recipients = list(env.recipients)
    return {
        "direction": direction,
        "envelope_id": env.envelope_id.hex(),
        "digest": env.digest.hex(),
        "reference": short_reference(env.envelope_id),
        "record_kind": env.record_kind,
        "date": iso_time(at),
        "sender": env.sender,
        "sender_name": name_of(env.sender),
        "recipients": recipients,
        "recipient_names": [name_of(org) for org in recipients],
        "why": why,
    }


def _register_envelope(row: RegisterRow) -> EnvelopeRecord | None:
    """Return the envelope a disclosure's row names, as far as the row knows it."""
    entry = row.entry
    if entry.envelope_digest is None or entry.envelope_id is None:
        return None
    return EnvelopeRecord(
        digest=EnvelopeDigest(entry.envelope_digest),
        envelope_id=entry.envelope_id,
        sender=entry.org,
        recipients=tuple(org for org, _ in entry.recipients),
        record_kind=entry.record_kind or "",
        created=int(entry.decided_at),
        length=0,
    )


async def _needs_review(store: Store, org: OrgId, name_of: OrgName) -> list[dict[str, Any]]:
    sent, received = await store.unidentified_items(org)
    review: list[tuple[float, dict[str, Any]]] = []
    for row in sent:
        env = _register_envelope(row)
        if env is not None:
            at = row.entry.decided_at
            review.append((at, _review_json("sent", env, at, NO_IDENTIFIER, name_of)))
    for entry in [*received, *await store.received_not_indexed(org)]:
        why = {None: NEVER_OPENED, "indexed": NO_IDENTIFIER}.get(entry.indexed, NOT_A_RECORD)
        at = entry.item.received_at
        review.append((at, _review_json("received", entry.item.envelope, at, why, name_of)))
    return [item for _, item in sorted(review, key=lambda pair: pair[0])]


async def subject_access_report(
    store: Store,
    key: RegisterKey | None,
    org: OrgId,
    identifiers: Sequence[Identifier],
    *,
    now: datetime,
    name_of: OrgName = str,
) -> dict[str, Any]:
    """Return every exchange of ``org`` about the child with any of these identifiers.

    Sent items and decisions not to share are found by the identifiers their records
    carried; received items by those indexed when a member of staff first opened them. Each
    is listed once, with the kinds of identifier that matched it. Items no search can find
    are listed under ``needs_review``.
    """
    check_identifiers(identifiers)
    found: list[tuple[float, dict[str, Any]]] = []
    decisions: list[dict[str, Any]] = []
    carried: set[SubjectKind] = set()
    if key is not None:
        kind_of = {key.subject(kind, value).hash: kind for kind, value in identifiers}
        matched: dict[str, set[SubjectKind]] = {}
        for item, hashed in await store.subject_hits(org, list(kind_of)):
            matched.setdefault(item, set()).add(kind_of[hashed])
        rows, received = await store.subject_matches(org, list(kind_of))
        for row in rows:
            entry = row.entry
            carried.update(s.kind for s in entry.subjects)
            if entry.outcome == "shared" and entry.envelope_digest is not None:
                by = _ordered(matched.get(entry.envelope_digest.hex(), ()))
                copy = await _has_copy(store, org, entry.envelope_digest)
                found.append((entry.decided_at, _sent_json(row, by, copy)))
            else:
                decisions.append(
                    {
                        "register_id": row.id,
                        "date": iso_time(entry.decided_at),
                        "purpose": entry.purpose,
                        "record_kind": entry.record_kind,
                        "reason_code": entry.reason_code,
                        "intended_recipients": [o for o, _ in entry.recipients],
                        "decided_by": entry.decided_by,
                        "matched_by": _ordered(matched.get(f"decision:{row.id}", ())),
                    }
                )
        for r in received:
            by = _ordered(matched.get(r.item.envelope.digest.hex(), ()))
            found.append((r.item.received_at, _received_json(r, by)))
    items = [item for _, item in sorted(found, key=lambda pair: pair[0])]
    review = await _needs_review(store, org, name_of)
    # Destroyed under retention (exchange/service/retention.py): their identifier hashes went
    # with them, so they can no longer be matched to a person; the DPO sees them all.
    destroyed = [
        {
            "direction": h.direction,
            "envelope_id": h.envelope.envelope_id.hex(),
            "digest": h.envelope.digest.hex(),
            "record_kind": h.envelope.record_kind,
            "counterparties": list(h.envelope.recipients)
            if h.direction == "sent"
            else [h.envelope.sender],
            "destroyed_at": iso_time(h.destroyed.at),
            "rule": h.destroyed.rule,
        }
        for h in await store.destroyed_items(org)
        if h.destroyed is not None
    ]
    searched = _ordered(kind for kind, _ in identifiers)
    notes = [
        (
            "Each item is listed once; matched_by names the kinds of identifier that found "
            "it, never the identifier."
        ),
        (
            "The purpose and lawful basis of a received item are recorded in the sender's "
            "register, not here."
        ),
        (
            "destroyed lists every item destroyed under the retention rules: its content and "
            "its identifier hashes were deleted, so whether it concerned this person can no "
            "longer be known."
        ),
    ]
    missing = _ordered(carried - set(searched))
    if missing:
        notes.append(
            "Records found also carry a "
            + " and an ".join(_KIND_WORDS[k] for k in missing)
            + " for this child: search with it too, to find records that carry only that."
        )
    return {
        "organisation": org,
        "searched": searched,
        "generated_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "items": items,
        "decisions_not_to_share": decisions,
        "needs_review": {"count": len(review), "why": NEEDS_REVIEW_WHY, "items": review},
        "destroyed": destroyed,
        "notes": notes,
    }


_KIND_WORDS: Final[dict[SubjectKind, str]] = {"upn": "UPN", "nhs-number": "NHS number"}


async def _has_copy(store: Store, org: OrgId, digest: bytes) -> bool:
    return await store.own_copy(org, digest) is not None


# --- copies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemCopy:
    """One item of a subject access response: what it is, and its content if held.

    ``content`` is the record container's bytes (``exchange.records.decode_container``), or
    None with ``missing`` saying why (a copy not kept, destroyed, recalled, damaged).
    ``section`` is ``"found"`` for the items about the child, ``"needs-review"`` for those a
    search cannot decide.
    """

    section: Literal["found", "needs-review"]
    summary: dict[str, Any]
    content: bytes | None
    missing: str | None = None


@dataclass(frozen=True)
class Copies:
    """The report and the copies of every item it lists, in its order."""

    report: dict[str, Any]
    items: tuple[ItemCopy, ...]


#: The roles that may read back what their organisation sent (those that read records).
READ_BACK_ROLES: Final = frozenset({"dsl", "staff"})


class SubjectAccess:
    """Subject access searches, copies and the sender's read-back, over the node's context."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def check(self, user: User) -> None:
        """Refuse unless the user may answer subject access requests (the DPO)."""
        if user.role != "dpo":
            raise ForbiddenError(
                f"the role {user.role} may not search the register for a subject access request"
            )
        self.context.tenant(user.org)

    def _name(self, org: OrgId) -> str:
        try:
            return self.context.directory.organisation(org).name
        except KeysError:
            return org

    async def report(self, user: User, identifiers: Sequence[Identifier]) -> dict[str, Any]:
        """Return the subject access report for these validated identifiers (DPO only)."""
        self.check(user)
        report = await subject_access_report(
            self.context.store,
            self.context.register_key,
            user.org,
            identifiers,
            now=datetime.fromtimestamp(self.context.clock(), UTC),
            name_of=self._name,
        )
        log.info(
            "register.subject-access",
            org=user.org,
            count=len(report["items"]),
            outcome=f"review:{report['needs_review']['count']}",
        )
        return report

    async def copies(self, user: User, identifiers: Sequence[Identifier]) -> Copies:
        """Return the report with a copy of each item it lists; record each access (DPO only).

        Every copy opened is an ``accessed`` ledger event naming the item, the purpose and
        the account's reference, appended in one transaction before anything is returned.
        """
        report = await self.report(user, identifiers)
        wanted: list[tuple[Literal["found", "needs-review"], dict[str, Any]]] = [
            ("found", item) for item in report["items"]
        ]
        wanted += [("needs-review", item) for item in report["needs_review"]["items"]]
        copies: list[ItemCopy] = []
        events: list[bytes] = []
        now = self.context.now()
        for section, summary in wanted:
            digest = bytes.fromhex(summary["digest"])
            content, missing = await self._content(user.org, summary["direction"], digest)
            copies.append(ItemCopy(section, summary, content, missing))
            if content is not None:
                events.append(
                    ledger_event(
                        EventType.ACCESSED, now, user.org, digest,  # type: ignore[arg-type]
                        reason=access_reason(user),
                    )
                )  # fmt: skip
        if events:
            await self.context.store.append_ledger(events)
        log.info("subject-access.copies", org=user.org, count=len(events))
        return Copies(report, tuple(copies))

    async def _content(
        self, org: OrgId, direction: Direction, digest: bytes
    ) -> tuple[bytes | None, str | None]:
        """Return an item's record container, or None and why it is not held."""
        store = self.context.store
        held = await store.held_item(org, digest)
        if held is not None and held.destroyed is not None:
            return None, "destroyed under the retention rules"
        body = digest
        if direction == "sent":
            own = await store.own_copy(org, digest)
            if own is None:
                return None, NOT_KEPT
            body = own
        envelope = await store.envelope(digest)
        created = envelope.created if envelope is not None else 0
        try:
            content = await asyncio.to_thread(
                open_body,
                self.context,
                self.context.tenant(org),
                store.blobs.in_thread(body),
                created,
            )
        except FileNotFoundError:
            return None, "not held (recalled by its sender)"
        except BodyDamagedError:
            log.error("subject-access.damaged", digest=digest.hex(), org=org)  # noqa: TRY400
            return None, "the stored copy is damaged"
        return content, None

    async def read_back(self, user: User, digest: bytes) -> bytes:
        """Return the record container the user's organisation sent as ``digest``.

        "What did we send?": opened from the sender's own copy, for the roles that read
        records; each reading is an ``accessed`` ledger event (reason ``sent-copy:<role>``).
        """
        if user.role not in READ_BACK_ROLES:
            raise ForbiddenError(f"the role {user.role} may not read records")
        self.context.tenant(user.org)
        store = self.context.store
        if await store.own_copy(user.org, digest) is None:
            sent = await store.sent_item(user.org, digest)
            if sent is None:
                raise NotFoundError("no such item sent by this organisation")
        content, missing = await self._content(user.org, "sent", digest)
        if content is None:
            raise GoneError(f"this organisation holds no copy of what it sent: {missing}")
        event = ledger_event(
            EventType.ACCESSED, self.context.now(), user.org, digest,  # type: ignore[arg-type]
            reason=f"sent-copy:{user.role}",
        )  # fmt: skip
        await store.append_ledger([event])
        log.info("envelope.read-back", digest=digest.hex(), org=user.org)
        return content
