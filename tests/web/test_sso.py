"""Single sign-on against a real OpenID provider (npm oidc-provider) and real nodes.

The provider (tests/oidc/provider.mjs) runs on loopback with three clients: a good one,
one whose ID tokens name another audience and one whose ID tokens have expired; the school
node has a provider setting for each, plus one that makes accounts for people who have
none (self-provisioning). A person signs in at the provider through its own form, with the
authentication methods (``amr``) the test gives them; the node's pages are driven as a
browser would, one request at a time, and every refusal is checked for its page, its
reason in the log, and for what it must not show.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from hashlib import sha256

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from exchange.auth.sso_rules import RoleRule, SsoProvider
from exchange.auth.totp import STEP, code_at
from exchange.model import User
from exchange.service.account_admin import operator
from exchange.service.node_service import NodeService
from exchange.service.sso import CALLBACK_PATH
from exchange.web.accounts import SESSION_COOKIE
from exchange.web.sso import PENDING_COOKIE
from tests.node.account_trail import account_events
from tests.oidc.harness import Client, Person, Provider, running_provider, sign_in_at_provider
from tests.web.page_client import Answer, PageClient
from tests.web.pages import parse
from tests.web.world import PASSWORD, SCHOOL, World, running_world

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.network,
    pytest.mark.subprocess,
]

SECRET_ENV = "EXCHANGE_TEST_SSO_SECRET"  # noqa: S105 - the variable's name
SECRET = secrets.token_urlsafe(32)
LABEL = "Test provider"
DSL_GROUP = "11111111-aaaa-4bbb-8ccc-000000000001"
ADMIN_GROUP = "11111111-aaaa-4bbb-8ccc-000000000002"
MFA = ("pwd", "mfa")

#: The provider's people, by username (their ``sub``).
PEOPLE = {
    "invited-dsl": Person("invited-dsl@hillside.example", (DSL_GROUP,), MFA),
    "app-dsl": Person("app-dsl@hillside.example", (DSL_GROUP,)),
    "app-dsl-mfa": Person("app-dsl@hillside.example", (DSL_GROUP,), MFA),
    "outsider": Person("someone@elsewhere.example"),
    "disabled-dsl": Person("disabled-dsl@hillside.example", (DSL_GROUP,), MFA),
    "unverified": Person("unverified@hillside.example", (DSL_GROUP,), MFA, email_verified=False),
    "admin-in-dsl-group": Person("admin-sso@hillside.example", (DSL_GROUP,), MFA),
    "newcomer": Person("newcomer@hillside.example", (DSL_GROUP,), MFA, name="New Comer"),
    "stranger": Person("stranger@hillside.example", (DSL_GROUP,), MFA),
    "second-sub": Person("invited-dsl@hillside.example", (DSL_GROUP,), MFA),
    "stepper": Person("stepper@hillside.example", (DSL_GROUP,), MFA),
    "linker": Person("linker@hillside.example", (DSL_GROUP,), MFA),
}


def settings(provider_id: str, client_id: str, issuer: str, **more: object) -> SsoProvider:
    """Return the school node's settings for one of the provider's clients."""
    return SsoProvider(
        id=provider_id,
        org=SCHOOL,
        label=LABEL,
        issuer=issuer,
        client_id=client_id,
        roles=(RoleRule("dsl", group=DSL_GROUP), RoleRule("admin", group=ADMIN_GROUP)),
        client_secret_env=SECRET_ENV,
        scopes=("openid", "email", "profile", "groups"),
        **more,  # type: ignore[arg-type]
    )


@dataclass
class SsoWorld:
    """The nodes, the provider and the node's log."""

    world: World
    provider: Provider
    log: io.StringIO

    @property
    def service(self) -> NodeService:
        """The school node's service."""
        return self.world.service(SCHOOL)

    def reasons(self) -> list[str]:
        """Return the reasons of every single sign-on refused so far, in order."""
        lines = (json.loads(line) for line in self.log.getvalue().splitlines() if line)
        return [e["outcome"] for e in lines if e.get("event") == "sso.refused"]


async def _account(world: World, email: str, role: str, *, app: bool) -> str:
    """Make an account with a password (and a confirmed app); return its user id."""
    service = world.service(SCHOOL)
    user = User(f"u-{email.split('@', 1)[0]}", SCHOOL, email, role)  # type: ignore[arg-type]
    accounts = service.accounts
    await accounts.create_user(
        user, sha256(email.encode()).digest(), email=email, password=PASSWORD
    )
    if app:
        token, _ = await accounts.start_session(await accounts.begin_sign_in(email, PASSWORD))
        enrolment = await accounts.enrol_totp(token)
        await accounts.confirm_totp_enrolment(
            token, code_at(enrolment.secret, service.clock() - STEP)
        )
    return user.id


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sso(
    tmp_path_factory: pytest.TempPathFactory, structured_log: io.StringIO
) -> AsyncIterator[SsoWorld]:
    """Start the provider, then the nodes with its settings, then give it its clients."""
    folder = tmp_path_factory.mktemp("sso")
    os.environ[SECRET_ENV] = SECRET
    async with running_provider(folder / "provider.log") as provider:
        issuer = provider.issuer
        providers = [
            settings("test", "exchange", issuer),
            settings("wrongaud", "exchange-wrong-aud", issuer),
            settings("expired", "exchange-expired", issuer),
            settings("selfserve", "exchange", issuer, self_provisioning=True),
        ]
        async with running_world(folder / "world", sso=providers) as world:
            back = [world.base(SCHOOL) + CALLBACK_PATH]
            await provider.configure(
                [
                    Client("exchange", SECRET, back),
                    Client("exchange-wrong-aud", SECRET, back, {"aud": "another-client"}),
                    Client("exchange-expired", SECRET, back, {"exp_offset": -600}),
                ],
                PEOPLE,
            )
            service = world.service(SCHOOL)
            admin = operator(SCHOOL)
            for name, email, role in (
                ("Invited Lead", "invited-dsl@hillside.example", "dsl"),
                ("Disabled Lead", "disabled-dsl@hillside.example", "dsl"),
                ("An Administrator", "admin-sso@hillside.example", "admin"),
            ):
                await service.account_admin.invite(admin, name=name, email=email, role=role)
            await _account(world, "app-dsl@hillside.example", "dsl", app=True)
            await _account(world, "stepper@hillside.example", "dsl", app=False)
            disabled = await service.store.account_by_email("disabled-dsl@hillside.example")
            assert disabled is not None
            await service.accounts.set_account_disabled(admin, disabled.user.id, disabled=True)
            yield SsoWorld(world, provider, structured_log)
    os.environ.pop(SECRET_ENV, None)


def _cookie(client: PageClient, name: str) -> str | None:
    morsel = client.http.cookie_jar.filter_cookies(URL(client.base)).get(name)
    return None if morsel is None else morsel.value


async def _at_provider(
    client: PageClient, location: str, login: str, amr: tuple[str, ...] = ()
) -> str:
    """Sign ``login`` in at the provider; return the callback path it sends back to."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        back = await sign_in_at_provider(
            browser, location, login, callback_prefix=client.base + CALLBACK_PATH, amr=amr
        )
    return back.removeprefix(client.base)


async def sso_sign_in(
    client: PageClient, provider_id: str, login: str, query: str = "", amr: tuple[str, ...] = ()
) -> tuple[Answer, str]:
    """Start a sign-in at the node, sign in at the provider, return the callback's answer."""
    status, _, headers = await client.get(f"/sign-in/sso/{provider_id}{query}")
    assert status == 303, status
    assert _cookie(client, PENDING_COOKIE) is not None
    callback = await _at_provider(client, headers["Location"], login, amr)
    return await client.get(callback), callback


def _refused(answer: Answer, status: int = 403) -> str:
    got, page, _ = answer
    assert got == status, got
    assert "Secure exchange" in page
    return page


async def test_the_sign_in_page_offers_each_provider(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    _, page, _ = await client.get("/sign-in?to=/inbox")
    assert f"Sign in with {LABEL}" in page
    assert 'href="/sign-in/sso/test?to=%2Finbox"' in page
    assert "step_up" not in page


async def test_an_invited_lead_signs_in_with_mfa_and_is_linked(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    (status, page, _), _ = await sso_sign_in(client, "test", "invited-dsl", "?to=/inbox")
    assert status == 200
    assert "You have signed in" in page
    assert 'content="0; url=/inbox"' in page
    assert _cookie(client, PENDING_COOKIE) in (None, "")
    token = _cookie(client, SESSION_COOKIE)
    assert token
    session = await sso.service.accounts.session_for(token)
    assert session is not None
    assert session.signed_in
    assert session.method == "sso+mfa"
    assert session.factor_at is not None
    assert (await client.get("/inbox"))[0] == 200
    account = await sso.service.store.account_by_email("invited-dsl@hillside.example")
    assert account is not None
    assert not account.invited
    linked = await sso.service.store.sso_linked_user(sso.provider.issuer, "invited-dsl")
    assert linked == account.user.id
    # The link is by (issuer, sub) from now on: another person of the provider with the
    # same address does not sign in as this account.
    answer, _ = await sso_sign_in(sso.world.client(SCHOOL), "test", "second-sub")
    _refused(answer)
    assert sso.reasons()[-1] == "link-taken"


async def test_without_mfa_a_reader_continues_to_the_security_code(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    (status, page, _), _ = await sso_sign_in(client, "test", "app-dsl", "?to=/inbox")
    assert status == 200
    assert 'content="0; url=/sign-in/security-code?to=%2Finbox"' in page
    token = _cookie(client, SESSION_COOKIE)
    assert token
    session = await sso.service.accounts.session_for(token)
    assert session is not None
    assert session.method == "sso"
    assert not session.signed_in
    assert (await client.get("/inbox"))[0] == 303


@pytest.mark.parametrize(
    ("provider_id", "login", "reason"),
    [
        ("wrongaud", "invited-dsl", "audience"),
        ("expired", "invited-dsl", "expired"),
        ("test", "outsider", "no-mapped-role"),
        ("test", "disabled-dsl", "disabled"),
        ("test", "unverified", "email-unverified"),
        ("test", "admin-in-dsl-group", "role-not-mapped"),
        ("test", "stranger", "no-account"),
    ],
)
async def test_refusals_say_nothing_of_the_person(
    sso: SsoWorld, provider_id: str, login: str, reason: str
) -> None:
    client = sso.world.client(SCHOOL)
    answer, callback = await sso_sign_in(client, provider_id, login)
    page = _refused(answer)
    assert sso.reasons()[-1] == reason
    assert _cookie(client, SESSION_COOKIE) is None
    person = PEOPLE[login]
    for secret in (person.email, login, *person.groups, "code=", "eyJ"):
        assert secret not in page
    assert "/sign-in" in page
    # The same answer again finds no sign-in under way: its cookie was cleared.
    _refused(await client.get(callback))
    assert sso.reasons()[-1] == reason  # refused before the provider was asked again


async def test_self_provisioning_makes_an_account_with_the_mapped_role(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    (status, _, _), _ = await sso_sign_in(client, "selfserve", "newcomer")
    assert status == 200
    account = await sso.service.store.account_by_email("newcomer@hillside.example")
    assert account is not None
    assert account.user.role == "dsl"
    assert account.user.name == "New Comer"
    assert account.user.org == SCHOOL
    # It has no password: the password form refuses it like any wrong password.
    step = await sso.service.accounts.begin_sign_in("newcomer@hillside.example", "")
    assert not step.accepted


async def test_a_replayed_authorization_code_is_refused(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    status, _, headers = await client.get("/sign-in/sso/test")
    assert status == 303
    pending = _cookie(client, PENDING_COOKIE)
    assert pending is not None
    callback = await _at_provider(client, headers["Location"], "invited-dsl")
    assert (await client.get(callback))[0] == 200
    # An attacker holding the whole answer and the sign-in's cookie: the code works once.
    thief = sso.world.client(SCHOOL)
    thief.http.cookie_jar.update_cookies({PENDING_COOKIE: pending}, URL(client.base))
    _refused(await thief.get(callback))
    assert sso.reasons()[-1] == "code-refused"
    assert _cookie(thief, SESSION_COOKIE) is None


async def test_a_wrong_state_is_refused_before_the_code_is_used(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    status, _, headers = await client.get("/sign-in/sso/test")
    assert status == 303
    pending = _cookie(client, PENDING_COOKIE)
    callback = await _at_provider(client, headers["Location"], "invited-dsl")
    wrong = URL(callback).update_query(state=secrets.token_urlsafe(32))
    _refused(await client.get(str(wrong)))
    assert sso.reasons()[-1] == "state"
    # The code was not spent: with the right state, the same sign-in still finishes.
    assert pending is not None
    client.http.cookie_jar.update_cookies({PENDING_COOKIE: pending}, URL(client.base))
    assert (await client.get(callback))[0] == 200


async def test_an_answer_without_a_sign_in_under_way_is_refused(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    page = _refused(await client.get(f"{CALLBACK_PATH}?code=abc&state=def"))
    assert "Start again" in page


async def test_an_unknown_provider_is_not_found(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    assert (await client.get("/sign-in/sso/nobody"))[0] == 404


async def test_step_up_through_the_provider_raises_the_session(sso: SsoWorld) -> None:
    client = sso.world.client(SCHOOL)
    (status, _, _), _ = await sso_sign_in(client, "test", "stepper")
    assert status == 200
    token = _cookie(client, SESSION_COOKIE)
    assert token
    service = sso.service
    before = await service.accounts.session_for(token)
    assert before is not None
    assert before.signed_in
    secrets = (PEOPLE["stepper"].email, before.user.name, before.user.id, "stepper")
    async with account_events(service.store, SCHOOL, secrets) as events:
        (status, page, _), _ = await sso_sign_in(client, "test", "stepper", "?to=/inbox&step_up=1")
        assert status == 200
        assert "You have confirmed it is you" in page
        new_token = _cookie(client, SESSION_COOKIE)
        assert new_token
        assert new_token != token
        after = await service.accounts.session_for(new_token)
        assert after is not None
        assert after.created == before.created
        assert after.factor_at is not None
        assert before.factor_at is not None
        assert after.factor_at > before.factor_at
        assert after.method == "sso+mfa"
        assert await service.accounts.session_for(token) is None

        # A provider that asserts one factor only does not count as a step-up.
        answer, _ = await sso_sign_in(
            client, "test", "stepper", "?to=/inbox&step_up=1", amr=("pwd",)
        )
        page = _refused(answer)
        assert "/sign-in/confirm?to=%2Finbox" in page
        assert sso.reasons()[-1] == "no-mfa-asserted"

        # Nor does someone else signing in at the provider.
        answer, _ = await sso_sign_in(client, "test", "invited-dsl", "?step_up=1")
        _refused(answer)
        assert sso.reasons()[-1] == "other-person"
    stepper = [(e.kind, e.method, e.detail) for e in events if e.user_id == before.user.id]
    assert stepper == [
        ("step-up", "sso+mfa", ""),
        ("sign-in-refused", "sso", "no-mfa-asserted"),
        ("sign-in-refused", "sso", "other-person"),
    ]


@pytest.mark.parametrize(
    ("login", "reason"),
    [("disabled-dsl", "disabled"), ("admin-in-dsl-group", "role-not-mapped"), ("outsider", None)],
)
async def test_a_refused_account_is_one_event_naming_no_one(
    sso: SsoWorld, login: str, reason: str | None
) -> None:
    """A known account refused is one ``sign-in-refused`` by ``sso``; no account, no event."""
    person = PEOPLE[login]
    account = await sso.service.store.account_by_email(person.email)
    named = () if account is None else (account.user.name, account.user.id)
    secrets = (person.email, login, *named)
    async with account_events(sso.service.store, SCHOOL, secrets) as events:
        answer, _ = await sso_sign_in(sso.world.client(SCHOOL), "test", login)
        _refused(answer)
    if account is None:
        assert reason is None
        assert events == []
    else:
        assert [(e.kind, e.user_id, e.method, e.detail) for e in events] == [
            ("sign-in-refused", account.user.id, "sso", reason)
        ]


async def test_a_link_is_recorded_and_shown_to_the_administrator(sso: SsoWorld) -> None:
    """Linking by address is one ``sso-linked`` event; the account page says "Linked to"."""
    world = sso.world
    email = PEOPLE["linker"].email
    user_id = await _account(world, email, "dsl", app=False)
    number = await world.account_number(SCHOOL, email)
    admin_account = await world.account(SCHOOL, "admin", app=False)
    admin = world.client(SCHOOL, account=admin_account)
    await world.sign_in(admin, admin_account)
    status, page, _ = await admin.get(f"/admin/accounts/{number}")
    assert status == 200
    assert "Single sign-on" not in page

    async with account_events(world.service(SCHOOL).store, SCHOOL, (email, user_id)) as events:
        (status, _, _), _ = await sso_sign_in(world.client(SCHOOL), "test", "linker")
    assert status == 200
    assert [(e.kind, e.user_id, e.method, e.detail) for e in events] == [
        ("sso-linked", user_id, "sso", "test"),
        ("sign-in", user_id, "sso+mfa", ""),
    ]

    status, page, _ = await admin.get(f"/admin/accounts/{number}")
    assert status == 200
    facts = parse(page).all("dl")[0]
    assert "Single sign-on Linked to Test provider" in " ".join(facts.text.split())
    own = await world.account_number(SCHOOL, admin_account.email)
    assert "Single sign-on" not in (await admin.get(f"/admin/accounts/{own}"))[1]
