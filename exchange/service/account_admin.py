"""An organisation's administrator manages its staff accounts: invite, role, second factor.

The use case behind the ``/admin/accounts`` pages. Only an administrator may act, and only
on accounts of their own organisation: another organisation's account, on this node or not,
is "not found", as another organisation's items are. Every change ends the account's
sessions, so a new role, a reset second factor or a disabled account takes effect at once;
a change that would leave the organisation with no administrator who can sign in (the last
one demoted, disabled, or resetting their own second factor) is refused.

Inviting makes the user and an account without a password, with a single-use code valid for
a week (:mod:`exchange.auth.invitation`), returned once: only its hash is kept. The invited
person chooses a password with the code (:meth:`Accounts.accept_invitation`) and sets up an
authenticator app at once, whatever their role. Each invited user also gets a fresh random
API token hash that nobody holds: the staff API is given out with ``exchange users add``.

Removing an account deletes it, its recovery codes and its sessions, and gives its user an
API token nobody holds; the user's row stays, so what they sent and opened still names them
and their id is never given to someone else. The last administrator cannot be removed.

The node's operator, at the node's console (``exchange users ...``), acts through the same
methods as :func:`operator`: an administrator of the organisation who holds no account, so
resetting the last administrator's second factor is allowed there (it is how a locked-out
administrator gets back in), while demoting, disabling or removing them is not.

Resetting a second factor forgets the authenticator app, the recovery codes and every
passkey of the account (``exchange.store.accounts``).

Every change, the invitation made or renewed included, is an account event in the ledger
naming the account and the administrator (:mod:`exchange.service.audit`), recorded in the
change's own transaction: a change refused records nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from exchange.auth.account import MAX_EMAIL_LEN, Account, NewAccount, check_email
from exchange.auth.invitation import (
    INVITATION_LIFETIME,
    invitation_code_hash,
    new_invitation_code,
)
from exchange.keys.ids import OrgId
from exchange.ledger.account_events import AccountEvent
from exchange.logs import get_logger
from exchange.model import Role, User
from exchange.service.accounts import AccountsContext
from exchange.service.audit import account_event
from exchange.service.errors import ConflictError, ForbiddenError, NotFoundError, ServiceError
from exchange.store.base import AccountChange, DuplicateError, Store

log = get_logger("exchange.accounts")

#: The roles an account may have.
ROLES: Final[tuple[Role, ...]] = get_args(Role)
#: Longest name of a member of staff.
MAX_NAME_LEN: Final = 100
#: The refusal of a change that would leave no administrator who can sign in.
LAST_ADMIN: Final = (
    "Your organisation must keep an administrator who can sign in: "
    "invite or choose another administrator first"
)


#: Where an account stands: signing in, waiting for its invitation (or past its end), or not.
AccountState = Literal["active", "invited", "invitation expired", "disabled"]


def account_state(account: Account, now: float) -> AccountState:
    """Return where an account stands at ``now``."""
    if account.disabled:
        return "disabled"
    if account.invited:
        return "invited" if now < (account.invitation_expires or 0.0) else "invitation expired"
    return "active"


def operator(org: OrgId) -> User:
    """Return the node's operator acting as an administrator of ``org`` (no account's user)."""
    # No user id is empty, so the operator is never the account acted on.
    return User("", org, "the node's operator", "admin")


def _role(text: str) -> Role | None:
    """Return ``text`` as a role, or None if it is not one."""
    for role in ROLES:
        if text == role:
            return role
    return None


def _outcome(done: AccountChange, event: str, account_id: int) -> None:
    """Refuse a change the store did not make, or log the one it made."""
    if done == "missing":
        raise NotFoundError("There is no such account in your organisation")
    if done == "last-admin":
        raise ConflictError(LAST_ADMIN)
    log.info(event, account=account_id)


class InvitationProblemError(ServiceError):
    """An invitation's details are not usable; ``field`` names the one at fault."""

    status = 422

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Invitation:
    """An invitation made: the code to pass on (shown once) and until when it works."""

    account_id: int
    name: str
    code: str = field(repr=False)
    expires: float


class AccountAdministration:
    """What an administrator does to their organisation's staff accounts."""

    def __init__(
        self, context: AccountsContext, *, random: Callable[[int], bytes] = secrets.token_bytes
    ) -> None:
        self.context = context
        self._random = random

    @property
    def _store(self) -> Store:
        return self.context.store

    def _now(self) -> float:
        return float(self.context.now())

    def _event(self, kind: str, user: User, actor: User, *, detail: str = "") -> AccountEvent:
        """Return the event ``kind`` the administrator ``actor`` causes to ``user``'s account."""
        return account_event(
            kind, user, at=self._now(), random=self._random, detail=detail, actor=actor
        )

    @staticmethod
    def _admin(actor: User) -> None:
        if actor.role != "admin":
            raise ForbiddenError("Only an administrator can manage staff accounts")

    async def organisation_accounts(self, actor: User) -> list[Account]:
        """Return every account of the administrator's organisation, by name."""
        self._admin(actor)
        return await self._store.organisation_accounts(actor.org)

    async def users_without_account(self, actor: User) -> list[User]:
        """Return the users of the administrator's organisation who have no account, by id.

        They cannot sign in to the web pages: made by ``exchange users add`` without an email
        address (an API token only), or left when their account was removed.
        """
        self._admin(actor)
        with_account = {a.user.id for a in await self._store.organisation_accounts(actor.org)}
        return [u for u in await self._store.users_of(actor.org) if u.id not in with_account]

    async def account(self, actor: User, account_id: int) -> Account:
        """Return one account of the administrator's organisation, or refuse as not found."""
        self._admin(actor)
        account = await self._store.account_by_id(account_id)
        if account is None or account.user.org != actor.org:
            raise NotFoundError("There is no such account in your organisation")
        return account

    async def invite(self, actor: User, *, name: str, email: str, role: str) -> Invitation:
        """Create an account for a new member of staff, with an invitation code to pass on."""
        self._admin(actor)
        name = " ".join(name.split())
        if not name:
            raise InvitationProblemError("Enter the person's full name", field="name")
        if len(name) > MAX_NAME_LEN:
            raise InvitationProblemError(
                f"Full name must be {MAX_NAME_LEN} characters or fewer", field="name"
            )
        if not email.strip():
            raise InvitationProblemError("Enter the person's email address", field="email")
        try:
            address = check_email(email)
        except ValueError:
            raise InvitationProblemError(
                "Enter an email address in the correct format, like name@example.org"
                if len(email.strip()) <= MAX_EMAIL_LEN
                else f"Email address must be {MAX_EMAIL_LEN} characters or fewer",
                field="email",
            ) from None
        chosen = _role(role)
        if chosen is None:
            raise InvitationProblemError("Select the person's role", field="role")
        code = new_invitation_code(self._random)
        code_hash = invitation_code_hash(code)
        assert code_hash is not None  # a new code always has the shape of one
        now = self._now()
        expires = now + INVITATION_LIFETIME
        user = User(f"u-{self._random(8).hex()}", actor.org, name, chosen)
        # The user's API token is random and never shown: nobody holds it.
        token_hash = hashlib.sha256(self._random(32)).digest()
        account = NewAccount(user_id=user.id, email=address, password_hash="")
        audit = self._event("invited", user, actor, detail=chosen)
        try:
            account_id = await self._store.add_invited_user(
                user, token_hash, account, invitation_hash=code_hash, expires=expires, now=now,
                audit=audit,
            )  # fmt: skip
        except DuplicateError as exc:
            if "email" in str(exc):
                raise InvitationProblemError(
                    "This email address already has an account on this node", field="email"
                ) from None
            raise ConflictError("Try again: the new account's number was taken") from None
        log.info("account.invited", account=account_id, outcome=role)
        return Invitation(account_id, name, code, expires)

    async def renew_invitation(self, actor: User, account_id: int) -> Invitation:
        """Give an account that waits for its invitation a new code (the old one stops)."""
        account = await self.account(actor, account_id)
        if not account.invited:
            raise ConflictError("This person has already accepted their invitation")
        code = new_invitation_code(self._random)
        code_hash = invitation_code_hash(code)
        assert code_hash is not None
        now = self._now()
        expires = now + INVITATION_LIFETIME
        audit = self._event("invitation-renewed", account.user, actor)
        if not await self._store.renew_invitation(
            account_id, code_hash, expires=expires, now=now, audit=audit
        ):
            raise ConflictError("This person has already accepted their invitation")
        log.info("account.invitation_renewed", account=account_id)
        return Invitation(account_id, account.user.name, code, expires)

    async def _change(
        self,
        actor: User,
        account_id: int,
        kind: str,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        reset_second_factor: bool = False,
        keep_an_admin: bool = True,
    ) -> None:
        account = await self.account(actor, account_id)
        done = await self._store.change_account(
            account_id, now=self._now(), role=role, disabled=disabled,
            reset_second_factor=reset_second_factor, keep_an_admin=keep_an_admin,
            audit=self._event(kind, account.user, actor, detail=role or ""),
        )  # fmt: skip
        _outcome(done, f"account.{kind.replace('-', '_')}", account_id)

    async def change_role(self, actor: User, account_id: int, role: str) -> None:
        """Give an account a new role; its sessions end, so the role applies at once."""
        chosen = _role(role)
        if chosen is None:
            raise InvitationProblemError("Select a role", field="role")
        await self._change(actor, account_id, "role-changed", role=chosen)

    async def reset_second_factor(self, actor: User, account_id: int) -> None:
        """Forget an account's authenticator app, recovery codes and passkeys; sessions end.

        The person signs in with their password and sets up an app again.
        """
        account = await self.account(actor, account_id)
        # Only one's own reset can lock the last administrator out: another's leaves the
        # actor, an administrator who is signed in, to help.
        await self._change(
            actor, account_id, "factors-reset", reset_second_factor=True,
            keep_an_admin=account.user.id == actor.id,
        )  # fmt: skip

    async def set_disabled(self, actor: User, account_id: int, *, disabled: bool) -> None:
        """Disable an account (its sessions end) or enable it again."""
        await self._change(
            actor,
            account_id,
            "disabled" if disabled else "enabled",
            disabled=disabled,
        )

    async def remove(self, actor: User, account_id: int) -> None:
        """Remove an account: it can no longer sign in or use its API token."""
        account = await self.account(actor, account_id)
        # A fresh random token hash that nobody holds replaces the user's API token.
        token_hash = hashlib.sha256(self._random(32)).digest()
        done = await self._store.remove_account(
            account_id, token_hash=token_hash, audit=self._event("removed", account.user, actor)
        )
        _outcome(done, "account.removed", account_id)
