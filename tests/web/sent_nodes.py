"""A school node and an LA node with two tenants, and signed-in page clients for the sent tests.

- the school node serves Hillside Primary School (:data:`SCHOOL`);
- the LA node serves the children's front door (:data:`FRONT_DOOR`) and the school nursing
  team (:data:`NURSES`), two tenants on one node.

:meth:`SentNodes.client` gives an HTTP client with a session of a role of an organisation,
made through the service as a sign-in does (password, then a confirmed authenticator app),
so each test starts signed in. :meth:`SentNodes.refer` submits a synthetic referral from the
school to the front door through the service, as the send pages will.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
from yarl import URL

from exchange.auth.totp import STEP, TotpSecret, code_at
from exchange.config import DeliveryConfig
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import Role, User
from exchange.service.node_service import NodeService
from exchange.service.views import SentView
from exchange.sharing.prepare import Submission
from exchange.web.accounts import SESSION_COOKIE
from tests.node.records import information_request, referral

SCHOOL: Final = OrgId("urn:106123")
FRONT_DOOR: Final = OrgId("la:356")
NURSES: Final = OrgId("ods:X26ABC")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team", "nhs", "la"),
)
PASSWORD: Final = "correct horse battery staple"  # noqa: S105 - test accounts' password
#: Quick retries, so a delivery across nodes takes moments.
DELIVERY: Final = DeliveryConfig(backoff_base=0.2, backoff_max=2.0, poll_interval=0.05)
CSRF_RE: Final = re.compile(r'name="csrf_token" value="([^"]+)"')
#: A word in every synthetic record's description: it must never reach a page.
SENTINEL: Final = "Zebracorn"


@dataclass
class PageClient:
    """A client with a session cookie, talking to one node's pages."""

    http: aiohttp.ClientSession
    base: str
    user: User

    async def get(self, path: str) -> tuple[int, str]:
        """GET a page without following redirects: its status and text."""
        async with self.http.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text()

    async def post(self, path: str, form: dict[str, str], page: str) -> tuple[int, str]:
        """POST ``form`` with the CSRF token of ``page``; return the status and the answer."""
        match = CSRF_RE.search(page)
        assert match is not None, "the page has no form token"
        data = {"csrf_token": html.unescape(match.group(1)), **form}
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as response:
            return response.status, await response.text()


@dataclass
class SentNodes:
    """The running nodes, and what the tests do with them."""

    deployment: Deployment
    ssl_context: ssl.SSLContext
    clients: list[aiohttp.ClientSession]
    secrets: dict[str, TotpSecret] = field(default_factory=dict)

    def service(self, org: OrgId) -> NodeService:
        """Return the service of the node serving ``org``."""
        return self.deployment.node_of(org).service

    def url(self, org: OrgId) -> str:
        """Return the base URL of the node serving ``org``."""
        spec = next(s for s in ORGS if s.org == org)
        return self.deployment.url(spec.node)

    @staticmethod
    def user(org: OrgId, role: Role) -> User:
        """Return the user of ``role`` in ``org``."""
        return User(f"{org}/{role}", org, f"{role} of {org}", role)

    async def client(self, org: OrgId, role: Role) -> PageClient:
        """Return a client signed in as ``role`` of ``org`` (the account is made if need be).

        The first sign-in sets up the account's authenticator app; later ones give a code
        from it, at the node's clock (which a test may have moved).
        """
        user = self.user(org, role)
        service = self.service(org)
        accounts = service.accounts
        email = f"{role}@{org.replace(':', '-')}.example".lower()
        if user.id not in self.secrets:
            token_hash = hashlib.sha256(f"unused {user.id}".encode()).digest()
            await accounts.create_user(user, token_hash, email=email, password=PASSWORD)
        step = await accounts.begin_sign_in(email, PASSWORD)
        token, _ = await accounts.start_session(step)
        if user.id not in self.secrets:
            enrolment = await accounts.enrol_totp(token)
            self.secrets[user.id] = enrolment.secret
            confirmed = await accounts.confirm_totp_enrolment(
                token, code_at(enrolment.secret, service.clock())
            )
            token = confirmed.token
        else:
            # A code step already used is refused: the next one is accepted too.
            code = code_at(self.secrets[user.id], service.clock() + STEP)
            token, _ = await accounts.verify_second_factor(token, code)
        jar = aiohttp.CookieJar(unsafe=True)
        base = self.url(org)
        jar.update_cookies({SESSION_COOKIE: token}, URL(base))
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl_context), cookie_jar=jar
        )
        self.clients.append(http)
        return PageClient(http, base, user)

    async def refer(self, *, description: str = f"Synthetic referral. {SENTINEL}.") -> bytes:
        """Submit a referral from the school's DSL to the front door; return its digest."""
        submission = Submission(
            recipients=(FRONT_DOOR,),
            purpose="safeguarding-referral",
            record_kind="referral",
            record=referral(description=description),
            categories=("identity", "safeguarding-concerns"),
            reason="Concerns about neglect meet the threshold for a referral.",
        )
        submitted = await self.service(SCHOOL).submit(self.user(SCHOOL, "dsl"), submission)
        return submitted.digest

    async def request_information(self, due: str) -> bytes:
        """Submit the front door's information request to the school; return its digest."""
        submission = Submission(
            recipients=(SCHOOL,),
            purpose="information-request",
            record_kind="information-request",
            record=information_request(due=due),
            categories=("identity", "safeguarding-concerns"),
            reason="Section 47 enquiries have started; we need the school's information.",
        )
        submitted = await self.service(FRONT_DOOR).submit(self.user(FRONT_DOOR, "dsl"), submission)
        return submitted.digest

    async def sent_until(
        self, org: OrgId, digest: bytes, done: Callable[[SentView], bool], timeout: float = 20
    ) -> SentView:
        """Wait until ``org``'s sent item ``digest`` is as ``done`` wants it; return it."""
        service = self.service(org)
        deadline = time.monotonic() + timeout
        while True:
            view = await service.sent_item(self.user(org, "dsl"), digest)
            if done(view):
                return view
            assert time.monotonic() < deadline, f"the sent item never got there: {view}"
            await asyncio.sleep(0.05)


def delivered(view: SentView) -> bool:
    """Whether every recipient's node sent its ``delivered`` receipt."""
    return all(r.status == "delivered" for r in view.recipients)


async def sent_nodes(folder: Path) -> AsyncIterator[SentNodes]:
    """Start the two nodes in ``folder``; stop them and close the clients afterwards."""
    deployment = await start_deployment(
        folder, ORGS, kdf=KdfParams.fast_for_tests(), delivery=DELIVERY
    )
    assert deployment.ca_file is not None
    context = ssl.create_default_context(cafile=str(deployment.ca_file))
    nodes = SentNodes(deployment, context, [])
    try:
        yield nodes
    finally:
        for http in nodes.clients:
            await http.close()
        await deployment.stop()
