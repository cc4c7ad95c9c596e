"""Passkeys: add one, sign in or confirm it's you with one, remove one.

The use case behind the passkey pages (``exchange.web.passkeys``). The WebAuthn checks are
the pure ones of :mod:`exchange.auth.passkey_ceremony`; this module issues and takes the
challenges, reads and writes the passkeys, and starts sessions through
:meth:`~exchange.service.accounts.Accounts.start_verified_session`, where a passkey counts as
both factors (method ``passkey``)::

    registration_options(token, binding)       -> JSON for navigator.credentials.create
    add(token, binding, answer, name)           -> Passkey        ("passkey-added")
    sign_in_options(binding, session)           -> JSON for navigator.credentials.get
    sign_in(binding, answer, replacing=token)   -> (token, Session)
    remove(user, passkey_id)                    -> Passkey        ("passkey-removed")

A challenge is bound to the browser that asked for it (``binding``: a hash of its session's
or its pre-sign-in secret, :func:`~exchange.auth.passkey.browser_binding`), answered once,
within five minutes. Adding a passkey needs a signed-in session whose second factor is
recent (:meth:`~exchange.auth.session.SessionPolicy.factor_is_recent`), or, for an account
with no second factor yet, just a signed-in session, as setting up an authenticator app
does. A sign-in is refused, with one plain sentence whatever the reason, when the answer
does not verify (origin, RP ID, challenge, user verification, signature), the passkey is
unknown, its account is disabled, removed or still invited, or its signature counter went
back (logged as a warning: the passkey may have been copied). Each refusal is an account
event ``sign-in-refused`` naming the check, never the answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from exchange.auth.errors import PasskeyRefusedError
from exchange.auth.passkey import (
    CHALLENGE_LIFETIME,
    NewPasskey,
    Passkey,
    PasskeyChallenge,
    Purpose,
    RelyingParty,
    challenge_key,
    check_passkey_name,
    new_challenge,
)
from exchange.auth.passkey_ceremony import (
    authentication_options,
    read_registration,
    read_sign_in,
    registration_options,
    verify_registration,
    verify_sign_in,
)
from exchange.auth.session import Session
from exchange.logs import get_logger
from exchange.model import User
from exchange.service.accounts import (
    Accounts,
    AccountsContext,
    SessionEndedError,
    SignInRefusedError,
)
from exchange.service.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnprocessableError,
)
from exchange.store.base import DuplicateError, Store

log = get_logger("exchange.accounts")

#: The one sentence for every refused sign-in with a passkey.
PASSKEY_REFUSED: Final = (
    "Your passkey was not accepted. Try again, or sign in with your email address and password"
)
#: The sentence for an answer to adding a passkey that did not verify.
NOT_ADDED: Final = "Your passkey was not added. Try again"
#: Why a node reached by an IP address, or over plain HTTP, has no passkeys.
UNAVAILABLE: Final = "Passkeys cannot be used on this node"
#: Why adding a passkey needs the second factor first.
CONFIRM_FIRST: Final = "Confirm it's you before you add a passkey"
ENDED: Final = "Your session has ended. Sign in again."


class PasskeysContext(AccountsContext, Protocol):
    """What the passkeys use case needs: the store, the clock and the node's public URL."""

    @property
    def public_url(self) -> str:
        """The node's public URL: its host is the relying party's ID."""
        ...


class ConfirmFirstError(ForbiddenError):
    """Adding a passkey needs a second factor given recently: confirm it's you first."""


@dataclass(frozen=True)
class ConfirmWays:
    """How a person can give their second factor: a code from their app, a passkey, or both."""

    code: bool
    passkey: bool


def _tidy_name(name: str) -> str:
    try:
        return check_passkey_name(name)
    except ValueError as exc:
        raise UnprocessableError(str(exc), rule="passkey-name") from None


@dataclass
class _Attempt:
    """What a sign-in with a passkey found before it was refused, for the log and audit."""

    passkey: Passkey | None = None
    user: User | None = None


class Passkeys:
    """Passkeys of staff accounts: registration, sign-in and step-up with one, removal."""

    def __init__(
        self,
        context: PasskeysContext,
        accounts: Accounts,
        *,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.context = context
        self._accounts = accounts
        self._random = random

    @property
    def _store(self) -> Store:
        return self.context.store

    def _now(self, now: float | None) -> float:
        return float(self.context.now()) if now is None else now

    @property
    def relying_party(self) -> RelyingParty | None:
        """The node as WebAuthn names it, or None if its public URL cannot be one."""
        return RelyingParty.from_public_url(self.context.public_url)

    @property
    def enabled(self) -> bool:
        """Whether passkeys can be used on this node (its public URL names a host)."""
        return self.relying_party is not None

    def _rp(self) -> RelyingParty:
        rp = self.relying_party
        if rp is None:
            raise ConflictError(UNAVAILABLE)
        return rp

    async def _challenge(
        self, binding: bytes, purpose: Purpose, user_id: str | None, now: float
    ) -> bytes:
        challenge = new_challenge(self._random)
        await self._store.add_passkey_challenge(
            PasskeyChallenge(
                key=challenge_key(challenge), binding=binding, purpose=purpose,
                user_id=user_id, expires=now + CHALLENGE_LIFETIME,
            ),
            now=now,
        )  # fmt: skip
        return challenge

    async def _take(
        self, challenge: bytes, binding: bytes, purpose: Purpose, now: float
    ) -> PasskeyChallenge:
        """Use up the challenge an answer names; refuse one not issued to this browser."""
        taken = await self._store.take_passkey_challenge(challenge_key(challenge))
        if taken is None:
            raise PasskeyRefusedError("challenge")
        taken.check(binding=binding, purpose=purpose, now=now)
        return taken

    # --- the person's own passkeys --------------------------------------------------------

    async def passkeys(self, user: User) -> list[Passkey]:
        """Return the person's passkeys, oldest first."""
        return await self._store.passkeys_of(user.id)

    async def passkey(self, user: User, passkey_id: int) -> Passkey:
        """Return one of the person's passkeys, or refuse as not found."""
        for passkey in await self._store.passkeys_of(user.id):
            if passkey.id == passkey_id:
                return passkey
        raise NotFoundError("You have no such passkey")

    async def ways_to_confirm(self, user: User) -> ConfirmWays:
        """Return how ``user`` can give their second factor on this node."""
        account = await self._store.account_by_user(user.id)
        if account is None:
            return ConfirmWays(code=False, passkey=False)
        return ConfirmWays(code=account.has_code, passkey=self.enabled and account.passkeys > 0)

    async def may_add(self, session: Session, now: float | None = None) -> bool:
        """Whether ``session`` may add a passkey now, or must confirm it's the person first."""
        if not session.signed_in:
            return False
        account = await self._store.account_by_user(session.user.id)
        if account is None or account.disabled:
            return False
        return not account.has_second_factor or self._accounts.policy.factor_is_recent(
            session, self._now(now)
        )

    async def _adding(self, token: str, now: float) -> Session:
        session = await self._accounts.session_for(token, now)
        if session is None or not session.signed_in:
            raise SessionEndedError(ENDED)
        if not await self.may_add(session, now):
            raise ConfirmFirstError(CONFIRM_FIRST)
        return session

    async def registration_options(
        self, token: str, *, binding: bytes, name: str | None = None, now: float | None = None
    ) -> str:
        """Return the options to add a passkey to the session's account (JSON).

        ``name``, if given, is checked first, so a name the page would refuse is refused
        before the person is asked for their fingerprint.
        """
        t = self._now(now)
        if name is not None:
            _tidy_name(name)
        rp = self._rp()
        session = await self._adding(token, t)
        account = await self._store.account_by_user(session.user.id)
        if account is None:
            raise SessionEndedError(ENDED)
        challenge = await self._challenge(binding, "register", session.user.id, t)
        return registration_options(
            rp, user_id=session.user.id, user_name=account.email,
            display_name=session.user.name, challenge=challenge,
            exclude=await self._store.passkeys_of(session.user.id),
        )  # fmt: skip

    async def add(
        self, token: str, *, binding: bytes, answer: str, name: str, now: float | None = None
    ) -> Passkey:
        """Verify the answer to the registration options and keep the passkey."""
        t = self._now(now)
        tidy = _tidy_name(name)
        rp = self._rp()
        session = await self._adding(token, t)
        try:
            new = await self._registered(rp, session, binding, answer, t)
        except PasskeyRefusedError as exc:
            log.info("passkey.not_added", session=session.ref, outcome=exc.reason)
            raise UnprocessableError(NOT_ADDED, rule="passkey") from None
        try:
            stored = await self._store.add_passkey(session.user.id, new, name=tidy, now=t)
        except DuplicateError:
            raise ConflictError("This passkey is added already") from None
        if stored is None:
            raise SessionEndedError(ENDED)
        await self._accounts._audited("passkey-added", session.user, method="passkey")
        log.info("passkey.added", account=stored.account_id, passkey=stored.id)
        return stored

    async def _registered(
        self, rp: RelyingParty, session: Session, binding: bytes, answer: str, now: float
    ) -> NewPasskey:
        """Verify an answer to adding a passkey, using up its challenge."""
        read = read_registration(answer)
        taken = await self._take(read.challenge, binding, "register", now)
        if taken.user_id != session.user.id:
            raise PasskeyRefusedError("challenge")
        return verify_registration(rp, read, challenge=read.challenge)

    async def remove(self, user: User, passkey_id: int) -> Passkey:
        """Remove one of the person's passkeys: it can no longer sign them in."""
        passkey = await self.passkey(user, passkey_id)
        if not await self._store.remove_passkey(user.id, passkey_id):
            raise NotFoundError("You have no such passkey")
        await self._accounts._audited("passkey-removed", user, method="passkey")
        log.info("passkey.removed", account=passkey.account_id, passkey=passkey.id)
        return passkey

    # --- signing in, and confirming it's you ----------------------------------------------

    async def sign_in_options(
        self, *, binding: bytes, session: Session | None, now: float | None = None
    ) -> str:
        """Return the options to sign in with a passkey (JSON).

        For a signed-in session (confirming it's the person before opening a record) only
        that person's passkeys may answer; otherwise any passkey of this node.
        """
        t = self._now(now)
        rp = self._rp()
        user_id = session.user.id if session is not None and session.signed_in else None
        allow = [] if user_id is None else await self._store.passkeys_of(user_id)
        challenge = await self._challenge(binding, "sign-in", user_id, t)
        return authentication_options(rp, challenge=challenge, allow=allow)

    async def sign_in(
        self,
        *,
        binding: bytes,
        answer: str,
        replacing: str | None = None,
        now: float | None = None,
    ) -> tuple[str, Session]:
        """Verify a passkey's answer; start (or raise) a session at ``second-factor``.

        ``replacing`` is the token the browser held: the same person's session keeps its
        start time and is raised (confirming it's them); any other is ended.
        """
        t = self._now(now)
        rp = self._rp()
        attempt = _Attempt()
        try:
            passkey = await self._verified(rp, binding, answer, attempt, t)
            return await self._accounts.start_verified_session(
                passkey.user_id, method="passkey", second_factor=True, replacing=replacing, now=t
            )
        except PasskeyRefusedError as exc:
            reason = exc.reason
        except SessionEndedError:
            reason = "account"
        raise await self._refused(reason, attempt)

    async def _verified(
        self, rp: RelyingParty, binding: bytes, answer: str, attempt: _Attempt, now: float
    ) -> Passkey:
        """Verify a passkey's answer, using up its challenge and recording the use."""
        read = read_sign_in(answer)
        taken = await self._take(read.challenge, binding, "sign-in", now)
        passkey = attempt.passkey = await self._store.passkey_by_credential(read.credential_id)
        if passkey is None:
            raise PasskeyRefusedError("unknown-passkey")
        account = await self._store.account_by_user(passkey.user_id)
        if account is None or account.disabled or account.invited:
            raise PasskeyRefusedError("account")
        attempt.user = account.user
        if taken.user_id is not None and taken.user_id != passkey.user_id:
            raise PasskeyRefusedError("other-account")
        count = verify_sign_in(rp, read, challenge=read.challenge, passkey=passkey)
        # Conditional on the counter checked, so one answer raced twice passes once.
        if not await self._store.note_passkey_use(
            passkey.id, sign_count_was=passkey.sign_count, sign_count=count, now=now
        ):
            raise PasskeyRefusedError("sign-count")
        return passkey

    async def _refused(self, reason: str, attempt: _Attempt) -> SignInRefusedError:
        """Log and audit a refused sign-in; return the refusal the person is shown."""
        passkey = attempt.passkey
        if reason == "sign-count" and passkey is not None:
            # A counter that goes back may mean the passkey's key was copied to another
            # authenticator: worth an administrator's look, not just a failed attempt.
            log.warning(
                "passkey.sign_count_went_back", account=passkey.account_id, passkey=passkey.id
            )
        await self._accounts._audited(
            "sign-in-refused", attempt.user, method="passkey", detail=reason
        )
        return SignInRefusedError(PASSKEY_REFUSED)
