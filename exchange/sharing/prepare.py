"""From a DSL's submission to what is sealed and registered: records, policy, deadlines.

:func:`prepare` takes a :class:`Submission` (the staff API's body, parsed) and either refuses
it with a :class:`SubmissionError` naming the rule (and, for an invalid record, every
field path and rule broken) or returns a :class:`Prepared` submission:

1. the record is validated against its kind's schema (``exchange.records``); manifest
   entries that leave out ``content_type``, ``size`` or ``sha256`` are completed from the
   attachment at the same position, so a client need not hash its own files;
2. the attachments are checked (sanitised names, allowed content types whose first bytes
   match, sizes and the kind's limits) and put with the record into the record container
   (docs/records.md §4), which is what the envelope seals;
3. the policy decides (``exchange.policy.decide``) with the recipients' kinds from the
   directory; a refusal names the policy rule;
4. the deadline is computed (``exchange.policy.deadline_for``);
5. the child's UPN and NHS number become keyed hashes for the register's subject index.

Nothing here does I/O, and no message quotes a value from the submission: messages name
fields, rules and positions only (a value may be a child's name or NHS number).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from exchange.keys.ids import OrgId
from exchange.model import SubjectKey, SubjectKind
from exchange.policy import (
    CalendarCoverageError,
    DataCategory,
    Deadline,
    DeadlineFacts,
    LawfulBasis,
    RecordsSetup,
    SharingDecision,
    deadline_for,
    decide,
    parse_lawful_basis,
)
from exchange.records import (
    KINDS,
    MAX_ATTACHMENTS,
    Attachment,
    Record,
    RecordValidationError,
    kind_spec,
    validate_record,
)
from exchange.records.attachments import AttachmentFile, attachment_head, container_head
from exchange.records.content_checks import ContentScan, Source
from exchange.records.free_text import find_child_details, refusal

#: Longest reason a sender may give. The reason is read by the DPO in the register; a few
#: sentences say why a disclosure is necessary and proportionate.
MAX_REASON_LEN: Final = 2000
#: The field of each kind's record that describes the child the record is about.
SUBJECT_FIELDS: Final = {
    "referral": "child",
    "lac-record": "child",
    "information-request": "child",
    "cp-file-transfer": "pupil",
}
#: The receipt statuses that meet each kind's deadline (per recipient). A referral needs a
#: person's acknowledgement (Working Together: within one working day); a CP file is
#: transferred once the new school's node holds it, which a ``delivered`` receipt proves
#: (receipts can arrive in any order, so a later ``opened`` or ``acknowledged`` proves it too);
#: an information request is answered by its acknowledgement.
SATISFIED_BY: Final[dict[str, tuple[str, ...]]] = {
    "referral": ("acknowledged",),
    "cp-file-transfer": ("delivered", "opened", "acknowledged"),
    "information-request": ("acknowledged",),
}

_RULE_RE: Final = re.compile(r"\[([a-z0-9.:-]+)\]$")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


class SubmissionError(ValueError):
    """A submission (or decision) is refused by a rule: ``rule`` names it.

    ``problems`` lists, for an invalid record, each broken rule with the field path in the
    request body (``record.child.nhs_number``). The message never quotes a value.
    """

    def __init__(
        self, message: str, *, rule: str, problems: Sequence[Mapping[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.problems = [dict(p) for p in problems]


@dataclass(frozen=True)
class AttachmentInput:
    """An attachment as submitted: a file name (sanitised here), a content type, the bytes."""

    name: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        """The number of bytes of the file."""
        return len(self.data)


@dataclass(frozen=True)
class FileInput:
    """An attachment submitted as a file the node spooled: its bytes read through ``source``.

    ``sha256`` is the digest of those bytes, worked out as they were spooled.
    """

    name: str
    content_type: str
    source: Source = dataclasses.field(repr=False)
    sha256: bytes = dataclasses.field(repr=False)
    #: The content rules checked as it was spooled, for the types a stream decides.
    checked: ContentScan | None = dataclasses.field(default=None, repr=False)

    @property
    def size(self) -> int:
        """The number of bytes of the file."""
        return self.source.size


@dataclass(frozen=True)
class Submission:
    """A DSL's submission: the record, its recipients and why it is shared."""

    recipients: tuple[OrgId, ...]
    purpose: str
    record_kind: str
    record: Mapping[str, Any]
    categories: tuple[str, ...]
    reason: str
    lawful_basis: str | None = None
    attachments: tuple[AttachmentInput | FileInput, ...] = ()
    new_school_confirmed: date | None = None
    due: date | None = None
    #: The digest of the envelope this one replies to (exchange/service/threads.py).
    in_reply_to: bytes | None = None


@dataclass(frozen=True)
class Prepared:
    """A submission that passed every check: what to seal and what to register."""

    record: Record
    reason: str
    attachments: tuple[Attachment | AttachmentFile, ...]
    #: The record container's bytes up to the first attachment (see :meth:`content_pieces`).
    head: bytes
    decision: SharingDecision
    lawful_basis: LawfulBasis
    deadline: Deadline | None
    deadline_note: str | None
    subjects: tuple[SubjectKey, ...]

    @property
    def content_length(self) -> int:
        """The length of the record container, what the envelope seals."""
        return len(self.head) + sum(len(attachment_head(a)) + a.size for a in self.attachments)

    def content_pieces(self) -> Iterator[bytes]:
        """Yield the record container (docs/records.md §4) in pieces, files read as it goes.

        The pieces join into exactly the bytes :func:`~exchange.records.encode_container`
        returns for the same record and files; a file is never read whole.
        """
        yield self.head
        for attachment in self.attachments:
            yield attachment_head(attachment)
            if isinstance(attachment, Attachment):
                yield attachment.data
            else:
                yield from attachment.pieces()


# --- the reason ------------------------------------------------------------------------------


def _subject(kind: str | None, data: Mapping[str, Any]) -> Mapping[str, Any]:
    field = SUBJECT_FIELDS.get(kind or "")
    value = data.get(field) if field is not None else None
    return value if isinstance(value, Mapping) else {}


def record_names(kind: str | None, data: Mapping[str, Any]) -> list[str]:
    """Return the names a record holds for its child and the child's household.

    The given, family and known-as names of the record's subject (:data:`SUBJECT_FIELDS`)
    and of each member of a referral's ``household``: a reason must not hold any of them.
    """
    people: list[Mapping[str, Any]] = [_subject(kind, data)]
    household = data.get("household")
    if isinstance(household, list):
        people += [m for m in household if isinstance(m, Mapping)]
    names: list[str] = []
    for person in people:
        name = person.get("name")
        if isinstance(name, Mapping):
            names += [
                value
                for part in ("given_names", "family_name", "known_as")
                if isinstance(value := name.get(part), str)
            ]
    return names


def check_reason(reason: object, *, field: str = "reason", names: Iterable[str] = ()) -> str:
    """Return the reason stripped, or refuse it (rules ``reason.*``) without quoting it.

    The reason is plain text of 1 to :data:`MAX_REASON_LEN` characters without control
    characters. It is stored, exported to the DPO and shown in API answers, so it must not
    hold a child's details (:func:`~exchange.records.free_text.find_child_details`): a UPN
    or an NHS number (``<field>.identifier``), a date that could be a date of birth
    (``<field>.date-of-birth``) or one of ``names``, the names in the record at hand
    (``<field>.names-subject``). Every free-text field a node keeps is checked here.
    """
    if not isinstance(reason, str):
        raise SubmissionError(f"{field} must be a string", rule=f"{field}.type")
    text = reason.strip()
    if not 0 < len(text) <= MAX_REASON_LEN:
        raise SubmissionError(
            f"{field} must be 1 to {MAX_REASON_LEN} characters of plain text",
            rule=f"{field}.length",
        )
    if _CONTROL.search(text):
        raise SubmissionError(
            f"{field} must be plain text (no control characters other than tab and new line)",
            rule=f"{field}.characters",
        )
    found = find_child_details(text, names=names)
    if found:
        message, rule = refusal(field, found)
        raise SubmissionError(message, rule=rule)
    return text


# --- subjects ---------------------------------------------------------------------------------


def subject_identifiers(kind: str | None, data: Mapping[str, Any]) -> list[tuple[SubjectKind, str]]:
    """Return the child's (identifier kind, value) pairs a record of ``kind`` carries."""
    subject = _subject(kind, data)
    found: list[tuple[SubjectKind, str]] = []
    upn = subject.get("upn")
    if isinstance(upn, str):
        found.append(("upn", upn))
    nhs = subject.get("nhs_number")
    if isinstance(nhs, str):
        found.append(("nhs-number", nhs))
    return found


# --- attachments and the record --------------------------------------------------------------


def _rule_of(message: str, default: str) -> str:
    match = _RULE_RE.search(message)
    return match.group(1) if match else default


def _message_without_rule(message: str) -> str:
    return _RULE_RE.sub("", message).strip()


def _attachment(given: AttachmentInput | FileInput) -> Attachment | AttachmentFile:
    if isinstance(given, FileInput):
        return AttachmentFile.create(
            given.name, given.content_type, given.source, given.sha256, given.checked
        )
    return Attachment.create(given.name, given.content_type, given.data)


def _attachments(
    kind: str, inputs: Sequence[AttachmentInput | FileInput]
) -> tuple[Attachment | AttachmentFile, ...]:
    spec = kind_spec(kind)
    if inputs and spec.manifest is None:
        raise SubmissionError(f"a {kind} record carries no attachments", rule="attachment.count")
    if len(inputs) > MAX_ATTACHMENTS:
        raise SubmissionError(
            f"attachments: at most {MAX_ATTACHMENTS} files per record", rule="attachment.count"
        )
    total = sum(a.size for a in inputs)
    if total > spec.max_attachments_total:
        raise SubmissionError(
            f"attachments: a {kind} record carries at most {spec.max_attachments_total} bytes "
            "of attachments in total",
            rule="attachment.total",
        )
    made: list[Attachment | AttachmentFile] = []
    seen: dict[str, int] = {}
    for index, given in enumerate(inputs):
        where = f"attachments[{index}]"
        try:
            attachment = _attachment(given)
        except ValueError as exc:
            text = str(exc)
            rule = _rule_of(text, "attachment.name")
            what = _message_without_rule(text).removeprefix("attachment: ")
            raise SubmissionError(f"{where}: {what}", rule=rule) from None
        key = attachment.name.casefold()
        if key in seen:
            raise SubmissionError(
                f"{where}: once sanitised, its file name repeats that of attachments"
                f"[{seen[key]}] (names are compared ignoring case)",
                rule="attachment.name-duplicate",
            )
        seen[key] = index
        made.append(attachment)
    return tuple(made)


def _complete_manifest(
    kind: str, record: Mapping[str, Any], attachments: Sequence[Attachment | AttachmentFile]
) -> dict[str, Any]:
    """Return a copy of ``record`` whose manifest entries are completed from the files."""
    data = copy.deepcopy(dict(record))
    manifest = kind_spec(kind).manifest
    entries = data.get(manifest) if manifest else None
    if isinstance(entries, list):
        for entry, attachment in zip(entries, attachments, strict=False):
            if isinstance(entry, dict):
                for name, value in attachment.manifest_fields().items():
                    entry.setdefault(name, value)
    return data


def _validated(kind: str, data: Mapping[str, Any]) -> Record:
    try:
        return validate_record(kind, data)
    except RecordValidationError as exc:
        problems = [
            {
                "path": f"record.{p.path}" if p.path else "record",
                "rule": p.rule,
                "message": p.message,
            }
            for p in exc.problems
        ]
        more = " (and more not listed)" if exc.truncated else ""
        raise SubmissionError(
            f"the {kind} record is invalid: {len(problems)} problem(s){more}; see problems",
            rule="record",
            problems=problems,
        ) from None
    except TypeError:
        raise SubmissionError("record must be a JSON object", rule="record") from None


# --- the decision and the deadline -----------------------------------------------------------


def _record_date(data: Mapping[str, Any], name: str) -> date | None:
    value = data.get(name)
    return date.fromisoformat(value) if isinstance(value, str) else None


def _facts(submission: Submission, record: Record, submitted_at: datetime) -> DeadlineFacts:
    kind, data = record.kind, record.data
    confirmed = _record_date(data, "date_new_school_confirmed")
    due = _record_date(data, "due_date")
    for field, given, in_record, record_field, for_kind in (
        ("new_school_confirmed", submission.new_school_confirmed, confirmed,
         "date_new_school_confirmed", "cp-file-transfer"),
        ("due", submission.due, due, "due_date", "information-request"),
    ):  # fmt: skip
        if given is None:
            continue
        if kind != for_kind:
            raise SubmissionError(f"{field} applies only to a {for_kind} record", rule=field)
        if in_record is not None and given != in_record:
            raise SubmissionError(
                f"{field} must be the same date as record.{record_field}", rule=field
            )
    return DeadlineFacts(
        new_school_confirmed=submission.new_school_confirmed or confirmed,
        date_left=_record_date(data, "date_left"),
        submitted_at=submitted_at,
        due=submission.due or due,
    )


def _categories(categories: Sequence[str]) -> tuple[str, ...]:
    known = {c.value for c in DataCategory}
    for index, category in enumerate(categories):
        if category not in known:
            # Not echoed: a misplaced value could be anything, a child's name included.
            raise SubmissionError(
                f"categories[{index}] is not a known data category (expected one of: "
                f"{', '.join(sorted(known))}) (rule categories-known)",
                rule="categories-known",
            )
    if len(set(categories)) != len(categories):
        raise SubmissionError("categories must not repeat a category", rule="categories")
    return tuple(categories)


def _basis(text: str | None) -> LawfulBasis | None:
    if text is None:
        return None
    try:
        return parse_lawful_basis(text, field="lawful_basis")
    except (TypeError, ValueError) as exc:
        raise SubmissionError(str(exc), rule="lawful_basis") from None


def _decision(
    setup: RecordsSetup,
    *,
    purpose: str,
    record_kind: str,
    recipient_kinds: Mapping[OrgId, str],
    categories: tuple[str, ...],
    lawful_basis: LawfulBasis | None,
) -> tuple[SharingDecision, LawfulBasis]:
    if purpose not in setup.policy.purposes:
        raise SubmissionError(
            "purpose is not one the policy defines (expected one of: "
            f"{', '.join(sorted(setup.policy.purposes))}) (rule purposes)",
            rule="purposes",
        )
    decision = decide(
        setup.policy,
        purpose=purpose,
        record_kind=record_kind,
        recipient_kinds=recipient_kinds,
        categories=categories,
        lawful_basis=lawful_basis,
    )
    if not decision.allowed or decision.lawful_basis is None:
        raise SubmissionError(decision.explanation, rule=decision.rule)
    return decision, decision.lawful_basis


def prepare(
    submission: Submission,
    *,
    setup: RecordsSetup,
    recipient_kinds: Mapping[OrgId, str],
    submitted_at: datetime,
    subject_key: Callable[[SubjectKind, str], SubjectKey],
) -> Prepared:
    """Check a submission and build its container; raise :class:`SubmissionError`.

    ``recipient_kinds`` gives each recipient's organisation kind from the directory;
    ``subject_key`` turns a child's identifier into its keyed hash. Runs in a worker thread:
    it hashes and copies the attachments.
    """
    kind = submission.record_kind
    if kind not in KINDS:
        raise SubmissionError(f"record_kind must be one of: {', '.join(KINDS)}", rule="record_kind")
    categories = _categories(submission.categories)
    basis = _basis(submission.lawful_basis)
    attachments = _attachments(kind, submission.attachments)
    record = _validated(kind, _complete_manifest(kind, submission.record, attachments))
    reason = check_reason(submission.reason, names=record_names(kind, record.data))
    decision, lawful_basis = _decision(
        setup,
        purpose=submission.purpose,
        record_kind=kind,
        recipient_kinds=recipient_kinds,
        categories=categories,
        lawful_basis=basis,
    )
    facts = _facts(submission, record, submitted_at)
    deadline: Deadline | None = None
    note: str | None = None
    try:
        deadline = deadline_for(kind, facts, setup.policy, setup.calendar)
    except CalendarCoverageError as exc:
        # Refusing a referral because the calendar file is out of date would put a child at
        # risk; the item is sent and registered without a due date, and the gap is logged.
        note = f"no due date: {exc}; {exc.hint}"
    except ValueError as exc:
        raise SubmissionError(str(exc), rule=f"deadlines.{kind}") from None
    try:
        head = container_head(record, attachments)
    except ValueError as exc:
        text = str(exc)
        raise SubmissionError(
            _message_without_rule(text), rule=_rule_of(text, "container")
        ) from None
    subjects = tuple(subject_key(k, v) for k, v in subject_identifiers(kind, record.data))
    return Prepared(
        record=record,
        reason=reason,
        attachments=attachments,
        head=head,
        decision=decision,
        lawful_basis=lawful_basis,
        deadline=deadline,
        deadline_note=note,
        subjects=subjects,
    )
