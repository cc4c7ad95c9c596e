"""Accounts and sessions in the SQLite store: uniqueness, guarded updates, sweeping."""

from __future__ import annotations

import pytest

from exchange.auth.account import NewAccount
from exchange.auth.session import Session
from exchange.auth.totp import TotpSecret
from exchange.model import User
from exchange.store import DuplicateError, SqliteStore

from .conftest import LA, T0

USER = User("u1", LA, "Worker One", "dsl")
SECRET = TotpSecret(b"\x03" * 20)


def _account(user_id: str = "u1", email: str = "Worker@LA.example") -> NewAccount:
    return NewAccount(user_id=user_id, email=email, password_hash="$argon2id$stub")  # noqa: S106 - a placeholder row, never checked


def _session(n: int, *, user: User = USER, created: float = T0, last_seen: float = T0) -> Session:
    return Session(
        id_hash=bytes([n]) * 32, user=user, created=created, last_seen=last_seen,
        level="password", required="second-factor", method="password",
        csrf_secret=b"\x09" * 32,
    )  # fmt: skip


async def _with_user(store: SqliteStore) -> int:
    return await store.add_user_with_account(USER, b"t" * 32, _account(), T0)


async def test_account_is_found_by_case_folded_email_with_its_user(store: SqliteStore) -> None:
    """An account reads back by its case-folded address, with its user and no secrets set."""
    account_id = await _with_user(store)
    account = await store.account_by_email("worker@la.example")
    assert account is not None
    assert (account.id, account.user, account.email) == (account_id, USER, "Worker@LA.example")
    assert account.totp_secret is None
    assert not account.disabled


async def test_email_is_unique_whatever_its_case(store: SqliteStore) -> None:
    """A second account with the same address in other case is refused."""
    await _with_user(store)
    await store.add_user(User("u2", LA, "Two", "staff"), b"s" * 32, T0)
    with pytest.raises(DuplicateError, match="email address is taken"):
        await store.add_account(_account("u2", "WORKER@la.example"), T0)


async def test_account_for_a_missing_user_is_not_created(store: SqliteStore) -> None:
    """Adding an account for a user that does not exist returns None."""
    assert await store.add_account(_account("nobody"), T0) is None


async def test_failures_count_per_address_and_account(store: SqliteStore) -> None:
    """Each failure adds one; the slowdown ``slow`` gives is kept and returned."""
    account_id = await _with_user(store)
    for _ in range(2):
        until = await store.record_failure(
            T0, lambda n: T0 + n, email_hash=b"e" * 32, account_id=account_id
        )
    assert until == T0 + 2
    assert await store.sign_in_slowed_until(b"e" * 32) == T0 + 2
    account = await store.account_by_user("u1")
    assert account is not None
    assert (account.failed_count, account.slowed_until) == (2, T0 + 2)
    await store.clear_failures(email_hash=b"e" * 32, account_id=account_id)
    assert await store.sign_in_slowed_until(b"e" * 32) is None


async def test_totp_step_is_used_once(store: SqliteStore) -> None:
    """A step is accepted only if later than the last one recorded."""
    account_id = await _with_user(store)
    assert await store.use_totp_step(account_id, 100)
    assert not await store.use_totp_step(account_id, 100)
    assert not await store.use_totp_step(account_id, 99)
    assert await store.use_totp_step(account_id, 101)


async def test_confirming_totp_keeps_the_secret_and_new_recovery_codes(store: SqliteStore) -> None:
    """The pending secret becomes the account's; each recovery code works once."""
    account_id = await _with_user(store)
    await store.set_totp_pending(account_id, SECRET, T0)
    assert await store.confirm_totp(
        account_id, SECRET, step=5, recovery_hashes=[b"a" * 32, b"b" * 32], now=T0
    )
    account = await store.account_by_user("u1")
    assert account is not None
    assert (account.totp_secret, account.totp_pending, account.recovery_left) == (SECRET, None, 2)
    assert await store.use_recovery_code(account_id, b"a" * 32, T0)
    assert not await store.use_recovery_code(account_id, b"a" * 32, T0)


async def test_confirming_a_secret_no_longer_pending_writes_nothing(store: SqliteStore) -> None:
    """A confirmation racing a newer enrolment is refused."""
    account_id = await _with_user(store)
    await store.set_totp_pending(account_id, TotpSecret(b"\x04" * 20), T0)
    assert not await store.confirm_totp(account_id, SECRET, step=5, recovery_hashes=[], now=T0)


async def test_session_replaces_the_earlier_one(store: SqliteStore) -> None:
    """Adding a session with ``replacing`` deletes the replaced one in the same write."""
    await _with_user(store)
    await store.add_session(_session(1))
    await store.add_session(_session(2), replacing=bytes([1]) * 32)
    assert await store.session(bytes([1]) * 32) is None
    assert await store.session(bytes([2]) * 32) == _session(2)


async def test_sweep_deletes_idle_and_old_sessions_only(store: SqliteStore) -> None:
    """Sessions idle or made before the cut-offs go; a live one stays."""
    await _with_user(store)
    await store.add_session(_session(1, last_seen=T0 - 1000))
    await store.add_session(_session(2, created=T0 - 10_000, last_seen=T0))
    await store.add_session(_session(3))
    assert await store.sweep_sessions(idle_before=T0 - 900, created_before=T0 - 9000) == 2
    assert await store.session(bytes([3]) * 32) is not None


async def test_disabling_an_account_ends_its_sessions(store: SqliteStore) -> None:
    """A disabled account's sessions are deleted with it."""
    await _with_user(store)
    await store.add_session(_session(1))
    assert await store.set_account_disabled("u1", disabled=True, now=T0)
    assert await store.session(bytes([1]) * 32) is None
    assert await store.accounts_without_second_factor(["dsl"]) == []


async def test_readers_without_second_factor_are_listed(store: SqliteStore) -> None:
    """An enabled DSL account with no confirmed TOTP is listed."""
    await _with_user(store)
    assert await store.accounts_without_second_factor(["dsl", "staff", "dpo"]) == ["u1"]
