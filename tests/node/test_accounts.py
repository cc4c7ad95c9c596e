"""Staff accounts and sessions through the node service, with a clock the tests move.

Sign-in never says whether an address has an account; failures are slowed; the second
factor is a TOTP code (each used once, one step of drift) or a single-use recovery code;
sessions get a new id at each step up and end idle, at their absolute limit, or on sign-out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exchange.auth.api_token import token_hash
from exchange.auth.passwords import PasswordParams
from exchange.auth.session import SessionPolicy
from exchange.auth.totp import TotpSecret, code_at
from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.model import User
from exchange.service.accounts import (
    CODE_REFUSED,
    REFUSED,
    SessionEndedError,
    SignInRefusedError,
    SignInStep,
    SlowedDownError,
    qr_svg,
)
from exchange.service.errors import ConflictError, ForbiddenError, UnprocessableError
from exchange.service.node_service import NodeService
from exchange.service.register_reports import RegisterKey
from exchange.shipped import load_records_setup
from exchange.store import SqliteStore

LA = OrgId("la:356")
T0 = 1_800_000_000
EMAIL = "Dsl.One@LA.example"
PASSWORD = "a long enough passphrase"  # noqa: S105 - a synthetic test password
DSL = User("dsl1", LA, "Synthetic DSL", "dsl")
ADMIN = User("admin1", LA, "Synthetic admin", "admin")


@dataclass
class Node:
    """The service under test and its clock."""

    service: NodeService
    now: list[float]

    def tick(self, seconds: float) -> None:
        """Move the clock on."""
        self.now[0] += seconds


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """Return a node service over a fresh store with a DSL account and fast password hashing."""
    store = await SqliteStore.open(tmp_path / "node")
    now = [float(T0)]
    service = NodeService(
        store=store,
        directory=Directory(version=1, issued=T0, authority="test", organisations={}),
        tenants={},
        records=load_records_setup(None),
        register_key=RegisterKey(b"\x00" * 32),
        clock=lambda: now[0],
        max_envelope_bytes=1024,
        public_url="https://node.example",
        overdue_after=3600,
        password_params=PasswordParams.fast_for_tests(),
    )
    await service.accounts.create_user(DSL, token_hash("t1"), email=EMAIL, password=PASSWORD)
    try:
        yield Node(service, now)
    finally:
        await store.close()


async def _password_session(node: Node) -> str:
    step = await node.service.begin_sign_in(EMAIL, PASSWORD)
    token, _ = await node.service.start_session(step)
    return token


async def _enrolled(node: Node) -> tuple[TotpSecret, tuple[str, ...]]:
    """Enrol the DSL's TOTP now; return the secret and the recovery codes."""
    token = await _password_session(node)
    enrolment = await node.service.enrol_totp(token)
    confirmed = await node.service.confirm_totp_enrolment(
        token, code_at(enrolment.secret, node.now[0])
    )
    await node.service.end_session(confirmed.token)
    return enrolment.secret, confirmed.recovery_codes


async def _signed_in(node: Node, secret: TotpSecret) -> str:
    node.tick(30)
    token = await _password_session(node)
    full, _ = await node.service.verify_second_factor(token, code_at(secret, node.now[0]))
    return full


# --- the password step -------------------------------------------------------------------


async def test_good_password_asks_a_dsl_to_set_up_a_second_factor(node: Node) -> None:
    """A DSL without TOTP gets past the password to enrolment, whatever the address's case."""
    step = await node.service.begin_sign_in("dsl.one@la.EXAMPLE ", PASSWORD)
    assert (step.accepted, step.next, step.user) == (True, "enrol-second-factor", DSL)


async def test_wrong_password_unknown_email_and_disabled_account_answer_alike(node: Node) -> None:
    """Wrong password, unknown address and disabled account get the same refusal."""
    wrong = await node.service.begin_sign_in(EMAIL, PASSWORD + "x")
    unknown = await node.service.begin_sign_in("nobody@la.example", PASSWORD)
    await node.service.store.add_user(ADMIN, token_hash("t2"), T0)
    await node.service.accounts.set_account_disabled(ADMIN, "dsl1", disabled=True)
    disabled = await node.service.begin_sign_in(EMAIL, PASSWORD)
    assert wrong == unknown == disabled == SignInStep("refused", REFUSED)
    assert not disabled.accepted


async def test_a_refused_step_cannot_start_a_session(node: Node) -> None:
    """Only an accepted password step made by the service starts a session."""
    with pytest.raises(ValueError, match="accepted password step"):
        await node.service.start_session(SignInStep("accepted", user=DSL))


@pytest.mark.parametrize("email", [EMAIL, "nobody@la.example"])
async def test_fifth_failure_slows_sign_in_for_known_and_unknown_addresses(
    node: Node, email: str
) -> None:
    """After five failures even the right password waits, with a plain message."""
    for _ in range(5):
        assert (await node.service.begin_sign_in(email, "wrong password!")).outcome == "refused"
    slowed = await node.service.begin_sign_in(email, PASSWORD)
    assert slowed.outcome == "slowed"
    assert slowed.message == (
        "You have tried to sign in too many times. Wait 1 minute, then try again."
    )


async def test_slowing_ends_after_the_delay(node: Node) -> None:
    """Once the delay has passed, the right password is accepted again."""
    for _ in range(5):
        await node.service.begin_sign_in(EMAIL, "wrong password!")
    node.tick(30)
    assert (await node.service.begin_sign_in(EMAIL, PASSWORD)).accepted


async def test_delay_grows_with_each_further_failure(node: Node) -> None:
    """A sixth failure after the first delay waits twice as long."""
    for _ in range(5):
        await node.service.begin_sign_in(EMAIL, "wrong password!")
    node.tick(30)
    await node.service.begin_sign_in(EMAIL, "wrong password!")
    node.tick(59)
    assert (await node.service.begin_sign_in(EMAIL, PASSWORD)).outcome == "slowed"
    node.tick(1)
    assert (await node.service.begin_sign_in(EMAIL, PASSWORD)).accepted


async def test_new_account_password_must_meet_the_rules(node: Node) -> None:
    """A short password is refused with the rule and its plain reason."""
    await node.service.store.add_user(ADMIN, token_hash("t2"), T0)
    with pytest.raises(UnprocessableError, match="12 characters or more"):
        await node.service.create_account("admin1", "admin@la.example", "short")


async def test_email_is_unique_whatever_its_case(node: Node) -> None:
    """A second account with the same address in other case is a conflict."""
    await node.service.store.add_user(ADMIN, token_hash("t2"), T0)
    with pytest.raises(ConflictError, match="email address is taken"):
        await node.service.create_account("admin1", EMAIL.upper(), PASSWORD)


# --- the second factor -------------------------------------------------------------------


async def test_enrolment_returns_ten_recovery_codes_and_signs_in(node: Node) -> None:
    """Confirming TOTP gives ten codes once and a new session at second-factor."""
    token = await _password_session(node)
    enrolment = await node.service.enrol_totp(token)
    assert enrolment.uri.startswith("otpauth://totp/Secure%20exchange:")
    confirmed = await node.service.confirm_totp_enrolment(
        token, code_at(enrolment.secret, node.now[0])
    )
    assert len(confirmed.recovery_codes) == 10
    assert confirmed.token != token
    assert confirmed.session.signed_in
    assert confirmed.session.method == "password+totp"
    assert await node.service.session_for(token) is None


async def test_enrolment_with_a_wrong_code_is_refused(node: Node) -> None:
    """A code not from the new secret does not confirm it."""
    token = await _password_session(node)
    await node.service.enrol_totp(token)
    with pytest.raises(SignInRefusedError, match=CODE_REFUSED):
        await node.service.confirm_totp_enrolment(token, "000000")


async def test_second_factor_signs_in_with_a_new_session_id(node: Node) -> None:
    """After the password, a current code gives a new token; the old one is gone."""
    secret, _ = await _enrolled(node)
    step = await node.service.begin_sign_in(EMAIL, PASSWORD)
    assert step.next == "second-factor"
    token, session = await node.service.start_session(step)
    assert not session.signed_in
    node.tick(30)
    full, upgraded = await node.service.verify_second_factor(token, code_at(secret, node.now[0]))
    assert full != token
    assert upgraded.signed_in
    assert upgraded.created == session.created
    assert await node.service.session_for(token) is None


async def test_a_replayed_code_is_refused(node: Node) -> None:
    """A code used to sign in cannot be used again in its step."""
    secret, _ = await _enrolled(node)
    node.tick(30)
    code = code_at(secret, node.now[0])
    first = await _password_session(node)
    await node.service.verify_second_factor(first, code)
    second = await _password_session(node)
    with pytest.raises(SignInRefusedError):
        await node.service.verify_second_factor(second, code)


async def test_a_code_outside_the_window_is_refused(node: Node) -> None:
    """A code from two steps ago is refused."""
    secret, _ = await _enrolled(node)
    node.tick(300)
    token = await _password_session(node)
    with pytest.raises(SignInRefusedError):
        await node.service.verify_second_factor(token, code_at(secret, node.now[0] - 60))


async def test_a_recovery_code_works_once(node: Node) -> None:
    """A recovery code signs in once, in any case; the second time it is refused."""
    _, codes = await _enrolled(node)
    token = await _password_session(node)
    _, session = await node.service.verify_second_factor(token, codes[3].lower())
    assert session.method == "password+recovery-code"
    again = await _password_session(node)
    with pytest.raises(SignInRefusedError):
        await node.service.verify_second_factor(again, codes[3])


async def test_second_factor_guesses_are_slowed(node: Node) -> None:
    """Five wrong codes slow the account, and a new password step does not reset it."""
    await _enrolled(node)
    token = await _password_session(node)
    for _ in range(5):
        with pytest.raises(SignInRefusedError):
            await node.service.verify_second_factor(token, "000000")
    with pytest.raises(SlowedDownError, match="Wait 1 minute"):
        await node.service.verify_second_factor(token, "000000")
    assert (await node.service.begin_sign_in(EMAIL, PASSWORD)).outcome == "slowed"


async def test_replacing_a_confirmed_factor_needs_the_factor(node: Node) -> None:
    """A password-only session cannot enrol a new app over a confirmed one."""
    await _enrolled(node)
    token = await _password_session(node)
    with pytest.raises(ForbiddenError):
        await node.service.enrol_totp(token)


async def test_readers_without_second_factor_are_listed(node: Node) -> None:
    """A DSL account is listed until its TOTP is confirmed."""
    assert await node.service.accounts.readers_without_second_factor() == ["dsl1"]
    await _enrolled(node)
    assert await node.service.accounts.readers_without_second_factor() == []


# --- sessions ---------------------------------------------------------------------------


async def test_session_ends_after_15_idle_minutes(node: Node) -> None:
    """A session used within 15 minutes lives on; 15 minutes unused ends it."""
    secret, _ = await _enrolled(node)
    token = await _signed_in(node, secret)
    node.tick(899)
    assert await node.service.session_for(token) is not None
    node.tick(899)
    assert await node.service.session_for(token) is not None
    node.tick(900)
    assert await node.service.session_for(token) is None


async def test_session_ends_after_8_hours_however_busy(node: Node) -> None:
    """A session used every 10 minutes still ends 8 hours after sign-in."""
    secret, _ = await _enrolled(node)
    token = await _signed_in(node, secret)
    for _ in range(47):
        node.tick(600)
        assert await node.service.session_for(token) is not None
    node.tick(600)
    assert await node.service.session_for(token) is None


async def test_configured_timeouts_apply(tmp_path: Path) -> None:
    """A node configured for 5 idle minutes ends sessions after 5 minutes."""
    store = await SqliteStore.open(tmp_path / "n")
    now = [float(T0)]
    service = NodeService(
        store=store,
        directory=Directory(version=1, issued=T0, authority="test", organisations={}),
        tenants={}, records=load_records_setup(None), register_key=RegisterKey(b"\x00" * 32),
        clock=lambda: now[0], max_envelope_bytes=1024, public_url="https://node.example",
        overdue_after=3600, password_params=PasswordParams.fast_for_tests(),
        session_policy=SessionPolicy(idle_timeout=300, absolute_timeout=3600),
    )  # fmt: skip
    try:
        await service.accounts.create_user(ADMIN, token_hash("a"), email=EMAIL, password=PASSWORD)
        token, session = await service.start_session(await service.begin_sign_in(EMAIL, PASSWORD))
        assert session.signed_in
        now[0] += 300
        assert await service.session_for(token) is None
    finally:
        await store.close()


async def test_start_session_replaces_a_session_held_before(node: Node) -> None:
    """Signing in with an earlier session's token ends that session."""
    before = await _password_session(node)
    step = await node.service.begin_sign_in(EMAIL, PASSWORD)
    after, _ = await node.service.start_session(step, replacing=before)
    assert after != before
    assert await node.service.session_for(before) is None


async def test_sign_out_ends_the_session(node: Node) -> None:
    """After sign-out the token opens nothing and the second factor needs sign-in again."""
    token = await _password_session(node)
    await node.service.end_session(token)
    assert await node.service.session_for(token) is None
    with pytest.raises(SessionEndedError, match="Sign in again"):
        await node.service.enrol_totp(token)


async def test_end_all_sessions_signs_out_everywhere(node: Node) -> None:
    """Every session of the user ends."""
    tokens = [await _password_session(node) for _ in range(3)]
    assert await node.service.end_all_sessions(DSL) == 3
    for token in tokens:
        assert await node.service.session_for(token) is None


async def test_sweep_deletes_expired_sessions(node: Node) -> None:
    """The sweep deletes sessions past their idle timeout."""
    await _password_session(node)
    node.tick(900)
    assert await node.service.sweep_sessions() == 1


def test_qr_code_is_svg_without_style_attributes() -> None:
    """The QR code is SVG markup with a label and no inline style."""
    svg = qr_svg("otpauth://totp/Secure%20exchange:a%40b.example?secret=AAAA")
    assert svg.startswith('<svg role="img" aria-label="QR code for your authenticator app"')
    assert "style" not in svg
    assert "<title>" in svg


# --- nothing leaks -------------------------------------------------------------------------


async def test_no_secret_reaches_logs_reprs_or_errors(node: Node) -> None:
    """The password, address, codes and secrets appear in no log event, repr or error."""
    seen: list[str] = []
    with capture_logs() as events:
        step = await node.service.begin_sign_in(EMAIL, PASSWORD)
        seen.append(repr(step))
        token, session = await node.service.start_session(step)
        seen.append(repr(session))
        enrolment = await node.service.enrol_totp(token)
        seen.append(repr(enrolment))
        code = code_at(enrolment.secret, node.now[0])
        confirmed = await node.service.confirm_totp_enrolment(token, code)
        seen.append(repr(confirmed))
        for attempt in ("123456", "ZZZZ-ZZZZ-ZZZZ-ZZZZ"):
            with pytest.raises(SignInRefusedError) as caught:
                await node.service.verify_second_factor(confirmed.token, attempt)
            seen.append(str(caught.value))
        seen.append(repr(await node.service.begin_sign_in(EMAIL, "wrong " + PASSWORD)))
        account = await node.service.store.account_by_user("dsl1")
        seen.append(repr(account))
        await node.service.end_session(confirmed.token)
    seen += [repr(event) for event in events]
    assert len(events) >= 6
    text = "\n".join(seen)
    secrets = [PASSWORD, EMAIL, EMAIL.casefold(), code, enrolment.secret.base32, token]
    secrets += [confirmed.token, *confirmed.recovery_codes]
    for secret in secrets:
        assert secret not in text, secret
    # A user id may be an email address, so events name the account by number instead.
    assert "dsl1" not in "\n".join(repr(event) for event in events)


async def test_a_use_is_written_only_once_the_last_written_is_stale(node: Node) -> None:
    """Page views moments apart write nothing; the idle timeout still counts from the uses.

    With the default 900 s idle timeout a use is written once the last one written is 15 s
    old (a 60th): a session used every 10 s lives on, and one left alone ends 900 s after
    the last use written, at most 15 s before 900 s after the last use.
    """
    token = await _password_session(node)
    session = await node.service.session_for(token)
    assert session is not None
    start = session.last_seen
    store = node.service.store
    id_hash = session.id_hash
    node.tick(10)
    assert await node.service.session_for(token) is not None
    stored = await store.session(id_hash)
    assert stored is not None
    assert stored.last_seen == start  # 10 s: not written
    node.tick(10)
    assert await node.service.session_for(token) is not None
    stored = await store.session(id_hash)
    assert stored is not None
    assert stored.last_seen == start + 20  # 20 s since the last written: written
    node.tick(10)
    assert await node.service.session_for(token) is not None  # at +30, not written
    node.tick(899 - 10)
    assert await node.service.session_for(token) is not None  # 899 s after +20
    node.tick(900)
    assert await node.service.session_for(token) is None
