"""A school node and an LA node for the DPO pages' tests, with signed-in staff of each role.

:func:`dpo_world` starts Hillside's node (:data:`SCHOOL`) and Stockport's node serving the
front door (:data:`FRONT_DOOR`) and the nursing team (:data:`NURSES`). :meth:`World.client`
gives a client signed in as one role of one organisation: the account and its
authenticator app are set up through the service, as a first sign-in does, and the client
holds the session's cookie. :func:`send_referral` and :func:`record_not_shared` make the
register rows the pages show, through the service.
"""

from __future__ import annotations

import hashlib
import html
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp

from exchange.auth.totp import code_at
from exchange.config import DeliveryConfig
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import Role, SubjectKind, User
from exchange.service.node_service import NodeService
from exchange.sharing.prepare import Submission
from exchange.web.accounts import SESSION_COOKIE
from tests.node.records import child, referral

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


def csrf_token(page: str) -> str:
    """Return the CSRF token of a page's forms."""
    match = CSRF_RE.search(page)
    assert match is not None, "the page has no form token"
    return html.unescape(match.group(1))


@dataclass
class Client:
    """A signed-in client of one node's pages."""

    http: aiohttp.ClientSession
    base: str

    async def get(self, path: str) -> tuple[int, str, aiohttp.ClientResponse]:
        """GET a path without following redirects: its status, text and response."""
        async with self.http.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text(), response

    async def post(
        self, path: str, form: dict[str, str], *, page: str
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        """POST ``form`` with the CSRF token of ``page``, without following redirects."""
        data = {"csrf_token": csrf_token(page), **form}
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as response:
            return response.status, await response.text(), response


@dataclass
class World:
    """The running nodes and the clients signed in to them."""

    deployment: Deployment
    ssl_context: ssl.SSLContext
    clients: list[aiohttp.ClientSession] = field(default_factory=list)
    roles: set[tuple[OrgId, Role]] = field(default_factory=set)

    def service(self, org: OrgId) -> NodeService:
        """Return the service of the node serving ``org``."""
        return self.deployment.node_of(org).service

    def url(self, org: OrgId) -> str:
        """Return the base URL of the node serving ``org``."""
        spec = next(s for s in ORGS if s.org == org)
        return self.deployment.url(spec.node)

    async def client(self, org: OrgId, role: Role) -> Client:
        """Return a client signed in as ``role`` of ``org`` (a new session each time)."""
        token = await self._session(org, role)
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl_context),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            cookies={SESSION_COOKIE: token},
        )
        self.clients.append(http)
        return Client(http, self.url(org))

    async def _session(self, org: OrgId, role: Role) -> str:
        accounts = self.service(org).accounts
        email = f"{role}@{org.replace(':', '-')}.example"
        if (org, role) not in self.roles:
            token_hash = hashlib.sha256(f"unused {org} {role}".encode()).digest()
            await accounts.create_user(user(org, role), token_hash, email=email, password=PASSWORD)
            self.roles.add((org, role))
        step = await accounts.begin_sign_in(email, PASSWORD)
        token, _ = await accounts.start_session(step)
        enrolment = await accounts.enrol_totp(token)
        confirmed = await accounts.confirm_totp_enrolment(
            token, code_at(enrolment.secret, self.service(org).clock())
        )
        return confirmed.token


def user(org: OrgId, role: Role) -> User:
    """Return the user of ``role`` in ``org``."""
    return User(f"{org}/{role}", org, f"{role} of {org}", role)


@asynccontextmanager
async def dpo_world(folder: Path) -> AsyncIterator[World]:
    """Start the school and LA nodes in ``folder``; stop them and the clients afterwards."""
    deployment = await start_deployment(
        folder, ORGS, kdf=KdfParams.fast_for_tests(), delivery=DELIVERY
    )
    assert deployment.ca_file is not None
    world = World(deployment, ssl.create_default_context(cafile=str(deployment.ca_file)))
    try:
        yield world
    finally:
        for http in world.clients:
            await http.close()
        await deployment.stop()


def referral_to_front_door(
    *, upn: str | None = None, nhs: str | None = None, born: str = "2015-03-14"
) -> Submission:
    """Return a referral of a child with these identifiers to the front door."""
    return Submission(
        recipients=(FRONT_DOOR,),
        purpose="safeguarding-referral",
        record_kind="referral",
        record=referral(subject=child(upn=upn, nhs=nhs, dob=born)),
        categories=("identity", "safeguarding-concerns"),
        reason="Concerns about neglect meet the threshold for a referral to the front door.",
    )


async def send_referral(
    world: World, *, upn: str | None = None, nhs: str | None = None, born: str = "2015-03-14"
) -> bytes:
    """Send a referral from Hillside's DSL to the front door; return its digest."""
    submission = referral_to_front_door(upn=upn, nhs=nhs, born=born)
    submitted = await world.service(SCHOOL).submit(user(SCHOOL, "dsl"), submission)
    return submitted.digest


async def not_shared(service: NodeService, org: OrgId, *, upn: str | None = None) -> int:
    """Record ``org``'s DSL's decision not to refer a child to the front door; return its id."""
    identifiers: list[tuple[SubjectKind, str]] = [] if upn is None else [("upn", upn)]
    return await service.record_not_shared(
        user(org, "dsl"),
        purpose="safeguarding-referral",
        recipients=[FRONT_DOOR],
        reason_code="not-proportionate",
        reason="Sharing now would not be proportionate to the concern raised.",
        record_kind="referral",
        identifiers=identifiers,
    )


async def record_not_shared(world: World, *, upn: str | None = None) -> int:
    """Record a decision of Hillside's not to share a referral; return its id."""
    return await not_shared(world.service(SCHOOL), SCHOOL, upn=upn)
