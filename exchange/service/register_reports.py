"""The sharing register: the keyed hash of pupil identifiers, exports, deadlines, subject access.

Everything here reads the store and returns plain values, so the staff API (``NodeService``)
and the command line (``exchange register export``, ``exchange overdue``, ``exchange
subject-access``) give the same answers from the same rows.

**Pupil identifiers** (UPN, NHS number) are never stored or exported. The register holds
HMAC-SHA256 of each under a 32-byte secret kept in ``register.key`` in the node's data
folder (mode 0600, created at the first start, never logged): without the key nobody can
confirm a guessed identifier against an export, and with it the node can find every item
about a child when the DPO answers a subject access request.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import json
import os
import stat
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final

from exchange.files import write_new_file
from exchange.keys.ids import OrgId
from exchange.model import (
    ReceiptRecord,
    RegisterOutcome,
    RegisterRow,
    SubjectKey,
    SubjectKind,
)
from exchange.policy import LONDON, Deadline, deadline_status, local_date
from exchange.store.base import RegisterStore

KEY_FILE: Final = "register.key"
KEY_LEN: Final = 32
#: Domain label of the identifier hash: the key is used for nothing else.
L_SUBJECT: Final = b"exchange/v1/register-subject\x00"
#: Domain label of the key's fingerprint, which the store keeps (one key per node).
L_FINGERPRINT: Final = b"exchange/v1/register-key-fingerprint\x00"
RECEIPT_STATUSES: Final = ("delivered", "opened", "acknowledged", "rejected")


class RegisterKeyError(Exception):
    """The register key file is missing, malformed or readable by others."""


class RegisterKey:
    """The node's secret for keyed hashes of pupil identifiers. Never printed or logged."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != KEY_LEN:
            raise ValueError(f"the register key must be {KEY_LEN} bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "RegisterKey(<secret>)"

    def fingerprint(self) -> bytes:
        """Return a keyed hash naming this key, which tells two keys apart and opens nothing."""
        return hmac.new(self._secret, L_FINGERPRINT, hashlib.sha256).digest()

    def subject(self, kind: SubjectKind, value: str) -> SubjectKey:
        """Return the keyed hash of an identifier (given in its validated, canonical form)."""
        message = L_SUBJECT + kind.encode("ascii") + b"\x00" + value.encode("utf-8")
        return SubjectKey(kind, hmac.new(self._secret, message, hashlib.sha256).digest())

    @classmethod
    def load(cls, folder: Path, *, create: bool) -> RegisterKey | None:
        """Read ``folder``/register.key; create it first if ``create`` (else None if absent).

        Refuses a file of the wrong size or one that others than its owner may read.
        """
        path = folder / KEY_FILE
        if create and not path.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Another process may create it first; then its key is the one read below.
            with contextlib.suppress(FileExistsError):
                write_new_file(path, os.urandom(KEY_LEN), mode=0o600)
        try:
            mode = path.stat().st_mode
            secret = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegisterKeyError(f"{path} cannot be read: {exc.strerror}") from None
        if stat.S_IMODE(mode) & 0o077:
            raise RegisterKeyError(
                f"{path} must be readable by the node's user only (chmod 600 {path})"
            )
        if len(secret) != KEY_LEN:
            raise RegisterKeyError(f"{path} must hold exactly {KEY_LEN} bytes")
        return cls(secret)


# --- formatting ------------------------------------------------------------------------------


def iso_time(moment: float) -> str:
    """Return a POSIX time as ISO 8601 UTC, to the second (``2026-11-30T09:15:00Z``)."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def london_days(first: date | None, last: date | None) -> tuple[float | None, float | None]:
    """Return the moments (since, until) that cover the London days ``first`` to ``last``.

    ``since`` is midnight at the start of ``first`` and ``until`` midnight at the end of
    ``last``, as the register's filter takes them; a day not given leaves its end open, and
    so does the last day a date can be (it has no next day to end at).
    """
    since = None if first is None else datetime.combine(first, time(0), tzinfo=LONDON)
    until = None
    if last is not None and last < date.max:
        until = datetime.combine(last + timedelta(1), time(0), tzinfo=LONDON)
    return (
        None if since is None else since.timestamp(),
        None if until is None else until.timestamp(),
    )


def _first_times(receipts: Iterable[ReceiptRecord], recipient: OrgId) -> dict[str, int]:
    times: dict[str, int] = {}
    for receipt in receipts:
        if receipt.receipter == recipient and receipt.status not in times:
            times[receipt.status] = receipt.time
    return times


def deadline_state(
    row: RegisterRow, recipient: OrgId, now: datetime
) -> tuple[str | None, int | None]:
    """Return (status, met_at) of the row's deadline for one recipient; (None, None) if none.

    The status is ``pending``, ``met``, ``met-late`` or ``overdue``
    (:func:`exchange.policy.deadline_status`); it is met by the first receipt whose status
    the row's ``satisfied_by`` lists.
    """
    entry = row.entry
    if entry.deadline_due is None or entry.outcome != "shared":
        return None, None
    times = _first_times(row.receipts, recipient)
    met = [times[s] for s in entry.satisfied_by if s in times]
    met_at = min(met) if met else None
    deadline = Deadline(date.fromisoformat(entry.deadline_due), entry.deadline_rule or "", "")
    # A receipt carries the recipient's clock, which may run a little ahead of ours.
    met_moment = None if met_at is None else min(datetime.fromtimestamp(met_at, UTC), now)
    return deadline_status(deadline, met_moment, now).value, met_at


def _subjects_text(row: RegisterRow) -> list[str]:
    return [f"{s.kind}:{s.hash.hex()}" for s in row.entry.subjects]


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def register_json(rows: Sequence[RegisterRow], now: datetime) -> list[dict[str, Any]]:
    """Return the register rows as the JSON export: one object per decision.

    Besides the decision itself: the envelope it replies to and the one it corrects (digests,
    or null), when the sender's copy was destroyed under retention and the rule that governs
    it, and for each recipient the sender's recall (outcome and when it was asked), if any.
    """
    out = []
    for row in rows:
        entry = row.entry
        recalls = {r.recipient: r for r in row.recalls}
        recipients = []
        for org, kind in entry.recipients:
            times = _first_times(row.receipts, org)
            status, met_at = deadline_state(row, org, now)
            recall = recalls.get(org)
            recipients.append(
                {
                    "organisation": org,
                    "kind": kind,
                    "receipts": [
                        {"status": s, "time": iso_time(times[s])}
                        for s in RECEIPT_STATUSES
                        if s in times
                    ],
                    "deadline_status": status,
                    "deadline_met_at": None if met_at is None else iso_time(met_at),
                    "recall": None
                    if recall is None
                    else {"outcome": recall.outcome, "at": iso_time(recall.requested_at)},
                }
            )
        out.append(
            {
                "id": row.id,
                "decision": entry.outcome,
                "decided_at": iso_time(entry.decided_at),
                "decided_by": entry.decided_by,
                "organisation": entry.org,
                "envelope_id": entry.envelope_id.hex() if entry.envelope_id else None,
                "digest": entry.envelope_digest.hex() if entry.envelope_digest else None,
                "purpose": entry.purpose,
                "rule": entry.rule,
                "lawful_basis": entry.lawful_basis,
                "lawful_basis_citation": entry.citation,
                "record_kind": entry.record_kind,
                "categories": list(entry.categories),
                "reason_code": entry.reason_code,
                "reason": entry.reason,
                "attachments": entry.attachments,
                "pupil_identifier_hashes": _subjects_text(row),
                "deadline": None
                if entry.deadline_rule is None
                else {
                    "due": entry.deadline_due,
                    "rule": entry.deadline_rule,
                    "explanation": entry.deadline_explanation,
                    "satisfied_by": list(entry.satisfied_by),
                },
                "recipients": recipients,
                "in_reply_to": _hex(row.in_reply_to),
                "corrects": _hex(row.corrects),
                "destroyed_at": None if row.destroyed_at is None else iso_time(row.destroyed_at),
                "retention_rule": row.retention_rule,
            }
        )
    return out


CSV_COLUMNS: Final = (
    "id", "decision", "decided_at", "decided_by", "organisation", "envelope_id", "digest",
    "purpose", "rule", "lawful_basis", "lawful_basis_citation", "record_kind", "categories",
    "reason_code", "reason", "attachments", "pupil_identifier_hashes", "deadline_due",
    "deadline_rule", "recipient", "recipient_kind", "delivered_at", "opened_at",
    "acknowledged_at", "rejected_at", "deadline_status",
    # Added later: appended, so that the columns above keep their places.
    "in_reply_to", "corrects", "destroyed_at", "retention_rule", "recall_outcome",
    "recalled_at",
)  # fmt: skip


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    # A cell starting like a formula would be run by a spreadsheet (CSV injection).
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def register_csv(rows: Sequence[RegisterRow], now: datetime, *, header: bool = True) -> str:
    """Return the register as CSV (with a header row unless ``header`` is false).

    One line per decision and recipient.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for doc in register_json(rows, now):
        base = [
            doc["id"], doc["decision"], doc["decided_at"], doc["decided_by"],
            doc["organisation"], doc["envelope_id"], doc["digest"], doc["purpose"], doc["rule"],
            doc["lawful_basis"], doc["lawful_basis_citation"], doc["record_kind"],
            ";".join(doc["categories"]), doc["reason_code"], doc["reason"], doc["attachments"],
            ";".join(doc["pupil_identifier_hashes"]),
            doc["deadline"]["due"] if doc["deadline"] else None,
            doc["deadline"]["rule"] if doc["deadline"] else None,
        ]  # fmt: skip
        later = [doc["in_reply_to"], doc["corrects"], doc["destroyed_at"], doc["retention_rule"]]
        for recipient in doc["recipients"] or [None]:
            if recipient is None:
                tail: list[object] = [None] * 7
                recall: list[object] = [None] * 2
            else:
                times = {r["status"]: r["time"] for r in recipient["receipts"]}
                tail = [
                    recipient["organisation"],
                    recipient["kind"],
                    *(times.get(s) for s in RECEIPT_STATUSES),
                    recipient["deadline_status"],
                ]
                found = recipient["recall"]
                recall = [None, None] if found is None else [found["outcome"], found["at"]]
            writer.writerow([_cell(v) for v in base + tail + later + recall])
    return buffer.getvalue()


async def export_register(
    store: RegisterStore,
    org: OrgId,
    *,
    since: float | None,
    until: float | None,
    now: datetime,
    form: str,
    purpose: str | None = None,
    outcome: RegisterOutcome | None = None,
) -> str | list[dict[str, Any]]:
    """Return ``org``'s register decided in ``since <= t < until`` as CSV text or JSON rows.

    ``purpose`` and ``outcome`` keep only the decisions of that purpose, or of that kind
    (``shared`` or ``not-shared``).
    """
    rows = await store.register_rows(
        org, since=since, until=until, purpose=purpose, outcome=outcome
    )
    return register_csv(rows, now) if form == "csv" else register_json(rows, now)


#: Rows read at a time by :func:`stream_register`.
EXPORT_PAGE: Final = 500


async def stream_register(
    store: RegisterStore,
    org: OrgId,
    *,
    since: float | None,
    until: float | None,
    now: datetime,
    form: str,
    purpose: str | None = None,
    outcome: RegisterOutcome | None = None,
) -> AsyncIterator[str]:
    """Yield ``org``'s register as :func:`export_register` would return it, in pieces.

    The rows are read :data:`EXPORT_PAGE` at a time, oldest first, so an export of any
    size holds one page in memory. CSV pieces are lines; JSON is one array, an object per
    decision. New decisions only ever come after the last read (they are newer), so paging
    by position reads each row once.
    """
    if form == "csv":
        yield register_csv([], now)
    else:
        yield "["
    offset = 0
    while True:
        rows = await store.register_rows(
            org, since=since, until=until, purpose=purpose, outcome=outcome,
            limit=EXPORT_PAGE, offset=offset,
        )  # fmt: skip
        if form == "csv":
            if rows:
                yield register_csv(rows, now, header=False)
        else:
            docs = [json.dumps(doc) for doc in register_json(rows, now)]
            if docs:
                yield ("," if offset else "") + ",".join(docs)
        offset += len(rows)
        if len(rows) < EXPORT_PAGE:
            break
    if form != "csv":
        yield "]"


@dataclass(frozen=True)
class RegisterPage:
    """One page of the register, newest first; ``total`` counts every row the filter keeps."""

    rows: list[RegisterRow]
    total: int


async def register_page(
    store: RegisterStore,
    org: OrgId,
    *,
    since: float | None,
    until: float | None,
    purpose: str | None,
    outcome: RegisterOutcome | None,
    limit: int,
    offset: int,
) -> RegisterPage:
    """Return one page of ``org``'s register under a filter, as :func:`export_register` reads it."""
    total = await store.register_count(
        org, since=since, until=until, purpose=purpose, outcome=outcome
    )
    rows = await store.register_rows(
        org,
        since=since,
        until=until,
        purpose=purpose,
        outcome=outcome,
        limit=limit,
        offset=offset,
        newest_first=True,
    )
    return RegisterPage(rows, total)


# --- deadlines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueItem:
    """One recipient's deadline, past and unmet: ids, kinds, dates. No personal data.

    It is safe for a chase notification: it names the envelope by id and digest, the
    recipient organisation, the record kind, the purpose, the due date and the rule.
    """

    org: OrgId
    envelope_id: bytes
    digest: bytes
    record_kind: str
    purpose: str
    recipient: OrgId
    recipient_kind: str
    due: date
    rule: str
    explanation: str
    submitted_at: float
    submitted_by: str
    waiting_for: tuple[str, ...]
    received: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """Return the item as the API and the CLI show it."""
        return {
            "envelope_id": self.envelope_id.hex(),
            "digest": self.digest.hex(),
            "record_kind": self.record_kind,
            "purpose": self.purpose,
            "recipient": self.recipient,
            "recipient_kind": self.recipient_kind,
            "due": self.due.isoformat(),
            "rule": self.rule,
            "explanation": self.explanation,
            "submitted_at": iso_time(self.submitted_at),
            "submitted_by": self.submitted_by,
            "waiting_for": list(self.waiting_for),
            "receipts": list(self.received),
        }


async def overdue_items(store: RegisterStore, org: OrgId, now: datetime) -> list[OverdueItem]:
    """Return ``org``'s deadlines that passed without the receipt that meets them."""
    today = local_date(now, argument="now")
    items = []
    for row, recipient in await store.overdue_rows(org, due_before=today.isoformat()):
        entry = row.entry
        status, _ = deadline_state(row, recipient, now)
        if status != "overdue" or entry.envelope_digest is None or entry.deadline_due is None:
            continue
        received = _first_times(row.receipts, recipient)
        items.append(
            OverdueItem(
                org=entry.org,
                envelope_id=entry.envelope_id or b"",
                digest=entry.envelope_digest,
                record_kind=entry.record_kind or "",
                purpose=entry.purpose,
                recipient=recipient,
                recipient_kind=dict(entry.recipients).get(recipient, ""),
                due=date.fromisoformat(entry.deadline_due),
                rule=entry.deadline_rule or "",
                explanation=entry.deadline_explanation or "",
                submitted_at=entry.decided_at,
                submitted_by=entry.decided_by,
                waiting_for=entry.satisfied_by,
                received=tuple(s for s in RECEIPT_STATUSES if s in received),
            )
        )
    return items
