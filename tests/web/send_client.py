"""A signed-in page client for the send tests: a school node and an LA node, real TLS.

:func:`send_exchange` starts Hillside Primary School (``school``) and Stockport's front
door (``la``), each with a DSL, a member of staff and a DPO whose authenticator apps are
set up; :meth:`SendExchange.client` signs one in through the pages (password, then a code)
and returns a :class:`Client` with its own cookie jar.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp

from exchange.auth.totp import STEP, TotpSecret, code_at
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import Role, User
from exchange.service.node_service import NodeService
from exchange.web.accounts import SESSION_COOKIE

SCHOOL: Final = OrgId("urn:106123")
FRONT_DOOR: Final = OrgId("la:356")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door", "la", "la"),
)
PASSWORD: Final = "correct horse battery staple"  # noqa: S105 - test accounts' password
CSRF_RE: Final = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(page: str) -> str:
    """Return the CSRF token of a page's first form."""
    match = CSRF_RE.search(page)
    assert match is not None, "the page has no form token"
    return html.unescape(match.group(1))


@dataclass
class Client:
    """A browser-like client signed in to one node's pages."""

    http: aiohttp.ClientSession
    base: str
    visited: list[str] = field(default_factory=list)

    async def get(self, path: str) -> tuple[int, str, str]:
        """GET a page without following redirects: status, text and Location (if any)."""
        self.visited.append(path)
        async with self.http.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    async def post(
        self, path: str, form: dict[str, str] | list[tuple[str, str]], page: str
    ) -> tuple[int, str, str]:
        """POST a form with the token of the page it came from: status, text, Location."""
        fields = list(form.items()) if isinstance(form, dict) else list(form)
        data = [("csrf_token", token_of(page)), *fields]
        self.visited.append(path)
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    async def upload(
        self, path: str, page: str, *, name: str, data: bytes, fields: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """POST the upload form as a browser does: token first, fields, then the file."""
        form = aiohttp.FormData()
        form.add_field("csrf_token", token_of(page))
        for key, value in (fields or {}).items():
            form.add_field(key, value)
        form.add_field(
            "file", io.BytesIO(data), filename=name, content_type="application/octet-stream"
        )
        self.visited.append(path)
        async with self.http.post(self.base + path, data=form, allow_redirects=False) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    def session_token(self) -> str:
        """Return the session cookie's value."""
        for cookie in self.http.cookie_jar:
            if cookie.key == SESSION_COOKIE:
                return cookie.value
        raise AssertionError("no session cookie")


@dataclass
class SendExchange:
    """The two nodes, their accounts' app secrets, and a way to sign a client in."""

    deployment: Deployment
    ca: ssl.SSLContext
    secrets: dict[tuple[OrgId, Role], TotpSecret]
    last_step: dict[tuple[OrgId, Role], int] = field(default_factory=dict)

    def service(self, org: OrgId) -> NodeService:
        """Return the service of the node serving ``org``."""
        return self.deployment.node_of(org).service

    def user(self, org: OrgId, role: Role) -> User:
        """Return the user of ``role`` in ``org``."""
        return User(f"{org}/{role}", org, f"{role} of {org}", role)

    def url(self, org: OrgId) -> str:
        """Return the base URL of the node serving ``org``."""
        node = next(s.node for s in ORGS if s.org == org)
        return self.deployment.url(node)

    def _code(self, key: tuple[OrgId, Role]) -> str:
        while True:
            step = int(time.time() // STEP)
            for candidate in (step, step + 1):
                if candidate > self.last_step.get(key, 0):
                    self.last_step[key] = candidate
                    return code_at(self.secrets[key], candidate * STEP)
            time.sleep(1)

    @asynccontextmanager
    async def client(self, org: OrgId, role: Role) -> AsyncIterator[Client]:
        """Yield a client signed in as ``role`` of ``org`` through the sign-in pages."""
        jar = aiohttp.CookieJar(unsafe=True)
        connector = aiohttp.TCPConnector(ssl=self.ca)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
            client = Client(http, self.url(org))
            _, page, _ = await client.get("/sign-in")
            email = f"{role}@{org.replace(':', '-')}.example"
            status, _, where = await client.post(
                "/sign-in", {"email": email, "password": PASSWORD}, page
            )
            assert (status, where) == (303, "/sign-in/security-code")
            _, page, _ = await client.get(where)
            status, _, _ = await client.post(where, {"code": self._code((org, role))}, page)
            assert status == 303
            client.visited.clear()
            yield client


async def _account(service: NodeService, org: OrgId, role: Role) -> tuple[TotpSecret, int]:
    user = User(f"{org}/{role}", org, f"{role} of {org}", role)
    accounts = service.accounts
    email = f"{role}@{org.replace(':', '-')}.example"
    token_hash = hashlib.sha256(f"unused {org} {role}".encode()).digest()
    await accounts.create_user(user, token_hash, email=email, password=PASSWORD)
    step = await accounts.begin_sign_in(email, PASSWORD)
    token, _ = await accounts.start_session(step)
    enrolment = await accounts.enrol_totp(token)
    now = time.time()
    confirmed = await accounts.confirm_totp_enrolment(token, code_at(enrolment.secret, now))
    await accounts.end_session(confirmed.token)
    return enrolment.secret, int(now // STEP)


@asynccontextmanager
async def send_exchange(folder: Path) -> AsyncIterator[SendExchange]:
    """Start the school and LA nodes with a DSL, staff and DPO account each."""
    deployment = await start_deployment(folder, ORGS, kdf=KdfParams.fast_for_tests())
    try:
        assert deployment.ca_file is not None
        ca = ssl.create_default_context(cafile=str(deployment.ca_file))
        running = SendExchange(deployment, ca, {})
        for spec in ORGS:
            for role in ("dsl", "staff", "dpo"):
                secret, step = await _account(running.service(spec.org), spec.org, role)
                running.secrets[(spec.org, role)] = secret
                running.last_step[(spec.org, role)] = step
        yield running
    finally:
        await deployment.stop()


#: Sentinel values of a child, which must never appear in a URL, title, log or draft file.
GIVEN: Final = "Zebedee"
FAMILY: Final = "Quillfeather"
UPN: Final = "W356200124001"
NHS: Final = "9990000018"
DOB: Final = ("14", "3", "2015")
SENTINELS: Final = (GIVEN, FAMILY, UPN, NHS, "2015-03-14")

#: A referral's answers, page by page, as a person types them.
REFERRAL: Final[dict[str, dict[str, str] | list[tuple[str, str]]]] = {
    "referrer": {
        "referrer.name": "Dana Lead",
        "referrer.role": "Designated safeguarding lead",
        "referrer.organisation": "urn:106123",
        "referrer.email": "dsl@hillside.example",
    },
    "consent": {
        "consent.parents_informed": "yes",
        "consent.consent_given": "yes",
    },
    "child": {
        "child.name.given_names": GIVEN,
        "child.name.family_name": FAMILY,
        "child.date_of_birth-day": DOB[0],
        "child.date_of_birth-month": DOB[1],
        "child.date_of_birth-year": DOB[2],
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

#: A small real-looking PDF (the container checks the first bytes).
PDF: Final = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
REASON: Final = "Concerns about neglect meet the threshold for a referral to the front door"


async def start(client: Client, kind: str = "referral") -> str:
    """Start a draft of ``kind``; return its first question's path."""
    _, page, _ = await client.get("/send")
    status, _, where = await client.post("/send", {"kind": kind}, page)
    assert status == 303, status
    return where


async def answer(client: Client, path: str, form: dict[str, str] | list[tuple[str, str]]) -> str:
    """Answer the page at ``path``; return where it went on to (fails with the errors)."""
    _, page, _ = await client.get(path)
    status, answered, where = await client.post(path, form, page)
    assert status == 303, re.findall(r'<a href="#[^"]*">([^<]*)</a>', answered)
    return where


async def fill_to_reason(client: Client) -> str:
    """Fill a referral to the front door with a PDF up to its reason; return the reason path."""
    where = await start(client)
    for form in REFERRAL.values():
        where = await answer(client, where, form)
    assert where.endswith("/files")
    _, page, _ = await client.get(where)
    status, _, _ = await client.upload(
        where, page, name="chronology.pdf", data=PDF, fields={"title": "Chronology"}
    )
    assert status == 303
    where = await answer(client, where + "/done", {})
    _, page, _ = await client.get(where + "?q=front+door")
    await client.post(where, {"action": "add", "recipient": str(FRONT_DOOR)}, page)
    where = await answer(client, where, {"action": "continue"})
    return await answer(client, where, {"purpose": "safeguarding-referral"})


#: The reason page's answers other than the reason.
REASON_CHOICES: Final = [
    ("categories", "identity"),
    ("categories", "family"),
    ("categories", "safeguarding-concerns"),
    ("lawful_basis", "art6.1.e+art9.2.g+dpa2018.sch1.para18"),
]


async def fill_referral(client: Client, *, reason: str = REASON) -> str:
    """Fill a referral to the front door with a PDF; return the "Check your answers" path."""
    where = await fill_to_reason(client)
    return await answer(client, where, [*REASON_CHOICES, ("reason", reason)])
