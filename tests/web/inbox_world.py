"""A small exchange for the inbox page tests: a school node and an LA node with two tenants.

Hillside (:data:`SCHOOL`) sends; the LA node serves Stockport's front door
(:data:`FRONT_DOOR`) and the school nursing team (:data:`NURSES`). Each person a test needs
is a real account with a confirmed authenticator app, signed in through the service, and
talks to the pages through :class:`Person`, which sends its session cookie and posts forms
with the token of the page they came from.
"""

from __future__ import annotations

import asyncio
import html
import re
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from multidict import CIMultiDictProxy

from exchange.auth.totp import code_at
from exchange.config import DeliveryConfig
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import Role, User
from exchange.service.node_service import NodeService, token_hash
from exchange.sharing.prepare import AttachmentInput, Submission
from exchange.web.accounts import SESSION_COOKIE

SCHOOL: Final = OrgId("urn:106123")
FRONT_DOOR: Final = OrgId("la:356")
NURSES: Final = OrgId("ods:X26ABC")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team", "nhs", "la"),
)
PASSWORD: Final = "correct horse battery staple"  # noqa: S105 - test accounts' password
DELIVERY: Final = DeliveryConfig(backoff_base=0.05, backoff_max=0.2, poll_interval=0.02)
CSRF_RE: Final = re.compile(r'name="csrf_token" value="([^"]+)"')

#: Synthetic child's details (valid check characters; no real person).
CHILD_NAME: Final = {"given_names": "Tallulah", "family_name": "Sentinel-Child"}
DOB: Final = "2014-03-09"
UPN: Final = "T356201412345"
NHS: Final = "9434765919"
PDF: Final = b"%PDF-1.7\n% a synthetic letter about a worry\n1 0 obj << >> endobj\n%%EOF\n"
PDF_NAME: Final = "Letter from the school nurse.pdf"


def referral_record() -> dict[str, Any]:
    """Return a referral about the synthetic child, listing one PDF letter."""
    return {
        "kind": "referral",
        "version": 1,
        "referrer": {
            "name": "Alex Example",
            "role": "Designated safeguarding lead",
            "organisation": str(SCHOOL),
            "email": "dsl@hillside.example",
        },
        "consent": {"parents_informed": True, "consent_given": "yes"},
        "child": {"name": dict(CHILD_NAME), "date_of_birth": DOB, "upn": UPN, "nhs_number": NHS},
        "concerns": ["neglect", "emotional-abuse"],
        "description": "Tallulah told her teacher there is often no food at home.",
        "threshold_level": "level-3",
        "immediate_risk": False,
        "attachments": [{"title": "Letter from the school nurse"}],
    }


def referral(to: OrgId = FRONT_DOOR) -> Submission:
    """Return Hillside's referral of the synthetic child, with its PDF letter."""
    return Submission(
        recipients=(to,),
        purpose="safeguarding-referral",
        record_kind="referral",
        record=referral_record(),
        categories=("identity", "safeguarding-concerns"),
        reason="Concerns about neglect meet the threshold for a referral to the front door.",
        attachments=(AttachmentInput(PDF_NAME, "application/pdf", PDF),),
    )


def information_request(to: OrgId = NURSES) -> Submission:
    """Return the front door's request for information about the child, to ``to``."""
    return Submission(
        recipients=(to,),
        purpose="information-request",
        record_kind="information-request",
        record={
            "kind": "information-request",
            "version": 1,
            "request_type": "s47-checks",
            "child": {"name": dict(CHILD_NAME), "date_of_birth": DOB, "upn": UPN},
            "questions": ["Has the child been seen by the school nurse this term?"],
            "due_date": "2030-12-04",
            "requester": {
                "name": "Sam Sample",
                "role": "Social worker",
                "organisation": str(FRONT_DOOR),
                "email": "sw@la.example",
            },
        },
        categories=("identity", "safeguarding-concerns"),
        reason="Section 47 enquiry checks with the health team.",
    )


@dataclass
class Person:
    """A signed-in member of staff, with the pages of their organisation's node."""

    http: aiohttp.ClientSession
    base: str
    user: User
    token: str = field(repr=False)
    #: The person's staff API bearer token (for what the tests do outside the pages).
    api_token: str = field(repr=False, default="")

    def _cookies(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.token}"}

    async def get(self, path: str) -> tuple[int, str, CIMultiDictProxy[str]]:
        """GET a page without following redirects: status, text and headers."""
        async with self.http.get(
            self.base + path, headers=self._cookies(), allow_redirects=False
        ) as response:
            return response.status, await response.text(), response.headers

    async def get_bytes(self, path: str) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        """GET a download: status, body and headers."""
        async with self.http.get(
            self.base + path, headers=self._cookies(), allow_redirects=False
        ) as response:
            return response.status, await response.read(), response.headers

    async def post(
        self, path: str, form: dict[str, str], page: str
    ) -> tuple[int, str, CIMultiDictProxy[str]]:
        """POST ``form`` with the CSRF token of ``page``; status, text and headers."""
        match = CSRF_RE.search(page)
        assert match is not None, "the page has no form token"
        data = {"csrf_token": html.unescape(match.group(1)), **form}
        async with self.http.post(
            self.base + path, data=data, headers=self._cookies(), allow_redirects=False
        ) as response:
            return response.status, await response.text(), response.headers


@dataclass
class World:
    """The running nodes and an HTTPS client that trusts their test CA."""

    deployment: Deployment
    http: aiohttp.ClientSession

    def service(self, org: OrgId) -> NodeService:
        """Return the service of the node serving ``org``."""
        return self.deployment.node_of(org).service

    def base(self, org: OrgId) -> str:
        """Return the base URL of the node serving ``org``."""
        spec = next(s for s in ORGS if s.org == org)
        return self.deployment.url(spec.node)

    async def person(self, org: OrgId, role: Role) -> Person:
        """Create an account of ``role`` in ``org`` and sign it in fully; return the person."""
        service = self.service(org)
        user = User(f"{org}/{role}", org, f"{role} of {org}", role)
        email = f"{role}@{org.replace(':', '-').lower()}.example"
        accounts = service.accounts
        api_token = secrets.token_urlsafe(32)
        await accounts.create_user(user, token_hash(api_token), email=email, password=PASSWORD)
        step = await accounts.begin_sign_in(email, PASSWORD)
        token, _ = await accounts.start_session(step)
        enrolment = await accounts.enrol_totp(token)
        confirmed = await accounts.confirm_totp_enrolment(
            token, code_at(enrolment.secret, time.time())
        )
        return Person(self.http, self.base(org), user, confirmed.token, api_token)

    async def recall(self, sender: Person, digest: bytes) -> None:
        """Recall a sent item through the staff API; wait until every recipient has it."""
        async with self.http.post(
            f"{sender.base}/api/v1/sent/{digest.hex()}/recall",
            json={"reason": "Sent to the wrong organisation"},
            headers={"Authorization": f"Bearer {sender.api_token}"},
        ) as response:
            assert response.status == 200, await response.text()

    async def send(self, sender: User, submission: Submission) -> bytes:
        """Submit as ``sender`` and wait until every recipient holds it; return its digest."""
        submitted = await self.service(sender.org).submit(sender, submission)
        for recipient in submission.recipients:
            service = self.service(recipient)
            deadline = time.monotonic() + 20
            while await service.store.inbox_item(recipient, submitted.digest) is None:
                assert time.monotonic() < deadline, "the item was not delivered"
                await asyncio.sleep(0.02)
        return submitted.digest


@asynccontextmanager
async def running_world(folder: Path) -> AsyncIterator[World]:
    """Start the school and LA nodes over TLS; stop them afterwards."""
    deployment = await start_deployment(
        folder, ORGS, delivery=DELIVERY, kdf=KdfParams.fast_for_tests()
    )
    assert deployment.ca_file is not None
    context = ssl.create_default_context(cafile=str(deployment.ca_file))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            yield World(deployment, http)
    finally:
        await deployment.stop()
