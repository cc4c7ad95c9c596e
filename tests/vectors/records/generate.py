"""Write the record schema vectors under tests/vectors/records/ (docs/records.md §7).

Each kind has one or more valid instances (``<kind>/valid/<name>.json``, the bare record)
and invalid ones (``<kind>/invalid/<name>.json``) made by applying one change to a valid
base. An invalid file holds ``description``, ``instance`` and ``expect``: the exact set of
problems, as ``{"path", "rule"}``, that ``validate_record`` must report. All data is
synthetic: NHS numbers are in the 999 test range, names are invented, digests hash fixed
strings.

    python tests/vectors/records/generate.py           # (re)write every vector
    python tests/vectors/records/generate.py --check   # exit 1 if a file differs or is extra
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The shared --check lives one folder up, beside the other generators.
sys.path.insert(0, str(HERE.parent))
from vectorkit import write_or_check  # noqa: E402 - found through the line above

DELETE = object()

#: The format's limits, written out: the vectors must not follow the code they check.
MIB = 1024 * 1024
GIB = 1024 * MIB

#: Synthetic identifiers with correct check characters (computed by exchange.records).
UPN = "W356200124001"
UPN_TEMPORARY = "G35620012400A"
NHS = "9990000018"
NHS_2 = "9990000026"
DIGEST = "ec08c1bcf6bde3e9139c544a54fdb17ae8d8aeeacabae2be6c56399005cee254"
DOC_DIGEST = "215cdc657ddaf2fd2fd6f1d51fe3bd29aa68e6f571f5274aa72060ac84bcf5c8"

DSL = {
    "name": "Alex Example",
    "role": "Designated Safeguarding Lead",
    "organisation": "urn:106123",
    "email": "dsl@school.example",
    "phone": "0161 000 0000",
}
SOCIAL_WORKER = {
    "name": "Sam Sample",
    "role": "Social worker",
    "organisation": "la:356",
    "email": "sw@la.example",
}

REFERRAL: dict[str, Any] = {
    "kind": "referral",
    "version": 1,
    "referrer": DSL,
    "consent": {
        "parents_informed": True,
        "consent_given": "yes",
        "confidential_from_family": [
            {"information": "The name of the neighbour who raised it", "reason": "Safety"}
        ],
    },
    "child": {
        "name": {"given_names": "Jo", "family_name": "Testchild", "known_as": "JJ"},
        "date_of_birth": "2015-03-14",
        "gender": "not-known",
        "ethnicity": "WBRI",
        "first_language": "English",
        "interpreter_needed": False,
        "nhs_number": NHS,
        "upn": UPN,
        "address": {"lines": ["1 Example Street", "Exampletown"], "postcode": "SK1 1AA"},
        "gp": {"practice": "Example Surgery", "ods_code": "P99999"},
        "school_urn": "106123",
    },
    "household": [
        {
            "name": {"given_names": "Pat", "family_name": "Testchild"},
            "relationship": "mother",
            "lives_with_child": True,
            "parental_responsibility": True,
        }
    ],
    "concerns": ["neglect", "missing-from-education"],
    "description": "Synthetic description of the concern for test purposes.",
    "early_help": {"tried": True, "details": "Family support worker since last term."},
    "threshold_level": "level-3",
    "immediate_risk": False,
    "attachments": [
        {
            "title": "Attendance record",
            "content_type": "application/pdf",
            "size": 20,
            "sha256": DOC_DIGEST,
        }
    ],
}
REFERRAL_MINIMAL: dict[str, Any] = {
    "kind": "referral",
    "version": 1,
    "referrer": {k: v for k, v in DSL.items() if k != "phone"},
    "consent": {"parents_informed": False, "consent_given": "not-sought", "reason": "Risk"},
    "child": {
        "name": {"given_names": "Unborn", "family_name": "Testchild"},
        "expected_date_of_birth": "2026-06-01",
    },
    "concerns": ["domestic-abuse"],
    "description": "Synthetic pre-birth referral.",
    "threshold_level": "level-4",
    "immediate_risk": True,
}

CP_TRANSFER: dict[str, Any] = {
    "kind": "cp-file-transfer",
    "version": 1,
    "pupil": {
        "name": {"given_names": "Jo", "family_name": "Testchild"},
        "date_of_birth": "2015-03-14",
        "upn": UPN,
    },
    "from_school_urn": "106123",
    "to_school_urn": "106124",
    "date_left": "2025-10-17",
    "date_new_school_confirmed": "2025-10-20",
    "status": {
        "cp_plan": True,
        "child_in_need": False,
        "looked_after": False,
        "ehcp": False,
        "channel": False,
    },
    "documents": [
        {
            "kind": "chronology",
            "title": "Chronology 2023-2025",
            "content_type": "application/pdf",
            "size": 20,
            "sha256": DOC_DIGEST,
        }
    ],
    "summary": "Synthetic summary of the main concerns.",
    "dsl": DSL,
}

LAC: dict[str, Any] = {
    "kind": "lac-record",
    "version": 1,
    "child": {
        "name": {"given_names": "Jo", "family_name": "Testchild"},
        "date_of_birth": "2015-03-14",
        "gender": "female",
        "upn": UPN_TEMPORARY,
        "nhs_number": NHS_2,
    },
    "legal_status": "interim-care-order",
    "responsible_la": "356",
    "social_worker": SOCIAL_WORKER,
    "virtual_school_head": {**SOCIAL_WORKER, "name": "Vic Head", "role": "Virtual school head"},
    "placement": {"type": "foster-care", "start_date": "2025-01-06", "placing_la": "357"},
    "pep": {
        "targets": [{"description": "Reading age up by one year", "due": "2026-07-17"}],
        "attendance_percent": 93.5,
        "pupil_premium_plus": {"allocated_pence": 257000, "spent_pence": 120000},
        "review_dates": ["2025-03-01", "2025-09-12"],
        "next_review": "2026-03-01",
    },
    "health": {
        "initial_assessment_date": "2025-01-30",
        "review_dates": ["2025-07-30"],
        "dental_check_date": "2025-05-02",
        "immunisations_up_to_date": True,
    },
    "sdq": {"total": 17, "completed": "2025-06-01"},
}
LAC_SDQ_REASON: dict[str, Any] = {
    **{k: v for k, v in LAC.items() if k not in {"pep", "health", "placement"}},
    "legal_status": "s20",
    "sdq": {"reason": "SDQ2"},
}

OUTCOME: dict[str, Any] = {
    "kind": "outcome",
    "version": 1,
    "in_reply_to": DIGEST,
    "decision": "no-further-action",
    "decision_date": "2025-11-03",
    "feedback": "Synthetic feedback: no further action; universal services to continue.",
    "contact": SOCIAL_WORKER,
}

INFO_REQUEST: dict[str, Any] = {
    "kind": "information-request",
    "version": 1,
    "in_reply_to": DIGEST,
    "request_type": "s47-checks",
    "child": {
        "name": {"given_names": "Jo", "family_name": "Testchild"},
        "date_of_birth": "2015-03-14",
        "upn": UPN,
    },
    "questions": ["Attendance this term?", "Any concerns recorded since September?"],
    "due_date": "2025-11-05",
    "requester": SOCIAL_WORKER,
}

VALID: dict[str, dict[str, dict[str, Any]]] = {
    "referral": {"full": REFERRAL, "minimal-pre-birth": REFERRAL_MINIMAL},
    "cp-file-transfer": {"full": CP_TRANSFER},
    "lac-record": {"full": LAC, "sdq-reason-code": LAC_SDQ_REASON},
    "outcome": {"nfa": OUTCOME},
    "information-request": {"s47-checks": INFO_REQUEST},
}

#: (kind, name, description, base, changes {path: value or DELETE}, expect [(path, rule)]).
Change = dict[tuple[str | int, ...], Any]
INVALID: list[tuple[str, str, str, dict[str, Any], Change, list[tuple[str, str]]]] = [
    # referral
    (
        "referral",
        "nhs-number-check-digit",
        "the NHS number's check digit is wrong",
        REFERRAL,
        {("child", "nhs_number"): "9990000019"},
        [("child.nhs_number", "format:nhs-number")],
    ),
    (
        "referral",
        "nhs-number-check-ten",
        "the first nine digits give check digit 10",
        REFERRAL,
        {("child", "nhs_number"): "9990000000"},
        [("child.nhs_number", "format:nhs-number")],
    ),
    (
        "referral",
        "upn-check-letter",
        "the UPN's check letter is wrong",
        REFERRAL,
        {("child", "upn"): "A356200124001"},
        [("child.upn", "format:upn")],
    ),
    (
        "referral",
        "upn-lower-case",
        "the UPN is in lower case",
        REFERRAL,
        {("child", "upn"): UPN.lower()},
        [("child.upn", "format:upn")],
    ),
    (
        "referral",
        "urn-letters",
        "the school URN is not six digits",
        REFERRAL,
        {("child", "school_urn"): "10612X"},
        [("child.school_urn", "format:urn")],
    ),
    (
        "referral",
        "ods-code-lower-case",
        "the GP's ODS code is in lower case",
        REFERRAL,
        {("child", "gp", "ods_code"): "p99999"},
        [("child.gp.ods_code", "format:ods-code")],
    ),
    (
        "referral",
        "date-not-iso",
        "the date of birth is not YYYY-MM-DD",
        REFERRAL,
        {("child", "date_of_birth"): "14/03/2015"},
        [("child.date_of_birth", "format:date")],
    ),
    (
        "referral",
        "date-impossible",
        "the date of birth is 30 February",
        REFERRAL,
        {("child", "date_of_birth"): "2015-02-30"},
        [("child.date_of_birth", "format:date")],
    ),
    (
        "referral",
        "email-malformed",
        "the referrer's email has no domain",
        REFERRAL,
        {("referrer", "email"): "dsl@"},
        [("referrer.email", "format:email")],
    ),
    (
        "referral",
        "referrer-missing",
        "no referrer",
        REFERRAL,
        {("referrer",): DELETE},
        [("referrer", "required")],
    ),
    (
        "referral",
        "concern-unknown",
        "a concern category outside the list",
        REFERRAL,
        {("concerns", 1): "bullying"},
        [("concerns[1]", "enum")],
    ),
    (
        "referral",
        "concerns-empty",
        "no concern category",
        REFERRAL,
        {("concerns",): []},
        [("concerns", "minItems")],
    ),
    (
        "referral",
        "concerns-repeated",
        "a concern category twice",
        REFERRAL,
        {("concerns",): ["neglect", "neglect"]},
        [("concerns", "uniqueItems")],
    ),
    (
        "referral",
        "consent-refused-no-reason",
        "consent refused without a reason",
        REFERRAL,
        {("consent", "consent_given"): "no"},
        [("consent.reason", "required")],
    ),
    (
        "referral",
        "parents-not-informed-no-reason",
        "parents not informed, no reason given",
        REFERRAL,
        {("consent", "parents_informed"): False},
        [("consent.reason", "required")],
    ),
    (
        "referral",
        "child-both-dates",
        "both a date of birth and an expected date",
        REFERRAL,
        {("child", "expected_date_of_birth"): "2026-01-01"},
        [("child", "oneOf")],
    ),
    (
        "referral",
        "child-no-date",
        "neither a date of birth nor an expected date",
        REFERRAL,
        {("child", "date_of_birth"): DELETE},
        [("child", "oneOf")],
    ),
    (
        "referral",
        "extra-field",
        "a field the schema does not define",
        REFERRAL,
        {("child", "favourite_colour"): "blue"},
        [("child", "additionalProperties")],
    ),
    (
        "referral",
        "description-too-long",
        "a description over 20000 characters",
        REFERRAL,
        {("description",): "x" * 20001},
        [("description", "maxLength")],
    ),
    (
        "referral",
        "household-too-many",
        "31 household members",
        REFERRAL,
        {("household",): [REFERRAL["household"][0]] * 31},
        [("household", "maxItems")],
    ),
    (
        "referral",
        "wrong-version",
        "version 2 under the version-1 schema",
        REFERRAL,
        {("version",): 2},
        [("version", "const")],
    ),
    (
        "referral",
        "wrong-kind",
        "the kind field names another kind",
        REFERRAL,
        {("kind",): "outcome"},
        [("kind", "const")],
    ),
    (
        "referral",
        "immediate-risk-string",
        "immediate_risk given as text",
        REFERRAL,
        {("immediate_risk",): "yes"},
        [("immediate_risk", "type")],
    ),
    (
        "referral",
        "attachment-digest-upper",
        "a manifest digest in upper-case hex",
        REFERRAL,
        {("attachments", 0, "sha256"): DOC_DIGEST.upper()},
        [("attachments[0].sha256", "pattern")],
    ),
    (
        "referral",
        "attachment-type-exe",
        "an attachment of a type not allowed",
        REFERRAL,
        {("attachments", 0, "content_type"): "application/x-msdownload"},
        [("attachments[0].content_type", "enum")],
    ),
    (
        "referral",
        "attachment-size-over-limit",
        "an attachment declared one byte over the 1 GiB a file may be",
        REFERRAL,
        {("attachments", 0, "size"): GIB + 1},
        [("attachments[0].size", "maximum")],
    ),
    (
        "referral",
        "attachments-over-total",
        "attachments declared one byte over the 50 MiB a referral carries in total",
        REFERRAL,
        {("attachments", 0, "size"): 50 * MIB + 1},
        [("attachments", "manifest.total")],
    ),
    # cp-file-transfer
    (
        "cp-file-transfer",
        "upn-missing",
        "the pupil has no UPN",
        CP_TRANSFER,
        {("pupil", "upn"): DELETE},
        [("pupil.upn", "required")],
    ),
    (
        "cp-file-transfer",
        "upn-short",
        "a 12-character UPN",
        CP_TRANSFER,
        {("pupil", "upn"): UPN[:12]},
        [("pupil.upn", "format:upn"), ("pupil.upn", "minLength")],
    ),
    (
        "cp-file-transfer",
        "to-school-urn-short",
        "a five-digit URN",
        CP_TRANSFER,
        {("to_school_urn",): "10612"},
        [("to_school_urn", "format:urn"), ("to_school_urn", "minLength")],
    ),
    (
        "cp-file-transfer",
        "status-flag-missing",
        "the Channel flag is missing",
        CP_TRANSFER,
        {("status", "channel"): DELETE},
        [("status.channel", "required")],
    ),
    (
        "cp-file-transfer",
        "documents-empty",
        "a transfer without documents",
        CP_TRANSFER,
        {("documents",): []},
        [("documents", "minItems")],
    ),
    (
        "cp-file-transfer",
        "document-kind-unknown",
        "a document kind outside the list",
        CP_TRANSFER,
        {("documents", 0, "kind"): "photo"},
        [("documents[0].kind", "enum")],
    ),
    (
        "cp-file-transfer",
        "document-size-zero",
        "a document of zero bytes",
        CP_TRANSFER,
        {("documents", 0, "size"): 0},
        [("documents[0].size", "minimum")],
    ),
    (
        "cp-file-transfer",
        "document-size-over-limit",
        "a document declared one byte over the 1 GiB a file may be",
        CP_TRANSFER,
        {("documents", 0, "size"): GIB + 1},
        [("documents[0].size", "maximum")],
    ),
    (
        "cp-file-transfer",
        "documents-over-total",
        "documents declared one byte over the 2 GiB a CP file carries in total",
        CP_TRANSFER,
        {("documents",): [{**CP_TRANSFER["documents"][0], "size": size} for size in (GIB, GIB, 1)]},
        [("documents", "manifest.total")],
    ),
    (
        "cp-file-transfer",
        "document-digest-missing",
        "a document without its digest",
        CP_TRANSFER,
        {("documents", 0, "sha256"): DELETE},
        [("documents[0].sha256", "required")],
    ),
    (
        "cp-file-transfer",
        "date-confirmed-missing",
        "no date the new school was confirmed",
        CP_TRANSFER,
        {("date_new_school_confirmed",): DELETE},
        [("date_new_school_confirmed", "required")],
    ),
    (
        "cp-file-transfer",
        "dsl-extra-field",
        "the DSL contact has an undefined field",
        CP_TRANSFER,
        {("dsl", "home_address"): "x"},
        [("dsl", "additionalProperties")],
    ),
    (
        "cp-file-transfer",
        "dsl-organisation-form",
        "the DSL's organisation id is malformed",
        CP_TRANSFER,
        {("dsl", "organisation"): "School 106123"},
        [("dsl.organisation", "pattern")],
    ),
    # lac-record
    (
        "lac-record",
        "sdq-both",
        "both an SDQ total and a reason code",
        LAC,
        {("sdq", "reason"): "SDQ1"},
        [("sdq", "oneOf")],
    ),
    (
        "lac-record",
        "sdq-neither",
        "neither an SDQ total nor a reason code",
        LAC,
        {("sdq", "total"): DELETE},
        [("sdq", "oneOf")],
    ),
    (
        "lac-record",
        "sdq-total-41",
        "an SDQ total above 40",
        LAC,
        {("sdq", "total"): 41},
        [("sdq.total", "maximum")],
    ),
    (
        "lac-record",
        "sdq-reason-unknown",
        "a reason code outside SDQ1-SDQ5",
        LAC_SDQ_REASON,
        {("sdq", "reason"): "SDQ6"},
        [("sdq.reason", "enum")],
    ),
    (
        "lac-record",
        "legal-status-unknown",
        "a legal status outside the list",
        LAC,
        {("legal_status",): "section-31"},
        [("legal_status", "enum")],
    ),
    (
        "lac-record",
        "la-code-two-digits",
        "a two-digit LA code",
        LAC,
        {("responsible_la",): "35"},
        [("responsible_la", "format:la-code"), ("responsible_la", "minLength")],
    ),
    (
        "lac-record",
        "attendance-over-100",
        "attendance above 100 per cent",
        LAC,
        {("pep", "attendance_percent"): 100.5},
        [("pep.attendance_percent", "maximum")],
    ),
    (
        "lac-record",
        "pupil-premium-negative",
        "a negative Pupil Premium Plus spend",
        LAC,
        {("pep", "pupil_premium_plus", "spent_pence"): -1},
        [("pep.pupil_premium_plus.spent_pence", "minimum")],
    ),
    (
        "lac-record",
        "temporary-upn-check",
        "a temporary UPN with a wrong check letter",
        LAC,
        {("child", "upn"): "A35620012400A"},
        [("child.upn", "format:upn")],
    ),
    (
        "lac-record",
        "virtual-school-head-missing",
        "no virtual school head",
        LAC,
        {("virtual_school_head",): DELETE},
        [("virtual_school_head", "required")],
    ),
    (
        "lac-record",
        "placement-address",
        "a placement address (a third party's) is refused",
        LAC,
        {("placement", "address"): "1 Carer Road"},
        [("placement", "additionalProperties")],
    ),
    # outcome
    (
        "outcome",
        "decision-unknown",
        "a decision outside the list",
        OUTCOME,
        {("decision",): "closed"},
        [("decision", "enum")],
    ),
    (
        "outcome",
        "link-missing",
        "no link to the referral's envelope",
        OUTCOME,
        {("in_reply_to",): DELETE},
        [("in_reply_to", "required")],
    ),
    (
        "outcome",
        "link-short",
        "a truncated envelope digest",
        OUTCOME,
        {("in_reply_to",): DIGEST[:63]},
        [("in_reply_to", "pattern"), ("in_reply_to", "minLength")],
    ),
    (
        "outcome",
        "date-with-time",
        "a decision date with a time",
        OUTCOME,
        {("decision_date",): "2025-11-03T10:00:00Z"},
        [("decision_date", "format:date"), ("decision_date", "maxLength")],
    ),
    # information-request
    (
        "information-request",
        "due-date-missing",
        "no due date",
        INFO_REQUEST,
        {("due_date",): DELETE},
        [("due_date", "required")],
    ),
    (
        "information-request",
        "questions-empty",
        "no questions",
        INFO_REQUEST,
        {("questions",): []},
        [("questions", "minItems")],
    ),
    (
        "information-request",
        "request-type-unknown",
        "a request type outside the list",
        INFO_REQUEST,
        {("request_type",): "gossip"},
        [("request_type", "enum")],
    ),
    (
        "information-request",
        "question-empty-string",
        "an empty question",
        INFO_REQUEST,
        {("questions", 0): ""},
        [("questions[0]", "minLength")],
    ),
    (
        "information-request",
        "child-name-missing",
        "the child has no name",
        INFO_REQUEST,
        {("child", "name"): DELETE},
        [("child.name", "required")],
    ),
]


def _apply(base: dict[str, Any], changes: Change) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    for path, value in changes.items():
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return doc


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def build() -> dict[Path, str]:
    """Return every vector file's path and exact text."""
    files: dict[Path, str] = {}
    for kind, named in VALID.items():
        for name, doc in named.items():
            files[HERE / kind / "valid" / f"{name}.json"] = _dump(doc)
    for kind, name, description, base, changes, expect in INVALID:
        files[HERE / kind / "invalid" / f"{name}.json"] = _dump(
            {
                "description": description,
                "instance": _apply(base, changes),
                "expect": [{"path": p, "rule": r} for p, r in sorted(expect)],
            }
        )
    return files


def main(argv: list[str]) -> int:
    """Write the vectors, or with ``--check`` report whether the files on disk differ."""
    on_disk = set(HERE.glob("*/*/*.json"))
    return write_or_check(build(), on_disk, HERE, check="--check" in argv, report=sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
