"""Synthetic records for the node tests (every identifier is a test value with valid checks)."""

from __future__ import annotations

import copy
from typing import Any

from exchange.records import decode_container

#: Synthetic identifiers with correct check characters (tests/vectors/records/generate.py).
UPN = "W356200124001"
NHS = "9990000018"

DSL = {
    "name": "Alex Example",
    "role": "Designated Safeguarding Lead",
    "organisation": "urn:106123",
    "email": "dsl@school.example",
}
SOCIAL_WORKER = {
    "name": "Sam Sample",
    "role": "Social worker",
    "organisation": "la:356",
    "email": "sw@la.example",
}
CHILD_NAME = {"given_names": "Jo", "family_name": "Testchild"}


def child(*, upn: str | None = UPN, nhs: str | None = NHS, dob: str = "2015-03-14") -> dict:
    """Return a child block with the given identifiers."""
    block: dict[str, Any] = {"name": dict(CHILD_NAME), "date_of_birth": dob}
    if upn is not None:
        block["upn"] = upn
    if nhs is not None:
        block["nhs_number"] = nhs
    return block


def referral(*, subject: dict | None = None, description: str = "Synthetic referral.") -> dict:
    """Return a valid referral record."""
    return {
        "kind": "referral",
        "version": 1,
        "referrer": dict(DSL),
        "consent": {"parents_informed": True, "consent_given": "yes"},
        "child": subject if subject is not None else child(),
        "concerns": ["neglect"],
        "description": description,
        "threshold_level": "level-3",
        "immediate_risk": False,
    }


def cp_file(*, confirmed: str = "2026-11-20", documents: list[dict] | None = None) -> dict:
    """Return a valid CP-file transfer record (documents completed by the node)."""
    return {
        "kind": "cp-file-transfer",
        "version": 1,
        "pupil": {"name": dict(CHILD_NAME), "date_of_birth": "2015-03-14", "upn": UPN},
        "from_school_urn": "106123",
        "to_school_urn": "106124",
        "date_left": confirmed,
        "date_new_school_confirmed": confirmed,
        "status": {
            "cp_plan": True,
            "child_in_need": False,
            "looked_after": False,
            "ehcp": False,
            "channel": False,
        },
        "documents": documents
        if documents is not None
        else [{"kind": "chronology", "title": "Chronology"}],
        "summary": "Synthetic summary of the main concerns.",
        "dsl": dict(DSL),
    }


def lac_record(note: str = "Synthetic target", *, subject: dict | None = None) -> dict:
    """Return a valid looked-after child record carrying ``note`` as its PEP target."""
    return {
        "kind": "lac-record",
        "version": 1,
        "child": subject if subject is not None else child(),
        "legal_status": "interim-care-order",
        "responsible_la": "356",
        "social_worker": dict(SOCIAL_WORKER),
        "virtual_school_head": {**SOCIAL_WORKER, "name": "Vic Head"},
        "pep": {"targets": [{"description": note}]},
    }


def information_request(*, due: str = "2026-12-04") -> dict:
    """Return a valid information request."""
    return {
        "kind": "information-request",
        "version": 1,
        "request_type": "s47-checks",
        "child": child(nhs=None),
        "questions": ["Attendance this term?"],
        "due_date": due,
        "requester": dict(SOCIAL_WORKER),
    }


def lac_submission(note: str, to: list[str]) -> dict[str, Any]:
    """Return a LAC record submission carrying ``note``, under a purpose allowing ``to``.

    To the LA and NHS teams it is shared for LAC health; to a school (``urn:``) as the PEP.
    """
    if any(org.startswith("urn:") for org in to):
        purpose, categories = "pep", ["identity", "education", "social-care"]
    else:
        purpose, categories = "lac-health", ["identity", "health", "social-care"]
    return {
        "recipients": list(to),
        "purpose": purpose,
        "record_kind": "lac-record",
        "record": lac_record(note),
        "categories": categories,
        "reason": "The placement and PEP are needed for the child's next review.",
    }


def referral_submission(to: list[str], **changes: Any) -> dict[str, Any]:
    """Return a referral submission to the LA front door; ``changes`` replace fields."""
    doc: dict[str, Any] = {
        "recipients": list(to),
        "purpose": "safeguarding-referral",
        "record_kind": "referral",
        "record": referral(),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "Concerns about neglect meet the threshold for a referral to the front door.",
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


def opened_note(container: bytes) -> str:
    """Return the PEP target note of an opened LAC record container."""
    record = decode_container(container).record
    return str(record.data["pep"]["targets"][0]["description"])


def deep(doc: dict) -> dict:
    """Return a deep copy (records are nested)."""
    return copy.deepcopy(doc)
