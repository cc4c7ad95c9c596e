"""What a node does, independent of HTTP: submit, deliver, receive, open, acknowledge, reject.

:class:`NodeService` ties the sans-I/O core (envelopes, receipts, ledger events) to the
store. Every operation follows "persist, then send": state changes, outbox rows and ledger
events are committed in one transaction before anything leaves the node, and the outbox
worker (``exchange.workers.delivery``) is only woken afterwards.

It is a facade over focused use cases, each built over one shared
:class:`~exchange.service.context.ServiceContext` and each in a module named after it:
:class:`~exchange.service.sending.Sending`, :class:`~exchange.service.receiving.Receiving`,
:class:`~exchange.service.inbox.Inbox` (staff actions on the inbox),
:class:`~exchange.service.register.SharingRegister` and
:class:`~exchange.service.views.Views` (what staff see of their items),
:class:`~exchange.service.owed.Owed` (received items awaiting an answer), with retention in
:mod:`~exchange.service.retention`. The HTTP and CLI adapters call one method of it per
request. It does no file I/O: the composition root (``exchange.node.runtime``) loads the
records setup, the register key, the tenants' keys and the directory, and opens the store.
Staff accounts and web sessions are :class:`~exchange.service.accounts.Accounts`, and their
passkeys :class:`~exchange.service.passkeys.Passkeys`.
The refusals are in :mod:`~exchange.service.errors`, the ledger events and store rows in
:mod:`~exchange.service.rows`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from exchange.auth.account import Account
from exchange.auth.api_token import DEFAULT_DAYS, ApiToken, token_hash
from exchange.auth.passwords import DEFAULT_PARAMS, PasswordParams
from exchange.auth.session import Session, SessionPolicy
from exchange.connectors.base import HeldBody
from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.model import RegisterOutcome, SubjectKey, SubjectKind, User
from exchange.policy import Deadline, RecordsSetup
from exchange.records.scanning import Entry
from exchange.service import retention
from exchange.service.account_admin import AccountAdministration, Invitation
from exchange.service.accounts import (
    Accounts,
    EnrolmentConfirmed,
    SignInStep,
    TotpEnrolment,
)
from exchange.service.api_tokens import ApiTokens
from exchange.service.audit import AccountAudit, ActivityPage
from exchange.service.busy import Backpressure
from exchange.service.context import ServiceContext
from exchange.service.directory_updates import DirectoryUpdates, RefreshResult
from exchange.service.errors import (
    ForbiddenError,
    NotFoundError,
    ServiceError,
    UnprocessableError,
)
from exchange.service.follow_ups import CorrectionTarget, FollowUps, ReplyTarget
from exchange.service.idempotency import IdempotencyKey
from exchange.service.inbox import Inbox
from exchange.service.ledger import NodeLedger
from exchange.service.node_state import NodeState, NodeStateView
from exchange.service.opened_bodies import OpenedItem
from exchange.service.owed import Owed, OwedItem
from exchange.service.passkeys import Passkeys
from exchange.service.reading import Reading
from exchange.service.receiving import InboundCheck, Receiving
from exchange.service.register import SharingRegister
from exchange.service.register_reports import OverdueItem, RegisterKey, RegisterPage
from exchange.service.sending import Sending, Submitted
from exchange.service.sso import CALLBACK_PATH, SingleSignOn
from exchange.service.subject_access import Copies, Identifier, SubjectAccess
from exchange.service.tenants import Tenant
from exchange.service.threads import thread_view
from exchange.service.views import InboxView, ReceiptsView, SentView, Views
from exchange.sharing.prepare import Submission
from exchange.store import Store
from exchange.store.base import DraftRowStore, InboxPlace
from exchange.store.sent_lists import SentFilterKind

T = TypeVar("T")


@dataclass(frozen=True)
class StoreCounts:
    """What the node's metrics report of its store: outbox items, receipts, ledger size."""

    outbox: Mapping[str, int]
    receipts: Mapping[str, int]
    ledger_size: int


class NodeService:
    """The node's operations over its store, directory, tenants' keys and rules."""

    def __init__(
        self,
        *,
        store: Store,
        directory: Directory,
        tenants: Mapping[OrgId, Tenant],
        records: RecordsSetup,
        register_key: RegisterKey,
        clock: Callable[[], float],
        max_envelope_bytes: int,
        public_url: str,
        overdue_after: float,
        notified: frozenset[OrgId] = frozenset(),
        session_policy: SessionPolicy | None = None,
        password_params: PasswordParams = DEFAULT_PARAMS,
        idempotency_keys_for: float = 24 * 3600.0,
        max_backlog: int = 0,
    ) -> None:
        self.context = ServiceContext(
            store=store,
            directory=directory,
            tenants=tenants,
            records=records,
            register_key=register_key,
            clock=clock,
            max_envelope_bytes=max_envelope_bytes,
            public_url=public_url,
            overdue_after=overdue_after,
            notified=notified,
            idempotency_keys_for=idempotency_keys_for,
            backpressure=Backpressure(max_backlog),
        )
        self.sending = Sending(self.context)
        self.receiving = Receiving(self.context)
        self.inbox = Inbox(self.context)
        self.register = SharingRegister(self.context)
        self.subject_access_case = SubjectAccess(self.context)
        self.views = Views(self.context)
        self.reading = Reading(self.context, self.inbox)
        self.owed = Owed(self.context)
        self.follow_ups = FollowUps(self.context)
        self.accounts = Accounts(
            self.context, policy=session_policy, password_params=password_params
        )
        self.account_admin = AccountAdministration(self.context)
        self.passkeys = Passkeys(self.context, self.accounts)
        #: Single sign-on; the node adds its configured providers.
        self.sso = SingleSignOn(
            self.accounts, redirect_uri=lambda: self.context.public_url + CALLBACK_PATH
        )
        self.audit = AccountAudit(self.context)
        # Read the context's clock at each call, not once here: demos and tests replace it.
        now = lambda: self.context.clock()  # noqa: E731, PLW0108
        self.api_tokens = ApiTokens(self.context.store, now)
        self.node_state = NodeState(self.context)
        #: Directory updates, once the node has set them up (None in a bare service).
        self.directory_updates: DirectoryUpdates | None = None

    # --- what the workers and adapters read of the shared context ------------------------

    @property
    def store(self) -> Store:
        """The node's store."""
        return self.context.store

    @property
    def directory(self) -> Directory:
        """The signed directory the node trusts now (replaced when a newer one is adopted)."""
        return self.context.directory

    @directory.setter
    def directory(self, directory: Directory) -> None:
        self.context.directory = directory

    @property
    def drafts_store(self) -> DraftRowStore:
        """Where the web pages keep drafts of records being sent: the node's store."""
        return self.context.store

    @property
    def public_url(self) -> str:
        """The origin peers sign requests against (docs/protocol.md): this node's own URL."""
        return self.context.public_url

    @public_url.setter
    def public_url(self, url: str) -> None:
        self.context.public_url = url

    @property
    def notified(self) -> frozenset[OrgId]:
        """Organisations whose staff are mailed a notice when an item arrives."""
        return self.context.notified

    @notified.setter
    def notified(self, orgs: frozenset[OrgId]) -> None:
        self.context.notified = orgs

    @property
    def tenants(self) -> Mapping[OrgId, Tenant]:
        """The organisations this node serves, with their keys."""
        return self.context.tenants

    @property
    def records(self) -> RecordsSetup:
        """The sharing policy, calendar and retention rules."""
        return self.context.records

    @property
    def clock(self) -> Callable[[], float]:
        """The node's clock (seconds since the epoch); demos and tests move it."""
        return self.context.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.context.clock = clock

    @property
    def max_envelope_bytes(self) -> int:
        """The largest envelope the node accepts or seals."""
        return self.context.max_envelope_bytes

    @property
    def backpressure(self) -> Backpressure:
        """The busy rule the submissions are checked against (``[delivery] max_backlog``)."""
        return self.context.backpressure

    @property
    def outbox_wakeup(self) -> asyncio.Event:
        """Set after every commit that queues outbox rows, so the delivery worker wakes up."""
        return self.context.outbox_wakeup

    def now(self) -> int:
        """Return the current time in whole seconds."""
        return self.context.now()

    def tenant(self, org: OrgId) -> Tenant:
        """Return the tenant ``org`` or refuse as not found."""
        return self.context.tenant(org)

    def subject_key(self, kind: SubjectKind, value: str) -> SubjectKey:
        """Return the keyed hash of a pupil identifier (validated, canonical form)."""
        return self.context.subject_key(kind, value)

    # --- staff and peers ---------------------------------------------------------------

    async def staff_user(self, token: str) -> User | None:
        """Return who holds the API token ``token``: a member of staff or a machine, or None.

        A machine's token that expired or was revoked raises :class:`InvalidTokenError`
        saying which.
        """
        digest = token_hash(token)
        user = await self.context.store.user_by_token_hash(digest)
        return user if user is not None else await self.api_tokens.principal(digest)

    async def seen_or_record_nonce(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Return True if a peer request's ``(key, nonce)`` was seen; else remember it."""
        return await self.context.store.seen_or_record_nonce(key, nonce, created, now)

    async def shared_secret(self, name: str) -> bytes:
        """Return the node's secret ``name`` (32 bytes), the same in every process; made once."""
        return await self.context.store.node_secret(name, secrets.token_bytes(32), self.clock())

    # --- staff accounts and web sessions (``Accounts``) -------------------------------------

    async def create_account(self, user_id: str, email: str, password: str) -> int:
        """Give an existing user an account with an email address and password."""
        return await self.accounts.create_account(user_id, email, password)

    async def begin_sign_in(
        self, email: str, password: str, now: float | None = None
    ) -> SignInStep:
        """Check an email address and password; say what happens next, never who exists."""
        return await self.accounts.begin_sign_in(email, password, now)

    async def start_session(
        self, step: SignInStep, *, replacing: str | None = None
    ) -> tuple[str, Session]:
        """Start a session with a new id after an accepted password; return its token."""
        return await self.accounts.start_session(step, replacing=replacing)

    async def session_for(self, token: str, now: float | None = None) -> Session | None:
        """Return the live session of a token (noting its use), or None."""
        return await self.accounts.session_for(token, now)

    async def enrol_totp(self, token: str) -> TotpEnrolment:
        """Make a new TOTP secret for the session's account, to be confirmed with a code."""
        return await self.accounts.enrol_totp(token)

    async def confirm_totp_enrolment(self, token: str, code: str) -> EnrolmentConfirmed:
        """Confirm the new secret with a code; return recovery codes once, and a new session."""
        return await self.accounts.confirm_totp_enrolment(token, code)

    async def verify_second_factor(self, token: str, code: str) -> tuple[str, Session]:
        """Check a TOTP or recovery code; return a new session at ``second-factor``."""
        return await self.accounts.verify_second_factor(token, code)

    async def end_session(self, token: str) -> None:
        """Sign out of one session."""
        await self.accounts.end_session(token)

    async def end_all_sessions(self, user: User) -> int:
        """Sign a user out everywhere; return how many sessions ended."""
        return await self.accounts.end_all_sessions(user)

    async def sweep_sessions(self) -> int:
        """Delete every session past its idle or absolute timeout; return how many."""
        return await self.accounts.sweep_sessions()

    async def accept_invitation(self, email: str, code: str, password: str) -> SignInStep:
        """Use an invitation code to set a first password; the step of a first sign-in."""
        return await self.accounts.accept_invitation(email, code, password)

    # --- the administrator's pages (``AccountAdministration``, ``NodeState``) -------------

    async def organisation_accounts(self, actor: User) -> list[Account]:
        """Return the administrator's organisation's staff accounts."""
        return await self.account_admin.organisation_accounts(actor)

    async def staff_account(self, actor: User, account_id: int) -> Account:
        """Return one account of the administrator's organisation (else not found)."""
        return await self.account_admin.account(actor, account_id)

    async def invite(self, actor: User, *, name: str, email: str, role: str) -> Invitation:
        """Create an invited account; return its single-use code, once."""
        return await self.account_admin.invite(actor, name=name, email=email, role=role)

    async def renew_invitation(self, actor: User, account_id: int) -> Invitation:
        """Give an invited account a new code; the old one stops working."""
        return await self.account_admin.renew_invitation(actor, account_id)

    async def change_role(self, actor: User, account_id: int, role: str) -> None:
        """Change an account's role (its sessions end)."""
        await self.account_admin.change_role(actor, account_id, role)

    async def reset_second_factor(self, actor: User, account_id: int) -> None:
        """Forget an account's authenticator app and recovery codes (its sessions end)."""
        await self.account_admin.reset_second_factor(actor, account_id)

    async def set_account_disabled(self, actor: User, account_id: int, *, disabled: bool) -> None:
        """Disable an account (its sessions end) or enable it again."""
        await self.account_admin.set_disabled(actor, account_id, disabled=disabled)

    async def remove_account(self, actor: User, account_id: int) -> None:
        """Remove an account: no more sign-in or API token (what it did keeps its id)."""
        await self.account_admin.remove(actor, account_id)

    async def account_activity(
        self, actor: User, *, account_id: int | None = None, before: int | None = None
    ) -> ActivityPage:
        """Return a page of the administrator's organisation's account events, newest first."""
        return await self.audit.activity(actor, account_id=account_id, before=before)

    async def organisation_tokens(self, actor: User) -> list[ApiToken]:
        """Return the administrator's organisation's API tokens, newest first."""
        return await self.api_tokens.organisation_tokens(actor)

    async def organisation_token(self, actor: User, token_id: int) -> ApiToken:
        """Return one API token of the administrator's organisation (else not found)."""
        return await self.api_tokens.organisation_token(actor, token_id)

    async def create_api_token(
        self, actor: User, *, name: str, role: str, days: int = DEFAULT_DAYS
    ) -> tuple[ApiToken, str]:
        """Make an API token of the administrator's organisation; its secret is shown once."""
        return await self.api_tokens.create_for(actor, name=name, role=role, days=days)

    async def revoke_api_token(self, actor: User, token_id: int) -> ApiToken:
        """Revoke an API token of the administrator's organisation."""
        return await self.api_tokens.revoke_for(actor, token_id)

    async def node_state_for(self, actor: User) -> NodeStateView:
        """Return the node's routes, outbox, directory and keys as the admin's org sees them."""
        return await self.node_state.view(actor)

    async def check_directory(self, actor: User) -> RefreshResult:
        """Look for a new directory now, as an administrator asked (``DirectoryUpdates``)."""
        if self.directory_updates is None:
            raise ForbiddenError("This node does not look for new directories")
        return await self.directory_updates.check_now(actor)

    async def requeue_dead(self, actor: User, digest: bytes | None = None) -> int:
        """Requeue the administrator's organisation's dead letters (one envelope's, or all)."""
        return await self.node_state.requeue(actor, digest)

    # --- sending and receiving -----------------------------------------------------------

    async def may_send(self, user: User) -> None:
        """Refuse unless the user may send records (``FollowUps``)."""
        await self.follow_ups.may_send(user)

    async def reply_target(self, user: User, digest: bytes) -> ReplyTarget:
        """Return the inbox item a reply answers, if the user may reply to it (``FollowUps``)."""
        return await self.follow_ups.reply_target(user, digest)

    async def correction_target(self, user: User, digest: bytes) -> CorrectionTarget:
        """Return the sent item a correction replaces, if the user may correct it."""
        return await self.follow_ups.correction_target(user, digest)

    async def session_exists(self, id_hash: bytes) -> bool:
        """Return whether the web session named by ``id_hash`` is still stored."""
        return await self.context.store.session(id_hash) is not None

    async def submit(
        self,
        user: User,
        submission: Submission,
        *,
        corrects: bytes | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Submitted:
        """Check, seal and commit a record with its register row and deadline (``Sending``).

        With ``idempotency``, a repeat of an earlier request gets its answer again
        (``Submitted.replayed``) and nothing new is sealed (exchange.service.idempotency).
        """
        return await self.sending.submit(
            user, submission, corrects=corrects, idempotency=idempotency
        )

    def inbound_check(self, owner: OrgId) -> InboundCheck:
        """Return a check that verifies an envelope for ``owner`` while it arrives."""
        return self.receiving.inbound_check(owner)

    async def receive_envelope(
        self,
        peer_org: OrgId,
        owner: OrgId,
        body: bytes | HeldBody,
        *,
        checked: InboundCheck | None = None,
    ) -> bytes:
        """Verify and store a pushed envelope; return ``owner``'s ``delivered`` receipt.

        ``checked``: the :meth:`inbound_check` the body was fed to while it arrived.
        """
        return await self.receiving.receive_envelope(peer_org, owner, body, checked=checked)

    async def receive_collected(
        self, owner: OrgId, body: bytes | HeldBody, route_kind: str
    ) -> bool:
        """Take an envelope collected from a pull route; return whether it was new."""
        return await self.receiving.receive_collected(owner, body, route_kind)

    async def import_envelope(self, user: User, body: bytes) -> tuple[bytes, bool]:
        """Take an envelope staff received another way; return its digest and whether new."""
        return await self.receiving.import_envelope(user, body)

    async def receive_receipt(self, peer_org: OrgId | None, owner: OrgId, data: bytes) -> None:
        """Verify and keep a receipt for an envelope ``owner`` sent."""
        await self.receiving.receive_receipt(peer_org, owner, data)

    # --- the inbox -----------------------------------------------------------------------

    async def open_item(self, user: User, digest: bytes) -> OpenedItem:
        """Open an inbox item for an authorised user; emit ``opened`` the first time."""
        return await self.inbox.open_item(user, digest)

    async def opened_content(self, user: User, digest: bytes) -> tuple[int, AsyncIterator[bytes]]:
        """Open an inbox item (recorded): its content's length and bytes, verified as streamed."""
        return await self.reading.content(user, digest)

    async def decide(self, user: User, digest: bytes, *, accept: bool, code: str | None) -> bytes:
        """Acknowledge or reject an inbox item; return the receipt's digest."""
        return await self.inbox.decide(user, digest, accept=accept, code=code)

    # --- reading opened items (``Reading``) -------------------------------------------------

    def may_open(self, user: User) -> bool:
        """Whether the user's role may open, read and decide on inbox items."""
        return self.reading.may_open(user)

    def decision_codes(self, *, accept: bool) -> tuple[str, ...]:
        """Return the outcome codes of an acknowledgement, or the reason codes of a rejection."""
        return self.reading.decision_codes(accept=accept)

    async def read_item(self, user: User, digest: bytes) -> OpenedItem | None:
        """Open an inbox item (recorded) and return its record container (None if not one)."""
        return await self.reading.read_item(user, digest)

    async def inbox_attachment(
        self, user: User, digest: bytes, number: int
    ) -> tuple[Entry, AsyncIterator[bytes]]:
        """Return attachment ``number`` (from 1) of an opened inbox item (recorded), streamed."""
        return await self.reading.attachment(user, digest, number)

    def deadline_owed(self, view: InboxView, record: dict[str, Any] | None) -> Deadline | None:
        """Return the deadline the receiving organisation owes for an inbox item, or None."""
        return self.reading.deadline_owed(view, record)

    # --- what staff see ------------------------------------------------------------------

    async def sent_items(
        self,
        user: User,
        *,
        limit: int,
        before: tuple[float, bytes] | None,
        after: tuple[float, bytes] | None = None,
        only: SentFilterKind | None = None,
    ) -> list[SentView]:
        """Return a page of the organisation's sent items with every fact staff see."""
        return await self.views.sent_items(user, limit=limit, before=before, after=after, only=only)

    async def sent_item(self, user: User, digest: bytes) -> SentView:
        """Return one sent item with its timeline events, or refuse as not found."""
        return await self.views.sent_item(user, digest)

    async def inbox_items(
        self, user: User, *, limit: int, before: tuple[float, bytes] | None
    ) -> list[InboxView]:
        """Return a page of the organisation's inbox with every fact staff see."""
        return await self.views.inbox_items(user, limit=limit, before=before)

    async def inbox_unread_first(
        self, user: User, *, limit: int, after: InboxPlace | None
    ) -> list[InboxView]:
        """Return a page of the organisation's inbox: unread items first, then newest first."""
        return await self.views.inbox_unread_first(user, limit=limit, after=after)

    async def inbox_item(self, user: User, digest: bytes) -> InboxView:
        """Return one item of the organisation's inbox, or refuse as not found."""
        return await self.views.inbox_item(user, digest)

    async def inbox_item_by_envelope_id(self, user: User, envelope_id: bytes) -> InboxView:
        """Return the organisation's inbox item of an envelope id, or refuse as not found."""
        return await self.views.inbox_item_by_envelope_id(user, envelope_id)

    async def receipts(self, user: User, digest: bytes, ledger: NodeLedger) -> ReceiptsView:
        """Return the receipts held for one of the organisation's items, with proofs."""
        return await self.views.receipts(user, digest, ledger)

    # --- the sharing register ------------------------------------------------------------

    async def record_not_shared(
        self,
        user: User,
        *,
        purpose: str,
        recipients: Sequence[OrgId],
        reason_code: str,
        reason: str,
        record_kind: str | None = None,
        identifiers: Sequence[tuple[SubjectKind, str]] = (),
    ) -> int:
        """Register a decision not to share; return its register id."""
        return await self.register.record_not_shared(
            user,
            purpose=purpose,
            recipients=recipients,
            reason_code=reason_code,
            reason=reason,
            record_kind=record_kind,
            identifiers=identifiers,
        )

    def register_stream(
        self,
        user: User,
        *,
        since: float | None,
        until: float | None,
        form: str,
        purpose: str | None = None,
        outcome: RegisterOutcome | None = None,
    ) -> AsyncIterator[str]:
        """Return the register export in pieces (DPO only; checked before the first)."""
        return self.register.register_stream(
            user, since=since, until=until, form=form, purpose=purpose, outcome=outcome
        )

    async def register_export(
        self,
        user: User,
        *,
        since: float | None,
        until: float | None,
        form: str,
        purpose: str | None = None,
        outcome: RegisterOutcome | None = None,
    ) -> str | list[dict[str, Any]]:
        """Return the organisation's register as CSV text or JSON rows (DPO only)."""
        return await self.register.register_export(
            user, since=since, until=until, form=form, purpose=purpose, outcome=outcome
        )

    async def register_page(
        self,
        user: User,
        *,
        since: float | None,
        until: float | None,
        purpose: str | None,
        outcome: RegisterOutcome | None,
        limit: int,
        offset: int,
    ) -> RegisterPage:
        """Return one page of the organisation's register, newest first (DPO only)."""
        return await self.register.register_page(
            user,
            since=since,
            until=until,
            purpose=purpose,
            outcome=outcome,
            limit=limit,
            offset=offset,
        )

    async def overdue_items(self, org: OrgId, now: datetime | None = None) -> list[OverdueItem]:
        """Return ``org``'s deadlines past due without the receipt that meets them."""
        return await self.register.overdue_items(org, now)

    async def overdue_for(self, user: User) -> list[OverdueItem]:
        """Return the user's organisation's overdue items (DSL, staff and DPO)."""
        return await self.register.overdue_for(user)

    async def owed_by(self, user: User) -> list[OwedItem]:
        """Return the received items the user's organisation has yet to answer, by deadline."""
        return await self.owed.owed_by(user)

    def check_subject_access(self, user: User) -> None:
        """Refuse unless the user may make subject access searches (DPO only)."""
        self.subject_access_case.check(user)

    async def subject_access(self, user: User, identifiers: Sequence[Identifier]) -> dict[str, Any]:
        """Return the subject access report for these validated identifiers (DPO only)."""
        return await self.subject_access_case.report(user, identifiers)

    async def subject_access_copies(self, user: User, identifiers: Sequence[Identifier]) -> Copies:
        """Return the report and a copy of each item it lists, each access recorded (DPO)."""
        return await self.subject_access_case.copies(user, identifiers)

    async def read_back(self, user: User, digest: bytes) -> bytes:
        """Return the record container the user's organisation sent (from its own copy)."""
        return await self.subject_access_case.read_back(user, digest)

    async def thread(self, user: User, digest: bytes) -> dict[str, Any]:
        """Return the conversation ``digest`` belongs to, as the user's organisation holds it."""
        view = await thread_view(self.store, user.org, digest)
        if view is None:
            raise NotFoundError("no such item for this organisation")
        return view

    # --- retention -----------------------------------------------------------------------

    async def retention_due(self, user: User, before: date | None) -> dict[str, Any]:
        """Return the review queue of the user's organisation (DPO only)."""
        self.tenant(user.org)
        return await _retained(retention.due(self.context, user, before))

    async def retention_holds(self, user: User) -> dict[str, Any]:
        """Return every hold of the user's organisation, in force or lifted (DPO only)."""
        self.tenant(user.org)
        return await _retained(retention.list_holds(self.context, user))

    async def retention_item(self, user: User, digest: bytes) -> dict[str, Any]:
        """Return one item the organisation holds as the review queue shows it (DPO only)."""
        self.tenant(user.org)
        return await _retained(retention.held(self.context, user, digest))

    async def place_hold(
        self, user: User, *, digest: bytes | None, reason: str, reference: str
    ) -> dict[str, Any]:
        """Place a hold on one item, or on every item (``digest`` None) (DPO only)."""
        self.tenant(user.org)
        return await _retained(
            retention.place_hold(
                self.context, user, digest=digest, reason=reason, reference=reference
            )
        )

    async def lift_hold(self, user: User, hold_id: int) -> dict[str, Any]:
        """Lift a hold of the user's organisation (DPO only)."""
        self.tenant(user.org)
        return await _retained(retention.lift_hold(self.context, user, hold_id))

    async def destroy(self, user: User, digest: bytes, *, reason: str) -> dict[str, Any]:
        """Destroy an item after review, when the rules allow it (DPO only)."""
        self.tenant(user.org)
        return await _retained(retention.destroy(self.context, user, digest, reason=reason))

    async def sweep_destroyed(self) -> int:
        """Delete the bodies of destroyed envelopes a crash left behind; return how many."""
        return await retention.sweep_destroyed(self.context.store)

    # --- operations ----------------------------------------------------------------------

    async def check_store(self) -> None:
        """Raise unless the store answers, can write and is not known to be damaged."""
        if self.context.store.damage is not None:
            raise self.context.store.damage
        await self.context.store.ledger_size()
        await self.context.store.check_writable(self.clock())

    async def store_counts(self) -> StoreCounts:
        """Return the outbox, receipt and ledger counts the metrics report."""
        store = self.context.store
        outbox = await store.outbox_counts()
        receipts = await store.receipt_counts()
        return StoreCounts(outbox, receipts, await store.ledger_size())


async def _retained(call: Awaitable[T]) -> T:
    """Await a retention action; a refusal becomes the service's error, naming its rule."""
    try:
        return await call
    except retention.RetentionRefusedError as exc:
        if exc.rule is None:
            raise ServiceError(str(exc), status=exc.status) from None
        error = UnprocessableError(str(exc), rule=exc.rule)
        error.status = exc.status
        raise error from None
