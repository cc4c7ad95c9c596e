"""Administrators' changes in the SQLite store: invitations used once, an admin always kept."""

from __future__ import annotations

from exchange.auth.account import NewAccount
from exchange.auth.session import Session
from exchange.model import User
from exchange.store import SqliteStore

from .conftest import LA, T0

ADMIN = User("a1", LA, "Admin One", "admin")
INVITED = User("i1", LA, "Invited One", "dsl")
CODE = b"c" * 32


async def _admin(store: SqliteStore) -> int:
    account = NewAccount(user_id=ADMIN.id, email="a@la.example", password_hash="$argon2id$stub")  # noqa: S106 - a placeholder row
    return await store.add_user_with_account(ADMIN, b"a" * 32, account, T0)


async def _invited(store: SqliteStore) -> int:
    account = NewAccount(user_id=INVITED.id, email="i@la.example", password_hash="")
    return await store.add_invited_user(
        INVITED, b"i" * 32, account, invitation_hash=CODE, expires=T0 + 100, now=T0
    )


async def test_an_invitation_is_used_once_and_only_before_it_expires(store: SqliteStore) -> None:
    """The code sets the first password once; a late or second use writes nothing."""
    number = await _invited(store)
    invited = await store.account_by_id(number)
    assert invited is not None
    assert (invited.invited, invited.factor_required, invited.password_hash) == (True, True, "")
    assert not await store.accept_invitation(number, CODE, "$argon2id$late", now=T0 + 100)
    assert not await store.accept_invitation(number, b"x" * 32, "$argon2id$wrong", now=T0 + 1)
    assert await store.accept_invitation(number, CODE, "$argon2id$first", now=T0 + 1)
    assert not await store.accept_invitation(number, CODE, "$argon2id$again", now=T0 + 2)
    accepted = await store.account_by_id(number)
    assert accepted is not None
    assert (accepted.invited, accepted.password_hash) == (False, "$argon2id$first")


async def test_the_last_admin_is_kept_and_every_change_ends_sessions(store: SqliteStore) -> None:
    """Demoting, disabling or resetting the only admin is refused; changes end sessions."""
    number = await _admin(store)
    for change in ({"role": "dsl"}, {"disabled": True}, {"reset_second_factor": True}):
        assert await store.change_account(number, now=T0, **change) == "last-admin"  # type: ignore[arg-type]
    # Another admin who has not accepted their invitation cannot sign in: still the last.
    other = User("a2", LA, "Admin Two", "admin")
    account = NewAccount(user_id=other.id, email="a2@la.example", password_hash="")
    await store.add_invited_user(
        other, b"b" * 32, account, invitation_hash=CODE, expires=T0 + 100, now=T0
    )
    assert await store.change_account(number, now=T0, role="dsl") == "last-admin"
    invited = await _invited(store)
    session = Session(
        id_hash=b"\x01" * 32, user=INVITED, created=T0, last_seen=T0, level="second-factor",
        required="second-factor", method="password+totp", csrf_secret=b"\x02" * 32,
    )  # fmt: skip
    await store.add_session(session)
    assert await store.change_account(invited, now=T0, role="staff") == "done"
    assert await store.session(session.id_hash) is None
    assert await store.change_account(9999, now=T0, disabled=True) == "missing"
