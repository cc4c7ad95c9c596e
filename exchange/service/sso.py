"""Signing in to the staff web pages through an organisation's OpenID provider.

The use case behind ``/sign-in/sso/...`` (the pages set and read the cookies; everything
else is here). :meth:`SingleSignOn.begin` makes a sign-in's secrets and the provider's
address; :meth:`SingleSignOn.finish` checks what the provider sent back and starts (or
raises) a session through :meth:`Accounts.start_verified_session`.

Who may sign in:

- the provider's claims must map to at least one role (``[[sso.<id>.roles]]``); a person
  they map to no role is refused, whatever account they have;
- the person is found by their link, (issuer, ``sub``), once linked. Before that, by the
  verified ``email`` claim (``email_verified`` must not be false) among the accounts of the
  provider's organisation, invited or active: that account is then linked, and an invited
  one has accepted its invitation (it signs in through the provider from then on). With
  ``self_provisioning``, a person with no account gets one, with the first role their
  claims map to;
- the account must be enabled, of the provider's organisation, and its role one the claims
  map to: an administrator's choice of role is kept, within what the provider says.

The method is ``sso+mfa`` when the provider asserted more than one factor
(:func:`~exchange.auth.sso_rules.mfa_asserted`), which counts as the second factor;
otherwise ``sso``, and a role that reads records continues to the security code steps.

A **step-up** (``step_up`` in :meth:`begin`) asks the provider to sign the person in afresh
(``prompt=login``, ``max_age=0``); on return the provider must say it authenticated the
same person, after the step-up began, with more than one factor. The session is then raised
(its start time kept) with the factor given now.

Every refusal is an :class:`SsoRefusedError` with a plain sentence and a short reason code
for the log and the account events (``sign-in-refused``); neither holds a claim's value,
a token or an email address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from exchange.auth.account import Account, NewAccount, check_email, email_key
from exchange.auth.oidc import IdToken, OidcError, authorization_url, new_login_secrets
from exchange.auth.session import Session
from exchange.auth.sso_pending import PendingLogin
from exchange.auth.sso_rules import SsoProvider, mapped_roles, mfa_asserted
from exchange.keys.ids import OrgId
from exchange.logs import get_logger
from exchange.model import Role, User
from exchange.service.accounts import Accounts, SessionEndedError
from exchange.service.errors import NotFoundError, ServiceError
from exchange.service.sso_client import ProviderClient
from exchange.store.base import DuplicateError, LinkOutcome, Store

log = get_logger("exchange.accounts")

#: Where providers send people back (``<public_url>`` before it).
CALLBACK_PATH: Final = "/sign-in/sso/callback"
#: The reason code (at most 16 characters, as account events allow) of each link refusal.
_LINK_REFUSALS: Final[dict[LinkOutcome, str]] = {
    "linked": "linked",
    "missing": "link-missing",
    "disabled": "link-disabled",
    "taken": "link-taken",
    "invitation-expired": "invite-expired",
}
#: The longest name taken from a provider for a self-provisioned account.
MAX_NAME_LEN: Final = 100

RefusalKind = Literal["failed", "not-allowed", "no-mfa", "ended"]
NextStep = Literal["signed-in", "second-factor", "enrol-second-factor"]


class SsoRefusedError(ServiceError):
    """A single sign-on was refused; the message is the page's sentence."""

    status = 403

    def __init__(self, message: str, *, kind: RefusalKind, reason: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class SsoSignIn:
    """A session started or raised by single sign-on, and what the person does next."""

    token: str = field(repr=False)
    session: Session
    next: NextStep
    step_up: bool = False


def expired_refusal() -> SsoRefusedError:
    """Return the refusal of an answer with no sign-in under way (or one too old)."""
    return SsoRefusedError(
        "Signing in did not finish in time, or was started in another browser. Start again",
        kind="failed",
        reason="no-pending-login",
    )


def _refusal(kind: RefusalKind, label: str, reason: str) -> SsoRefusedError:
    message = {
        "failed": f"Signing in with {label} did not work. Try again, or sign in with your "
        "email address and password",
        "not-allowed": f"Your {label} account cannot sign in to this service. Ask your "
        "organisation's administrator to invite you",
        "no-mfa": f"{label} did not confirm that you used a second factor, such as an "
        "authenticator app. Confirm it another way",
        "ended": "Your session has ended. Sign in again",
    }[kind]
    return SsoRefusedError(message, kind=kind, reason=reason)


@dataclass(frozen=True)
class Callback:
    """What the provider sent back to ``/sign-in/sso/callback`` (all untrusted)."""

    state: str = field(repr=False)
    code: str | None = field(default=None, repr=False)
    iss: str | None = None
    error: str | None = None


class SingleSignOn:
    """The node's single sign-on providers, and signing in or stepping up through them."""

    def __init__(
        self,
        accounts: Accounts,
        *,
        redirect_uri: Callable[[], str],
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.accounts = accounts
        self.redirect_uri = redirect_uri
        self._random = random
        self._clients: dict[str, ProviderClient] = {}

    def add(self, client: ProviderClient) -> None:
        """Offer sign-in through ``client``'s provider."""
        self._clients[client.provider.id] = client

    def providers(self, org: OrgId | None = None) -> list[SsoProvider]:
        """Return the providers (of ``org`` if given), in the configuration's order."""
        return [c.provider for c in self._clients.values() if org is None or c.provider.org == org]

    async def linked_labels(self, user: User) -> list[str]:
        """Return the labels of ``user``'s organisation's providers their account is linked to."""
        issuers = set(await self._store.sso_issuers_of(user.id))
        labels = [p.label for p in self.providers(user.org) if p.issuer in issuers]
        return list(dict.fromkeys(labels))

    def _client(self, provider_id: str) -> ProviderClient:
        client = self._clients.get(provider_id)
        if client is None:
            raise NotFoundError("There is no such way to sign in")
        return client

    @property
    def _store(self) -> Store:
        return self.accounts.context.store

    async def begin(
        self,
        provider_id: str,
        *,
        return_to: str | None,
        step_up: bool,
        session_token: str | None,
        now: float,
    ) -> tuple[str, PendingLogin]:
        """Return the provider's address for a new sign-in and what the callback needs.

        ``session_token`` is the session the browser holds now: a sign-in replaces it, a
        step-up raises it (and needs it signed in).
        """
        client = self._client(provider_id)
        try:
            metadata = await client.metadata()
        except OidcError as exc:
            log.warning("sso.unavailable", provider=provider_id, outcome=exc.reason)
            raise _refusal("failed", client.provider.label, exc.reason) from None
        login = new_login_secrets(self._random)
        url = authorization_url(
            metadata, client_id=client.provider.client_id, redirect_uri=self.redirect_uri(),
            scopes=client.provider.scopes, secrets=login, step_up=step_up,
        )  # fmt: skip
        pending = PendingLogin(
            provider=provider_id, state=login.state, nonce=login.nonce, verifier=login.verifier,
            created=now, return_to=return_to, step_up=step_up, session_token=session_token,
        )  # fmt: skip
        log.info("sso.started", provider=provider_id, outcome="step-up" if step_up else "sign-in")
        return url, pending

    async def finish(self, pending: PendingLogin, callback: Callback, *, now: float) -> SsoSignIn:
        """Check the provider's answer; start or raise a session; refuse with a sentence."""
        client = self._client(pending.provider)
        provider = client.provider
        try:
            token = await self._verified(client, pending, callback, now)
        except OidcError as exc:
            await self._refused(provider, None, exc.reason)
            raise _refusal("failed", provider.label, exc.reason) from None
        roles = mapped_roles(token, provider)
        if not roles:
            await self._refused(provider, None, "no-mapped-role")
            raise _refusal("not-allowed", provider.label, "no-mapped-role")
        account = await self._account(provider, token, roles, now)
        mfa = mfa_asserted(token, amr=provider.mfa_amr, acr=provider.mfa_acr)
        if pending.step_up:
            return await self._step_up(
                provider=provider, pending=pending, token=token, account=account, mfa=mfa, now=now
            )
        method = "sso+mfa" if mfa else "sso"
        try:
            new_token, session = await self.accounts.start_verified_session(
                account.user.id, method=method, second_factor=mfa,
                replacing=pending.session_token, now=now,
            )  # fmt: skip
        except SessionEndedError:
            await self._refused(provider, account.user, "account-unusable")
            raise _refusal("not-allowed", provider.label, "account-unusable") from None
        step: NextStep = "signed-in"
        if not session.signed_in:
            step = "second-factor" if account.has_second_factor else "enrol-second-factor"
        return SsoSignIn(new_token, session, step)

    async def _verified(
        self, client: ProviderClient, pending: PendingLogin, callback: Callback, now: float
    ) -> IdToken:
        """Check ``state``, the answer's issuer and the code; return the verified ID token."""
        if not hmac.compare_digest(callback.state.encode(), pending.state.encode()):
            raise OidcError("state", "the answer's state is not this sign-in's")
        if callback.error is not None:
            raise OidcError("provider-error", "the provider did not sign the person in")
        metadata = await client.metadata()
        if (callback.iss is not None or metadata.iss_parameter) and callback.iss != metadata.issuer:
            raise OidcError("issuer", "the answer names another issuer")
        if not callback.code:
            raise OidcError("no-code", "the answer holds no authorization code")
        id_token = await client.exchange_code(
            code=callback.code, verifier=pending.verifier, redirect_uri=self.redirect_uri()
        )
        return await client.verify(id_token, nonce=pending.nonce, now=now)

    async def _refused(self, provider: SsoProvider, user: User | None, reason: str) -> None:
        log.info("sso.refused", provider=provider.id, outcome=reason)
        await self.accounts._audited("sign-in-refused", user, method="sso", detail=reason)

    async def _not_allowed(
        self, provider: SsoProvider, user: User | None, reason: str
    ) -> SsoRefusedError:
        await self._refused(provider, user, reason)
        return _refusal("not-allowed", provider.label, reason)

    async def _account(
        self, provider: SsoProvider, token: IdToken, roles: list[Role], now: float
    ) -> Account:
        """Return the person's account: linked, linked now by email, or made now."""
        store = self._store
        user_id = await store.sso_linked_user(token.issuer, token.subject)
        if user_id is None:
            user_id = await self._link(provider, token, roles, now)
        account: Account | None = await store.account_by_user(user_id)
        if account is None or account.user.org != provider.org:
            raise await self._not_allowed(provider, None, "no-account")
        if account.disabled:
            raise await self._not_allowed(provider, account.user, "disabled")
        if account.user.role not in roles:
            raise await self._not_allowed(provider, account.user, "role-not-mapped")
        return account

    async def _link(
        self, provider: SsoProvider, token: IdToken, roles: list[Role], now: float
    ) -> str:
        """Link the person to their account by verified email, or make one; return its user."""
        store = self._store
        email = token.email
        if email is None or token.email_verified is False:
            raise await self._not_allowed(provider, None, "email-unverified")
        account: Account | None = await store.account_by_email(email_key(email))
        if account is None:
            return await self._provision(provider, token, email, roles[0], now)
        if account.user.org != provider.org:
            raise await self._not_allowed(provider, None, "no-account")
        if account.disabled:
            raise await self._not_allowed(provider, account.user, "disabled")
        if account.user.role not in roles:
            raise await self._not_allowed(provider, account.user, "role-not-mapped")
        outcome = await store.link_sso(token.issuer, token.subject, account.user.id, now=now)
        if outcome != "linked":
            raise await self._not_allowed(provider, account.user, _LINK_REFUSALS[outcome])
        await self.accounts._audited("sso-linked", account.user, method="sso", detail=provider.id)
        return account.user.id

    async def _provision(
        self, provider: SsoProvider, token: IdToken, email: str, role: Role, now: float
    ) -> str:
        """Make an account for a person with none, if the provider's settings allow it."""
        if not provider.self_provisioning:
            raise await self._not_allowed(provider, None, "no-account")
        try:
            address = check_email(email)
        except ValueError:
            raise await self._not_allowed(provider, None, "email-unverified") from None
        name = " ".join(str(token.claims.get("name") or "").split())[:MAX_NAME_LEN]
        user = User(f"u-{self._random(8).hex()}", provider.org, name or address, role)
        try:
            await self._store.add_sso_user(
                user, hashlib.sha256(self._random(32)).digest(),
                NewAccount(user_id=user.id, email=address, password_hash=""),
                issuer=token.issuer, subject=token.subject, now=now,
            )  # fmt: skip
        except DuplicateError:
            raise await self._not_allowed(provider, None, "provision-clash") from None
        await self.accounts._audited("sso-linked", user, method="sso", detail="self-provisioned")
        return user.id

    async def _step_up(
        self,
        *,
        provider: SsoProvider,
        pending: PendingLogin,
        token: IdToken,
        account: Account,
        mfa: bool,
        now: float,
    ) -> SsoSignIn:
        """Raise the signed-in session of the same person, who just gave more than one factor."""
        current_token = pending.session_token
        current = None
        if current_token is not None:
            current = await self.accounts.session_for(current_token, now)
        if current is None or current_token is None or not current.signed_in:
            await self._refused(provider, account.user, "no-session")
            raise _refusal("ended", provider.label, "no-session")
        if current.user.id != account.user.id:
            raise await self._not_allowed(provider, current.user, "other-person")
        if not mfa:
            await self._refused(provider, current.user, "no-mfa-asserted")
            raise _refusal("no-mfa", provider.label, "no-mfa-asserted")
        auth_time = token.auth_time
        if auth_time is None or auth_time < pending.created - provider.clock_skew:
            await self._refused(provider, current.user, "not-fresh")
            raise _refusal("failed", provider.label, "not-fresh")
        new_token, session = await self.accounts.start_verified_session(
            current.user.id, method="sso+mfa", second_factor=True, replacing=current_token, now=now
        )
        return SsoSignIn(new_token, session, "signed-in", step_up=True)


def provider_choices(providers: list[SsoProvider]) -> list[Mapping[str, str]]:
    """Return the providers as the sign-in pages list them: id and label."""
    return [{"id": p.id, "label": p.label} for p in providers]
