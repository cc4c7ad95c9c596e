"""A small exchange for browser journeys: three nodes, four organisations, staff of each role.

- ``school``: Hillside Primary School (:data:`SCHOOL`), which sends referrals and CP files.
- ``la``: Stockport's node, with two tenants on one node, the children's front door
  (:data:`FRONT_DOOR`) and the school nursing team (:data:`NURSES`), and a relay that keeps
  mailboxes for schools that collect.
- ``moorside``: Moorside Primary School (:data:`RECEIVING`), which has no public endpoint:
  what is sent to it waits in its relay mailbox on ``la`` until it collects.

Every organisation has an account for each role (:data:`ROLES`) with its password and a
confirmed authenticator app, made through the service as a person would (password, then the
app's code). :meth:`Exchange.page` gives a browser page signed in as one of them: the first
time through the real sign-in pages, after that from the saved cookies, so each test starts
signed in without repeating the journey that ``test_sign_in_journey.py`` tests.

The nodes run on a :class:`~tests.browser.server.BackgroundLoop` (Playwright's synchronous
API owns the test thread's loop); :meth:`Exchange.run` runs a coroutine there, for example a
service call that sets up an item or checks what a page did.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from playwright.sync_api import Browser, BrowserContext, Page, StorageState, expect

from exchange.auth.totp import STEP, TotpSecret, code_at
from exchange.config import DeliveryConfig, RelayConfig
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import Role, User
from exchange.service.node_service import NodeService
from tests.browser.accessibility import NO_JAVASCRIPT
from tests.browser.conftest import ACTION_TIMEOUT_MS, CONTEXT_OPTIONS
from tests.browser.server import BackgroundLoop
from tests.web.world import clocks_moved

T = TypeVar("T")

SCHOOL: Final = OrgId("urn:106123")
FRONT_DOOR: Final = OrgId("la:356")
NURSES: Final = OrgId("ods:X26ABC")
RECEIVING: Final = OrgId("urn:106124")

ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team", "nhs", "la"),
    OrgSpec(RECEIVING, "Moorside Primary School", "school", "moorside"),
)
#: Short names for the organisations, used in email addresses.
SLUGS: Final = {
    SCHOOL: "hillside",
    FRONT_DOOR: "frontdoor",
    NURSES: "nurses",
    RECEIVING: "moorside",
}
ROLES: Final[tuple[Role, ...]] = ("dsl", "staff", "dpo", "admin")
PASSWORD: Final = "correct horse battery staple"  # noqa: S105 - test accounts' password

#: Quick retries and collection, so a journey across nodes takes a second, not minutes.
DELIVERY: Final = DeliveryConfig(
    backoff_base=0.2, backoff_max=2.0, poll_interval=0.05, collect_interval=0.25
)


@dataclass
class StaffAccount:
    """A test account: who it is, how to sign in, and the last app code step it used."""

    org: OrgId
    role: Role
    email: str
    secret: TotpSecret = field(repr=False)
    last_step: int = 0

    @property
    def user_id(self) -> str:
        """The account's user id."""
        return f"{self.org}/{self.role}"

    def next_code(self) -> str:
        """Return an app code no sign-in has used yet (waiting for the next step if need be).

        The node refuses a code of a step already used and accepts one step either side of
        now, so a second sign-in within 30 seconds uses the next step's code.
        """
        while True:
            now = time.time()
            step = int(now // STEP)
            for candidate in (step, step + 1):
                if candidate > self.last_step:
                    self.last_step = candidate
                    return code_at(self.secret, candidate * STEP)
            time.sleep(1)


@dataclass
class Exchange:
    """The running nodes, their accounts, and signed-in browser pages."""

    loop: BackgroundLoop
    deployment: Deployment
    accounts: dict[tuple[OrgId, Role], StaffAccount]
    _states: dict[tuple[OrgId, Role], StorageState] = field(default_factory=dict)

    def run(self, coroutine: Coroutine[Any, Any, T], *, timeout: float = 30.0) -> T:
        """Run a coroutine on the nodes' loop and return its result."""
        return self.loop.run(coroutine, timeout=timeout)

    def url(self, org: OrgId) -> str:
        """Return the base URL of the node serving ``org`` (no final slash)."""
        spec = next(s for s in ORGS if s.org == org)
        return self.deployment.url(spec.node)

    def service(self, org: OrgId) -> NodeService:
        """Return the service of the node serving ``org``."""
        return self.deployment.node_of(org).service

    def clocks_moved(
        self, *orgs: OrgId, to: float | None = None, by: float = 0.0
    ) -> AbstractContextManager[None]:
        """Run the nodes serving ``orgs`` at ``to`` (or ``by`` seconds on), then put them back."""
        return clocks_moved([self.service(org) for org in orgs], to=to, by=by)

    def account(self, org: OrgId, role: Role) -> StaffAccount:
        """Return the account of ``role`` in ``org``."""
        return self.accounts[(org, role)]

    def user(self, org: OrgId, role: Role) -> User:
        """Return the user behind the account of ``role`` in ``org``."""
        return User(f"{org}/{role}", org, f"{role} of {org}", role)

    def sign_in(self, page: Page, org: OrgId, role: Role, *, at_node_time: bool = False) -> None:
        """Sign in on ``page`` through the pages: email, password, then the app's code.

        With ``at_node_time``, the code is the app's at the node's own time, which a test
        may have moved (``NodeService.clock``).
        """
        account = self.account(org, role)
        page.goto(self.url(org) + "/sign-in")
        page.get_by_label("Email address").fill(account.email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Continue").click()
        expect(page).to_have_title("Enter your security code – Secure exchange")
        if at_node_time:
            code = code_at(account.secret, self.service(org).clock())
        else:
            code = account.next_code()
        page.get_by_label("Enter your security code").fill(code)
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    def context(
        self, browser: Browser, org: OrgId, role: Role, *, javascript: bool = True
    ) -> BrowserContext:
        """Return a new browser context signed in as ``role`` of ``org``.

        The first context for an account signs in through the pages; later ones start from
        its saved cookies (the same server-side session). Close the context when done.
        """
        key = (org, role)
        context = new_context(browser, javascript=javascript, storage_state=self._states.get(key))
        if key not in self._states:
            page = context.new_page()
            self.sign_in(page, org, role)
            self._states[key] = context.storage_state()
            page.close()
        return context

    @contextmanager
    def page(
        self, browser: Browser, org: OrgId, role: Role, *, javascript: bool = True
    ) -> Iterator[Page]:
        """Yield a page signed in as ``role`` of ``org``; its context closes afterwards."""
        context = self.context(browser, org, role, javascript=javascript)
        try:
            yield context.new_page()
        finally:
            context.close()

    @contextmanager
    def page_at_node_time(
        self, browser: Browser, org: OrgId, role: Role, *, javascript: bool = True
    ) -> Iterator[Page]:
        """Yield a page signed in with the app's code at the node's (moved) time.

        For a test that has moved the node's clock (``NodeService.clock``): the sessions
        signed in before have timed out there, and the node takes the code of its own time.
        Sign in at a time no earlier than this account's last sign-in: the node refuses a
        step already used.
        """
        context = new_context(browser, javascript=javascript)
        try:
            page = context.new_page()
            self.sign_in(page, org, role, at_node_time=True)
            yield page
        finally:
            context.close()


def new_context(
    browser: Browser, *, javascript: bool = True, storage_state: StorageState | None = None
) -> BrowserContext:
    """Return a new context with the shared settings, trusting the nodes' test CA.

    ``storage_state``: the cookies of a session to start from. Close the context when done.
    """
    options: dict[str, Any] = {"java_script_enabled": javascript, "ignore_https_errors": True}
    if storage_state is not None:
        options["storage_state"] = storage_state
    context = browser.new_context(**options, **CONTEXT_OPTIONS)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    if not javascript:
        NO_JAVASCRIPT.add(context)
    return context


async def _add_account(service: NodeService, org: OrgId, role: Role) -> StaffAccount:
    """Create a user and account and confirm its authenticator app, as a first sign-in does."""
    email = f"{role}@{SLUGS[org]}.example"
    user = User(f"{org}/{role}", org, f"{role} of {org}", role)
    accounts = service.accounts
    token_hash = hashlib.sha256(f"unused {org} {role}".encode()).digest()
    await accounts.create_user(user, token_hash, email=email, password=PASSWORD)
    step = await accounts.begin_sign_in(email, PASSWORD)
    token, _ = await accounts.start_session(step)
    enrolment = await accounts.enrol_totp(token)
    now = time.time()
    confirmed = await accounts.confirm_totp_enrolment(token, code_at(enrolment.secret, now))
    await accounts.end_session(confirmed.token)
    return StaffAccount(org, role, email, enrolment.secret, last_step=int(now // STEP))


@contextmanager
def running_exchange(folder: Path, orgs: Sequence[OrgSpec] = ORGS) -> Iterator[Exchange]:
    """Start the nodes and accounts in ``folder``; stop them when the block ends.

    ``orgs``: some of :data:`ORGS` only, for a journey that needs fewer nodes; without
    Moorside there is no relay. After the nodes stop, their loop is closed and the garbage
    collector run at once, so a spare browser connection the servers never tracked is
    reclaimed here, not in a later test (see the warning filter in
    ``test_sign_in_journey.py``).
    """
    mailbox = any(spec.org == RECEIVING for spec in orgs)
    with BackgroundLoop() as loop:
        deployment: Deployment = loop.run(
            start_deployment(
                folder,
                orgs,
                kdf=KdfParams.fast_for_tests(),
                delivery=DELIVERY,
                routes={RECEIVING: (("mailbox", "la"),)} if mailbox else None,
                relays={"la": RelayConfig()} if mailbox else None,
            ),
            timeout=120,
        )
        try:
            accounts = {}
            for spec in orgs:
                service = deployment.node_of(spec.org).service
                for role in ROLES:
                    accounts[(spec.org, role)] = loop.run(_add_account(service, spec.org, role))
            yield Exchange(loop, deployment, accounts)
        finally:
            loop.run(deployment.stop(), timeout=60)
    gc.collect()
