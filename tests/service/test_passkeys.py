"""Passkeys as the service runs them: over a real SQLite store, answers from a soft passkey.

Each test makes its own store with two accounts of Hillside's (a DSL with an authenticator
app, an administrator with none), signs them in through the accounts service and checks one
behaviour: adding (and when it needs the second factor first), signing in and confirming
with a passkey, and every refusal (wrong origin or RP ID, a challenge used twice or another
browser's, a counter going back, an unknown passkey, a disabled account) with its audit event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exchange.auth.account import NewAccount
from exchange.auth.passkey import Passkey, browser_binding
from exchange.auth.session import Session
from exchange.auth.totp import TotpSecret
from exchange.keys.ids import OrgId
from exchange.model import User
from exchange.service.accounts import Accounts, SessionEndedError, SignInRefusedError
from exchange.service.errors import ConflictError, NotFoundError, UnprocessableError
from exchange.service.passkeys import ConfirmFirstError, Passkeys
from exchange.store import SqliteStore
from exchange.store.base import Store
from tests.auth.webauthn_device import SoftPasskey

SCHOOL = OrgId("urn:106123")
DSL = User("u-dsl", SCHOOL, "Dee Ess", "dsl")
ADMIN = User("u-admin", SCHOOL, "Ada Min", "admin")
PUBLIC_URL = "https://exchange.hillside.example"
ORIGIN = PUBLIC_URL
RP_ID = "exchange.hillside.example"
T0 = 1_800_000_000.0
#: Two browsers: what binds a challenge to each.
BROWSER = browser_binding(b"\x01" * 32)
OTHER_BROWSER = browser_binding(b"\x02" * 32)


@dataclass
class Context:
    """The store, a clock the test moves, and the node's public URL."""

    store: Store
    public_url: str = PUBLIC_URL
    clock: float = T0

    def now(self) -> int:
        """Return the test's time in whole seconds."""
        return int(self.clock)


@dataclass
class Node:
    """The service under test and what the test needs beside it."""

    context: Context
    accounts: Accounts
    passkeys: Passkeys
    events: list[dict[str, Any]] = field(default_factory=list)

    async def session(self, user: User, *, factor: bool = True) -> tuple[str, Session]:
        """Sign ``user`` in (with a second factor, or with the password alone)."""
        method = "password+totp" if factor else "password"
        return await self.accounts.start_verified_session(
            user.id, method=method, second_factor=factor
        )

    async def add(self, token: str, device: SoftPasskey, name: str = "Work laptop") -> Passkey:
        """Add ``device`` to the session's account, as the pages do."""
        options = await self.passkeys.registration_options(token, binding=BROWSER)
        return await self.passkeys.add(
            token, binding=BROWSER, answer=device.register(options), name=name
        )

    async def sign_in(
        self, device: SoftPasskey, *, replacing: str | None = None, **wrong: Any
    ) -> tuple[str, Session]:
        """Sign in with ``device`` from a browser with no session (unless ``replacing``)."""
        session = None if replacing is None else await self.accounts.session_for(replacing)
        options = await self.passkeys.sign_in_options(binding=BROWSER, session=session)
        return await self.passkeys.sign_in(
            binding=BROWSER, answer=device.sign_in(options, **wrong), replacing=replacing
        )

    def audited(self, kind: str) -> list[dict[str, Any]]:
        """Return the account events of ``kind`` logged so far."""
        return [e for e in self.events if e["event"] == "account.event" and e["kind"] == kind]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """Open a store with Hillside's DSL (with an app) and administrator (without one)."""
    store = await SqliteStore.open(tmp_path / "node")
    for user in (DSL, ADMIN):
        account = NewAccount(
            user_id=user.id,
            email=f"{user.role}@hillside.example",
            password_hash="$argon2id$stub",  # noqa: S106 - a placeholder row
        )
        token_hash = hashlib.sha256(user.id.encode()).digest()
        await store.add_user_with_account(user, token_hash, account, T0)
    dsl = await store.account_by_user(DSL.id)
    assert dsl is not None
    await store.set_totp_pending(dsl.id, _secret(), T0)
    assert await store.confirm_totp(dsl.id, _secret(), step=1, recovery_hashes=[], now=T0)
    context = Context(store)
    accounts = Accounts(context)
    with capture_logs() as events:
        yield Node(context, accounts, Passkeys(context, accounts), events)
    await store.close()


def _secret() -> TotpSecret:
    return TotpSecret(b"\x05" * 20)


def _device() -> SoftPasskey:
    return SoftPasskey(rp_id=RP_ID, origin=ORIGIN)


# --- adding ---------------------------------------------------------------------------


async def test_a_passkey_is_added_with_its_name_and_audited(node: Node) -> None:
    """A recent second factor adds a passkey; the account then counts it as a second factor."""
    token, _ = await node.session(DSL)
    device = _device()
    added = await node.add(token, device, "  Work   laptop ")
    assert (added.name, added.user_id, added.credential_id, added.last_used) == (
        "Work laptop", DSL.id, device.credential_id, None
    )  # fmt: skip
    assert [p.id for p in await node.passkeys.passkeys(DSL)] == [added.id]
    account = await node.context.store.account_by_user(DSL.id)
    assert account is not None
    assert account.passkeys == 1
    assert [e["user"] for e in node.audited("passkey-added")] == [DSL.id]


async def test_adding_needs_a_recent_second_factor(node: Node) -> None:
    """Past the step-up window the options are refused: the person must confirm it's them."""
    token, session = await node.session(DSL)
    assert await node.passkeys.may_add(session)
    # Used now and then (so not idle), but the code was given a window ago.
    for _ in range(3):
        node.context.clock += node.accounts.policy.step_up_window / 3
        session = await node.accounts.session_for(token)
    assert session is not None
    assert session.signed_in
    assert not await node.passkeys.may_add(session)
    with pytest.raises(ConfirmFirstError, match="Confirm it's you"):
        await node.passkeys.registration_options(token, binding=BROWSER)


async def test_an_account_with_no_second_factor_adds_its_first_from_a_signed_in_session(
    node: Node,
) -> None:
    """An administrator with no app adds a passkey after the password alone, as an app is set up."""
    token, session = await node.session(ADMIN, factor=False)
    assert session.signed_in
    assert session.factor_at is None
    await node.add(token, _device())
    account = await node.context.store.account_by_user(ADMIN.id)
    assert account is not None
    assert account.has_second_factor
    assert not account.has_code
    # From now on the passkey is their second factor: adding another needs it, recently.
    assert not await node.passkeys.may_add(session)


async def test_a_passkey_already_added_is_excluded_and_refused_again(node: Node) -> None:
    """The options exclude the account's passkeys; adding the same credential twice is refused."""
    token, _ = await node.session(DSL)
    device = _device()
    await node.add(token, device)
    options = json.loads(await node.passkeys.registration_options(token, binding=BROWSER))
    assert len(options["excludeCredentials"]) == 1
    with pytest.raises(ConflictError, match="added already"):
        await node.add(token, device)


async def test_an_empty_name_is_refused_before_anything_else(node: Node) -> None:
    """The name is checked first, with the sentence the page shows beside the field."""
    token, _ = await node.session(DSL)
    options = await node.passkeys.registration_options(token, binding=BROWSER)
    with pytest.raises(UnprocessableError, match="Enter a name for your passkey"):
        await node.passkeys.add(token, binding=BROWSER, answer=_device().register(options), name="")


@pytest.mark.parametrize(
    "wrong", [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"verified": False}]
)
async def test_a_registration_that_does_not_verify_adds_nothing(
    node: Node, wrong: dict[str, Any]
) -> None:
    """Another origin or RP ID, or no user verification: "not added", and no passkey stored."""
    token, _ = await node.session(DSL)
    options = await node.passkeys.registration_options(token, binding=BROWSER)
    answer = _device().register(options, **wrong)
    with pytest.raises(UnprocessableError, match="Your passkey was not added"):
        await node.passkeys.add(token, binding=BROWSER, answer=answer, name="Laptop")
    assert await node.passkeys.passkeys(DSL) == []


async def test_a_registration_answered_from_another_browser_or_twice_is_refused(
    node: Node,
) -> None:
    """The challenge is bound to the browser that asked, and used once."""
    token, _ = await node.session(DSL)
    options = await node.passkeys.registration_options(token, binding=BROWSER)
    answer = _device().register(options)
    with pytest.raises(UnprocessableError):
        await node.passkeys.add(token, binding=OTHER_BROWSER, answer=answer, name="Laptop")
    # The other browser's attempt used the challenge up: the right browser cannot use it now.
    with pytest.raises(UnprocessableError):
        await node.passkeys.add(token, binding=BROWSER, answer=answer, name="Laptop")
    assert await node.passkeys.passkeys(DSL) == []


# --- signing in -------------------------------------------------------------------------


async def test_a_passkey_signs_in_at_the_second_factor_level(node: Node) -> None:
    """Signing in with a passkey gives a session at ``second-factor`` by the method ``passkey``."""
    token, _ = await node.session(DSL)
    device = _device()
    added = await node.add(token, device)
    await node.accounts.end_session(token)
    node.context.clock += 60
    new_token, session = await node.sign_in(device)
    assert (session.user, session.level, session.method, session.signed_in) == (
        DSL, "second-factor", "passkey", True
    )  # fmt: skip
    assert session.factor_at == node.context.clock
    assert await node.accounts.session_for(new_token) is not None
    (used,) = await node.passkeys.passkeys(DSL)
    assert (used.id, used.sign_count, used.last_used) == (added.id, 1, node.context.clock)


async def test_a_passkey_confirms_it_is_the_person_in_the_same_session(node: Node) -> None:
    """Confirming with a passkey raises the session: its start time stays, the factor is now."""
    token, started = await node.session(DSL)
    device = _device()
    await node.add(token, device)
    for _ in range(4):  # used every ten minutes for 40 minutes: the code given is old now
        node.context.clock += 600
        assert await node.accounts.session_for(token) is not None
    options = json.loads(
        await node.passkeys.sign_in_options(
            binding=BROWSER, session=await node.accounts.session_for(token)
        )
    )
    assert len(options["allowCredentials"]) == 1  # only this person's passkeys
    _, raised = await node.sign_in(device, replacing=token)
    assert raised.created == started.created
    assert raised.factor_at == node.context.clock
    assert await node.accounts.session_for(token) is None  # a new token replaces the old one


async def test_confirming_with_another_persons_passkey_is_refused(node: Node) -> None:
    """A signed-in person confirms with their own passkey only, never a colleague's."""
    admin_token, _ = await node.session(ADMIN, factor=False)
    admins_device = _device()
    await node.add(admin_token, admins_device)
    token, _ = await node.session(DSL)
    with pytest.raises(SignInRefusedError):
        await node.sign_in(admins_device, replacing=token)
    assert node.audited("sign-in-refused")[-1]["detail"] == "other-account"


async def test_a_passkey_with_only_a_passkey_is_a_second_factor(node: Node) -> None:
    """An account whose one factor is a passkey needs it at sign-in: a password is not enough."""
    token, _ = await node.session(ADMIN, factor=False)
    await node.add(token, _device())
    account = await node.context.store.account_by_user(ADMIN.id)
    assert account is not None
    assert account.needs_second_factor
    _, password_only = await node.session(ADMIN, factor=False)
    assert password_only.required == "second-factor"
    assert not password_only.signed_in
    assert await node.accounts.readers_without_second_factor() == []


async def _refused(node: Node, detail: str, **sign_in: Any) -> None:
    with pytest.raises(SignInRefusedError, match="Your passkey was not accepted"):
        await node.sign_in(**sign_in)
    assert node.audited("sign-in-refused")[-1]["detail"] == detail


@pytest.mark.parametrize(
    ("wrong", "detail"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"origin": "https://exchange.hillside.example:8443"}, "origin"),
        ({"rp_id": "hillside.example"}, "rp-id"),
        ({"verified": False}, "not-verified"),
    ],
)
async def test_a_sign_in_from_the_wrong_place_is_refused(
    node: Node, wrong: dict[str, Any], detail: str
) -> None:
    """Another origin, another RP ID, or no user verification: refused and audited by reason."""
    token, _ = await node.session(DSL)
    device = _device()
    await node.add(token, device)
    await _refused(node, detail, device=device, **wrong)
    assert node.audited("sign-in-refused")[-1]["user"] == DSL.id


async def test_a_challenge_is_answered_once(node: Node) -> None:
    """Replaying an accepted answer is refused: its challenge is used up."""
    token, _ = await node.session(DSL)
    device = _device()
    await node.add(token, device)
    options = await node.passkeys.sign_in_options(binding=BROWSER, session=None)
    answer = device.sign_in(options)
    await node.passkeys.sign_in(binding=BROWSER, answer=answer)
    with pytest.raises(SignInRefusedError):
        await node.passkeys.sign_in(binding=BROWSER, answer=answer)
    assert node.audited("sign-in-refused")[-1]["detail"] == "challenge"


async def test_a_challenge_from_another_browser_or_too_late_is_refused(node: Node) -> None:
    """A challenge answers only the browser it was issued to, within five minutes."""
    token, _ = await node.session(DSL)
    device = _device()
    await node.add(token, device)
    for binding, wait in ((OTHER_BROWSER, 0), (BROWSER, 300)):
        options = await node.passkeys.sign_in_options(binding=BROWSER, session=None)
        node.context.clock += wait
        with pytest.raises(SignInRefusedError):
            await node.passkeys.sign_in(binding=binding, answer=device.sign_in(options))
        assert node.audited("sign-in-refused")[-1]["detail"] == "challenge"


async def test_a_counter_going_back_is_refused_and_logged_as_a_warning(node: Node) -> None:
    """A well-signed answer with a counter at or below the stored one may be a copied key."""
    token, _ = await node.session(DSL)
    device = _device()
    added = await node.add(token, device)
    await node.sign_in(device, sign_count=5)
    await _refused(node, "sign-count", device=device, sign_count=5)
    await _refused(node, "sign-count", device=device, sign_count=3)
    warnings = [e for e in node.events if e["event"] == "passkey.sign_count_went_back"]
    assert [(e["log_level"], e["passkey"]) for e in warnings] == [("warning", added.id)] * 2
    (kept,) = await node.passkeys.passkeys(DSL)
    assert kept.sign_count == 5


async def test_an_unknown_passkey_is_refused(node: Node) -> None:
    """A passkey the node never registered (or one removed) signs nobody in."""
    await _refused(node, "unknown-passkey", device=_device())
    assert node.audited("sign-in-refused")[-1]["user"] is None


async def test_a_passkey_of_a_disabled_account_is_refused(node: Node) -> None:
    """Disabling an account stops its passkeys at once."""
    token, _ = await node.session(DSL)
    device = _device()
    await node.add(token, device)
    await node.context.store.set_account_disabled(DSL.id, disabled=True, now=T0)
    await _refused(node, "account", device=device)


async def test_a_removed_passkey_no_longer_signs_in(node: Node) -> None:
    """Removing a passkey is audited, and its next sign-in is refused as unknown."""
    token, _ = await node.session(DSL)
    device = _device()
    added = await node.add(token, device)
    await node.passkeys.remove(DSL, added.id)
    assert [e["user"] for e in node.audited("passkey-removed")] == [DSL.id]
    await _refused(node, "unknown-passkey", device=device)


async def test_a_person_can_remove_only_their_own_passkeys(node: Node) -> None:
    """Another person's passkey is not found, and is kept."""
    token, _ = await node.session(DSL)
    added = await node.add(token, _device())
    with pytest.raises(NotFoundError):
        await node.passkeys.remove(ADMIN, added.id)
    assert [p.id for p in await node.passkeys.passkeys(DSL)] == [added.id]


async def test_resetting_the_second_factor_removes_the_passkeys(node: Node) -> None:
    """An administrator's reset forgets the app and every passkey; removal does too."""
    token, _ = await node.session(DSL)
    device = _device()
    await node.add(token, device)
    account = await node.context.store.account_by_user(DSL.id)
    assert account is not None
    store = node.context.store
    assert await store.change_account(account.id, now=T0, reset_second_factor=True) == "done"
    assert await node.passkeys.passkeys(DSL) == []
    await _refused(node, "unknown-passkey", device=device)
    admin_token, _ = await node.session(ADMIN, factor=False)
    await node.add(admin_token, _device())
    admin = await node.context.store.account_by_user(ADMIN.id)
    assert admin is not None
    removed = await store.remove_account(admin.id, token_hash=b"\x00" * 32, keep_an_admin=False)
    assert removed == "done"
    assert await node.passkeys.passkeys(ADMIN) == []


async def test_a_node_reached_by_address_has_no_passkeys(node: Node) -> None:
    """An IP address cannot be a relying party ID: passkeys are off, and the calls say so."""
    node.context.public_url = "https://127.0.0.1:8443"
    assert not node.passkeys.enabled
    with pytest.raises(ConflictError, match="Passkeys cannot be used on this node"):
        await node.passkeys.sign_in_options(binding=BROWSER, session=None)


async def test_an_ended_session_cannot_add_a_passkey(node: Node) -> None:
    """Without a live session the options are refused as a session that ended."""
    token, _ = await node.session(DSL)
    await node.accounts.end_session(token)
    with pytest.raises(SessionEndedError):
        await node.passkeys.registration_options(token, binding=BROWSER)


async def test_no_log_line_holds_a_credential_or_an_address(node: Node) -> None:
    """What is logged names accounts, sessions and passkeys by number, never their secrets."""
    token, _ = await node.session(DSL)
    device = _device()
    await node.add(token, device)
    await node.sign_in(device)
    await _refused(node, "origin", device=device, origin="https://evil.example")
    text = repr(node.events)
    assert "evil.example" not in text
    assert "hillside.example" not in text
    assert device.credential_id.hex() not in text
