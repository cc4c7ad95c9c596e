"""A school node and an LA node with two tenants, and signed-in browsers for the admin tests.

The LA node serves the front door (:data:`FRONT_DOOR`) and the nurses (:data:`NURSES`), so
the tests can check that one tenant's administrator never reaches the other's accounts or
outbox. Accounts are made through the service as people would make them; administrators
sign in with a password (their role reads no records, so no second factor is required of
accounts made this way), readers with a password and an authenticator app.
"""

from __future__ import annotations

import hashlib
import html
import re
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from exchange.auth.totp import STEP, TotpSecret, code_at
from exchange.config import DeliveryConfig
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import Role, User
from exchange.service.node_service import NodeService
from exchange.sharing.prepare import Submission
from tests.node.records import referral_submission
from tests.web.test_sign_in import Browser

SCHOOL: Final = OrgId("urn:106123")
FRONT_DOOR: Final = OrgId("la:356")
NURSES: Final = OrgId("ods:X26ABC")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team", "nhs", "la"),
)
NODES: Final = {SCHOOL: "school", FRONT_DOOR: "la", NURSES: "la"}
PASSWORD: Final = "correct horse battery staple"  # noqa: S105 - test accounts' password
#: Quick retries, and a dead-letter age the tests reach by moving a node's clock.
DELIVERY: Final = DeliveryConfig(
    timeout=2.0, backoff_base=0.05, backoff_max=0.2, poll_interval=0.02, dead_letter_after=3600.0
)
CODE_RE: Final = re.compile(r'<code id="invitation-code">([A-Z0-9-]+)</code>')
SECRET_RE: Final = re.compile(r"<code>([A-Z2-7 ]+)</code>")
CSRF_RE: Final = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class AdminWorld:
    """The running nodes and a way to make browsers for them."""

    deployment: Deployment
    context: ssl.SSLContext
    sessions: list[aiohttp.ClientSession]

    def service(self, org: OrgId) -> NodeService:
        """Return the service of the node serving ``org``."""
        return self.deployment.node_of(org).service

    def base(self, org: OrgId) -> str:
        """Return the base URL of the node serving ``org``."""
        return self.deployment.url(NODES[org])

    def browser(self, org: OrgId) -> Browser:
        """Return a browser with its own cookie jar, for the node serving ``org``."""
        jar = aiohttp.CookieJar(unsafe=True)
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.context), cookie_jar=jar
        )
        self.sessions.append(http)
        return Browser(http, self.base(org))

    async def account_id(self, org: OrgId, email: str) -> int:
        """Return the account number of an address."""
        account = await self.service(org).store.account_by_email(email.casefold())
        assert account is not None
        return account.id


def email_of(org: OrgId, role: str) -> str:
    """Return the test address of ``role`` in ``org``."""
    slug = {SCHOOL: "hillside", FRONT_DOOR: "frontdoor", NURSES: "nurses"}[org]
    return f"{role}@{slug}.example"


async def add_account(
    service: NodeService, org: OrgId, role: Role, *, app: bool
) -> TotpSecret | None:
    """Create ``role``'s account in ``org``; with ``app``, confirm an authenticator app."""
    user = User(f"{org}/{role}", org, f"{role.upper()} of {org}", role)
    accounts = service.accounts
    token_hash = hashlib.sha256(f"unused {org} {role}".encode()).digest()
    await accounts.create_user(user, token_hash, email=email_of(org, role), password=PASSWORD)
    if not app:
        return None
    step = await accounts.begin_sign_in(email_of(org, role), PASSWORD)
    token, _ = await accounts.start_session(step)
    enrolment = await accounts.enrol_totp(token)
    confirmed = await accounts.confirm_totp_enrolment(
        token, code_at(enrolment.secret, time.time() - STEP)
    )
    await accounts.end_session(confirmed.token)
    return enrolment.secret


def token_of(page: str) -> str:
    """Return a page's CSRF token."""
    match = CSRF_RE.search(page)
    assert match is not None, "the page has no form"
    return html.unescape(match.group(1))


async def sign_in(browser: Browser, email: str, secret: TotpSecret | None = None) -> None:
    """Sign in through the pages: password, then the app's code if the account has one."""
    _, page, _ = await browser.get("/sign-in")
    response = await browser.post("/sign-in", {"email": email, "password": PASSWORD}, page)
    assert response.status == 303, response.status
    if secret is not None:
        assert response.headers["Location"] == "/sign-in/security-code"
        _, page, _ = await browser.get("/sign-in/security-code")
        response = await browser.post(
            "/sign-in/security-code", {"code": code_at(secret, time.time())}, page
        )
        assert response.status == 303, response.status


def submission(to: list[str]) -> Submission:
    """Return a referral submission to ``to`` (synthetic data)."""
    doc: dict[str, Any] = referral_submission(to)
    return Submission(
        recipients=tuple(OrgId(o) for o in doc["recipients"]),
        purpose=doc["purpose"],
        record_kind=doc["record_kind"],
        record=doc["record"],
        categories=tuple(doc["categories"]),
        reason=doc["reason"],
    )


@asynccontextmanager
async def admin_world(folder: Path) -> AsyncIterator[AdminWorld]:
    """Start the nodes; stop them (and close every browser) afterwards."""
    deployment = await start_deployment(
        folder, ORGS, kdf=KdfParams.fast_for_tests(), delivery=DELIVERY
    )
    assert deployment.ca_file is not None
    context = ssl.create_default_context(cafile=str(deployment.ca_file))
    world = AdminWorld(deployment, context, [])
    try:
        yield world
    finally:
        for http in world.sessions:
            await http.close()
        await deployment.stop()
