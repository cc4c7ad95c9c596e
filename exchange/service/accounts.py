"""Staff accounts and web sessions: sign in with a password and a second factor, sign out.

The use case behind the staff web pages' sign-in (the pages parse a form, call one method
here and render). The rules are the pure ones of :mod:`exchange.auth`; this module reads
and writes the rows (:class:`~exchange.store.base.AccountStore`), runs Argon2id off the
event loop, and logs each step as an event naming ids only (``account``, ``session``):
never an email address, password, code or secret.

**Audit.** Sign-ins (with their method), failed sign-ins of an account, and accepted
invitations are account events in the ledger (:mod:`exchange.service.audit`), written in
the transaction of the change they record: the session started, the failure counted.
A session records ``sign-in`` when it first becomes signed in; raising a session already
signed in (a step-up) records nothing here: whoever asks for the step-up records
``step-up`` through :meth:`Accounts._audited`. A refused password for an address with no
account is **not** recorded in the ledger, since anyone on the internet could fill it so:
it is logged and counted (:attr:`Accounts.unknown_address_refusals`, a metric). Nor is an
attempt refused unchecked while sign-in is slowed, so an account's recorded failures are
bounded by the slowdown.

Signing in::

    begin_sign_in(email, password)            -> SignInStep (accepted, refused or slowed)
    start_session(step, replacing=old_token)  -> (token, Session)   a new id, level "password"
    verify_second_factor(token, code)         -> (token, Session)   a new id, "second-factor"
    step_up(token, code)                      -> (token, Session)   the factor again, later
    enrol_totp(token)                         -> TotpEnrolment       secret, otpauth URI
    confirm_totp_enrolment(token, code)       -> EnrolmentConfirmed  recovery codes, once
    session_for(token)                        -> Session | None      idle and absolute limits
    end_session(token) / end_all_sessions(user)

A refused sign-in says the same whether the address is unknown, the password wrong or the
account disabled, and takes about as long (an unknown address is checked against a dummy
hash). Failures are counted per address (account or not) and per account (second-factor
failures too); after :attr:`~exchange.auth.throttle.ThrottlePolicy.free_failures` each
further attempt is refused for a growing delay with a sentence saying how long to wait.

**Other ways to sign in.** A session has a level and the method that reached it. Single
sign-on or a passkey will be another way to reach ``second-factor``: a method here that
checks its proof and calls :meth:`Accounts._start` with its own method name, so sessions,
timeouts and pages stay as they are.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, NoReturn, Protocol

import segno

from exchange.auth.account import Account, NewAccount, check_email, email_hash, email_key
from exchange.auth.errors import AuthError, InvalidCodeError, PasswordHashError, WeakPasswordError
from exchange.auth.invitation import invitation_code_hash
from exchange.auth.passwords import (
    DEFAULT_PARAMS,
    PasswordParams,
    check_password_rules,
    hash_password,
    verify_password,
)
from exchange.auth.recovery import (
    generate_recovery_codes,
    looks_like_recovery_code,
    recovery_code_hash,
)
from exchange.auth.session import (
    CSRF_SECRET_LEN,
    READS_RECORDS,
    Level,
    Method,
    Session,
    SessionPolicy,
    new_session_token,
    required_level,
    session_id_hash,
)
from exchange.auth.throttle import DEFAULT_THROTTLE, ThrottlePolicy, wait_message
from exchange.auth.totp import TotpSecret, provisioning_uri, verify_code
from exchange.ledger.account_events import AccountEvent
from exchange.logs import get_logger
from exchange.model import User
from exchange.service.audit import account_event
from exchange.service.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServiceError,
    UnprocessableError,
)
from exchange.store.base import DuplicateError, Store

log = get_logger("exchange.accounts")

#: The one sentence for every refused password step: unknown address, wrong password and
#: disabled account alike (GOV.UK "sign in" pattern).
REFUSED: Final = "Enter a correct email address and password"
#: The sentence for a refused second factor.
CODE_REFUSED: Final = "Enter a correct security code or recovery code"
#: The sentence for every refused invitation: unknown address, wrong, used or expired code.
INVITATION_REFUSED: Final = (
    "Enter the email address and invitation code you were given. A code works once, for 7 "
    "days: if yours has expired, ask your administrator for a new one"
)
#: How many password hashes are computed at once: each takes its memory cost in RAM.
MAX_HASHING: Final = 4
#: A session's use is written when the last one written is older than this fraction of the
#: idle timeout (:meth:`Accounts.session_for`).
TOUCHES_PER_IDLE_TIMEOUT: Final = 60


class SessionEndedError(ServiceError):
    """The session is unknown, timed out or signed out: sign in again."""

    status = 401


class SignInRefusedError(ServiceError):
    """A second factor was refused (the message is plain and the same for every reason)."""

    status = 401


class SlowedDownError(ServiceError):
    """Too many failures in a row: attempts are refused for a while; the message says how long."""

    status = 429


class AccountsContext(Protocol):
    """What the accounts use case needs of the service context: the store and the clock."""

    @property
    def store(self) -> Store:
        """The node's store."""
        ...

    def now(self) -> int:
        """Return the current time in whole seconds."""
        ...


def _duplicate(exc: DuplicateError) -> ConflictError:
    """Return the refusal of a user, account or address that exists, as one sentence."""
    text = str(exc)
    return ConflictError(text[:1].upper() + text[1:])


@dataclass
class StoreClock:
    """A store and the wall clock: what creating an account needs outside a running node."""

    store: Store

    def now(self) -> int:
        """Return the current time in whole seconds."""
        return int(time.time())


SignInOutcome = Literal["accepted", "refused", "slowed"]
#: What the person must do after an accepted password: nothing more, give their second
#: factor, or set one up first.
NextStep = Literal["signed-in", "second-factor", "enrol-second-factor"]

#: Marks a :class:`SignInStep` made here, so only an accepted password starts a session.
_GRANTED: Final = object()


@dataclass(frozen=True)
class SignInStep:
    """The answer to an email address and password: ``message`` is plain English."""

    outcome: SignInOutcome
    message: str = ""
    next: NextStep | None = None
    user: User | None = None
    _grant: object = field(default=None, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        """Whether the password was accepted (a session may be started)."""
        return self.outcome == "accepted" and self._grant is _GRANTED


@dataclass(frozen=True)
class TotpEnrolment:
    """A new TOTP secret to show once: typed by hand (``secret``) or scanned (``uri``)."""

    secret: TotpSecret
    uri: str = field(repr=False)

    @property
    def secret_text(self) -> str:
        """The secret in base32, in groups of four to type into an app by hand."""
        text = self.secret.base32
        return " ".join(text[i : i + 4] for i in range(0, len(text), 4))

    def qr_svg(self) -> str:
        """Return the QR code of :attr:`uri` as SVG markup (see :func:`qr_svg`)."""
        return qr_svg(self.uri)


@dataclass(frozen=True)
class EnrolmentConfirmed:
    """A confirmed second factor: recovery codes to show once, and the upgraded session."""

    recovery_codes: tuple[str, ...] = field(repr=False)
    token: str = field(repr=False)
    session: Session


def qr_svg(uri: str, *, label: str = "QR code for your authenticator app") -> str:
    """Return SVG markup of the QR code of ``uri``, with no ``style`` attribute.

    The markup has ``role="img"``, an ``aria-label`` and a ``<title>``, a class
    (``app-qr-code``) for the page's stylesheet, and colours as presentation attributes
    (``stroke="#000"``), which a Content Security Policy without ``'unsafe-inline'`` allows.
    The page must still show the secret as text beside it for people who cannot scan.
    """
    code = segno.make(uri, error="m")
    out = io.BytesIO()
    code.save(
        out, kind="svg", xmldecl=False, svgns=True, nl=False, scale=4, svgclass="app-qr-code",
        lineclass=None, title=label,
    )  # fmt: skip
    svg = out.getvalue().decode("ascii")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


class Accounts:
    """Create accounts, sign staff in and out, and keep their sessions."""

    def __init__(
        self,
        context: AccountsContext,
        *,
        policy: SessionPolicy | None = None,
        password_params: PasswordParams = DEFAULT_PARAMS,
        throttle: ThrottlePolicy = DEFAULT_THROTTLE,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.context = context
        self.policy = SessionPolicy() if policy is None else policy
        self.password_params = password_params
        self.throttle = throttle
        self._random = random
        self._hashing = asyncio.Semaphore(MAX_HASHING)
        # Checked against when the address is unknown, so the answer takes as long; made on
        # first use, so starting a node costs no hashing.
        self._dummy_hash: str | None = None
        #: Refused passwords for addresses with no account (not in the ledger: a metric).
        self.unknown_address_refusals = 0

    @property
    def _store(self) -> Store:
        return self.context.store

    def _now(self, now: float | None) -> float:
        return float(self.context.now()) if now is None else now

    # --- accounts ------------------------------------------------------------------------

    async def _new_account(self, user_id: str, email: str, password: str) -> NewAccount:
        try:
            address = check_email(email)
            check_password_rules(password)
        except WeakPasswordError as exc:
            raise UnprocessableError(str(exc), rule="password-rules") from None
        except ValueError as exc:
            raise UnprocessableError(str(exc), rule="email") from None
        async with self._hashing:
            hashed = await asyncio.to_thread(
                hash_password, password, self._random, self.password_params
            )
        return NewAccount(user_id=user_id, email=address, password_hash=hashed)

    async def create_account(
        self, user_id: str, email: str, password: str, *, now: float | None = None
    ) -> int:
        """Give an existing user an account with an email address and password; return its id."""
        account = await self._new_account(user_id, email, password)
        try:
            found = await self._store.add_account(account, self._now(now))
        except DuplicateError as exc:
            raise ConflictError(str(exc).capitalize()) from None
        if found is None:
            raise NotFoundError("no such user")
        log.info("account.created", account=found)
        return found

    async def create_user(
        self, user: User, token_hash: bytes, *, email: str, password: str, now: float | None = None
    ) -> int:
        """Create a user holding an API token with their account, together; return its id."""
        account = await self._new_account(user.id, email, password)
        try:
            found = await self._store.add_user_with_account(
                user, token_hash, account, self._now(now)
            )
        except DuplicateError as exc:
            raise _duplicate(exc) from None
        log.info("account.created", account=found)
        return found

    async def add_user(self, user: User, token_hash: bytes, *, now: float | None = None) -> None:
        """Create a user holding an API token, without an account for the web pages."""
        try:
            await self._store.add_user(user, token_hash, self._now(now))
        except DuplicateError as exc:
            raise _duplicate(exc) from None

    async def set_account_disabled(self, actor: User, user_id: str, *, disabled: bool) -> None:
        """Disable (ending its sessions) or enable an account of the actor's organisation."""
        if actor.role != "admin":
            raise ForbiddenError("only an administrator may disable or enable accounts")
        account = await self._store.account_by_user(user_id)
        if account is None or account.user.org != actor.org:
            raise NotFoundError("no such account in this organisation")
        await self._store.set_account_disabled(user_id, disabled=disabled, now=self._now(None))
        log.info("account.disabled" if disabled else "account.enabled", account=account.id)
        await self._audited("disabled" if disabled else "enabled", account.user, actor=actor)

    async def readers_without_second_factor(self) -> list[str]:
        """Return the user ids of enabled accounts that read records but have no second factor."""
        return await self._store.accounts_without_second_factor(sorted(READS_RECORDS))

    async def readers_signed_in_without_second_factor(self) -> list[int]:
        """Return the ids of accounts that could read records now without a second factor.

        Sign-in makes every role that reads records set up a second factor before its session
        counts as signed in (:func:`~exchange.auth.session.required_level`), so a reader with
        no second factor can read records only through a session stored as signed in with
        the password alone: one started while the account had a role that needs no second
        factor, if its role changed without its sessions ending. Changes made here end them;
        a node refuses to start while any such session is left (``exchange.node.runtime``).
        """
        return await self._store.readers_signed_in_without_second_factor(sorted(READS_RECORDS))

    async def accept_invitation(
        self, email: str, code: str, password: str, now: float | None = None
    ) -> SignInStep:
        """Use an invitation code: set the account's first password; say what happens next.

        A wrong address, a wrong, used or expired code and a disabled account get the same
        refusal (:data:`INVITATION_REFUSED`), counted and slowed as a wrong password is; a
        password that breaks a rule is refused with the rule, before the code is used up.
        The step accepted is the password step of a first sign-in: the person sets up their
        authenticator app next.
        """
        t = self._now(now)
        key = email_hash(email)
        until = await self._store.sign_in_slowed_until(key)
        if until is not None and t < until:
            log.info("invitation.slowed")
            return SignInStep("slowed", wait_message(until, t))
        account = await self._store.account_by_email(email_key(email))
        typed = invitation_code_hash(code)
        good = (
            account is not None
            and not account.disabled
            and account.invitation_hash is not None
            and account.invitation_expires is not None
            and t < account.invitation_expires
            and typed is not None
            and hmac.compare_digest(account.invitation_hash, typed)
        )
        if not good or account is None or typed is None:
            await self._store.record_failure(
                t,
                lambda count: self.throttle.slowed_until(count, t),
                email_hash=key,
                account_id=None,
                audit=None
                if account is None
                else self._event("sign-in-failed", account.user, t, detail="invitation"),
            )
            log.info("invitation.refused", account=None if account is None else account.id)
            return SignInStep("refused", INVITATION_REFUSED)
        new = await self._new_account(account.user.id, account.email, password)
        accepted_event = self._event("invitation-accepted", account.user, t)
        if not await self._store.accept_invitation(
            account.id, typed, new.password_hash, now=t, audit=accepted_event
        ):
            log.info("invitation.refused", account=account.id)
            return SignInStep("refused", INVITATION_REFUSED)
        await self._store.clear_failures(email_hash=key, account_id=account.id)
        log.info("invitation.accepted", account=account.id)
        accepted = await self._store.account_by_user(account.user.id)
        assert accepted is not None  # just updated, and accounts are never deleted
        return SignInStep(
            "accepted", next=self._next_step(accepted), user=accepted.user, _grant=_GRANTED
        )

    # --- the password step ---------------------------------------------------------------

    async def _password_matches(self, password: str, stored: str) -> bool:
        async with self._hashing:
            try:
                await asyncio.to_thread(verify_password, password, stored)
            except PasswordHashError:
                # An operator's problem (a damaged row), refused like a wrong password.
                log.warning("sign_in.bad_stored_hash")
                return False
            except AuthError:
                return False
        return True

    async def begin_sign_in(
        self, email: str, password: str, now: float | None = None
    ) -> SignInStep:
        """Check an email address and password; say what happens next, never who exists."""
        t = self._now(now)
        key = email_hash(email)
        account = await self._store.account_by_email(email_key(email))
        slowed = [await self._store.sign_in_slowed_until(key)]
        if account is not None:
            slowed.append(account.slowed_until)
        until = max((s for s in slowed if s is not None), default=None)
        if until is not None and t < until:
            log.info("sign_in.slowed", account=None if account is None else account.id)
            return SignInStep("slowed", wait_message(until, t))
        # An invited account has no password until its invitation is accepted, and one that
        # signs in through single sign-on may have none at all.
        unusable = account is None or account.invited or not account.password_hash
        stored = await self._dummy() if account is None or unusable else account.password_hash
        matches = await self._password_matches(password, stored)
        if account is None or unusable or not matches or account.disabled:
            await self._store.record_failure(
                t,
                lambda count: self.throttle.slowed_until(count, t),
                email_hash=key,
                account_id=None if account is None else account.id,
                audit=None if account is None else self._password_failure(account, t),
            )
            if account is None:
                self.unknown_address_refusals += 1
            log.info("sign_in.refused", account=None if account is None else account.id)
            return SignInStep("refused", REFUSED)
        await self._store.clear_failures(email_hash=key, account_id=None)
        step = self._next_step(account)
        if step == "signed-in":
            # Nothing more to prove: the account's failures in a row end here. With a second
            # factor they end only when it is given, or its guesses would never be slowed.
            await self._store.clear_failures(email_hash=None, account_id=account.id)
        log.info("sign_in.password_accepted", account=account.id, outcome=step)
        return SignInStep("accepted", next=step, user=account.user, _grant=_GRANTED)

    def _password_failure(self, account: Account, now: float) -> AccountEvent:
        """Return the event of a refused password: why, when it is not just a wrong one."""
        detail = "disabled" if account.disabled else "invited" if account.invited else ""
        return self._event("sign-in-failed", account.user, now, method="password", detail=detail)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(
                hash_password, "no account has this password", self._random, self.password_params
            )
        return self._dummy_hash

    @staticmethod
    def _next_step(account: Account) -> NextStep:
        required = required_level(account.user.role, has_second_factor=account.needs_second_factor)
        if required == "password":
            return "signed-in"
        return "second-factor" if account.has_second_factor else "enrol-second-factor"

    # --- sessions ------------------------------------------------------------------------

    async def _start(
        self,
        user: User,
        *,
        level: Level,
        required: Level,
        method: Method,
        replacing: bytes | None,
        created: float,
        now: float,
        factor_at: float | None = None,
        was_signed_in: bool = False,
    ) -> tuple[str, Session]:
        """Store a session with a new id (replacing any earlier one); return its token.

        A session started at ``second-factor`` has given its factor ``now`` unless
        ``factor_at`` says when. A session signed in that replaces one that was not
        (``was_signed_in``) records a ``sign-in`` event with its method, in the same
        transaction.
        """
        if factor_at is None and level == "second-factor":
            factor_at = now
        token, id_hash = new_session_token(self._random)
        session = Session(
            id_hash=id_hash,
            user=user,
            created=created,
            last_seen=now,
            level=level,
            required=required,
            method=method,
            csrf_secret=self._random(CSRF_SECRET_LEN),
            factor_at=factor_at,
        )
        signed_in = session.signed_in and not was_signed_in
        audit = self._event("sign-in", user, now, method=method) if signed_in else None
        await self._store.add_session(session, replacing=replacing, audit=audit)
        if session.signed_in:
            await self._store.note_sign_in(user.id, now)
        log.info("session.started", session=session.ref, method=method, outcome=level)
        return token, session

    async def start_session(
        self, step: SignInStep, *, replacing: str | None = None, now: float | None = None
    ) -> tuple[str, Session]:
        """Start a session after an accepted password, always with a new id.

        ``replacing`` is the token of a session the browser held before (if any): it is
        deleted, never carried on, so a session id planted before sign-in is worthless.
        """
        if not step.accepted or step.user is None:
            raise ValueError("step must be an accepted password step from begin_sign_in")
        t = self._now(now)
        account = await self._store.account_by_user(step.user.id)
        if account is None or account.disabled or account.invited:
            raise SessionEndedError(REFUSED)
        required = required_level(account.user.role, has_second_factor=account.needs_second_factor)
        old = None if replacing is None else session_id_hash(replacing)
        return await self._start(
            account.user, level="password", required=required, method="password",
            replacing=old, created=t, now=t,
        )  # fmt: skip

    async def start_verified_session(
        self,
        user_id: str,
        *,
        method: Method,
        second_factor: bool,
        replacing: str | None = None,
        now: float | None = None,
    ) -> tuple[str, Session]:
        """Start (or raise) a session for a sign-in proved some other way than a password.

        Single sign-on and passkeys call this once they have verified the person: ``method``
        names how (``sso``, ``sso+mfa``, ``passkey``), ``second_factor`` whether it counts
        as one. The account must exist, be enabled and have accepted its invitation.
        ``replacing`` is the token the browser held: a session at ``password`` level keeps
        its start time and is raised (a step-up, or the second step of a sign-in); any
        other is ended and a new one started. A session that still needs a second factor
        continues on the security code steps, as after a password.
        """
        t = self._now(now)
        account = await self._store.account_by_user(user_id)
        if account is None or account.disabled or account.invited:
            raise SessionEndedError(REFUSED)
        required = required_level(account.user.role, has_second_factor=account.needs_second_factor)
        old = None if replacing is None else await self.session_for(replacing, t)
        created = t
        raised = old is not None and old.user.id == account.user.id
        if old is not None and raised:
            created = old.created
            required = old.required if old.required == "second-factor" else required
        level: Level = "second-factor" if second_factor else "password"
        was_signed_in = old is not None and raised and old.signed_in
        # The sign-in event is recorded with the session; raising a signed-in session with
        # a second factor again (passkey, single sign-on) is a step-up.
        started = await self._start(
            account.user, level=level, required=required, method=method,
            replacing=None if replacing is None else session_id_hash(replacing),
            created=created, now=t, was_signed_in=was_signed_in,
        )  # fmt: skip
        if was_signed_in and second_factor:
            await self._audited("step-up", account.user, method=method, now=t)
        return started

    def _event(
        self,
        kind: str,
        user: User,
        now: float,
        *,
        method: str | None = None,
        detail: str = "",
        actor: User | None = None,
    ) -> AccountEvent:
        """Return the event ``kind`` about ``user`` at ``now`` (:func:`account_event`)."""
        return account_event(
            kind, user, at=now, random=self._random, method=method, detail=detail, actor=actor
        )

    async def _audited(
        self,
        kind: str,
        user: User | None,
        *,
        method: str | None = None,
        detail: str = "",
        actor: User | None = None,
        now: float | None = None,
    ) -> None:
        """Record an account event that changes nothing else (a step-up, a refused sign-in).

        ``kind`` is one of :data:`~exchange.ledger.events.ACCOUNT_KINDS`, ``method`` how the
        person proved who they are (``password+totp``, ``passkey``, ``sso+mfa``), ``detail``
        a short lower-case code (never a name, an address or a sentence: ``ValueError``),
        ``actor`` who acted if not the account itself. The event goes to the ledger with a
        commitment to the user id, and to the readable table the administrator's activity
        page lists. With no ``user`` (no account was found) nothing is recorded but a log
        line: an internet-facing form must not let anyone fill the ledger.
        """
        log.info(
            "account.event", kind=kind, user=None if user is None else user.id,
            method=method, detail=detail or None,
        )  # fmt: skip
        if user is None:
            return
        event = self._event(kind, user, self._now(now), method=method, detail=detail, actor=actor)
        await self._store.record_account_event(event)

    async def session_for(self, token: str, now: float | None = None) -> Session | None:
        """Return the live session of ``token`` (at any level), noting its use; None if none.

        A session past its idle or absolute timeout is deleted and None returned. The pages
        must check :attr:`Session.signed_in` before showing anything but the sign-in steps.
        """
        t = self._now(now)
        id_hash = session_id_hash(token)
        if id_hash is None:
            return None
        session = await self._store.session(id_hash)
        if session is None:
            return None
        state = self.policy.state(created=session.created, last_seen=session.last_seen, now=t)
        if state != "active":
            await self._store.delete_session(id_hash)
            log.info("session.timed_out", session=session.ref, outcome=state)
            return None
        # The use is written only once the last one written is a little stale (a 60th of the
        # idle timeout: 15 s of 15 minutes), so a page view does not wait for a commit
        # behind the outbox's writes; the session may end that much early, never late.
        stale = t - session.last_seen >= self.policy.idle_timeout / TOUCHES_PER_IDLE_TIMEOUT
        if stale and not await self._store.touch_session(id_hash, t):
            return None
        return Session(
            id_hash=session.id_hash, user=session.user, created=session.created,
            last_seen=max(t, session.last_seen), level=session.level,
            required=session.required, method=session.method,
            csrf_secret=session.csrf_secret, factor_at=session.factor_at,
        )  # fmt: skip

    async def _live(self, token: str, now: float) -> Session:
        session = await self.session_for(token, now)
        if session is None:
            raise SessionEndedError("Your session has ended. Sign in again.")
        return session

    async def end_session(self, token: str) -> None:
        """Sign out: delete the session of ``token`` (nothing happens if there is none)."""
        id_hash = session_id_hash(token)
        if id_hash is not None and await self._store.delete_session(id_hash):
            log.info("session.ended", session=id_hash[:6].hex())

    async def end_all_sessions(self, user: User) -> int:
        """Sign a user out everywhere; return how many sessions ended."""
        count = await self._store.delete_user_sessions(user.id)
        account = await self._store.account_by_user(user.id)
        log.info("session.all_ended", account=None if account is None else account.id, count=count)
        return count

    async def sweep_sessions(self, now: float | None = None) -> int:
        """Delete every session past its idle or absolute timeout; return how many."""
        t = self._now(now)
        count = await self._store.sweep_sessions(
            idle_before=t - self.policy.idle_timeout,
            created_before=t - self.policy.absolute_timeout,
        )
        if count:
            log.info("session.swept", count=count)
        return count

    # --- the second factor ---------------------------------------------------------------

    async def _account_of(self, session: Session) -> Account:
        account = await self._store.account_by_user(session.user.id)
        if account is None or account.disabled:
            raise SessionEndedError("Your session has ended. Sign in again.")
        return account

    async def enrol_totp(
        self, token: str, now: float | None = None, *, keep_pending: bool = False
    ) -> TotpEnrolment:
        """Make a new TOTP secret for the session's account, to be confirmed with a code.

        With ``keep_pending``, a secret already made and not yet confirmed is shown again
        instead: a page reloaded, or a code mistyped, must not make the person scan a new QR
        code. Replacing a confirmed second factor needs a session that has given it.
        """
        t = self._now(now)
        session = await self._live(token, t)
        account = await self._account_of(session)
        if account.has_second_factor and session.level != "second-factor":
            raise ForbiddenError(
                "Enter your security code before setting up a new authenticator app"
            )
        if keep_pending and account.totp_pending is not None:
            secret = account.totp_pending
            return TotpEnrolment(secret=secret, uri=provisioning_uri(secret, account.email))
        secret = TotpSecret.generate(self._random)
        await self._store.set_totp_pending(account.id, secret, t)
        log.info("totp.enrolment_started", account=account.id)
        return TotpEnrolment(secret=secret, uri=provisioning_uri(secret, account.email))

    async def confirm_totp_enrolment(
        self, token: str, code: str, now: float | None = None
    ) -> EnrolmentConfirmed:
        """Confirm the pending secret with a code from the app; return recovery codes once.

        The session is replaced by one at ``second-factor`` (a new id, the same start time).
        """
        t = self._now(now)
        session = await self._live(token, t)
        account = await self._account_of(session)
        pending = account.totp_pending
        if pending is None:
            raise ConflictError("Set up your authenticator app first")
        await self._refuse_if_slowed(account, t)
        try:
            step = verify_code(pending, code, t, last_used_step=account.totp_last_step)
        except InvalidCodeError:
            await self._second_factor_failed(account, t, session, "password+totp")
        codes = generate_recovery_codes(self._random)
        confirmed = await self._store.confirm_totp(
            account.id, pending, step=step,
            recovery_hashes=[recovery_code_hash(c) for c in codes], now=t,
        )  # fmt: skip
        if not confirmed:
            raise ConflictError("Set up your authenticator app again")
        await self._store.clear_failures(email_hash=None, account_id=account.id)
        log.info("totp.enrolled", account=account.id, count=len(codes))
        new_token, new_session = await self._start(
            session.user, level="second-factor", required="second-factor",
            method="password+totp", replacing=session.id_hash, created=session.created, now=t,
            was_signed_in=session.signed_in,
        )  # fmt: skip
        return EnrolmentConfirmed(codes, new_token, new_session)

    async def verify_second_factor(
        self, token: str, code: str, now: float | None = None
    ) -> tuple[str, Session]:
        """Check a TOTP code or a recovery code; return a new session at ``second-factor``.

        A code of a step already used, a code outside one step either side, and a recovery
        code used before are refused like a wrong one, and counted.
        """
        t = self._now(now)
        session = await self._live(token, t)
        account = await self._account_of(session)
        secret = account.totp_secret
        if secret is None:
            raise ConflictError("Set up your authenticator app first")
        await self._refuse_if_slowed(account, t)
        method: Method
        try:
            if looks_like_recovery_code(code):
                method = "password+recovery-code"
                ok = await self._store.use_recovery_code(account.id, recovery_code_hash(code), t)
            else:
                method = "password+totp"
                step = verify_code(secret, code, t, last_used_step=account.totp_last_step)
                # Conditional on the stored step, so two requests with one code cannot both pass.
                ok = await self._store.use_totp_step(account.id, step)
        except InvalidCodeError:
            ok = False
        if not ok:
            await self._second_factor_failed(account, t, session, method)
        await self._store.clear_failures(email_hash=None, account_id=account.id)
        if method == "password+recovery-code":
            log.info("recovery_code.used", account=account.id, count=account.recovery_left - 1)
        log.info("second_factor.accepted", account=account.id, method=method)
        return await self._start(
            session.user, level="second-factor", required=session.required, method=method,
            replacing=session.id_hash, created=session.created, now=t,
            was_signed_in=session.signed_in,
        )  # fmt: skip

    # --- step-up ---------------------------------------------------------------------------

    def factor_is_recent(self, session: Session, now: float | None = None) -> bool:
        """Whether ``session`` gave a second factor within the step-up window (by this clock)."""
        return self.policy.factor_is_recent(session, self._now(now))

    async def has_authenticator_app(self, session: Session) -> bool:
        """Whether the session's account can confirm with an app code (or a recovery code)."""
        account = await self._store.account_by_user(session.user.id)
        return account is not None and account.has_code

    async def step_up(self, token: str, code: str, now: float | None = None) -> tuple[str, Session]:
        """Ask a signed-in person for their second factor again, before they open a record.

        The code is checked, counted and slowed as at sign-in
        (:meth:`verify_second_factor`); the session gets a new id with the same level, start
        time and required level, and gives its factor now. Each answer checked is one account
        event: ``step-up``, or ``sign-in-failed`` with the detail ``step-up`` (recorded with
        the failure's count); an attempt refused unchecked while slowed records nothing.
        """
        t = self._now(now)
        session = await self._live(token, t)
        if not session.signed_in:
            raise SessionEndedError("Your session has ended. Sign in again.")
        new_token, new = await self.verify_second_factor(token, code, t)
        await self._audited("step-up", new.user, method=new.method)
        return new_token, new

    async def _refuse_if_slowed(self, account: Account, now: float) -> None:
        if account.slowed_until is not None and now < account.slowed_until:
            log.info("second_factor.slowed", account=account.id)
            raise SlowedDownError(wait_message(account.slowed_until, now))

    async def _second_factor_failed(
        self, account: Account, now: float, session: Session, method: Method
    ) -> NoReturn:
        # A wrong code from a session already signed in is a failed step-up.
        detail = "step-up" if session.signed_in else ""
        await self._store.record_failure(
            now,
            lambda count: self.throttle.slowed_until(count, now),
            email_hash=None,
            account_id=account.id,
            audit=self._event("sign-in-failed", account.user, now, method=method, detail=detail),
        )
        log.info("second_factor.refused", account=account.id)
        raise SignInRefusedError(CODE_REFUSED)
