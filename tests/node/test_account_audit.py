"""The audit trail: each account action records exactly one ledger event, naming no one.

Every sign-in (with its method), failed sign-in of an account, change an administrator makes
and API token made or revoked appends one ``account`` event to the ledger and one readable
row beside it, in the same transaction; the statement holds a salted commitment to the user
id and codes only, never an email address or a name. A refused change, a password for an
unknown address and a session raised again record nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange.auth.api_token import token_hash
from exchange.auth.passwords import PasswordParams
from exchange.auth.totp import TotpSecret, code_at
from exchange.keys.ids import OrgId
from exchange.model import User
from exchange.service.account_admin import AccountAdministration, operator
from exchange.service.accounts import Accounts, SignInRefusedError
from exchange.service.api_tokens import ApiTokens
from exchange.service.audit import PAGE_SIZE, AccountAudit
from exchange.service.errors import ConflictError, ForbiddenError, NotFoundError
from exchange.store import SqliteStore
from exchange.store.account_events import AccountActivity
from tests.node.account_trail import account_events

LA = OrgId("la:356")
NURSES = OrgId("ods:X26ABC")
T0 = 1_800_000_000
PASSWORD = "a long enough passphrase"  # noqa: S105 - a synthetic test password
ADMIN = User("admin1", LA, "Alice Administrator", "admin")
DSL = User("dsl1", LA, "Dora Safeguarding", "dsl")
OTHER = User("nurse-admin", NURSES, "Nora Nurse", "admin")
EMAILS = {ADMIN: "alice@la.example", DSL: "dora@la.example", OTHER: "nora@nurses.example"}


@dataclass
class Context:
    """The store and a clock the tests move: what the use cases need."""

    store: SqliteStore
    clock: list[float]

    def now(self) -> int:
        """Return the clock in whole seconds."""
        return int(self.clock[0])


@dataclass
class Node:
    """The account use cases over one store."""

    context: Context
    accounts: Accounts
    admin: AccountAdministration
    tokens: ApiTokens
    audit: AccountAudit

    @property
    def store(self) -> SqliteStore:
        """The store."""
        return self.context.store

    async def recorded(self, action: Awaitable[object]) -> list[AccountActivity]:
        """Run ``action`` (which may refuse); return the account events it recorded."""
        size = await self.store.ledger_size()
        secrets = [s for user, email in EMAILS.items() for s in (email, user.name, user.id)]
        async with account_events(self.store, LA, secrets) as new:
            with contextlib.suppress(ConflictError, SignInRefusedError):
                await action
        grown = await self.store.ledger_size() - size
        assert grown == len(new), "a ledger event and its row go together"
        for row in new:
            for email in EMAILS.values():
                assert email not in repr(row)
        return new


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """Return the use cases over a fresh store with an administrator and a DSL of the LA."""
    store = await SqliteStore.open(tmp_path / "node")
    context = Context(store, [float(T0)])
    accounts = Accounts(context, password_params=PasswordParams.fast_for_tests())
    for user, email in EMAILS.items():
        await accounts.create_user(user, token_hash(user.id), email=email, password=PASSWORD)
    node = Node(
        context,
        accounts,
        AccountAdministration(context),
        ApiTokens(store, lambda: context.clock[0]),
        AccountAudit(context),
    )
    try:
        yield node
    finally:
        await store.close()


def _one(rows: list[AccountActivity], kind: str) -> AccountActivity:
    assert [r.kind for r in rows] == [kind]
    return rows[0]


async def _enrolled(node: Node) -> TotpSecret:
    """Give the DSL an authenticator app (a first sign-in); return its secret."""
    step = await node.accounts.begin_sign_in(EMAILS[DSL], PASSWORD)
    token, _ = await node.accounts.start_session(step)
    enrolment = await node.accounts.enrol_totp(token)
    await node.accounts.confirm_totp_enrolment(token, code_at(enrolment.secret, T0))
    return enrolment.secret


async def test_a_password_sign_in_records_its_method(node: Node) -> None:
    """An administrator (password only) signing in is one ``sign-in`` by ``password``."""
    step = await node.accounts.begin_sign_in(EMAILS[ADMIN], PASSWORD)
    rows = await node.recorded(node.accounts.start_session(step))
    row = _one(rows, "sign-in")
    assert (row.user_id, row.user_name, row.method, row.actor_id) == (
        "admin1", "Alice Administrator", "password", None,
    )  # fmt: skip


async def test_a_second_factor_sign_in_is_recorded_once_when_complete(node: Node) -> None:
    """The password step records nothing; the code completes the one ``sign-in``."""
    secret = await _enrolled(node)
    node.context.clock[0] += 60
    step = await node.accounts.begin_sign_in(EMAILS[DSL], PASSWORD)
    token, _ = await node.accounts.start_session(step)
    assert await node.recorded(node.accounts.start_session(step)) == []
    code = code_at(secret, node.context.clock[0])
    rows = await node.recorded(node.accounts.verify_second_factor(token, code))
    assert _one(rows, "sign-in").method == "password+totp"


async def test_the_first_sign_in_with_a_new_app_is_recorded(node: Node) -> None:
    """Setting up the app at a first sign-in ends in one ``sign-in`` by ``password+totp``."""
    step = await node.accounts.begin_sign_in(EMAILS[DSL], PASSWORD)
    token, _ = await node.accounts.start_session(step)
    enrolment = await node.accounts.enrol_totp(token)
    rows = await node.recorded(
        node.accounts.confirm_totp_enrolment(token, code_at(enrolment.secret, T0))
    )
    assert _one(rows, "sign-in").method == "password+totp"


async def test_failures_are_recorded_for_accounts_only(node: Node) -> None:
    """A wrong password or code of an account is one event; an unknown address is none."""
    rows = await node.recorded(node.accounts.begin_sign_in(EMAILS[ADMIN], "wrong password!"))
    failed = _one(rows, "sign-in-failed")
    assert (failed.method, failed.detail) == ("password", "")

    before = node.accounts.unknown_address_refusals
    assert await node.recorded(node.accounts.begin_sign_in("nobody@la.example", "x" * 12)) == []
    assert node.accounts.unknown_address_refusals == before + 1

    await _enrolled(node)
    step = await node.accounts.begin_sign_in(EMAILS[DSL], PASSWORD)
    token, _ = await node.accounts.start_session(step)
    rows = await node.recorded(node.accounts.verify_second_factor(token, "000000"))
    assert _one(rows, "sign-in-failed").method == "password+totp"


async def test_a_disabled_account_failing_says_why(node: Node) -> None:
    """A refused password of a disabled account is recorded as such (the page says no more)."""
    number = (await node.store.account_by_user(DSL.id)).id  # type: ignore[union-attr]
    await node.admin.set_disabled(ADMIN, number, disabled=True)
    rows = await node.recorded(node.accounts.begin_sign_in(EMAILS[DSL], PASSWORD))
    assert _one(rows, "sign-in-failed").detail == "disabled"


async def test_slowed_attempts_are_not_recorded(node: Node) -> None:
    """Once sign-in is slowed, further attempts are refused unchecked and record nothing."""
    for _ in range(node.accounts.throttle.free_failures):
        await node.accounts.begin_sign_in(EMAILS[ADMIN], "wrong password!")
    step = node.accounts.begin_sign_in(EMAILS[ADMIN], "wrong password!")
    assert await node.recorded(step) == []


async def test_a_raised_session_records_no_second_sign_in(node: Node) -> None:
    """A step-up is the caller's to record: raising a signed-in session adds no sign-in."""
    secret = await _enrolled(node)
    node.context.clock[0] += 60
    step = await node.accounts.begin_sign_in(EMAILS[DSL], PASSWORD)
    token, _ = await node.accounts.start_session(step)
    token, _ = await node.accounts.verify_second_factor(
        token, code_at(secret, node.context.clock[0])
    )
    node.context.clock[0] += 60
    code = code_at(secret, node.context.clock[0])
    assert await node.recorded(node.accounts.verify_second_factor(token, code)) == []
    rows = await node.recorded(node.accounts._audited("step-up", DSL, method="password+totp"))
    assert _one(rows, "step-up").method == "password+totp"


async def test_verified_sessions_record_a_sign_in_then_a_step_up_when_raised(node: Node) -> None:
    """``start_verified_session`` records its method once; raising the session is a step-up."""
    start = node.accounts.start_verified_session(ADMIN.id, method="sso", second_factor=False)
    rows = await node.recorded(start)
    assert _one(rows, "sign-in").method == "sso"
    # A reader signed in by a provider without MFA still owes a code: not signed in yet.
    start = node.accounts.start_verified_session(DSL.id, method="sso", second_factor=False)
    assert await node.recorded(start) == []
    token, _ = await node.accounts.start_verified_session(
        ADMIN.id, method="passkey", second_factor=True
    )
    again = node.accounts.start_verified_session(
        ADMIN.id, method="passkey", second_factor=True, replacing=token
    )
    rows = await node.recorded(again)
    assert [r.kind for r in rows] == ["step-up"]
    assert rows[0].method == "passkey"


async def test_audited_refuses_prose_and_records_nothing_without_a_user(node: Node) -> None:
    """A detail must be a code; with no account found, nothing reaches the ledger."""
    with pytest.raises(ValueError, match="detail must be a lower-case code"):
        await node.accounts._audited("sign-in-refused", DSL, detail="Dora is not in a group")
    assert await node.recorded(node.accounts._audited("sign-in-refused", None)) == []
    rows = await node.recorded(node.accounts._audited("sign-in-refused", DSL, detail="no-group"))
    assert _one(rows, "sign-in-refused").detail == "no-group"


async def test_each_administrator_change_is_one_event_naming_both(node: Node) -> None:
    """Invite, renew, role, disable, enable, reset and remove: one event each, with the actor."""
    invitation = await node.admin.invite(
        ADMIN, name="Sam Patel", email="sam@la.example", role="staff"
    )
    rows = await node.store.account_events(LA, limit=1)
    invited = _one(rows, "invited")
    assert (invited.actor_id, invited.detail, invited.user_name) == ("admin1", "staff", "Sam Patel")
    number = (await node.store.account_by_user(DSL.id)).id  # type: ignore[union-attr]
    actions = [
        (node.admin.renew_invitation(ADMIN, invitation.account_id), "invitation-renewed"),
        (node.admin.change_role(ADMIN, number, "staff"), "role-changed"),
        (node.admin.set_disabled(ADMIN, number, disabled=True), "disabled"),
        (node.admin.set_disabled(ADMIN, number, disabled=False), "enabled"),
        (node.admin.reset_second_factor(ADMIN, number), "factors-reset"),
        (node.admin.remove(ADMIN, number), "removed"),
    ]
    for action, kind in actions:
        row = _one(await node.recorded(action), kind)
        assert row.actor_id == "admin1"
        assert row.actor_name == "Alice Administrator"
    role = await node.store.account_events(LA, user_id=DSL.id)
    assert [r.detail for r in role if r.kind == "role-changed"] == ["staff"]


async def test_a_refused_change_records_nothing(node: Node) -> None:
    """Demoting the last administrator is refused, and the ledger does not grow."""
    me = (await node.store.account_by_user(ADMIN.id)).id  # type: ignore[union-attr]
    assert await node.recorded(node.admin.change_role(ADMIN, me, "dsl")) == []


async def test_tokens_made_and_revoked_name_who_did_it(node: Node) -> None:
    """The console's tokens are the operator's (user id ''); the pages' the administrator's."""
    rows = await node.recorded(
        node.tokens.create(name="nightly", org=LA, role="staff", created_by="command line")
    )
    made = _one(rows, "token-created")
    assert (made.user_id, made.user_name, made.detail) == ("", None, "1.staff")
    rows = await node.recorded(node.tokens.create_for(ADMIN, name="reports", role="dpo"))
    assert (_one(rows, "token-created").user_id, rows[0].detail) == ("admin1", "2.dpo")
    rows = await node.recorded(node.tokens.revoke_for(ADMIN, 1))
    assert (_one(rows, "token-revoked").user_id, rows[0].detail) == ("admin1", "1.staff")
    assert await node.recorded(node.tokens.revoke("reports", LA)) != []
    # Revoked already: refused, nothing recorded.
    assert await node.recorded(node.tokens.revoke("reports", LA)) == []
    assert operator(LA).id == ""


async def test_tokens_pages_are_for_the_organisations_administrators(node: Node) -> None:
    """A DSL is refused; another organisation's token is not found."""
    with pytest.raises(ForbiddenError):
        await node.tokens.organisation_tokens(DSL)
    with pytest.raises(ForbiddenError):
        await node.tokens.create_for(DSL, name="x1", role="staff")
    await node.tokens.create_for(OTHER, name="nurses-export", role="staff")
    with pytest.raises(NotFoundError):
        await node.tokens.revoke_for(ADMIN, 1)
    assert [t.name for t in await node.tokens.organisation_tokens(ADMIN)] == []


async def test_activity_is_paged_newest_first_for_administrators_only(node: Node) -> None:
    """Fifty events a page with a cursor; one account's only; other organisations not found."""
    for _ in range(PAGE_SIZE + 5):
        await node.accounts._audited("step-up", DSL, method="passkey")
    await node.accounts._audited("step-up", OTHER, method="passkey")
    first = await node.audit.activity(ADMIN)
    assert len(first.events) == PAGE_SIZE
    assert first.older is not None
    assert [e.id for e in first.events] == sorted((e.id for e in first.events), reverse=True)
    second = await node.audit.activity(ADMIN, before=first.older)
    assert len(second.events) == 5
    assert second.older is None
    assert all(e.org == LA for e in first.events + second.events)
    admin_number = (await node.store.account_by_user(ADMIN.id)).id  # type: ignore[union-attr]
    assert (await node.audit.activity(ADMIN, account_id=admin_number)).events == []
    with pytest.raises(ForbiddenError):
        await node.audit.activity(DSL)
    other_number = (await node.store.account_by_user(OTHER.id)).id  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        await node.audit.activity(ADMIN, account_id=other_number)
