"""The running nodes of the web page tests, and the people signed in to their pages.

Three organisations (:data:`ORGS`): Hillside Primary School (:data:`SCHOOL`) on its own
node, and Stockport's children's front door (:data:`FRONT_DOOR`) and school nursing team
(:data:`NURSES`), two tenants of one LA node, so the tests can check that one tenant never
reaches the other's items or accounts. :func:`running_world` starts them over TLS, with a
fast key-file KDF and quick delivery retries.

:meth:`World.person` makes a person of a role with a confirmed authenticator app and a
signed-in session, through the service as a first sign-in does, and returns a
:class:`~tests.web.page_client.PageClient` holding the session's cookie. Each call makes a
new account (``dsl@hillside.example``, then ``dsl-2@hillside.example``...), so tests that
share nodes never share a person. :meth:`World.account` makes an account only, for tests
that sign in through the pages (:meth:`World.sign_in`).

The synthetic child and the records about them are in :mod:`tests.web.synthetic`.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
from yarl import URL

from exchange.auth.api_token import token_hash
from exchange.auth.sso_rules import SsoProvider
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
from tests.web.page_client import PageClient

SCHOOL: Final = OrgId("urn:106123")
FRONT_DOOR: Final = OrgId("la:356")
NURSES: Final = OrgId("ods:X26ABC")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team", "nhs", "la"),
)
#: The part of each organisation's test addresses after the role: ``dsl@hillside.example``.
MAIL_DOMAINS: Final = {SCHOOL: "hillside", FRONT_DOOR: "frontdoor", NURSES: "nurses"}
PASSWORD: Final = "correct horse battery staple"  # noqa: S105 - test accounts' password
#: Quick retries, so a delivery across nodes takes moments; a dead letter after an hour,
#: which a test reaches by a route that refuses (or by moving a node's clock).
DELIVERY: Final = DeliveryConfig(
    timeout=2.0, backoff_base=0.05, backoff_max=0.2, poll_interval=0.02, dead_letter_after=3600.0
)
#: How long a test waits for something to cross between the nodes.
WAIT: Final = 20.0


def actor(org: OrgId, role: Role) -> User:
    """Return the user of ``role`` in ``org`` as the service sees them when they act."""
    return User(f"{org}/{role}", org, f"{role.upper()} of {org}", role)


@dataclass(frozen=True)
class Account:
    """A staff account: who it is, its address, its app's secret, its API token and codes."""

    user: User
    email: str
    secret: TotpSecret | None = field(repr=False)
    api_token: str = field(repr=False)
    #: The recovery codes shown when the app was set up (none without an app).
    recovery_codes: tuple[str, ...] = field(default=(), repr=False)


@dataclass
class Person(PageClient):
    """A page client signed in as one account."""

    account: Account | None = None

    @property
    def user(self) -> User:
        """The person's user."""
        assert self.account is not None
        return self.account.user


@dataclass
class World:
    """The running nodes, the accounts made on them and the clients talking to them."""

    deployment: Deployment
    ssl_context: ssl.SSLContext
    #: A client with no cookies (the staff API, or a page asked for without a session).
    http: aiohttp.ClientSession
    clients: list[aiohttp.ClientSession] = field(default_factory=list)
    made: Counter[tuple[OrgId, Role]] = field(default_factory=Counter)

    def service(self, org: OrgId) -> NodeService:
        """Return the service of the node serving ``org``."""
        return self.deployment.node_of(org).service

    def base(self, org: OrgId) -> str:
        """Return the base URL of the node serving ``org``."""
        return self.deployment.url(next(s.node for s in ORGS if s.org == org))

    def ops_base(self, org: OrgId) -> str:
        """Return the base URL of the operations listener of the node serving ``org``."""
        return self.deployment.ops_url(next(s.node for s in ORGS if s.org == org))

    def client(
        self, org: OrgId, *, session: str | None = None, account: Account | None = None
    ) -> Person:
        """Return a client of ``org``'s node with its own cookie jar (holding ``session``)."""
        base = self.base(org)
        # unsafe=True: the jar keeps cookies of an IP address host (127.0.0.1), as browsers do.
        jar = aiohttp.CookieJar(unsafe=True)
        if session is not None:
            jar.update_cookies({SESSION_COOKIE: session}, URL(base))
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl_context), cookie_jar=jar
        )
        self.clients.append(http)
        return Person(http, base, account=account)

    async def account(self, org: OrgId, role: Role, *, app: bool = True) -> Account:
        """Make a new account of ``role`` in ``org``; with ``app``, a confirmed authenticator app.

        The app is confirmed with the code of the step before now, so a sign-in through the
        pages may use the present one.
        """
        account, session = await self._new_account(org, role, app=app)
        if session is not None:
            await self.service(org).accounts.end_session(session)
        return account

    async def person(self, org: OrgId, role: Role) -> Person:
        """Make a new account of ``role`` in ``org``, signed in with its app; its client."""
        account, session = await self._new_account(org, role, app=True)
        return self.client(org, session=session, account=account)

    async def _new_account(
        self, org: OrgId, role: Role, *, app: bool
    ) -> tuple[Account, str | None]:
        self.made[(org, role)] += 1
        number = self.made[(org, role)]
        suffix = "" if number == 1 else f"-{number}"
        user = User(f"{org}/{role}{suffix}", org, f"{role.upper()} of {org}", role)
        email = f"{role}{suffix}@{MAIL_DOMAINS[org]}.example"
        api_token = secrets.token_urlsafe(32)
        service = self.service(org)
        accounts = service.accounts
        await accounts.create_user(user, token_hash(api_token), email=email, password=PASSWORD)
        if not app:
            return Account(user, email, None, api_token), None
        step = await accounts.begin_sign_in(email, PASSWORD)
        token, _ = await accounts.start_session(step)
        enrolment = await accounts.enrol_totp(token)
        confirmed = await accounts.confirm_totp_enrolment(
            token, code_at(enrolment.secret, service.clock() - STEP)
        )
        account = Account(user, email, enrolment.secret, api_token, confirmed.recovery_codes)
        return account, confirmed.token

    async def sign_in(self, client: PageClient, account: Account) -> None:
        """Sign in through the pages: the password, then the app's present code if it has one."""
        _, page, _ = await client.get("/sign-in")
        status, _, headers = await client.post(
            "/sign-in", {"email": account.email, "password": PASSWORD}, page
        )
        assert status == 303, status
        if account.secret is None:
            return
        assert headers["Location"] == "/sign-in/security-code"
        _, page, _ = await client.get("/sign-in/security-code")
        code = code_at(account.secret, self.service(account.user.org).clock())
        status, _, _ = await client.post("/sign-in/security-code", {"code": code}, page)
        assert status == 303, status

    async def account_number(self, org: OrgId, email: str) -> int:
        """Return the number of the account with address ``email``."""
        account = await self.service(org).store.account_by_email(email.casefold())
        assert account is not None
        return account.id

    # --- what the tests make happen, and wait for -----------------------------------------

    async def submit(self, sender: User, submission: Submission) -> bytes:
        """Submit as ``sender``; return the digest (delivery goes on in the background)."""
        return (await self.service(sender.org).submit(sender, submission)).digest

    async def send(self, sender: User, submission: Submission) -> bytes:
        """Submit as ``sender`` and wait until every recipient holds it; return its digest."""
        digest = await self.submit(sender, submission)
        for recipient in submission.recipients:
            store = self.service(recipient).store
            deadline = time.monotonic() + WAIT
            while await store.inbox_item(recipient, digest) is None:
                assert time.monotonic() < deadline, "the item was not delivered"
                await asyncio.sleep(0.02)
        return digest

    async def sent_until(
        self, org: OrgId, digest: bytes, done: Callable[[SentView], bool], timeout: float = WAIT
    ) -> SentView:
        """Wait until ``org``'s sent item ``digest`` is as ``done`` wants it; return it."""
        service = self.service(org)
        deadline = time.monotonic() + timeout
        while True:
            view = await service.sent_item(actor(org, "dsl"), digest)
            if done(view):
                return view
            assert time.monotonic() < deadline, f"the sent item never got there: {view}"
            await asyncio.sleep(0.02)

    async def inbox_state_until(self, org: OrgId, digest: bytes, state: str) -> None:
        """Wait until ``org``'s received item ``digest`` is in ``state``."""
        store = self.service(org).store
        deadline = time.monotonic() + WAIT
        while (item := await store.inbox_item(org, digest)) is None or item.state != state:
            assert time.monotonic() < deadline, f"the item never became {state}"
            await asyncio.sleep(0.02)

    async def recall(self, sender: Person, digest: bytes) -> None:
        """Recall a sent item through the staff API, as ``sender``."""
        assert sender.account is not None
        async with self.http.post(
            f"{sender.base}/api/v1/sent/{digest.hex()}/recall",
            json={"reason": "Sent to the wrong organisation"},
            headers={"Authorization": f"Bearer {sender.account.api_token}"},
        ) as response:
            assert response.status == 200, await response.text()

    def clock_moved(
        self, *orgs: OrgId, to: float | None = None, by: float = 0.0
    ) -> AbstractContextManager[None]:
        """Run the nodes serving ``orgs`` at ``to`` (or ``by`` seconds on), then put them back."""
        return clocks_moved([self.service(org) for org in orgs], to=to, by=by)


@contextmanager
def clocks_moved(
    services: Iterable[NodeService], *, to: float | None = None, by: float = 0.0
) -> Iterator[None]:
    """Run the services at ``to`` (or ``by`` seconds on) until the block ends, then put them back.

    Tenants of one node share a service: each service is moved once.
    """
    unique = {id(s): s for s in services}.values()
    saved = [(s, s.clock) for s in unique]
    offset = by if to is None else to - time.time()
    for service in unique:
        service.clock = lambda: time.time() + offset
    try:
        yield
    finally:
        for service, clock in saved:
            service.clock = clock


def delivered(view: SentView) -> bool:
    """Whether every recipient's node sent its ``delivered`` receipt."""
    return all(r.status == "delivered" for r in view.recipients)


@asynccontextmanager
async def running_world(
    folder: Path, *, max_envelope_bytes: int | None = None, sso: Sequence[SsoProvider] = ()
) -> AsyncIterator[World]:
    """Start the school and LA nodes in ``folder``; stop them and close the clients afterwards.

    ``max_envelope_bytes``: the nodes' ``[limits]`` setting, if not the default; ``sso``
    single sign-on providers.
    """
    deployment = await start_deployment(
        folder, ORGS, kdf=KdfParams.fast_for_tests(), delivery=DELIVERY,
        max_envelope_bytes=max_envelope_bytes, sso=sso,
    )  # fmt: skip
    try:
        assert deployment.ca_file is not None
        context = ssl.create_default_context(cafile=str(deployment.ca_file))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            world = World(deployment, context, http)
            try:
                yield world
            finally:
                for client in world.clients:
                    await client.close()
    finally:
        await deployment.stop()
