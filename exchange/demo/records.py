"""Synthetic records the demo's parts 3 and 4 submit: one fictional child, made-up staff.

Every identifier is a test value with valid check characters (UPN W356200124001, NHS number
999 000 0018 from the NHS test range); nothing here describes a real person.
"""

from __future__ import annotations

import base64
from typing import Any, Final

from exchange.keys.ids import OrgId

SCHOOL: Final = OrgId("urn:106123")
FRONT_DOOR: Final = OrgId("la:356")
UPN: Final = "W356200124001"
NHS_NUMBER: Final = "9990000018"
DATE_OF_BIRTH: Final = "2015-03-14"
CHILD_NAME: Final = {"given_names": "Jo", "family_name": "Demochild"}
CHILD: Final = {
    "name": CHILD_NAME,
    "date_of_birth": DATE_OF_BIRTH,
    "upn": UPN,
    "nhs_number": NHS_NUMBER,
}
DSL: Final = {
    "name": "Alex Example",
    "role": "Designated Safeguarding Lead",
    "organisation": str(SCHOOL),
    "email": "dsl@hillside.example",
}
SOCIAL_WORKER: Final = {
    "name": "Sam Sample",
    "role": "Social worker",
    "organisation": str(FRONT_DOOR),
    "email": "sw@la.example",
}
_PDF: Final = b"%PDF-1.7\n% synthetic chronology for the demo\n%%EOF\n"


def referral(to: OrgId) -> dict[str, Any]:
    """Return a synthetic referral submission to ``to``."""
    return {
        "recipients": [to],
        "purpose": "safeguarding-referral",
        "record_kind": "referral",
        "record": {
            "kind": "referral",
            "version": 1,
            "referrer": DSL,
            "consent": {"parents_informed": True, "consent_given": "yes"},
            "child": CHILD,
            "concerns": ["neglect"],
            "description": "Synthetic text for the demonstration only.",
            "threshold_level": "level-3",
            "immediate_risk": False,
        },
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "Neglect concerns meet the threshold for a referral (synthetic).",
    }


def cp_file(to: OrgId, to_urn: str, confirmed: str) -> dict[str, Any]:
    """Return a synthetic CP-file transfer to the school ``to`` (URN ``to_urn``)."""
    return {
        "recipients": [to],
        "purpose": "cp-file-transfer",
        "record_kind": "cp-file-transfer",
        "record": {
            "kind": "cp-file-transfer",
            "version": 1,
            "pupil": {"name": CHILD_NAME, "date_of_birth": DATE_OF_BIRTH, "upn": UPN},
            "from_school_urn": SCHOOL.split(":", 1)[1],
            "to_school_urn": to_urn,
            "date_left": confirmed,
            "date_new_school_confirmed": confirmed,
            "status": {
                "cp_plan": True,
                "child_in_need": False,
                "looked_after": False,
                "ehcp": False,
                "channel": False,
            },
            "documents": [{"kind": "chronology", "title": "Chronology"}],
            "summary": "Synthetic summary of the main concerns (demo).",
            "dsl": DSL,
        },
        "categories": ["identity", "education", "safeguarding-concerns"],
        "reason": "The pupil has moved school; the CP file must follow within 5 school days.",
        "attachments": [
            {
                "name": "chronology.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(_PDF).decode("ascii"),
            }
        ],
    }


def lac_health(to: OrgId) -> dict[str, Any]:
    """Return a synthetic looked-after child's record shared for LAC health with ``to``."""
    return {
        "recipients": [to],
        "purpose": "lac-health",
        "record_kind": "lac-record",
        "record": {
            "kind": "lac-record",
            "version": 1,
            "child": CHILD,
            "legal_status": "interim-care-order",
            "responsible_la": "356",
            "social_worker": SOCIAL_WORKER,
            "virtual_school_head": {**SOCIAL_WORKER, "name": "Vic Head"},
            "pep": {"targets": [{"description": "Synthetic PEP target (demo)"}]},
        },
        "categories": ["identity", "health", "social-care"],
        "reason": "The nursing team needs the placement details for the health assessment.",
    }
