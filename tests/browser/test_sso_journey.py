"""Single sign-on in Chromium, through a real OpenID provider, with JavaScript on and off.

The provider (npm oidc-provider, tests/oidc/provider.mjs) runs on loopback; the person
signs in on its own form. These tests check what only a browser shows: that the session
cookie (``SameSite=Strict``), set on the provider's redirect back from another site, is
sent on the way on from the node's "You have signed in" page; that a step-up through the
provider raises the session; that each bad answer (an ID token for another audience or
already expired, an authorization code used twice, a wrong ``state``, a person in no mapped
group) ends on a plain refusal with no session; and that the pages, a refusal included,
pass axe-core.
"""

from __future__ import annotations

import gc
import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect
from yarl import URL

from exchange.auth.sso_rules import RoleRule, SsoProvider
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams
from exchange.model import User
from exchange.service.node_service import NodeService
from exchange.service.sso import CALLBACK_PATH
from exchange.web.accounts import SESSION_COOKIE
from tests.browser.accessibility import assert_accessible
from tests.browser.server import BackgroundLoop
from tests.browser.test_sign_in_journey import _page
from tests.oidc.harness import Client, Person, Provider, running_provider

# As in test_sign_in_journey: Chromium's spare connection to a node that stopped.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__:"
    "pytest.PytestUnraisableExceptionWarning",
)

SCHOOL = OrgId("urn:106123")
SECRET_ENV = "EXCHANGE_TEST_SSO_BROWSER_SECRET"  # noqa: S105 - the variable's name
SECRET = secrets.token_urlsafe(32)
DSL_GROUP = "group-designated-leads"
LABEL = "Hillside sign-in"
#: Providers at the same issuer whose clients the provider answers wrongly, by their labels.
WRONG_AUDIENCE = "Test provider, wrong audience"
EXPIRED = "Test provider, expired tokens"
PEOPLE = {
    "lead": Person("lead@hillside.example", (DSL_GROUP,), ("pwd", "mfa"), name="Lead"),
    "outsider": Person("someone@elsewhere.example"),
}


@dataclass
class School:
    """The school's node (its base URL and service) and the provider."""

    base: str
    service: NodeService
    provider: Provider
    loop: BackgroundLoop


@pytest.fixture
def school(tmp_path: Path) -> Iterator[School]:
    """Start the provider, then a school node with it as its provider, one invited DSL."""
    os.environ[SECRET_ENV] = SECRET
    with BackgroundLoop() as loop:
        provider_cm = running_provider(tmp_path / "provider.log")
        provider = loop.run(provider_cm.__aenter__())
        try:
            providers = [
                SsoProvider(
                    id=provider_id, org=SCHOOL, label=label, issuer=provider.issuer,
                    client_id=client_id, roles=(RoleRule("dsl", group=DSL_GROUP),),
                    client_secret_env=SECRET_ENV, scopes=("openid", "email", "profile", "groups"),
                )
                for provider_id, label, client_id in (
                    ("hillside", LABEL, "exchange"),
                    ("wrongaud", WRONG_AUDIENCE, "exchange-wrong-aud"),
                    ("expired", EXPIRED, "exchange-expired"),
                )
            ]  # fmt: skip
            deployment: Deployment = loop.run(
                start_deployment(
                    tmp_path / "web",
                    [OrgSpec(SCHOOL, "Hillside Primary School", "school", "school")],
                    kdf=KdfParams.fast_for_tests(),
                    sso=providers,
                ),
                timeout=120,
            )
            try:
                base = deployment.url("school")
                back = [base + CALLBACK_PATH]
                clients = [
                    Client("exchange", SECRET, back),
                    Client("exchange-wrong-aud", SECRET, back, {"aud": "another-client"}),
                    Client("exchange-expired", SECRET, back, {"exp_offset": -600}),
                ]
                loop.run(provider.configure(clients, PEOPLE))
                service = deployment.node_of(SCHOOL).service
                user = User("u-lead", SCHOOL, "Lead", "dsl")
                loop.run(
                    service.accounts.create_user(
                        user, hashlib.sha256(b"lead").digest(), email="lead@hillside.example",
                        password="correct horse battery staple",  # noqa: S106 - a test's
                    )
                )  # fmt: skip
                yield School(base, service, provider, loop)
            finally:
                loop.run(deployment.stop(), timeout=60)
        finally:
            loop.run(provider_cm.__aexit__(None, None, None))
    os.environ.pop(SECRET_ENV, None)
    gc.collect()


@pytest.fixture(params=[True, False], ids=["javascript", "no-javascript"])
def staff_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """Return a page trusting the node's test certificate, with JavaScript on, then off."""
    yield from _page(browser, javascript=request.param)


def _sign_in_at_provider(page: Page, login: str) -> None:
    expect(page).to_have_title("Test provider sign-in")
    page.get_by_label("Username").fill(login)
    page.get_by_role("button", name="Sign in").click()


def _session(page: Page) -> str:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    return cookie["value"]


def test_signing_in_through_the_provider_reaches_the_inbox(
    school: School, staff_page: Page
) -> None:
    """The sign-in page's button, the provider, then the inbox: the session cookie works."""
    page = staff_page
    page.goto(school.base + "/sign-in?to=/inbox")
    assert_accessible(page)
    page.get_by_role("button", name=f"Sign in with {LABEL}").click()
    _sign_in_at_provider(page, "lead")
    # The "You have signed in" page continues by itself, same-site, with the new cookie.
    expect(page).to_have_title("Inbox – Secure exchange")
    expect(page.locator("header")).to_contain_text("Hillside Primary School")
    session = school.loop.run(school.service.accounts.session_for(_session(page)))
    assert session is not None
    assert session.method == "sso+mfa"


def test_a_step_up_through_the_provider_raises_the_session(
    school: School, staff_page: Page
) -> None:
    """Signed in, the person confirms it is them at the provider again; the factor is new."""
    page = staff_page
    page.goto(school.base + "/sign-in")
    page.get_by_role("button", name=f"Sign in with {LABEL}").click()
    _sign_in_at_provider(page, "lead")
    expect(page).to_have_title("Inbox – Secure exchange")
    before = school.loop.run(school.service.accounts.session_for(_session(page)))
    assert before is not None
    assert before.factor_at is not None

    page.goto(school.base + "/sign-in/sso/hillside?to=/inbox&step_up=1")
    _sign_in_at_provider(page, "lead")  # prompt=login: the provider asks again
    expect(page).to_have_title("Inbox – Secure exchange")
    after = school.loop.run(school.service.accounts.session_for(_session(page)))
    assert after is not None
    assert after.created == before.created
    assert after.factor_at is not None
    assert after.factor_at > before.factor_at


def test_a_person_in_no_mapped_group_gets_a_plain_refusal(school: School, staff_page: Page) -> None:
    """The refusal says what to do, names nothing of the person, and passes axe-core."""
    page = staff_page
    page.goto(school.base + "/sign-in")
    page.get_by_role("button", name=f"Sign in with {LABEL}").click()
    _sign_in_at_provider(page, "outsider")
    expect(page).to_have_title("You cannot sign in with this account – Secure exchange")
    text = page.locator("main").inner_text()
    assert f"Your {LABEL} account cannot sign in to this service" in text
    assert "someone@elsewhere.example" not in page.content()
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert_accessible(page)
    page.get_by_role("button", name="Go to the sign-in page").click()
    expect(page).to_have_title("Sign in – Secure exchange")


@pytest.fixture
def js_page(browser: Browser) -> Iterator[Page]:
    """Return a page trusting the node's test certificate, with JavaScript on."""
    yield from _page(browser, javascript=True)


def _refused_without_a_session(page: Page, school: School, title: str) -> None:
    expect(page).to_have_title(f"{title} – Secure exchange")
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert "eyJ" not in page.content()  # no token, no claim of the person's
    assert "lead@hillside.example" not in page.content()
    page.goto(school.base + "/inbox")
    expect(page).to_have_title("Sign in – Secure exchange")


@pytest.mark.parametrize("label", [WRONG_AUDIENCE, EXPIRED])
def test_an_id_token_for_another_audience_or_expired_is_refused(
    school: School, js_page: Page, label: str
) -> None:
    """The provider signs the person in, but its ID token is not for this node, or too old."""
    page = js_page
    page.goto(school.base + "/sign-in")
    page.get_by_role("button", name=f"Sign in with {label}").click()
    _sign_in_at_provider(page, "lead")
    _refused_without_a_session(page, school, "You could not sign in")
    assert_accessible(page)


def test_an_authorization_code_used_twice_is_refused(school: School, js_page: Page) -> None:
    """The provider's answer, replayed after the person signed out, opens nothing."""
    page = js_page
    answers: list[str] = []
    page.on("request", lambda r: answers.append(r.url) if CALLBACK_PATH in r.url else None)
    page.goto(school.base + "/sign-in")
    page.get_by_role("button", name=f"Sign in with {LABEL}").click()
    _sign_in_at_provider(page, "lead")
    expect(page).to_have_title("Inbox – Secure exchange")
    answer = answers[0]  # the provider's redirect back, with its code
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_title("You have signed out – Secure exchange")
    page.goto(answer)
    _refused_without_a_session(page, school, "You could not sign in")


def test_an_answer_with_a_wrong_state_is_refused(school: School, js_page: Page) -> None:
    """The provider's redirect back has its ``state`` changed: the sign-in is refused."""
    page = js_page
    tampered: list[str] = []

    def tamper(route: Route) -> None:
        # Chromium does not route the requests of a redirect chain again: follow the
        # provider's chain here (the context's cookies go with it) to its redirect back to
        # the node, and answer the first request with that redirect, its state changed.
        response = route.fetch(max_redirects=0)
        location = response.headers.get("location", "")
        while location.startswith(school.provider.issuer):
            response = page.context.request.get(location, max_redirects=0)
            location = response.headers.get("location", "")
        if CALLBACK_PATH not in location:
            route.fulfill(response=response)
            return
        wrong = URL(location).update_query(state=secrets.token_urlsafe(32))
        tampered.append(str(wrong))
        route.fulfill(status=303, headers={"location": str(wrong)})

    page.route(lambda url: url.startswith(school.provider.issuer), tamper)
    page.goto(school.base + "/sign-in")
    page.get_by_role("button", name=f"Sign in with {LABEL}").click()
    _sign_in_at_provider(page, "lead")
    _refused_without_a_session(page, school, "You could not sign in")
    assert len(tampered) == 1  # the answer did come back, with the wrong state
