"""The web tests' synthetic child and the records about them (no real person).

One child for every test in tests/web: the pages show them by name only on the opened
record's page, so their details (:data:`NEEDLES`) are what the no-leak checks look for in
every other page, address, title and log line. The records are built on
``tests/node/records.py`` (the node tests' valid records), with this child in them, and
:data:`REFERRAL_ANSWERS` is the same referral as a person types it into the send pages.
tests/web/dpo_world.py and inbox_world.py name some of these for tests/browser.
"""

from __future__ import annotations

from typing import Any, Final

from exchange.keys.ids import OrgId
from exchange.model import SubjectKind
from exchange.service.node_service import NodeService
from exchange.sharing.prepare import AttachmentInput, Submission
from tests.node import records
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, actor

#: The child's name, date of birth and identifiers (valid check characters).
GIVEN: Final = "Tallulah"
FAMILY: Final = "Sentinel-Child"
CHILD_NAME: Final = {"given_names": GIVEN, "family_name": FAMILY}
DOB: Final = "2015-03-14"
#: The date of birth as the pages write it.
DOB_WORDS: Final = "14 March 2015"
UPN: Final = "T356201412345"
NHS: Final = "9434765919"
#: The NHS number as it is printed, and typed, in groups.
NHS_PRINTED: Final = "943 476 5919"
#: Wrong check characters: refused wherever they are typed, and never shown back.
BAD_UPN: Final = "T356201412346"
BAD_NHS: Final = "9434765918"
#: The child's details in every form a page, an address or a log line could hold them.
NEEDLES: Final = (GIVEN, FAMILY, DOB, DOB_WORDS, UPN, UPN.lower(), NHS, NHS_PRINTED)

#: The letter a referral carries (a small PDF: the container checks the first bytes).
PDF: Final = b"%PDF-1.7\n% a synthetic letter about a worry\n1 0 obj << >> endobj\n%%EOF\n"
PDF_NAME: Final = "Letter from the school nurse.pdf"
REFERRAL_REASON: Final = (
    "Concerns about neglect meet the threshold for a referral to the front door."
)


def the_child(*, upn: str | None = UPN, nhs: str | None = NHS, dob: str = DOB) -> dict[str, Any]:
    """Return the child block of a record, with only the identifiers given."""
    block: dict[str, Any] = records.child(upn=upn, nhs=nhs, dob=dob)
    block["name"] = dict(CHILD_NAME)
    return block


def referral_record(
    *, upn: str | None = UPN, nhs: str | None = NHS, born: str = DOB, letter: bool = True
) -> dict[str, Any]:
    """Return Hillside's referral of the child; with ``letter``, it lists the PDF letter."""
    record: dict[str, Any] = records.referral(
        subject=the_child(upn=upn, nhs=nhs, dob=born),
        description=f"{GIVEN} told her teacher there is often no food at home.",
    )
    record["referrer"] = {**records.DSL, "email": "dsl@hillside.example"}
    record["concerns"] = ["neglect", "emotional-abuse"]
    if letter:
        record["attachments"] = [{"title": "Letter from the school nurse"}]
    return record


def referral(to: OrgId = FRONT_DOOR) -> Submission:
    """Return Hillside's referral of the child, with its PDF letter, to ``to``."""
    return Submission(
        recipients=(to,),
        purpose="safeguarding-referral",
        record_kind="referral",
        record=referral_record(),
        categories=("identity", "safeguarding-concerns"),
        reason=REFERRAL_REASON,
        attachments=(AttachmentInput(PDF_NAME, "application/pdf", PDF),),
    )


def referral_to_front_door(
    *, upn: str | None = None, nhs: str | None = None, born: str = DOB
) -> Submission:
    """Return a referral of the child, with only these identifiers, to the front door."""
    return Submission(
        recipients=(FRONT_DOOR,),
        purpose="safeguarding-referral",
        record_kind="referral",
        record=referral_record(upn=upn, nhs=nhs, born=born, letter=False),
        categories=("identity", "safeguarding-concerns"),
        reason=REFERRAL_REASON,
    )


def information_request(to: OrgId = NURSES, *, due: str = "2030-12-04") -> Submission:
    """Return the front door's section 47 request for information about the child."""
    record = records.information_request(due=due)
    record["child"] = the_child(nhs=None)
    record["questions"] = ["Has the child been seen by the school nurse this term?"]
    return Submission(
        recipients=(to,),
        purpose="information-request",
        record_kind="information-request",
        record=record,
        categories=("identity", "safeguarding-concerns"),
        reason="Section 47 enquiry checks with the health team.",
    )


async def not_shared(service: NodeService, org: OrgId, *, upn: str | None = None) -> int:
    """Record ``org``'s DSL's decision not to refer the child to the front door; its id."""
    identifiers: list[tuple[SubjectKind, str]] = [] if upn is None else [("upn", upn)]
    return await service.record_not_shared(
        actor(org, "dsl"),
        purpose="safeguarding-referral",
        recipients=[FRONT_DOOR],
        reason_code="not-proportionate",
        reason="Sharing now would not be proportionate to the concern raised.",
        record_kind="referral",
        identifiers=identifiers,
    )


#: A referral of the child as a person types it into the send pages, page by page.
REFERRAL_ANSWERS: Final[dict[str, dict[str, str] | list[tuple[str, str]]]] = {
    "referrer": {
        "referrer.name": records.DSL["name"],
        "referrer.role": "Designated safeguarding lead",
        "referrer.organisation": str(SCHOOL),
        "referrer.email": "dsl@hillside.example",
    },
    "consent": {
        "consent.parents_informed": "yes",
        "consent.consent_given": "yes",
    },
    "child": {
        "child.name.given_names": GIVEN,
        "child.name.family_name": FAMILY,
        "child.date_of_birth-day": str(int(DOB[8:10])),
        "child.date_of_birth-month": str(int(DOB[5:7])),
        "child.date_of_birth-year": DOB[:4],
        "child.upn": UPN,
        "child.nhs_number": NHS,
    },
    "household": {},
    "concerns": [("concerns", "neglect"), ("concerns", "emotional-abuse")],
    "description": {"description": f"{GIVEN} arrives hungry most days and is withdrawn."},
    "early_help": {"early_help.tried": "no"},
    "threshold_level": {"threshold_level": "level-3"},
    "immediate_risk": {"immediate_risk": "no"},
}
